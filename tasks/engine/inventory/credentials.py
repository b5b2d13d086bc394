"""The credentials object: every secret of the run, resolved once by the inventory, and the
forms derived from them (computed once, here, and handed down with the inventory).

A step reads `inv.secrets.db_password`, `inv.secrets.db_native_hash`, ...; a misspelled name
raises AttributeError (never a silent None); repr/str never show a value; `masked()` is what
every printed or logged line has replaced by *** (runner.make_run feeds it to the redactor).
"""
from __future__ import annotations

import functools
import hashlib

DEFAULT_TRUSTSTORE_PASSWORD = "wso2carbon"  # WSO2's shipped default
DEFAULT_ADMIN_PASSWORD = "admin"  # WSO2's shipped admin/admin (only with allow_default_admin)
DEFAULT_KEYSTORE_PASSWORD = "wso2carbon"  # of WSO2's shipped wso2carbon.jks

# Every secret, once: where it is written. A value must fit in all those places, so no control
# characters (XML 1.0 cannot hold most of them; the other places are read line by line).
SECRET_SINKS = {
    "db_password": "it is written into the nodes' datasource XML, which XML 1.0 cannot hold",
    "admin_password": "it is written into the nodes' user-mgt.xml, which XML 1.0 cannot hold",
    "truststore_password": "it is written to keytool's store password file, which is line based",
    "db_admin_password": "it is written to a MySQL client option file, which is line based",
    "keystore_password": "it is written into carbon.xml and catalina-server.xml, which XML 1.0 "
                         "cannot hold, and given to the server in its line based password-tmp",
    "admin_password_old": "it is sent to the nodes' user admin service in XML, which XML 1.0 "
                          "cannot hold",
    "sudo_password": "it is sent to sudo as one line on stdin",
}


def native_hash(password: str) -> str:
    """mysql_native_password hash: '*' + upper hex SHA1(SHA1(password))."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


class Secrets:
    """Resolved secret values (None: not set) and their derived forms."""

    def __init__(self, values: dict[str, str | None]):
        unknown = sorted(set(values) - set(SECRET_SINKS))
        if unknown:
            raise ValueError(f"no secret named {', '.join(unknown)} (known: "
                             f"{', '.join(SECRET_SINKS)})")
        self._values = {name: values.get(name) for name in SECRET_SINKS}

    def get(self, name: str) -> str | None:
        return getattr(self, name)

    def __getattr__(self, name: str) -> str | None:
        # a misspelled secret is a bug, not a missing secret: never a silent None
        if name.startswith("_") or name not in SECRET_SINKS:
            raise AttributeError(f"no secret named {name!r} (known: {', '.join(SECRET_SINKS)})")
        return self._values[name]

    @functools.cached_property
    def db_native_hash(self) -> str:
        """The application DB account's mysql_native_password hash (what the server stores)."""
        return native_hash(self._values["db_password"] or "")

    def values(self) -> list[str]:
        return [v for v in self._values.values() if v]

    def masked(self) -> list[str]:
        """What output and logs must never show: every secret and derived form. WSO2's public
        defaults are no secret, and masking them would mangle paths such as wso2carbon.jks."""
        public = {DEFAULT_TRUSTSTORE_PASSWORD, DEFAULT_ADMIN_PASSWORD, DEFAULT_KEYSTORE_PASSWORD}
        out = [v for v in self.values() if v not in public]
        if self._values["db_password"]:
            out.append(self.db_native_hash)
        return out

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}=***" for k, v in self._values.items() if v) + ")"

    __str__ = __repr__
