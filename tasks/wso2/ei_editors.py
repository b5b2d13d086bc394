"""The per-file edits of an EI 6.6.0 Business Process node's configuration (reference §4).

One function per file in `EDITORS` (the order is the order of CONF_FILES), each written in the
"ensure" language of the generic editor (tasks/engine/xmledit.py): find the element WSO2 reads,
set its value, or create it where the shipped file shows it (under its commented example, else
in schema order).
"""
from __future__ import annotations

import re
from typing import Callable

from ..engine.xmledit import Doc, El, New, Selector, leaf, path, sel
from .ei_params import DataSourceSpec, NodeXmlParams

# registry.xml mount (reference §4.5)
REGISTRY_DB_CONFIG = "wso2bpsregistry"
REMOTE_INSTANCE_ID = "instanceid"
REMOTE_INSTANCE_URL = "https://localhost:9443/registry"
MOUNTS = (("/_system/config", "/_system/bpsconfig"), ("/_system/governance", "/_system/governance"))

# pool settings of the datasources we add to master-datasources.xml (reference §4.1)
NEW_DS_POOL = (
    ("maxActive", "50"),
    ("maxWait", "60000"),
    ("testOnBorrow", "true"),
    ("validationQuery", "SELECT 1"),
    ("validationInterval", "30000"),
    ("defaultAutoCommit", "false"),
)
_DEFAULT_DESCRIPTION = {
    "user": "The datasource used for user manager",
    "registry": "The datasource used for config/governance registry mount",
}
# pre-offset servlet ports in catalina-server.xml / axis2.xml (reference §1, §6.7)
HTTP_PORT, HTTPS_PORT = "9763", "9443"


def _datasource(doc: Doc, name: str, *, required: bool = True) -> Callable[[], El | None]:
    def get() -> El | None:
        dss = doc.one(doc.root, sel("datasources"), required="no datasources defined")
        found = [d for d in dss.children("datasource")
                 if any(doc.text_of(n) == name for n in d.children("name"))]
        if len(found) > 1:
            raise doc.err("datasource", f"{len(found)} <datasource> named {name}, expected one")
        if not found and required:
            raise doc.err("datasource", f"no <datasource> named {name} in <datasources>")
        return found[0] if found else None
    return get


def _edit_datasource(doc: Doc, spec: DataSourceSpec, get: Callable[[], El | None]) -> None:
    """url/username/password/driverClassName of an existing datasource; its JNDI name must
    already be spec.jndi (we never rename: other files refer to it)."""
    ds = get()
    jndi = [doc.text_of(n) for j in ds.children("jndiConfig") for n in j.children("name")]
    if jndi and jndi[0] != spec.jndi:
        raise doc.err("jndiConfig", f"<datasource> {spec.name} has JNDI name {jndi[0]!r}, expected "
                                    f"{spec.jndi!r} (not renamed: other files refer to it)")

    def conf() -> El:
        d = get()
        definition = doc.one(d, sel("definition"), required=f"datasource {spec.name} has no definition")
        return doc.one(definition, sel("configuration"),
                       required=f"datasource {spec.name} has no configuration")

    order = ("url", "username", "password", "driverClassName")
    for i, (local, value) in enumerate(zip(order, (spec.url, spec.username, spec.password,
                                                   spec.driver_class))):
        doc.ensure_leaf(conf, local, value, after=[sel(x) for x in reversed(order[:i])],
                        before=[sel(x) for x in order[i + 1:]])


def _new_datasource(spec: DataSourceSpec, kind: str) -> New:
    return New("datasource", children=(
        leaf("name", spec.name),
        leaf("description", spec.description or _DEFAULT_DESCRIPTION[kind]),
        New("jndiConfig", children=(leaf("name", spec.jndi),)),
        New("definition", attrs=(("type", "RDBMS"),), children=(
            New("configuration", children=(
                leaf("url", spec.url),
                leaf("username", spec.username),
                leaf("password", spec.password),
                leaf("driverClassName", spec.driver_class),
                *(leaf(k, v) for k, v in NEW_DS_POOL),
            )),
        )),
    ))


def _edit_master_datasources(doc: Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.local_db, _datasource(doc, p.local_db.name))
    anchor = p.local_db.name
    for spec, kind in ((p.user_db, "user"), (p.registry_db, "registry")):
        get = _datasource(doc, spec.name, required=False)
        if get() is None:
            doc.insert_after(_datasource(doc, anchor)(), doc.one(doc.root, sel("datasources")),
                             _new_datasource(spec, kind))
        else:
            def jndi_parent(get=get, spec=spec) -> El:
                return doc.one(get(), sel("jndiConfig"),
                               required=f"datasource {spec.name} has no jndiConfig")
            doc.ensure_leaf(jndi_parent, "name", spec.jndi)
            _edit_datasource(doc, spec, get)
            if spec.description:
                doc.ensure_leaf(get, "description", spec.description, after=[sel("name")])
        anchor = spec.name


