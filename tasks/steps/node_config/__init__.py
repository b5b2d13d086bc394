"""`fab configure`: on each EI node, the JDBC driver and the profile's cluster configuration.

Facts (one round trip per node): EI_HOME, service user, ownership, JDK, lib/ jars, the current
bytes of every config file we edit, the pending-restart mark. Plan: the XML edits are made in
memory by `ei_xml.render_node_config` on the node's own files (so comments and the user's other
settings stay); only files whose bytes, owner or mode differ are written, atomically, with a
0600 backup. Any change marks the node as needing a restart, on the node itself.

The parts: params.py (what goes into the files), facts.py (one fact read, and what we remember
having rendered), plan.py (pure: the writes), files.py (the one script that does them),
install.py (EI from cluster.ei_zip), step.py (the step on the contract, `plan_configure` for
read-only callers such as `fab status`, and `fab configure`).
"""
from __future__ import annotations

from .facts import (ADMIN_STATE, CONFIG_STATE, NodeFacts, node_probes, parse_node_facts,
                    remembered_state, render_digest, unchanged_since_last_render)
from .files import apply_script, ei_home_lib, remember_script
from .install import install_from_zip, install_plan, install_step
from .params import (MEMBERSHIP_FILE, SECRET_FILES, conf_dir, driver_class, driver_info,
                     jdbc_url, node_params)
from .plan import NodePlan, meta_as_wanted, plan_node
from .step import (ConfigureOutcome, NodeConfigured, configure, configure_actions,
                   configure_node, configure_outcome, configure_step, plan_configure)

__all__ = [n for n in dir() if not n.startswith("__") and n != "annotations"]
