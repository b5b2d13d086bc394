"""EI node processes: state, start/stop as the service user, the health gate, log tails.

Health of a node after a start (the gate every start passes before the next node starts):
* its JVM alive (the process of the service user with this profile's -Dcarbon.home),
* `WSO2 Carbon started` logged by this start (its log read from the byte offset taken before
  the start, across a log4j2 roll: tasks/scripts/log_since.sh),
* 200 from a page of the profile, on the node itself:
  https://<node>:<9443 + offset>/carbon/admin/login.jsp,
* in the cluster: every other running member logged `Member joined [<uuid>]: /<node>:<port>`
  since the start (Carbon's HazelcastClusteringAgent logs that on each member already running,
  never on the node that joins). Only starts pay for this: one more fact read per member.
A node that fails the gate stops the run there and keeps a pending-restart mark.

The parts: jdk.py (the JDK, read without a JVM), state.py (process, unit, log position, pending
mark: one fact read), health.py (the gate), control.py (the start and stop steps, on the step
contract: a Plan that `run.apply` runs, so check mode and the status are the runner's).
"""
from __future__ import annotations

from .control import (_as_service_user, _stop_outcome, log_tail, start_and_wait, start_lib,
                      start_plan, start_script, stop_node, stop_plan, stop_script)
from .health import (EXIT_POLLS, ROLLED_LOGS, STARTED_MARK, MemberMark, exited, health_problem,
                     joined_pattern, launcher_probe, log_since_probe, member_marks,
                     parse_log_since, wait_healthy)
from .jdk import SUPPORTED_JDKS, java_probe, jdk_major, jdk_problem
from .state import (EI_LOCALE, LOGIN_PAGE, PROC_FACT, NodeState, node_state, parse_state, paths,
                    process_lib, state_probes)

__all__ = [n for n in dir() if not n.startswith("__") and n != "annotations"]
