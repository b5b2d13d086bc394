"""The tasks of `fab`: one module per concern, every command at the top level.

`fab --list` shows them; `fab --help TASK` shows a task's flags.
"""
from invoke import Collection

from . import adhoc, ei_config

ns = Collection()
for _task in (adhoc.ping, adhoc.run_, ei_config.configure):
    ns.add_task(_task)
ns.configure({"inventory": None})
