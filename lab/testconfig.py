"""Minimal hand-made cluster configuration for lab self-tests (NOT the deploy tool).

Used by tests/integration/test_lab.py to prove the stand-in's success path: loads the WSO2
schemas into the lab DB and rewrites one node's conf files the way the reference guide says.
Runs everything through Lab.exec (nsenter), not SSH.
"""
from __future__ import annotations

import re
import shlex

from lab.lab import EI_HOME, PROFILE, Lab

DBS = {"WSO2_USER_DB": "dbscripts/mysql.sql", "REGISTRY_DB": "dbscripts/mysql.sql",
       "BPS_DS": f"{PROFILE}/dbscripts/bps/bpel/create/mysql.sql",
       "ACTIVITI_DB": None}
ACTIVITI = [f"{PROFILE}/dbscripts/bps/bpmn/create/activiti.mysql.create.{p}.sql"
            for p in ("engine", "history", "identity")]


def setup_db(lab: Lab, node: str = "node1", user: str = "wso2bps") -> str:
    """Open the lab DB to the network, create the databases + user, load schemas (scripts read
    from the node's EI_HOME). Returns the DB password."""
    pw = lab.secret("db_password")
    lab.exec("db", "printf '[mysqld]\\nbind-address = 0.0.0.0\\n' > /etc/mysql/mariadb.conf.d/60-labtest.cnf"
                   " && service mariadb restart </dev/null >/dev/null 2>&1", check=True)
    local = [f"REGISTRY_LOCAL{i}" for i in range(1, lab.nodes + 1)]
    sql = [f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{pw}';"]
    for db in list(DBS) + local:
        sql += [f"CREATE DATABASE IF NOT EXISTS {db};", f"GRANT ALL ON {db}.* TO '{user}'@'%';"]
    lab.exec("db", ["mariadb"], input="\n".join(sql), check=True)
    scripts = {db: [s] if s else ACTIVITI for db, s in DBS.items()}
    for l in local:
        scripts[l] = ["dbscripts/mysql.sql"]
    for db, files in scripts.items():
        for f in files:
            text = lab.exec(node, ["cat", f"{EI_HOME}/{f}"], check=True).stdout
            lab.exec("db", ["mariadb", db], input=text, check=True)
    return pw


def _ds(name, jndi, url, user, pw):
    return f"""<datasource><name>{name}</name><description>lab</description>
  <jndiConfig><name>{jndi}</name></jndiConfig>
  <definition type="RDBMS"><configuration>
    <url>{url}</url><username>{user}</username><password>{pw}</password>
    <driverClassName>org.mariadb.jdbc.Driver</driverClassName>
    <maxActive>10</maxActive><maxWait>60000</maxWait><testOnBorrow>true</testOnBorrow>
    <validationQuery>SELECT 1</validationQuery>
  </configuration></definition></datasource>"""


def configure_node(lab: Lab, node: str, pw: str, user: str = "wso2bps") -> None:
    conf = f"{EI_HOME}/{PROFILE}/conf"
    ip = lab.address(node)
    dbh = lab.address("db")
    idx = int(node[4:])
    url = lambda db: f"jdbc:mysql://{dbh}:3306/{db}?useSSL=false"

    def edit(rel, fn):
        path = f"{conf}/{rel}"
        text = lab.exec(node, ["cat", path], check=True).stdout
        new = fn(text)
        lab.exec(node, ["sh", "-c", f"cat > {shlex.quote(path)}"], input=new, check=True)

    lab.exec(node, f"cp /usr/share/java/mariadb-java-client.jar {EI_HOME}/lib/", check=True)

    def master(t):
        t = re.sub(r"<url>jdbc:h2:[^<]*</url>", f"<url>{url(f'REGISTRY_LOCAL{idx}')}</url>", t, count=1)
        t = t.replace("<username>wso2carbon</username>", f"<username>{user}</username>", 1)
        t = t.replace("<password>wso2carbon</password>", f"<password>{pw}</password>", 1)
        t = t.replace("<driverClassName>org.h2.Driver</driverClassName>",
                      "<driverClassName>org.mariadb.jdbc.Driver</driverClassName>", 1)
        extra = (_ds("WSO2_USER_DB", "jdbc/WSO2UMDB", url("WSO2_USER_DB"), user, pw)
                 + _ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", url("REGISTRY_DB"), user, pw))
        return t.replace("</datasources>", extra + "</datasources>", 1)

    def simple(db):
        def f(t):
            t = re.sub(r"<url>jdbc:h2:[^<]*</url>", f"<url>{url(db)}</url>", t, count=1)
            t = re.sub(r"<username>[^<]*</username>", f"<username>{user}</username>", t, count=1)
            t = re.sub(r"<password>[^<]*</password>", f"<password>{pw}</password>", t, count=1)
            return re.sub(r"<driverClassName>[^<]*</driverClassName>",
                          "<driverClassName>org.mariadb.jdbc.Driver</driverClassName>", t, count=1)
        return f

    edit("datasources/master-datasources.xml", master)
    edit("datasources/bps-datasources.xml", simple("BPS_DS"))
    edit("datasources/activiti-datasources.xml", simple("ACTIVITI_DB"))
    edit("user-mgt.xml", lambda t: t.replace(
        '<Property name="dataSource">jdbc/WSO2CarbonDB</Property>',
        '<Property name="dataSource">jdbc/WSO2UMDB</Property>', 1))
    reg = f"""<dbConfig name="wso2bpsregistry"><dataSource>jdbc/WSO2RegistryDB</dataSource></dbConfig>
<remoteInstance url="https://localhost:9443/registry"><id>instanceid</id>
<dbConfig>wso2bpsregistry</dbConfig><readOnly>false</readOnly><enableCache>true</enableCache>
<registryRoot>/</registryRoot><cacheId>{user}@{url('REGISTRY_DB').replace('&', '&amp;')}</cacheId></remoteInstance>
<mount path="/_system/config" overwrite="true"><instanceId>instanceid</instanceId><targetPath>/_system/bpsconfig</targetPath></mount>
<mount path="/_system/governance" overwrite="true"><instanceId>instanceid</instanceId><targetPath>/_system/governance</targetPath></mount>
"""
    edit("registry.xml", lambda t: re.sub(r"(<dbConfig name=\"wso2registry\">.*?</dbConfig>)",
                                          lambda m: m.group(1) + "\n" + reg, t, count=1, flags=re.S))
    members = "".join(f"<member><hostName>{lab.address(n)}</hostName><port>4000</port></member>"
                      for n in lab.node_names)

    def axis2(t):
        t = re.sub(r'(<clustering class="[^"]+"\s+)enable="false"', r'\1enable="true"', t, count=1)
        t = t.replace('<parameter name="localMemberHost">127.0.0.1</parameter>',
                      f'<parameter name="localMemberHost">{ip}</parameter>', 1)
        t = t.replace('<parameter name="domain">wso2.carbon.domain</parameter>',
                      '<parameter name="domain">wso2.bps.domain</parameter>', 1)
        return re.sub(r"<members>.*?</members>", f"<members>{members}</members>", t, count=1, flags=re.S)

    edit("axis2/axis2.xml", axis2)
    edit("bps.xml", lambda t: t.replace(
        "<!-- <tns:UseDistributedLock>true</tns:UseDistributedLock> -->",
        "<tns:UseDistributedLock>true</tns:UseDistributedLock>", 1).replace(
        "<!-- <tns:NodeId></tns:NodeId>  -->", f"<tns:NodeId>{node}</tns:NodeId>", 1))
