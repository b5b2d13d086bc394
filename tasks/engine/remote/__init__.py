"""Remote primitives: strict SSH connections, one-round-trip scripts, facts, atomic writes.

- `transport`: connect (host keys checked), run a script on stdin (as root through sudo when
  the SSH user is not root), timeouts, the errors every step reports (`RemoteError` and kin);
- `facts`: `read_facts` = many probes in ONE round trip; `probe_file` / `parse_file_probe` = the
  one file fact (absent, not a file, or present with owner/mode/hash and optional bytes);
- `files`: `FileSpec` (a file wanted exactly), `plan_files` (pure diff against the facts),
  `write_files_script` (atomic writes with backups and roll-back), `script(name, **params)`
  (a tasks/scripts/*.sh body with its quoted parameters), `managed_block`.

Callers use `remote.X` or `from ..engine.remote import X`; the submodules are an inner layout.
"""
from .facts import (PENDING_RESTART, STATE_DIR, Fact, FileState, NotAFile, parse_content_probe,
                    parse_facts, parse_file_probe, probe_file, probe_pending, read_facts,
                    read_file)
from .files import (BACKUP_DIR, BACKUPS_KEEP, SCRIPTS_DIR, FileChange, FileSpec, _script_body,
                    backups_lib, block_change, clear_pending_script, managed_block, plan_files,
                    pending_restart_script, script, utc_stamp, write_files_script)
from .transport import (CmdResult, CommandFailed, HostKeyChanged, HostKeyUnknown, HostSession,
                        RemoteError, Unreachable, _exec, close, connect, q, run_script)

__all__ = [
    "PENDING_RESTART", "STATE_DIR", "Fact", "FileState", "NotAFile", "parse_content_probe",
    "parse_facts", "parse_file_probe", "probe_file", "probe_pending", "read_facts", "read_file",
    "BACKUP_DIR", "BACKUPS_KEEP", "SCRIPTS_DIR", "FileChange", "FileSpec", "backups_lib",
    "block_change", "clear_pending_script", "managed_block", "plan_files",
    "pending_restart_script", "script", "utc_stamp", "write_files_script",
    "CmdResult", "CommandFailed", "HostKeyChanged", "HostKeyUnknown", "HostSession",
    "RemoteError", "Unreachable", "close", "connect", "q", "run_script",
]
