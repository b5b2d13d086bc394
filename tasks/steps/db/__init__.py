"""`fab db-init`: the cluster's databases, the application user and WSO2's schemas, once and safely.

The step contract (engine/plan.py): facts (facts.py: one round trip on the DB host, one read per
node) -> a pure planner (plan.py, settings.py) returns a Plan whose actions carry all the SQL ->
`run.apply` runs it (apply.py: what the actions do), with check mode, diffs and status. The
shell is in tasks/scripts/db_*.sh (sql.py builds the scripts); the nodes' /etc/hosts is
hosts_file's.

Decisions (see also the reference doc §2 and §6):
* Admin access: root over the unix socket by default; with `database.admin_user`, that user with
  `secrets.db_admin_password`. Either way the client reads its login as an option file on file
  descriptor 3, from a here-document (db_client.sh): no file on the DB host ever holds it; SQL
  travels inside the script on stdin. Nothing secret is ever in argv or the environment.
* The application password never leaves this machine in clear: we send only its
  mysql_native_password hash (`*` + SHA1(SHA1(pw))). The user is created with that hash
  (`IDENTIFIED BY PASSWORD` on MariaDB / MySQL < 5.7.6, `IDENTIFIED WITH mysql_native_password AS`
  on MySQL >= 5.7.6, including 8.0), so a changed password in hosts.toml is found by comparing
  hashes on the server, and the hash is added to the output redactor. MySQL 8.4+ disables
  mysql_native_password by default: there CREATE USER fails and says so.
* Accounts, grants and the partial-database rule: plan.py. Server settings (drop-in, restart,
  max_connections): settings.py.
* WSO2's scripts come from database.scripts_dir or the first node's EI_HOME; read from a node
  (where the service user can write them) they must be WSO2's shipped ones, byte for byte
  (WSO2_SCRIPT_SHA256), since db-init runs them as the database admin.
"""
from ...engine.cli import Abort  # noqa: F401  (tests: db.Abort)
from .apply import Loads, Settings, SqlAction, SqlBatch, needed_scripts  # noqa: F401
from .cnf import (DS_FILES, POOLS, SHIPPED_POOL_TOTAL, TOMCAT_MAX_ACTIVE,  # noqa: F401
                  cnf_value, connections_wanted, later_in_dir, parse_bind_lines,
                  parse_cnf_file, parse_cnf_options, pool_sizes, render_dropin, winner_files)
from .facts import (db_probes, fetch_scripts, node_probes, parse_db_facts,  # noqa: F401
                    read_db_facts, read_node_pools)
from .model import (ACTIVITI_TABLES, BPS_TABLES, CONF_DIRS, DROPIN_NAME,  # noqa: F401
                    KERNEL_TABLES, KIND_TABLES, LEGACY_DROPIN, REQUIRED_PRIVS, STEP,
                    WSO2_SCRIPT_SHA256, DbFacts, Load, Server, account, bind_ok, classify,
                    db_kinds, ident, lit, native_hash, node_databases, scripts_for,
                    version_tuple)
from .plan import DbPlan, plan_db  # noqa: F401
from .sql import (BIND_OTHER, admin_script, bind_check, client_prelude,  # noqa: F401
                  load_script, restart_command, settings_script)
from .step import _validate_drop, db_init, db_status, db_step  # noqa: F401