def _edit_bps_datasources(doc: Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.bps_db, _datasource(doc, p.bps_db.name))


def _edit_activiti_datasources(doc: Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.activiti_db, _datasource(doc, p.activiti_db.name))


def _edit_user_mgt(doc: Doc, p: NodeXmlParams) -> None:
    conf = path(doc, sel("Realm"), sel("Configuration"),
                 why="cannot point the user store at the shared user DB")
    doc.ensure_leaf(conf, "Property", p.user_db.jndi, attrs={"name": "dataSource"})
    if doc.one(conf(), sel("AdminUser")) is None:
        doc.create(conf(), New("AdminUser", children=(leaf("UserName", p.admin_username),
                                                       leaf("Password", p.admin_password))),
                   after=[sel("AdminRole")], before=[sel("Property")])
    admin = path(doc, sel("Realm"), sel("Configuration"), sel("AdminUser"), why="")
    doc.ensure_leaf(admin, "UserName", p.admin_username, before=[sel("Password")])
    doc.ensure_leaf(admin, "Password", p.admin_password, after=[sel("UserName")])


def _edit_registry(doc: Doc, p: NodeXmlParams) -> None:
    local_cfg = sel("dbConfig", name="wso2registry")
    doc.one(doc.root, local_cfg, required="cannot add the shared registry mount after it")
    bps_cfg = sel("dbConfig", name=REGISTRY_DB_CONFIG)

    # <dbConfig name="wso2bpsregistry"><dataSource>jdbc/WSO2RegistryDB</dataSource></dbConfig>
    if doc.one(doc.root, bps_cfg) is None:
        doc.create(doc.root, New("dbConfig", attrs=(("name", REGISTRY_DB_CONFIG),),
                                  children=(leaf("dataSource", p.registry_db.jndi),)),
                   after=[local_cfg])
    doc.ensure_leaf(lambda: doc.one(doc.root, bps_cfg), "dataSource", p.registry_db.jndi)

    # <remoteInstance> identified by its <id>
    def remote() -> El | None:
        found = [r for r in doc.root.children("remoteInstance")
                 if any(doc.text_of(i) == REMOTE_INSTANCE_ID for i in r.children("id"))]
        return found[0] if found else None

    fields = (("id", REMOTE_INSTANCE_ID), ("dbConfig", REGISTRY_DB_CONFIG),
              ("readOnly", "true" if p.registry_read_only else "false"), ("enableCache", "true"),
              ("registryRoot", "/"), ("cacheId", f"{p.registry_db.username}@{p.registry_db.url}"))
    if remote() is None:
        doc.create(doc.root, New("remoteInstance", attrs=(("url", REMOTE_INSTANCE_URL),),
                                  children=tuple(leaf(k, v) for k, v in fields)),
                   after=[bps_cfg])
    doc.set_attr(remote(), "url", REMOTE_INSTANCE_URL)
    names = [k for k, _ in fields]
    for i, (k, v) in enumerate(fields):
        doc.ensure_leaf(remote, k, v, after=[sel(x) for x in reversed(names[:i])])

    # the two mounts
    anchor: Selector = sel("remoteInstance")
    for path, target in MOUNTS:
        msel = sel("mount", path=path)
        if doc.one(doc.root, msel) is None:
            doc.create(doc.root, New("mount", attrs=(("path", path), ("overwrite", "true")),
                                      children=(leaf("instanceId", REMOTE_INSTANCE_ID),
                                                leaf("targetPath", target))),
                       after=[anchor])
        doc.set_attr(doc.one(doc.root, msel), "overwrite", "true")
        get = (lambda s=msel: doc.one(doc.root, s))
        doc.ensure_leaf(get, "instanceId", REMOTE_INSTANCE_ID, before=[sel("targetPath")])
        doc.ensure_leaf(get, "targetPath", target, after=[sel("instanceId")])
        anchor = msel


