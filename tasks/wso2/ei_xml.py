"""Pure XML editing of one EI 6.6.0 Business Process node's configuration (reference §4).

No I/O, no network, no clock: `render_node_config(originals, params)` maps the current bytes of
each file in `CONF_FILES` to the wanted bytes; the configure step (tasks/steps/node_config/)
reads the files, diffs and writes them. Each file is edited in place by the byte-preserving
editor (tasks/engine/xmledit.py), so comments, layout and the user's other settings stay, and
rendering its own output returns identical bytes. Which elements each file gets:
tasks/wso2/ei_editors.py; the parameters: tasks/wso2/ei_params.py.
"""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from ..engine import xmledit, xmltree
from ..engine.xmledit import Doc, XmlConfigError
from . import ei_editors, ei_params, keystore_xml
from .ei_editors import EDITORS, NEW_DS_POOL  # noqa: F401  (NEW_DS_POOL: read by the db step)
from .ei_params import DataSourceSpec, NodeXmlParams, check_params

CONF_FILES = tuple(EDITORS)  # relative to <EI_HOME>/wso2/business-process/conf/

__all__ = ["CONF_FILES", "NEW_DS_POOL", "DataSourceSpec", "NodeXmlParams", "XmlConfigError",
           "render_node_config", "admin_seed_only_change", "code_bytes", "USER_MGT",
           "ADMIN_PASSWORD_PATH"]


def render_node_config(originals: dict[str, bytes], p: NodeXmlParams) -> dict[str, bytes]:
    """Given the node's current bytes of each CONF_FILES entry, return the wanted bytes of each.

    Pure and deterministic; applying it to its own output returns identical bytes. Raises
    XmlConfigError (and returns nothing) if a file is missing, not well-formed or lacks an
    element we edit inside; ValueError if the parameters contradict each other.
    """
    check_params(p)
    missing = [f for f in CONF_FILES if f not in originals]
    if missing:
        raise XmlConfigError(missing[0], "(file)",
                             f"missing from the node's files (also missing: {missing[1:]})"
                             if len(missing) > 1 else "missing from the node's files")
    out: dict[str, bytes] = {}
    for name in CONF_FILES:
        doc = Doc(name, originals[name])
        EDITORS[name](doc, p)
        if p.keystore is not None:  # the node's own keystore (cluster CA)
            keystore_xml.edit(name, doc, p.keystore)
        out[name] = doc.to_bytes()
    return out


USER_MGT = "user-mgt.xml"
ADMIN_PASSWORD_PATH = "Realm/Configuration/AdminUser/Password"


def _without_admin_password(data: bytes) -> bytes | None:
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        return None
    for el in root.findall(ADMIN_PASSWORD_PATH):
        el.text = ""
    return etree.tostring(root, method="c14n")


def admin_seed_only_change(old: bytes | None, new: bytes) -> bool:
    """True when two versions of user-mgt.xml differ only in <AdminUser><Password>.

    That value only seeds the admin user into the JDBC user store at the product's first start;
    a running cluster reads its admin password from WSO2_USER_DB, so such an edit needs no
    restart (the password itself is rotated through the user admin service: tasks/steps/admin.py)."""
    if old is None or old == new:
        return False
    a, b = _without_admin_password(old), _without_admin_password(new)
    return a is not None and a == b


def code_bytes() -> bytes:
    """The source of everything the rendered bytes depend on (a change in any of it must make
    the configure step render again: node_config.render_digest)."""
    return b"".join(Path(f).read_bytes() for f in (xmltree.__file__, xmledit.__file__,
                                                   ei_params.__file__, ei_editors.__file__,
                                                   keystore_xml.__file__,
                                                   __file__))


# The names this module had before the generic editor moved to engine/xmledit.py, kept for the
# wso2 modules that edit more files with the same editor (import from xmledit in new code).
from ..engine.xmledit import path as _path  # noqa: E402,F401
from ..engine.xmltree import (ATTR_RE as _ATTR, TOKEN_RE as _TOKEN, El as _El,  # noqa: E402,F401
                              New as _New, Selector, Tok as _Tok, attr_of as _attr_of,
                              esc_attr as _esc_attr, esc_text as _esc_text, leaf as _leaf,
                              sel as _sel, unescape as _unescape)
from .ei_editors import (HTTP_PORT, HTTPS_PORT, MOUNTS, REGISTRY_DB_CONFIG,  # noqa: E402,F401
                         REMOTE_INSTANCE_ID, REMOTE_INSTANCE_URL)
_Doc, _EDITORS, _check_params = Doc, EDITORS, check_params
