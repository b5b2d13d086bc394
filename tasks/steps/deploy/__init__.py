"""`fab deploy`, `fab restart`, `fab stop`, `fab logs`, `fab unlock` (`fab status`: ../status.py).

deploy = preflight (all hosts, parallel; any problem stops the run before anything changes)
       -> lock -> db-init -> certs -> configure (nodes in parallel)
       -> start/restart only the nodes that need it, in inventory order, each healthy first
       -> lb (validated, reloaded only on change) -> unlock.

The parts: preflight.py (every host, before anything changes; a typed `Preflight` per host),
lock.py (one deploy at a time), restarts.py (ordered restarts behind the health gate, drained
from the LB), tasks.py (the tasks themselves, thin).
"""
from __future__ import annotations

from .lock import (BOOT_ID, LOCK_DIR, LockOwner, _boot_id, _lock_owner, _pid_alive, acquire_lock,
                   deploy_lock, lock_lib, release_lock, stale_lock, unlock_host, unlock_plan)
from .preflight import (Preflight, identity_problem, parse_paths, path_targets, paths_probe,
                        preflight, preflight_host, preflight_probes)
from .restarts import (_drain_failed, _lb_configured, nodes_needing_restart, restart_nodes,
                       rollback_hint)
from .tasks import deploy, logs, restart, stop, unlock

__all__ = [n for n in dir() if not n.startswith("__") and n != "annotations"]