def _edit_axis2(doc: Doc, p: NodeXmlParams) -> None:
    clustering = path(doc, sel("clustering"), why="cannot enable Hazelcast clustering")
    clustering()  # fail early, naming the file and <clustering>
    doc.set_attr(clustering(), "enable", "true")
    param = lambda name: sel("parameter", name=name)  # noqa: E731
    wanted = (("membershipScheme", "wka"), ("domain", p.domain), ("localMemberHost", p.node_ip),
              ("localMemberPort", str(p.hazelcast_port)))
    names = ["AvoidInitiation"] + [n for n, _ in wanted]
    for i, (name, value) in enumerate(wanted):
        doc.ensure_leaf(clustering, "parameter", value, attrs={"name": name},
                        example=rf"<parameter\s+name=\"{name}\"",
                        after=[param(x) for x in reversed(names[:i + 1])],
                        before=[param(x) for x in names[i + 2:]] + [sel("members")])

    # <members>: one <member> per address, in order, edited position by position
    if doc.one(clustering(), sel("members")) is None:
        doc.create(clustering(), New("members"), before=[sel("groupManagement")])
    members = lambda: doc.one(clustering(), sel("members"))  # noqa: E731
    port = str(p.hazelcast_port)
    for i, ip in enumerate(p.member_ips):
        existing = members().children("member")
        if i < len(existing):
            get = (lambda i=i: members().children("member")[i])
            doc.ensure_leaf(get, "hostName", ip, before=[sel("port")])
            doc.ensure_leaf(get, "port", port, after=[sel("hostName")])
        else:
            new = New("member", children=(leaf("hostName", ip), leaf("port", port)))
            if existing:
                doc.insert_after(existing[-1], members(), new)
            else:
                doc.append_child(members(), new)
    while len(members().children("member")) > len(p.member_ips):
        doc.remove(members().children("member")[-1])

    # proxyPort of the servlet transports, so generated WSDLs/EPRs name the LB port
    for transport, value in (("http", p.http_proxy_port), ("https", p.https_proxy_port)):
        get = path(doc, sel("transportReceiver", name=transport),
                    why="cannot set its proxyPort")
        doc.ensure_leaf(get, "parameter", str(value), attrs={"name": "proxyPort"},
                        example=r"<parameter\s+name=\"proxyPort\"", after=[param("port")])


def _edit_bps(doc: Doc, p: NodeXmlParams) -> None:
    """Live elements go right under their commented example when there is one (the comment
    stays), else in schema order below ODESchedulerThreadPoolSize."""
    root = lambda: doc.root  # noqa: E731
    pre = re.escape(doc.root.prefix + ":" if doc.root.prefix else "")
    order = ("ODESchedulerThreadPoolSize", "UseDistributedLock", "UseInstanceStateCache", "NodeId")
    later = ("ODESchedulerConfiguration", "BpelUI", "TransactionManagerTimeout")
    for local, value in (("UseDistributedLock", "true"), ("NodeId", p.node_id)):
        i = order.index(local)
        doc.ensure_leaf(root, local, value, example=rf"<\s*{pre}{local}\b",
                        after=[sel(x) for x in reversed(order[:i])],
                        before=[sel(x) for x in order[i + 1:] + later])


def _edit_carbon(doc: Doc, p: NodeXmlParams) -> None:
    root = lambda: doc.root  # noqa: E731
    doc.one(doc.root, sel("HostName"), required="cannot set the load balancer host name")
    doc.ensure_leaf(root, "HostName", p.service_name)
    doc.ensure_leaf(root, "MgtHostName", p.console_name, after=[sel("HostName")])
    ports = path(doc, sel("Ports"), why="cannot set the port offset")
    doc.ensure_leaf(ports, "Offset", str(p.port_offset), before=[sel("JMX")])


def _edit_catalina(doc: Doc, p: NodeXmlParams) -> None:
    for port, proxy in ((HTTP_PORT, p.http_proxy_port), (HTTPS_PORT, p.https_proxy_port)):
        def connector(port=port) -> El:
            found = [e for e in doc.iter() if e.local == "Connector" and doc.attr(e, "port") == port]
            if len(found) != 1:
                raise doc.err(f'Connector port="{port}"',
                              f'{len(found)} <Connector port="{port}"> elements, expected one '
                              f"(ports are pre-offset values)")
            return found[0]
        doc.set_attr(connector(), "proxyPort", str(proxy), after="port")


EDITORS: dict[str, Callable[[Doc, NodeXmlParams], None]] = {
    "datasources/master-datasources.xml": _edit_master_datasources,
    "datasources/bps-datasources.xml": _edit_bps_datasources,
    "datasources/activiti-datasources.xml": _edit_activiti_datasources,
    "user-mgt.xml": _edit_user_mgt,
    "registry.xml": _edit_registry,
    "axis2/axis2.xml": _edit_axis2,
    "bps.xml": _edit_bps,
    "carbon.xml": _edit_carbon,
    "tomcat/catalina-server.xml": _edit_catalina,
}
