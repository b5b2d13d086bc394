"""What goes into a node's XML files: its parameters, the JDBC URL, the files that hold secrets."""
from __future__ import annotations

from ...engine.inventory import Host, Inventory
from ...wso2 import ei_xml, jdbc
from .. import cluster_ca

# files holding passwords: never world-readable (WSO2 needs them in clear without secure vault)
SECRET_FILES = {"datasources/master-datasources.xml", "datasources/bps-datasources.xml",
                "datasources/activiti-datasources.xml", "user-mgt.xml"}
MEMBERSHIP_FILE = "axis2/axis2.xml"


def conf_dir(inv: Inventory) -> str:
    return f"{inv.cluster.profile_home}/conf"


def jdbc_url(inv: Inventory, database: str) -> str:
    """Scheme and default options follow the driver in the jar (jdbc.url_style);
    database.jdbc_options replaces the default extras, never the tool's own TLS options."""
    d = inv.database
    return jdbc.jdbc_url(driver_info(inv), d.hostname, d.port, database, d.jdbc_options,
                         cluster_ca.jdbc_ca(inv))


def driver_info(inv: Inventory) -> jdbc.DriverInfo:
    return jdbc.driver_info(inv.cluster.jdbc_driver, inv.cluster.jdbc_driver_class)


def driver_class(inv: Inventory) -> str:
    return inv.cluster.jdbc_driver_class or jdbc.driver_class_of(inv.cluster.jdbc_driver)


def node_params(inv: Inventory, node: Host) -> ei_xml.NodeXmlParams:
    """Everything node-specific that goes into its XML files."""
    d, cl = inv.database, inv.cluster
    pw, drv = inv.secrets.db_password, driver_class(inv)

    def ds(name: str, jndi: str, db: str, desc: str) -> ei_xml.DataSourceSpec:
        return ei_xml.DataSourceSpec(name, jndi, jdbc_url(inv, db), d.user, pw, drv, desc)

    return ei_xml.NodeXmlParams(
        node_ip=node.address,
        member_ips=tuple(n.address for n in inv.nodes),
        hazelcast_port=cl.hazelcast_port,
        domain=cl.domain,
        node_id=node.name,
        registry_read_only=not node.registry_writer,
        service_name=cl.service_name,
        console_name=cl.console_name,
        port_offset=cl.port_offset,
        http_proxy_port=80,
        https_proxy_port=443,
        user_db=ds("WSO2_USER_DB", "jdbc/WSO2UMDB", d.user_db,
                   "The datasource used for user manager"),
        registry_db=ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", d.registry_db,
                       "The datasource used for config/governance registry mount"),
        local_db=ds("WSO2_CARBON_DB", "jdbc/WSO2CarbonDB", d.local_db(node.registry_number),
                    "The datasource used for registry and user manager"),
        bps_db=ds("BPS_DS", "bpsds", d.bps_db, ""),
        activiti_db=ds("ACTIVITI_DB", "jdbc/ActivitiDB", d.activiti_db, ""),
        admin_username=cl.admin_user,
        admin_password=inv.secrets.admin_password,
        keystore=cluster_ca.keystore_xml_params(inv),
    )
