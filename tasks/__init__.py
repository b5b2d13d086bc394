"""The tasks of `fab`: one module per concern, every command at the top level.

`fab --list` shows them; `fab --help TASK` shows a task's flags.
"""
from invoke import Collection

from .steps import adhoc, node_config

ns = Collection()
for _task in (adhoc.ping, adhoc.run_, node_config.configure):
    ns.add_task(_task)
from .steps import certs, lb  # noqa: E402  (fab lb, fab certs)
ns.add_task(lb.lb)
ns.add_task(certs.certs)
from .steps import db  # noqa: E402  (fab db-init)
ns.add_task(db.db_init)
from .steps import deploy  # noqa: E402  (fab deploy, restart, stop, logs, unlock)
for _task in (deploy.deploy, deploy.restart, deploy.stop, deploy.logs, deploy.unlock):
    ns.add_task(_task)
from .steps import status  # noqa: E402  (fab status)
ns.add_task(status.status)
from .steps import admin  # noqa: E402  (fab admin-password)
ns.add_task(admin.admin_password)
from .steps import artifacts  # noqa: E402  (fab artifacts)
ns.add_task(artifacts.artifacts)
ns.configure({"inventory": None})
from .steps.backup import tasks as _backup, take as _take  # noqa: E402  (fab backup, ...)
for _task in (_backup.backup, _backup.restore, _backup.rollback):
    ns.add_task(_task)
from .engine import runner as _runner  # noqa: E402
_runner.DATA_LOSS_GUARDS.append(_take.before_data_loss)  # fab db-init --drop backs up first
from .steps.membership import remove  # noqa: E402  (fab remove-node)
ns.add_task(remove.remove_node)
