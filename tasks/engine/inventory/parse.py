"""Read hosts.toml and turn it into an Inventory: every problem found before any host is
touched, reported together (InventoryError, exit code 2)."""
from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from ...steps import lb_rules, nginx_conf
from ...wso2 import jdbc as jdbc_mod
from .credentials import (DEFAULT_ADMIN_PASSWORD, DEFAULT_KEYSTORE_PASSWORD,
                          DEFAULT_TRUSTSTORE_PASSWORD, Secrets)
from .model import (HEAP_MAX_MB, HEAP_MIN_MB, NOFILE_MAX, NOFILE_MIN, ArtifactSettings,
                    CertSettings,
                    ClusterSettings, DatabaseSettings, Host, Inventory, InventoryError,
                    SshSettings, build, console_open_reason, heap_mb)
from .schema import (SCHEMA, TOP_LEVEL, _ADMIN_USER_RE, _CLASS_RE, _FILE_NAME_RE, _HOSTNAME_RE,
                     _NAME_RE,
                     _SQL_USER_RE, _USER_FIX, _USER_RE, _VERSION_RE, _Checker, _suggest)


def load(path: str | os.PathLike) -> Inventory:
    """Read and validate hosts.toml. Raises InventoryError listing every problem."""
    try:
        path = Path(path).resolve() if Path(path).exists() else Path(path)
    except OSError as e:  # e.g. no access to a parent directory
        raise InventoryError(path, [f"cannot be used as a path ({e}); fix FABRIC_INVENTORY "
                                    "(or the `inventory` setting)"]) from None
    if not path.exists():
        raise InventoryError(path, ["file not found; create it (see the shipped hosts.toml) or "
                                    "point FABRIC_INVENTORY (or the `inventory` setting) at it"])
    if path.is_dir():
        raise InventoryError(path, [f"is a directory; point FABRIC_INVENTORY (or the `inventory` "
                                    f"setting) at the file itself, e.g. {path / 'hosts.toml'}"])
    if not path.is_file():
        raise InventoryError(path, ["is not a regular file; point FABRIC_INVENTORY (or the "
                                    "`inventory` setting) at a hosts.toml file"])
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InventoryError(path, [f"cannot be read ({e.strerror or e}); check its mode and "
                                    "owner"]) from None
    try:
        text = data.decode("utf-8")  # TOML is UTF-8, whatever the locale
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InventoryError(path, [f"not UTF-8 text (invalid byte on line {line}); TOML must be "
                                    "UTF-8: save the file as UTF-8"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(path, [f"TOML syntax error: {e}"]) from None
    except RecursionError:
        raise InventoryError(path, ["TOML syntax error: arrays or tables nested too deeply"]) \
            from None
    return from_dict(raw, path)


def from_dict(raw: dict[str, Any], path: Path) -> Inventory:
    ck = _Checker(path)
    for key in raw:
        if key not in TOP_LEVEL:
            ck.err(f"{key}: unknown section{_suggest(key, list(TOP_LEVEL))}; "
                   f"allowed: {', '.join(TOP_LEVEL)}")
    for key in ("lb", "nodes", "db", "cluster", "secrets"):
        if key not in raw:
            ck.err(f"[{key}]: missing required section" if key != "nodes"
                   else "[[nodes]]: missing; add two or more [[nodes]] tables")

    ssh = ck.section("ssh", "ssh", raw.get("ssh", {}))
    lb = ck.section("lb", "lb", raw.get("lb", {}))
    db = ck.section("db", "db", raw.get("db", {}))
    cl = ck.section("cluster", "cluster", raw.get("cluster", {}))
    dbs = ck.section("database", "database", raw.get("database", {}))
    certs = ck.section("certs", "certs", raw.get("certs", {}))
    arts = ck.section("artifacts", "artifacts", raw["artifacts"]) if "artifacts" in raw else None
    sec = ck.section("secrets", "secrets", raw.get("secrets", {}))
    nodes_raw = raw.get("nodes", [])
    if not isinstance(nodes_raw, list):
        ck.err("nodes: must be an array of tables: write each node as [[nodes]]")
        nodes_raw = []
    nodes = [ck.section(f"nodes[{i}]", "node", n) for i, n in enumerate(nodes_raw)]
    if "nodes" in raw and len(nodes) < 2:
        ck.err(f"[[nodes]]: a cluster needs two or more nodes, found {len(nodes)}; add another "
               "[[nodes]] table")

    # ssh
    ck.port("ssh.port", ssh["port"])
    ck.positive("ssh.connect_timeout", ssh["connect_timeout"], 1, 600)
    ck.positive("ssh.command_timeout", ssh["command_timeout"], 1, 86400)
    if ssh["user"] and not _USER_RE.fullmatch(ssh["user"]):
        ck.err(f"ssh.user: {ssh['user']!r} is not a valid user name; {_USER_FIX}")
    key = ck.local_path("ssh.key", ssh["key"])
    known = ck.local_path("ssh.known_hosts", ssh["known_hosts"], must_exist=False)
    if known is None:
        known = Path(os.path.expanduser("~/.ssh/known_hosts"))
    if not known.exists() and not ssh["accept_new_host_keys"]:
        ck.err(f"ssh.known_hosts: {known} does not exist; put the hosts' keys there (verify "
               "them out of band) or set accept_new_host_keys = true to trust on first use")
    ssh_cfg = ck.local_path("ssh.ssh_config", ssh["ssh_config"], must_exist=True)
    if ssh["jump"]:
        ck.jump("ssh.jump", ssh["jump"])
    sudo_pw = ck.secret("ssh.sudo_password", ssh["sudo_password"])

    # hosts
    hosts: list[Host] = []
    ssh_given: set[str] = set()  # hosts with an explicit ssh_address
    for t, name in ((lb, lb["name"]), *((n, n["name"]) for n in nodes), (db, db["name"])):
        if t["ssh_address"]:
            ssh_given.add(name)
    if lb["address"]:
        ck.address("lb.address", lb["address"])
        ck.address("lb.ssh_address", lb["ssh_address"], cluster=False)
        hosts.append(Host(lb["name"], "lb", lb["address"], lb["ssh_address"] or lb["address"],
                          nat=bool(lb["nat"])))
    for i, n in enumerate(nodes):
        ck.address(f"nodes[{i}].address", n["address"])
        ck.address(f"nodes[{i}].ssh_address", n["ssh_address"], cluster=False)
        if n["name"] and n["address"]:
            hosts.append(Host(n["name"], "node", n["address"], n["ssh_address"] or n["address"],
                              index=i + 1, nat=bool(n["nat"])))
    if db["address"]:
        ck.address("db.address", db["address"])
        ck.address("db.ssh_address", db["ssh_address"], cluster=False)
        ck.hostname("db.hostname", db["hostname"])
        ck.port("db.port", db["port"])
        hosts.append(Host(db["name"], "db", db["address"], db["ssh_address"] or db["address"],
                          nat=bool(db["nat"])))
    for h in hosts:
        if h.nat:
            ck.warnings.append(f"!!! {h.name}: nat = true: preflight does not check that the "
                               f"machine reached at {h.ssh_address} owns {h.address}")
    seen_names: dict[str, str] = {}
    seen_addr: dict[str, str] = {}
    seen_ssh: dict[str, Host] = {}
    for h in hosts:
        if not _NAME_RE.fullmatch(h.name):
            ck.err(f"{_key_of(h)}.name: {h.name!r} is not a valid host name; use letters, "
                   "digits, '.', '_' or '-' (max 63), starting with a letter or digit")
        if h.name in seen_names:
            ck.err(f"host name {h.name!r} is used twice; give each host its own name")
        seen_names[h.name] = h.role
        if h.address in seen_addr:
            ck.err(f"address {h.address} is given to both {seen_addr[h.address]} and {h.name}; "
                   "each host needs its own address")
        seen_addr[h.address] = h.name
        other = seen_ssh.setdefault(_target_key(h.ssh_address), h)
        if other is not h and (h.name in ssh_given or other.name in ssh_given):
            ck.err(f"ssh_address {h.ssh_address} is where we SSH to for both {other.name} and "
                   f"{h.name} ({_ssh_origin(other, ssh_given)}, {_ssh_origin(h, ssh_given)}): "
                   "one machine would be configured as two hosts; give each host its own "
                   "ssh_address (or none, to SSH to its address)")

    # cluster
    for k in ("service_name", "console_name"):
        ck.hostname(f"cluster.{k}", cl[k])
    if cl["service_name"] and cl["service_name"] == cl["console_name"]:
        ck.err("cluster.console_name: must differ from service_name (they are two vhosts)")
    ck.remote_path("cluster.ei_home", cl["ei_home"], "/opt/wso2ei-6.6.0")
    ck.remote_path("cluster.java_home", cl["java_home"], "/usr/lib/jvm/java-11-openjdk-amd64")
    if cl["service_user"] and not _USER_RE.fullmatch(cl["service_user"]):
        ck.err(f"cluster.service_user: {cl['service_user']!r} is not a valid user name; "
               f"{_USER_FIX}")
    if cl["admin_user"] is not None and not _ADMIN_USER_RE.fullmatch(cl["admin_user"]):
        ck.err(f"cluster.admin_user: {cl['admin_user']!r} is not a valid WSO2 user name; use "
               "letters, digits, '.', '_', '@' or '-' (max 64), e.g. 'admin'")
    if cl["ei_version"] is not None and not _VERSION_RE.fullmatch(cl["ei_version"]):
        ck.err(f"cluster.ei_version: {cl['ei_version']!r} is not a version; use e.g. '6.6.0'")
    if cl["jdbc_driver_class"] is not None and not _CLASS_RE.fullmatch(cl["jdbc_driver_class"]):
        ck.err(f"cluster.jdbc_driver_class: {cl['jdbc_driver_class']!r} is not a Java class "
               "name; use e.g. 'org.mariadb.jdbc.Driver', or leave it out to read it from the jar")
    if cl["service_user"] == "root":
        ck.err("cluster.service_user: the EI server must not run as root; use e.g. 'wso2'")
    ck.positive("cluster.port_offset", cl["port_offset"], 0, 1000)
    ck.port("cluster.hazelcast_port", cl["hazelcast_port"])
    ck.positive("cluster.health_timeout", cl["health_timeout"], 1, 7200)
    ck.positive("cluster.backups_keep", cl["backups_keep"], 1, 1000)
    ck.positive("cluster.stop_timeout", cl["stop_timeout"], 1, 3600)
    ck.positive("cluster.nofile", cl["nofile"], NOFILE_MIN, NOFILE_MAX)
    if cl["jvm_heap"] is not None and heap_mb(cl["jvm_heap"]) is None:
        ck.err(f"cluster.jvm_heap: {cl['jvm_heap']!r} is not a heap size; use a number of "
               f"megabytes or gigabytes with its unit, {HEAP_MIN_MB}m to {HEAP_MAX_MB // 1024}g, "
               "e.g. \"2048m\" or \"2g\" (WSO2's production advice: 2 GB; it becomes "
               "-Xms and -Xmx)")
    ck.hostname("cluster.domain", cl["domain"])
    jdbc = ck.local_path("cluster.jdbc_driver", cl["jdbc_driver"])
    if jdbc and jdbc.exists() and jdbc.suffix != ".jar":
        ck.err(f"cluster.jdbc_driver: {jdbc} is not a .jar")
    elif jdbc and not _FILE_NAME_RE.fullmatch(jdbc.name):
        ck.err(f"cluster.jdbc_driver: the jar's name {jdbc.name!r} is used on the nodes "
               "(<ei_home>/lib/); rename the file to letters, digits and . _ + @ -, e.g. "
               "mariadb-java-client-3.3.3.jar")
    ei_zip = ck.local_path("cluster.ei_zip", cl["ei_zip"])
    allow: list[str] = []
    for i, net in enumerate(cl["console_allow"] or []):
        try:
            allow.append(str(ipaddress.ip_network(str(net), strict=False)))
        except ValueError:
            ck.err(f"cluster.console_allow[{i}]: {net!r} is not a network; use e.g. "
                   "'192.0.2.0/24' or '192.0.2.7'")
    problem = nginx_conf.snippet_problem(cl["nginx_extra"] or "")
    if problem:
        ck.err(f"cluster.nginx_extra: {problem}; put directives (and whole `location ... {{ }}` "
               "blocks) only")
    admin_extra: list[str] = []
    for i, name in enumerate(cl["admin_services_extra"] or []):
        if isinstance(name, str) and lb_rules.SERVICE_NAME_RE.fullmatch(name):
            admin_extra.append(name)
        else:
            ck.err(f"cluster.admin_services_extra[{i}]: {name!r} is not a plain service name; "
                   "use the name as in /services/<name>, e.g. 'LoggingAdmin'")
    exposed: list[str] = []
    for i, app in enumerate(cl["expose_on_service"] or []):
        if app in lb_rules.CONSOLE_APPS:
            exposed.append(app)
        else:
            ck.err(f"cluster.expose_on_service[{i}]: {app!r} is not one of "
                   f"{', '.join(lb_rules.CONSOLE_APPS)}{_suggest(str(app), list(lb_rules.CONSOLE_APPS))}")
    open_reason = console_open_reason(tuple(allow))
    if open_reason and (allow or "console_allow" in raw.get("cluster", {})):
        ck.warnings.append(f"!!! cluster.console_allow {open_reason}: the management console "
                           "(/carbon) is open to everyone who reaches the LB")

    # database
    names = [dbs[k] for k in ("user_db", "registry_db", "bps_db", "activiti_db")]
    for k in ("user_db", "registry_db", "local_registry_prefix", "bps_db", "activiti_db", "user"):
        ck.ident(f"database.{k}", dbs[k])
    locals_ = [f"{dbs['local_registry_prefix']}{i}" for i in range(1, len(nodes) + 1)]
    all_names = names + locals_
    dup = sorted({n for n in all_names if n and all_names.count(n) > 1})
    if dup:
        ck.err(f"database: name(s) {', '.join(dup)} used for two databases; each database "
               "needs its own name")
    ck.positive("database.max_connections", dbs["max_connections"], 10, 100000)
    for problem in jdbc_mod.option_problems(dbs["jdbc_options"] or {}):
        ck.err(f"database.jdbc_options: {problem}")
    if dbs["admin_user"] is not None and not _SQL_USER_RE.fullmatch(dbs["admin_user"]):
        ck.err(f"database.admin_user: {dbs['admin_user']!r} is not a safe MySQL user name; use "
               "letters, digits, '.', '_' or '-' (1 to 32), e.g. 'dbadmin'")

    # certs
    ck.positive("certs.key_bits", certs["key_bits"], 2048, 16384)
    ck.positive("certs.days", certs["days"], 1, 3650)
    ck.positive("certs.renew_before_days", certs["renew_before_days"], 0, 3650)
    ck.remote_path("certs.dir", certs["dir"], "/etc/nginx/ssl")
    cert_file = ck.local_path("certs.cert_file", certs["cert_file"])
    key_file = ck.local_path("certs.key_file", certs["key_file"])
    if bool(cert_file) != bool(key_file):
        ck.err("certs: give both cert_file and key_file, or neither (self-signed)")
    ca_key = ck.local_path("certs.ca_key", certs["ca_key"], must_exist=False)
    ca_cert = ck.local_path("certs.ca_cert", certs["ca_cert"], must_exist=False)
    ck.positive("certs.ca_days", certs["ca_days"], 30, 36500)
    ck.positive("certs.node_days", certs["node_days"], 2, 3650)
    if not _HOSTNAME_RE.fullmatch(certs["internal_name"]) or "." not in certs["internal_name"]:
        ck.err(f"certs.internal_name: {certs['internal_name']!r} is not a DNS name with a dot; "
               "use a cluster-internal name such as 'nodes.bps.internal'")

    # secrets
    values = {k: ck.secret(f"secrets.{k}", sec[k]) for k in SCHEMA["secrets"]}
    values["sudo_password"] = sudo_pw
    if values["truststore_password"] is None and not ck.problems:
        ck.warnings.append("secrets.truststore_password not set: using WSO2's default "
                           "'wso2carbon' for client-truststore.jks")
        values["truststore_password"] = DEFAULT_TRUSTSTORE_PASSWORD
    if not cl["secure_vault"]:
        ck.warnings.append("!!! cluster.secure_vault = false: the nodes keep the DB and admin "
                           "passwords in clear in their configuration files (0600); set it to "
                           "true (the default) to encrypt them with WSO2 Secure Vault")
    if sec["admin_password"] is None and not cl["allow_default_admin"]:
        ck.err("secrets.admin_password: not set, which would leave WSO2's default admin/admin "
               "on a console the LB exposes; set it, or set cluster.allow_default_admin = true")
    if values["admin_password"] is None:
        values["admin_password"] = DEFAULT_ADMIN_PASSWORD
    _security_switches(ck, certs, dbs, values)
    if values["keystore_password"] is None and not certs["cluster_ca"]:
        # WSO2's shipped wso2carbon.jks stays the primary keystore; Secure Vault encrypts with it
        values["keystore_password"] = DEFAULT_KEYSTORE_PASSWORD
    if dbs["admin_user"] and sec["db_admin_password"] is None:
        ck.err("secrets.db_admin_password: not set, but database.admin_user is: db-init logs in "
               "as that user with it; set it, or leave admin_user out (root over the unix socket)")

    art_dir = ck.local_path("artifacts.dir", arts["dir"], must_exist=False) if arts else None
    if arts:
        ck.positive("artifacts.wait", arts["wait"], 5, 3600)

    if ck.problems:
        raise InventoryError(path, ck.problems)

    return Inventory(
        path=path,
        ssh=build(SshSettings, ssh, key=key, known_hosts=known, ssh_config=ssh_cfg),
        lb=hosts[0], nodes=tuple(h for h in hosts if h.role == "node"), db=hosts[-1],
        cluster=build(
            ClusterSettings, cl, ei_home=cl["ei_home"].rstrip("/"), jdbc_driver=jdbc,
            ei_zip=ei_zip, console_allow=tuple(allow), admin_services_extra=tuple(admin_extra),
            expose_on_service=tuple(dict.fromkeys(exposed)),
            java_home=cl["java_home"].rstrip("/") if cl["java_home"] else None,
            jvm_heap=cl["jvm_heap"].strip().lower()),
        database=build(
            DatabaseSettings, dbs, hostname=db["hostname"] or db["address"], port=db["port"],
            jdbc_options=dict(dbs["jdbc_options"]) if dbs["jdbc_options"] is not None else None),
        certs=build(CertSettings, certs, dir=certs["dir"].rstrip("/"), cert_file=cert_file,
                    key_file=key_file, ca_key=ca_key, ca_cert=ca_cert),
        secrets=Secrets(values),
        warnings=tuple(ck.warnings),
        artifacts=build(ArtifactSettings, arts, dir=art_dir) if art_dir else None,
    )


def _security_switches(ck, certs: dict, dbs: dict, values: dict) -> None:
    """The cluster CA and TLS to the database: on by default; off only with a loud warning on
    every run (a lab, a migration), never silently."""
    if not certs["cluster_ca"]:
        ck.warnings.append("!!! certs.cluster_ca = false: the nodes' keys are not the cluster's "
                           "own (WSO2's shipped wso2carbon.jks has a public private key) and "
                           "NGINX does not verify them (proxy_ssl_verify off); for a lab or a "
                           "migration only")
        if dbs["tls"]:
            ck.err("database.tls = true needs certs.cluster_ca = true (the DB server's "
                   "certificate comes from the cluster CA); set both, or database.tls = false")
    elif values["keystore_password"] is None:
        ck.err("secrets.keystore_password: not set; the cluster CA gives every node its own "
               "keystore, which needs a password of its own: add it to [secrets] (a 0600 "
               "file), or set certs.cluster_ca = false")
    elif values["keystore_password"] == DEFAULT_TRUSTSTORE_PASSWORD \
            and not certs["allow_default_keystore_password"]:
        ck.err("secrets.keystore_password: WSO2's public default 'wso2carbon' is refused; "
               "choose another, or set certs.allow_default_keystore_password = true")
    elif len(values["keystore_password"]) < 6:
        ck.err("secrets.keystore_password: at least 6 characters (keytool's minimum)")
    if not dbs["tls"]:
        ck.warnings.append("!!! database.tls = false: DB credentials and data cross the network "
                           "unencrypted, the JDBC URLs say so and the accounts do not REQUIRE "
                           "SSL; for a lab or a migration only")


def _target_key(value: str) -> str:
    """One spelling per SSH target: IPs normalised, names case-insensitive."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.lower().rstrip(".")


def _ssh_origin(h: Host, given: set[str]) -> str:
    key = _key_of(h)
    return f"{key}.ssh_address" if h.name in given else f"{key}.address"


def _key_of(h: Host) -> str:
    """The hosts.toml table that defines `h`: lb, nodes[i] or db."""
    return f"nodes[{h.index - 1}]" if h.role == "node" else h.role
