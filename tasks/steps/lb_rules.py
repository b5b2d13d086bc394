"""What the LB serves on which name: the ONE list of WSO2 admin paths the service names never
serve (rendered into templates/_service_guard.j2, documented in the README's `fab lb` section).

The service names (ei.http.conf, ei.https.conf) carry the cluster's web services and processes.
The management console (/carbon), WSO2's admin services and, unless hosts.toml exposes them,
the user-facing web apps are served through the console name only, behind its allow-list.
"""
from __future__ import annotations

import re

# WSO2's admin (back-end) services under /services/: they do not share one name pattern, so
# these are listed by name; ADMIN_SERVICE_PATTERNS adds every *Admin / *AdminService.
ADMIN_SERVICES: tuple[str, ...] = (
    "AuthenticationAdmin",
    "UserAdmin",
    "RemoteUserStoreManagerService",
    "RemoteAuthorizationManagerService",
    "RemoteClaimManagerService",
    "RemoteProfileConfigurationManagerService",
    "RemoteTenantManagerService",
    "ServerAdmin",
    "BPELPackageManagementService",
    "HumanTaskPackageManagementService",
    "ProcessManagementService",
    "InstanceManagementService",
    "BPMNDeploymentService",
    "BPMNInstanceService",
)
# regex fragments (nginx PCRE, matched case-insensitively): one path segment's service name
ADMIN_SERVICE_PATTERNS: tuple[str, ...] = (r"[^/.]*Admin", r"[^/.]*AdminService")

# the management console: never on the service names
CONSOLE_PATHS: tuple[str, ...] = ("carbon",)

# user-facing web apps and the BPMN REST API: console name only, unless
# cluster.expose_on_service lists them
CONSOLE_APPS: tuple[str, ...] = ("bpmn", "bpmn-explorer", "humantask-explorer")

# a plain service name, as WSO2 names services (also what admin_services_extra accepts)
SERVICE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


def admin_services_regex(extra: tuple[str, ...] | list[str] = ()) -> str:
    """The nginx regex (for `location ~*`) of every admin service path under /services/.

    nginx matches the normalized URI (%XX decoded, `//` merged, `.`/`..` resolved), so
    `/services//UserAdmin` and `/services/%55serAdmin` are `/services/UserAdmin` here; the
    query string (`?wsdl`) is never part of it. The name may be followed by an endpoint
    suffix (`UserAdmin.UserAdminHttpsSoap12Endpoint`), an operation (`/getUsers`) or nothing;
    tenant paths (`/services/t/<domain>/UserAdmin`) are covered too.
    """
    bad = [n for n in extra if not SERVICE_NAME_RE.fullmatch(n)]
    if bad:
        raise ValueError(f"not plain service names: {', '.join(map(repr, bad))}")
    names = [*ADMIN_SERVICES, *(n for n in extra if n not in ADMIN_SERVICES)]
    alt = "|".join([*names, *ADMIN_SERVICE_PATTERNS])
    return rf"^/services/(?:[^/]*/)*(?:{alt})(?:[./]|$)"


def console_only_regex(exposed: tuple[str, ...] | list[str] = ()) -> str:
    """The nginx regex of the console and the web apps not exposed on the service names."""
    paths = [*CONSOLE_PATHS, *(a for a in CONSOLE_APPS if a not in exposed)]
    return rf"^/(?:{'|'.join(re.escape(p) for p in paths)})(?:/|$)"
