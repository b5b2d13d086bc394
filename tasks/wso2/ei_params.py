"""The parameters of one EI node's XML configuration, and their consistency check."""
from __future__ import annotations

from dataclasses import dataclass, field

from .keystore_xml import KeystoreXml


@dataclass(frozen=True)
class DataSourceSpec:
    name: str
    jndi: str
    url: str
    username: str
    password: str
    driver_class: str
    description: str = ""

    def __repr__(self) -> str:  # never show the password in logs or tracebacks
        return (f"DataSourceSpec(name={self.name!r}, jndi={self.jndi!r}, url={self.url!r}, "
                f"username={self.username!r}, password='***', driver_class={self.driver_class!r})")


@dataclass(frozen=True)
class NodeXmlParams:
    node_ip: str                  # this node's address (localMemberHost)
    member_ips: tuple[str, ...]   # every node, in order
    hazelcast_port: int           # 4000, not offset
    domain: str                   # e.g. wso2.bps.domain
    node_id: str                  # stable per node, e.g. "node1"
    registry_read_only: bool      # False on the first node, True on the others
    service_name: str             # LB service host name -> carbon.xml HostName
    console_name: str             # LB console host name -> carbon.xml MgtHostName
    port_offset: int              # carbon.xml <Ports><Offset>
    http_proxy_port: int          # 80 -> catalina 9763 connector proxyPort (+ axis2 http)
    https_proxy_port: int         # 443 -> catalina 9443 connector proxyPort (+ axis2 https)
    user_db: DataSourceSpec       # WSO2_USER_DB, jdbc/WSO2UMDB (added to master-datasources)
    registry_db: DataSourceSpec   # WSO2REGISTRY_DB, jdbc/WSO2RegistryDB (added)
    local_db: DataSourceSpec      # WSO2_CARBON_DB, jdbc/WSO2CarbonDB (edit existing)
    bps_db: DataSourceSpec        # BPS_DS, bpsds (edit url/user/password/driver only)
    activiti_db: DataSourceSpec   # ACTIVITI_DB, jdbc/ActivitiDB (edit url/user/password/driver)
    admin_username: str
    admin_password: str = field(repr=False)
    # the node's own keystore (cluster CA); None: leave WSO2's wso2carbon.jks as it is
    keystore: KeystoreXml | None = field(default=None, repr=False)


def check_params(p: NodeXmlParams) -> None:
    problems = []
    if not p.member_ips:
        problems.append("member_ips is empty")
    if len(set(p.member_ips)) != len(p.member_ips):
        problems.append(f"member_ips has duplicates: {list(p.member_ips)}")
    if p.member_ips and p.node_ip not in p.member_ips:
        problems.append(f"node_ip {p.node_ip} is not one of member_ips {list(p.member_ips)}")
    for label, port in (("hazelcast_port", p.hazelcast_port), ("http_proxy_port", p.http_proxy_port),
                        ("https_proxy_port", p.https_proxy_port)):
        if not (isinstance(port, int) and 0 < port < 65536):
            problems.append(f"{label} {port!r} is not a TCP port")
    if not (isinstance(p.port_offset, int) and 0 <= p.port_offset < 1000):
        problems.append(f"port_offset {p.port_offset!r} is not an offset")
    if p.user_db.name == p.registry_db.name or p.user_db.jndi == p.registry_db.jndi:
        problems.append("user_db and registry_db need distinct names and JNDI names")
    for label, s in (("node_ip", p.node_ip), ("domain", p.domain), ("node_id", p.node_id),
                     ("service_name", p.service_name), ("console_name", p.console_name),
                     ("admin_username", p.admin_username)):
        if not s or s != s.strip():
            problems.append(f"{label} {s!r} is empty or has surrounding spaces")
    if problems:
        raise ValueError("NodeXmlParams: " + "; ".join(problems))
