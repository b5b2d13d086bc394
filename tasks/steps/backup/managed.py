"""Every file the tool manages on a host: what `fab backup` takes and `fab restore` puts back.

Taken from the steps that write them, so a new managed file is one line here. The state
records that say what the tool applied (which configuration it rendered, which admin
password the user store holds, which certificate each truststore has) belong with the
databases and files they describe: restored together, the next deploy sees them agree.
"""
from __future__ import annotations

from ...engine.inventory import Host, Inventory
from ...wso2 import ei_xml
from .. import certs, cluster_ca, db, db_tls, lb, node_config, node_keys, systemd

ETC_HOSTS = "/etc/hosts"  # managed blocks: the LB's names (nodes, LB), the DB's name (nodes)


def managed_paths(inv: Inventory, host: Host) -> list[str]:
    cl = inv.cluster
    if host.role == "node":
        return ([f"{node_config.conf_dir(inv)}/{rel}" for rel in ei_xml.CONF_FILES]
                + [f"{cl.ei_home}/lib/{cl.jdbc_driver.name}"]
                + [path for path, _ in certs.truststores(inv)]
                + [systemd.UNIT_PATH, systemd.SYSCTL_PATH, ETC_HOSTS,
                   node_config.CONFIG_STATE, node_config.ADMIN_STATE, certs.TRUSTSTORE_STATE]
                + node_keys.managed_paths(inv))
    if host.role == "lb":
        return ([f"{lb.CONF_DIR}/{v}" for v in lb.VHOSTS]
                + [inv.certs.cert_path, inv.certs.key_path, ETC_HOSTS]
                + ([cluster_ca.lb_ca_path(inv)] if inv.certs.cluster_ca else []))
    # the server settings drop-in: in the first of the server's folders that exists, so
    # every candidate is read (the ones missing are recorded as absent)
    return [f"{d}/{db.DROPIN_NAME}" for d in db.CONF_DIRS] + db_tls.managed_paths(inv, db.CONF_DIRS)
