"""hosts.toml: read, validate and model the cluster.

Every mistake is found before any host is touched, reported together, each naming the key
and the fix (exit code 2). Secrets are resolved here, from a 0600 file or an environment
variable, into one credentials object (`Secrets`) whose repr never shows them.

- `model`: the frozen dataclasses (Inventory, Host, the settings), which are also the schema of
  their hosts.toml tables (`toml_key`), and pure helpers on their values;
- `credentials`: `Secrets`, the secrets and their derived forms (e.g. `db_native_hash`);
- `schema`: SCHEMA (derived from the model) and `_Checker`, every value check;
- `parse`: `load` / `from_dict`, the checks in order and the Inventory built by keyword.
"""
from .credentials import (DEFAULT_ADMIN_PASSWORD, DEFAULT_TRUSTSTORE_PASSWORD, SECRET_SINKS,
                          Secrets, native_hash)
from .model import (HEAP_MAX_MB, HEAP_MIN_MB, NOFILE_MAX, NOFILE_MIN, REQ, ArtifactSettings,
                    CertSettings,
                    ClusterSettings, DatabaseSettings, Host, Inventory, InventoryError,
                    SshSettings, console_open_reason, heap_mb, jvm_mem_opts)
from .parse import from_dict, load
from .schema import SCHEMA, TOP_LEVEL

__all__ = [
    "DEFAULT_ADMIN_PASSWORD", "DEFAULT_TRUSTSTORE_PASSWORD", "SECRET_SINKS", "Secrets",
    "native_hash", "HEAP_MAX_MB", "HEAP_MIN_MB", "NOFILE_MAX", "NOFILE_MIN", "REQ",
    "ArtifactSettings", "CertSettings", "ClusterSettings", "DatabaseSettings", "Host", "Inventory", "InventoryError",
    "SshSettings", "console_open_reason", "heap_mb", "jvm_mem_opts", "from_dict", "load",
    "SCHEMA", "TOP_LEVEL",
]
