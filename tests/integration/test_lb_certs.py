"""`fab certs` and `fab lb` on a real lab: openssl/keytool, nginx, round robin, affinity,
idempotence (no reload), rollback of a broken config, allow-list, renewal, per-node failures.

Order matters (one lab per module, each test builds on the previous state).
LAB_INDEX=21 python3 -m pytest tests/integration/test_lb_certs.py
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.paths import FAB, REPO
STORE = "/opt/wso2ei-6.6.0/wso2/business-process/repository/resources/security/client-truststore.jks"
CARBON_STORE = "/opt/wso2ei-6.6.0/repository/resources/security/client-truststore.jks"
SERVICE, CONSOLE = "ei.wso2.com", "ui.ei.wso2.com"

RESPONDER = r'''
import http.server, socket, ssl, sys, threading
name = socket.gethostname()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"node={name} path={self.path} host={self.headers.get('Host')}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
def serve(port, tls):
    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), H)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain("/tmp/resp.crt", "/tmp/resp.key")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()
threading.Thread(target=serve, args=(9765, False), daemon=True).start()
serve(9445, True)
'''


# --------------------------------------------------------------------------- helpers


def fab(inv: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "FABRIC_INVENTORY": str(inv)}
    return subprocess.run([*FAB, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def out_of(p: subprocess.CompletedProcess) -> str:
    return p.stdout + p.stderr


def start_responders(lab, nodes=None):
    for n in nodes or lab.node_names:
        lab.exec(n, "pkill -f /tmp/resp.py; sleep 0.2; true")
        lab.exec(n, "[ -f /tmp/resp.key ] || openssl req -x509 -newkey rsa:2048 -nodes "
                    "-keyout /tmp/resp.key -out /tmp/resp.crt -subj /CN=localhost -days 2 "
                    ">/dev/null 2>&1", check=True)
        lab.exec(n, "cat > /tmp/resp.py", input=RESPONDER, check=True)
        lab.exec(n, "setsid python3 /tmp/resp.py </dev/null >/tmp/resp.log 2>&1 &", check=True)
    deadline = time.monotonic() + 10
    for n in nodes or lab.node_names:
        while lab.exec(n, "ss -ltn | grep -q ':9445 '").returncode != 0:
            assert time.monotonic() < deadline, f"responder did not start on {n}"
            time.sleep(0.1)


def curl(lab, name: str, path: str = "/", https: bool = True, from_host: str | None = None,
         code_only: bool = False) -> str:
    port = 443 if https else 80
    url = f"{'https' if https else 'http'}://{name}{path}"
    cmd = ["curl", "-sk", "--max-time", "10", "--resolve", f"{name}:{port}:{lab.address('lb')}"]
    if code_only:
        cmd += ["-o", "/dev/null", "-w", "%{http_code}"]
    cmd.append(url)
    if from_host:
        return lab.exec(from_host, cmd).stdout
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout


def answered_by(text: str) -> str | None:
    m = re.search(r"node=(\S+)", text)
    return m.group(1) if m else None


def nginx_procs(lab) -> tuple:
    """(master pid, master start time, sorted worker pids): a reload replaces the workers."""
    out = lab.exec("lb", "ps -eo pid,ppid,lstart,args | grep '[n]ginx:'").stdout
    master = [l for l in out.splitlines() if "master process" in l]
    assert master, f"nginx master not running:\n{out}"
    mpid = master[0].split()[0]
    mstart = " ".join(master[0].split()[2:7])
    workers = sorted(l.split()[0] for l in out.splitlines()
                     if "worker process" in l and l.split()[1] == mpid)
    return mpid, mstart, workers


def lb_fingerprint(lab, name: str = SERVICE) -> str:
    p = subprocess.run(f"echo | openssl s_client -connect {lab.address('lb')}:443 "
                       f"-servername {name} 2>/dev/null | openssl x509 -noout -fingerprint "
                       "-sha256", shell=True, capture_output=True, text=True, timeout=20)
    return p.stdout.strip().split("=", 1)[1]


def store_fingerprint(lab, node: str, store: str = STORE) -> str:
    p = lab.exec(node, f"keytool -list -keystore {store} -storepass:file /tmp/.ts-pw "
                       f"-alias {SERVICE}")
    m = re.search(r"\(SHA-256\):\s*(\S+)", p.stdout)
    assert m, f"{node}: no {SERVICE} in {store}: {p.stdout}{p.stderr}"
    return m.group(1)


def vhost_shas(lab) -> str:
    return lab.exec("lb", "sha256sum /etc/nginx/conf.d/*.conf").stdout


class PsSampler:
    """Samples every host's process list while a run goes on."""

    def __init__(self, lab):
        self.lab, self.samples, self._stop = lab, [], threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            for h in self.lab.hosts:
                try:
                    self.samples.append(self.lab.exec(h, "ps -eww -o args", timeout=5).stdout)
                except Exception:
                    pass

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.t.join(10)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab(lab_factory):
    """This module's own lab (LAB_INDEX+6), so other modules' state cannot leak in."""
    return lab_factory(int(os.environ.get("LAB_INDEX", "7")) + 6, nodes=2)


@pytest.fixture(scope="module")
def env(lab, tmp_path_factory):
    for n in lab.node_names:  # the store password, for the tests' own keytool -list
        lab.exec(n, "umask 077; cat > /tmp/.ts-pw", input=lab.secret("truststore_password"),
                 check=True)
    start_responders(lab)
    d = tmp_path_factory.mktemp("lbcerts")
    return {"lab": lab, "inv": Path(lab.hosts_toml), "dir": d}


def variant(env, name: str, **overrides) -> Path:
    return env["lab"].write_hosts_toml(env["dir"] / f"{name}.toml", **overrides)


# --------------------------------------------------------------------------- tests


def test_lb_before_certs_stops_and_writes_nothing(env):
    lab = env["lab"]
    p = fab(env["inv"], "lb")
    assert p.returncode != 0
    assert "run `fab certs` first" in out_of(p)
    assert lab.exec("lb", "ls /etc/nginx/conf.d/").stdout.strip() == ""
    assert "bps-deploy names" not in lab.exec("node1", "cat /etc/hosts").stdout


def test_certs_first_run(env):
    lab = env["lab"]
    secrets = [lab.secret(n) for n in ("truststore_password", "db_password", "admin_password")]
    with PsSampler(lab) as ps:
        p = fab(env["inv"], "certs")
    out = out_of(p)
    assert p.returncode == 0, out
    assert re.search(r"\[lb\] certs: changed", out)
    for n in lab.node_names:
        assert f"[{n}] certs: changed" in out
    # no secrets / key material anywhere: argv on the hosts, output, run log
    assert len(ps.samples) > 4
    argv = "\n".join(ps.samples)
    for s in secrets:
        assert s not in argv and s not in out
    assert "-storepass " not in argv and "PRIVATE KEY" not in argv
    log = sorted((env["inv"].parent / "logs").glob("run-*.log"))[-1].read_text()
    assert not any(s in log for s in secrets) and "PRIVATE KEY" not in log
    # the key: 0600 root, RSA >= 3072; the cert: SANs, validity
    assert lab.exec("lb", "stat -c '%a %U' /etc/nginx/ssl/server.key").stdout.strip() == "600 root"
    text = lab.exec("lb", "openssl x509 -in /etc/nginx/ssl/server.crt -noout -text").stdout
    assert "DNS:ei.wso2.com, DNS:ui.ei.wso2.com" in text and "Public-Key: (3072 bit)" in text
    assert "Subject: CN = ei.wso2.com" in text
    dates = lab.exec("lb", "openssl x509 -in /etc/nginx/ssl/server.crt -noout -startdate "
                           "-enddate").stdout
    assert "Not" not in dates and "notAfter" in dates
    days = lab.exec("lb", "openssl x509 -in /etc/nginx/ssl/server.crt -noout -checkend "
                          f"{364 * 86400} && openssl x509 -in /etc/nginx/ssl/server.crt -noout "
                          f"-checkend {366 * 86400} || echo expires-in-365").stdout
    assert "expires-in-365" in days
    # every node: both stores hold the certificate, node marked for restart
    fp = lab.exec("lb", "openssl x509 -in /etc/nginx/ssl/server.crt -noout -fingerprint "
                        "-sha256").stdout.strip().split("=", 1)[1]
    for n in lab.node_names:
        assert store_fingerprint(lab, n) == fp
        assert store_fingerprint(lab, n, CARBON_STORE) == fp
        assert "certs" in lab.exec(n, "cat /var/lib/bps-deploy/pending-restart").stdout
    env["fp"] = fp


def test_lb_first_run(env):
    lab = env["lab"]
    p = fab(env["inv"], "lb")
    out = out_of(p)
    assert p.returncode == 0, out
    assert "create /etc/nginx/conf.d/ei.http.conf" in out and "start nginx" in out
    assert lab.exec("lb", "ls /etc/nginx/conf.d/").stdout.split() == \
        ["ei.default.conf", "ei.http.conf", "ei.https.conf", "ui.ei.https.conf"]
    # the lab's /etc is the machine's: Debian's own, untouched default site link
    assert "disable Debian's default site" in out
    assert not lab.exec("lb", "ls /etc/nginx/sites-enabled/").stdout.strip()
    for h in ["lb", *lab.node_names]:
        hosts = lab.exec(h, "cat /etc/hosts").stdout
        assert f"{lab.address('lb')}\tei.wso2.com ui.ei.wso2.com" in hosts
        assert "127.0.0.1\tlocalhost" in hosts  # other lines untouched
    nginx_procs(lab)


def test_tls_fingerprint_equals_every_truststore(env):
    lab = env["lab"]
    for name in (SERVICE, CONSOLE):
        assert lb_fingerprint(lab, name) == env["fp"]
    for n in lab.node_names:
        assert store_fingerprint(lab, n) == env["fp"]


def test_http_round_robin_and_failover(env):
    lab = env["lab"]
    who = [answered_by(curl(lab, SERVICE, "/services/x", https=False)) for _ in range(6)]
    assert set(who) == {"node1", "node2"}, who
    assert all(a != b for a, b in zip(who, who[1:])), f"not round robin: {who}"
    lab.exec("node2", "pkill -f /tmp/resp.py")
    try:
        who = [answered_by(curl(lab, SERVICE, "/", https=False)) for _ in range(4)]
        assert who == ["node1"] * 4, who
    finally:
        start_responders(lab, ["node2"])


def test_https_service_round_robin(env):
    lab = env["lab"]
    time.sleep(0.5)
    who = [answered_by(curl(lab, SERVICE, "/services/")) for _ in range(8)]
    assert set(who) == {"node1", "node2"}, who


def test_console_affinity(env):
    lab = env["lab"]
    for client in (None, "node1", "node2", "db"):  # four client addresses in the allow-list
        texts = [curl(lab, CONSOLE, "/carbon/", from_host=client) for _ in range(5)]
        assert all("path=/carbon/" in t for t in texts), texts
        assert len({answered_by(t) for t in texts}) == 1, (client, texts)


def test_second_runs_change_nothing_and_do_not_reload(env):
    lab = env["lab"]
    before = nginx_procs(lab)
    shas = vhost_shas(lab)
    p = fab(env["inv"], "lb")
    assert p.returncode == 0, out_of(p)
    assert ": changed" not in p.stdout and ": failed" not in p.stdout, p.stdout
    assert "no reload" in p.stdout
    q = fab(env["inv"], "certs")
    assert q.returncode == 0, out_of(q)
    assert ": changed" not in q.stdout
    for n in lab.node_names:
        assert f"[{n}] certs: ok: truststore(s) unchanged" in q.stdout  # no keytool run
    assert nginx_procs(lab) == before  # same master, same start time, same workers: no reload
    assert vhost_shas(lab) == shas
    assert lb_fingerprint(lab) == env["fp"]


def test_check_and_diff_show_but_touch_nothing(env):
    lab = env["lab"]
    before, shas = nginx_procs(lab), vhost_shas(lab)
    inv = variant(env, "extra", cluster={"nginx_extra": "client_max_body_size 20m;"})
    p = fab(inv, "lb", "--check", "--diff")
    out = out_of(p)
    assert p.returncode == 0, out
    assert "CHECK MODE" in out and "update /etc/nginx/conf.d/ei.http.conf" in out
    assert "+    client_max_body_size 20m;" in out
    assert nginx_procs(lab) == before and vhost_shas(lab) == shas


def test_broken_value_fails_with_nginx_message_and_old_config_serves(env):
    lab = env["lab"]
    before, shas = nginx_procs(lab), vhost_shas(lab)
    inv = variant(env, "broken", cluster={"nginx_extra": "bogus_directive on;"})
    p = fab(inv, "lb")
    out = out_of(p)
    assert p.returncode != 0
    assert re.search(r'unknown directive "bogus_directive" in /etc/nginx/conf.d/ei\.https?\.conf:\d+',
                     out), out
    assert "previous files were put back" in out
    assert vhost_shas(lab) == shas
    assert nginx_procs(lab) == before
    assert answered_by(curl(lab, SERVICE, "/", https=False)) in ("node1", "node2")
    assert not lab.exec("lb", "ls -A /etc/nginx/conf.d/ | grep bps-tmp").stdout


def test_console_allow_list(env):
    lab = env["lab"]
    inv = variant(env, "allow", cluster={"console_allow": [f"{lab.address('node1')}/32"]})
    p = fab(inv, "lb")
    assert p.returncode == 0, out_of(p)
    try:
        assert curl(lab, CONSOLE, "/carbon/", code_only=True) == "403"  # the machine: outside
        t = curl(lab, CONSOLE, "/carbon/", from_host="node1")
        assert "path=/carbon/" in t and answered_by(t)
        # the service vhost is not restricted
        assert answered_by(curl(lab, SERVICE, "/services/"))
    finally:
        assert fab(env["inv"], "lb").returncode == 0


def test_drain_marks_node_down(env):
    from tasks.steps import lb
    from tasks.engine.runner import make_run
    from tasks.engine.inventory import load
    lab = env["lab"]
    run = make_run(load(env["inv"]))
    try:
        assert lb.lb_step(run, drain=frozenset({"node2"}))
    finally:
        run.close()
    who = {answered_by(curl(lab, SERVICE, "/", https=False)) for _ in range(6)}
    assert who == {"node1"}
    assert fab(env["inv"], "lb").returncode == 0
    who = {answered_by(curl(lab, SERVICE, "/", https=False)) for _ in range(6)}
    assert who == {"node1", "node2"}


def test_renew_changes_fingerprint_everywhere(env):
    lab = env["lab"]
    before = nginx_procs(lab)
    p = fab(env["inv"], "certs", "--renew")
    assert p.returncode == 0, out_of(p)
    assert "nginx reloaded" in p.stdout
    fp = lb_fingerprint(lab)
    assert fp != env["fp"]
    for n in lab.node_names:
        assert store_fingerprint(lab, n) == fp
        assert store_fingerprint(lab, n, CARBON_STORE) == fp
    assert nginx_procs(lab)[2] != before[2]  # reloaded: new workers
    env["fp"] = fp


def test_missing_truststore_on_one_node(env):
    lab = env["lab"]
    lab.exec("node2", f"mv {STORE} /tmp/ts.moved", check=True)
    try:
        p = fab(env["inv"], "certs", "--renew")
        out = out_of(p)
        assert p.returncode != 0
        assert re.search(r"\[node2\] certs: failed: truststore .*client-truststore.jks is "
                         r"missing", out), out
        assert "[node1] certs: changed" in out
        recap = out.split("CERTS (")[1]
        assert re.search(r"node2\s+0\s+0\s+1", recap), recap
        fp = lb_fingerprint(lab)
        assert store_fingerprint(lab, "node1") == fp
    finally:
        lab.exec("node2", f"mv /tmp/ts.moved {STORE}", check=True)
    p = fab(env["inv"], "certs")  # the next run completes node2
    assert p.returncode == 0, out_of(p)
    assert store_fingerprint(lab, "node2") == lb_fingerprint(lab)


def test_wrong_password_on_one_node(env):
    lab = env["lab"]
    pw = lab.secret("truststore_password")
    # node2's store gets another password: the inventory's one is now wrong there only
    lab.exec("node2", f"printf other-pass-1 > /tmp/.new-pw; keytool -storepasswd -keystore {STORE} "
                      "-storepass:file /tmp/.ts-pw -new:file /tmp/.new-pw", check=True)
    try:
        p = fab(env["inv"], "certs", "--renew")
        out = out_of(p)
        assert p.returncode != 0
        assert re.search(r"\[node2\] certs: failed: .*password is wrong", out), out
        assert "[node1] certs: changed" in out
        assert pw not in out and "other-pass-1" not in out
    finally:
        lab.exec("node2", f"keytool -storepasswd -keystore {STORE} -storepass:file /tmp/.new-pw "
                          "-new:file /tmp/.ts-pw", check=True)
    assert fab(env["inv"], "certs").returncode == 0


# --------------------------------------------------------------------------- hostile input


HOSTILE_PATHS = [
    "/carbon/", "/carbon/admin/login.jsp", "/CARBON/", "/Carbon/admin/index.jsp",
    "/services/UserAdmin", "/services//UserAdmin", "/SERVICES/UserAdmin",
    "/services/useradmin", "/services/UserAdmin.UserAdminHttpsSoap12Endpoint",
    "/services/UserAdmin?wsdl", "/services/%55serAdmin", "/services/%2e%2e;/carbon/",
    "/services/..;/carbon/", "/;x/carbon/", "/services/t/a.com/UserAdmin",
    "/services/AuthenticationAdmin", "/services/RemoteUserStoreManagerService",
    "/services/ServerAdmin", "/services/BPELPackageManagementService",
    "/services/HumanTaskPackageManagementService", "/services/ProcessManagementService",
    "/services/InstanceManagementService", "/services/LoggingAdmin",
    "/services/TenantMgtAdminService", "/bpmn/", "/bpmn-explorer/", "/humantask-explorer/",
]


def raw_request(lab, url: str, host: str | None = None, sni: str | None = None,
                from_host: str | None = None) -> tuple[str, str]:
    """(http code, body) of one request sent exactly as written (--path-as-is)."""
    cmd = ["curl", "-sk", "--path-as-is", "--max-time", "10", "-o", "-", "-w", "\n@@%{http_code}"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if sni:
        cmd += ["--resolve", f"{sni}:443:{lab.address('lb')}"]
    cmd.append(url)
    p = (lab.exec(from_host, cmd) if from_host
         else subprocess.run(cmd, capture_output=True, text=True, timeout=20))
    body, _, code = p.stdout.rpartition("\n@@")
    return code.strip(), body


def test_console_and_admin_only_through_console_name(env):
    """Item 3: from outside the allow-list, no name, port or Host header reaches /carbon, an
    admin service or a console-only app; from inside it, only the console name does."""
    lab = env["lab"]
    inv = variant(env, "hostile3", cluster={"console_allow": [f"{lab.address('node1')}/32"]})
    p = fab(inv, "lb")
    assert p.returncode == 0, out_of(p)
    lbip = lab.address("lb")
    try:
        for path in HOSTILE_PATHS:
            tries = {
                "http service": raw_request(lab, f"http://{lbip}{path}", host=SERVICE),
                "https service": raw_request(lab, f"https://{SERVICE}{path}", sni=SERVICE),
                "https console": raw_request(lab, f"https://{CONSOLE}{path}", sni=CONSOLE),
                "http console": raw_request(lab, f"http://{lbip}{path}", host=CONSOLE),
                "http other Host": raw_request(lab, f"http://{lbip}{path}", host="evil.test"),
                "http LB address": raw_request(lab, f"http://{lbip}{path}"),
                "https LB address": raw_request(lab, f"https://{lbip}{path}"),
                "https SNI service, Host other": raw_request(
                    lab, f"https://{SERVICE}{path}", host="evil.test", sni=SERVICE),
                "https SNI service, Host console": raw_request(
                    lab, f"https://{SERVICE}{path}", host=CONSOLE, sni=SERVICE),
                "node2 (outside the list) https console": raw_request(
                    lab, f"https://{CONSOLE}{path}", sni=CONSOLE, from_host="node2"),
                "node1 (allowed) https service": raw_request(
                    lab, f"https://{SERVICE}{path}", sni=SERVICE, from_host="node1"),
            }
            for what, (code, body) in tries.items():
                assert code != "200" and "node=" not in body, (path, what, code, body)
        # what each refusal looks like
        assert raw_request(lab, f"http://{lbip}/carbon/", host=SERVICE)[0] == "404"
        assert raw_request(lab, f"https://{CONSOLE}/carbon/", sni=CONSOLE)[0] == "403"
        assert raw_request(lab, f"http://{lbip}/", host="evil.test")[0] == "000"  # 444: closed
        assert raw_request(lab, f"https://{lbip}/")[0] == "000"  # handshake refused
        assert raw_request(lab, f"https://{SERVICE}/", host="evil.test", sni=SERVICE)[0] == "421"
        # allowed: the console name from node1; services on the service names from anywhere
        code, body = raw_request(lab, f"https://{CONSOLE}/carbon/", sni=CONSOLE,
                                 from_host="node1")
        assert code == "200" and "path=/carbon/" in body, body
        code, body = raw_request(lab, f"https://{CONSOLE}/services/UserAdmin?wsdl", sni=CONSOLE,
                                 from_host="node1")
        assert code == "200" and answered_by(body), body
        for url, kw in ((f"http://{lbip}/services/OrderProcess", {"host": SERVICE}),
                        (f"https://{SERVICE}/services/Echo?wsdl", {"sni": SERVICE})):
            code, body = raw_request(lab, url, **kw)
            assert code == "200" and answered_by(body), (url, body)
    finally:
        assert fab(env["inv"], "lb").returncode == 0


def test_expose_on_service_opens_only_what_it_names(env):
    lab = env["lab"]
    inv = variant(env, "expose", cluster={"expose_on_service": ["bpmn"],
                                          "admin_services_extra": ["OrderProcess"]})
    p = fab(inv, "lb")
    assert p.returncode == 0, out_of(p)
    try:
        lbip = lab.address("lb")
        code, body = raw_request(lab, f"http://{lbip}/bpmn/runtime/tasks", host=SERVICE)
        assert code == "200" and "path=/bpmn/runtime/tasks" in body
        for path in ("/bpmn-explorer/", "/services/OrderProcess", "/carbon/"):
            assert raw_request(lab, f"http://{lbip}{path}", host=SERVICE)[0] == "404", path
    finally:
        assert fab(env["inv"], "lb").returncode == 0


def test_nginx_extra_cannot_close_the_server_block(env):
    """Item 12: a snippet that closes our server block and opens its own is refused before
    any host is touched; a snippet with its own `location { }` still works."""
    lab = env["lab"]
    before, shas = nginx_procs(lab), vhost_shas(lab)
    evil = ("client_max_body_size 1m;\n}\nserver {\n    listen 80;\n"
            f"    server_name {SERVICE};\n    location / {{ return 200 'hijacked'; }}")
    inv = variant(env, "evil-extra", cluster={"nginx_extra": "@@EXTRA@@"})
    inv.write_text(inv.read_text().replace('"@@EXTRA@@"', '"""\n' + evil + '"""'))
    p = fab(inv, "lb")
    out = out_of(p)
    assert p.returncode == 2, out
    assert "cluster.nginx_extra: line 2: `}` closes the server block" in out
    assert vhost_shas(lab) == shas and nginx_procs(lab) == before
    assert answered_by(curl(lab, SERVICE, "/", https=False)) in ("node1", "node2")
    inv = variant(env, "ok-extra", cluster={"nginx_extra": "location = /lb-ping { return 200 "
                                                           "'pong}'; }"})
    try:
        p = fab(inv, "lb")
        assert p.returncode == 0, out_of(p)
        assert curl(lab, SERVICE, "/lb-ping", https=False) == "pong}"
    finally:
        assert fab(env["inv"], "lb").returncode == 0


def test_other_vhost_claiming_our_name_fails_deploy_and_status(env):
    """Item 13: another conf.d file with our service name (other case) on port 80."""
    lab = env["lab"]
    lab.exec("lb", "cat > /etc/nginx/conf.d/aaa-other.conf", check=True,
             input="server {\n    listen 80;\n    server_name EI.WSO2.com;\n"
                   "    return 200 \"other\\n\";\n}\n")
    lab.exec("lb", "nginx -t && nginx -s reload", check=True)
    try:
        time.sleep(0.5)
        assert curl(lab, SERVICE, "/", https=False).strip() == "other"  # it took the traffic
        p = fab(env["inv"], "lb")
        out = out_of(p)
        assert p.returncode != 0, out
        assert re.search(r"\[lb\] lb: failed: another vhost on the LB claims our names.*\n"
                         r".*/etc/nginx/conf\.d/aaa-other\.conf:1 also claims server_name "
                         r"ei\.wso2\.com on port 80", out), out
        p = fab(env["inv"], "status")
        assert p.returncode != 0
        assert "CONFLICT: /etc/nginx/conf.d/aaa-other.conf:1" in out_of(p), out_of(p)
    finally:
        lab.exec("lb", "rm -f /etc/nginx/conf.d/aaa-other.conf; nginx -s reload", check=True)
    # a wildcard that could match: a warning, not an error (exact names win in nginx)
    lab.exec("lb", "cat > /etc/nginx/conf.d/zzz-wild.conf", check=True,
             input="server {\n    listen 443 ssl;\n    server_name *.wso2.com;\n"
                   "    ssl_certificate /etc/nginx/ssl/server.crt;\n"
                   "    ssl_certificate_key /etc/nginx/ssl/server.key;\n    return 200;\n}\n")
    lab.exec("lb", "nginx -t && nginx -s reload", check=True)
    try:
        p = fab(env["inv"], "lb")
        out = out_of(p)
        assert p.returncode == 0, out
        assert "zzz-wild.conf:1 has server_name *.wso2.com on port 443, which could match " \
               "ei.wso2.com" in out, out
    finally:
        lab.exec("lb", "rm -f /etc/nginx/conf.d/zzz-wild.conf; nginx -s reload", check=True)
    time.sleep(0.5)
    assert answered_by(curl(lab, SERVICE, "/", https=False)) in ("node1", "node2")


def test_operator_default_site_left_alone(env):
    """Item 14: a regular file at sites-enabled/default is the operator's: kept, warned."""
    lab = env["lab"]
    site = "server {\n    listen 80;\n    server_name mysite.example;\n    return 200 \"mysite\\n\";\n}\n"
    lab.exec("lb", "cat > /etc/nginx/sites-enabled/default", input=site, check=True)
    lab.exec("lb", "nginx -t && nginx -s reload", check=True)
    try:
        for _ in range(2):
            p = fab(env["inv"], "lb")
            out = out_of(p)
            assert p.returncode == 0, out
            assert "left /etc/nginx/sites-enabled/default alone: it is a regular file" in out, out
            assert "disable Debian's default site" not in out
            assert lab.exec("lb", "cat /etc/nginx/sites-enabled/default").stdout == site
        time.sleep(0.5)
        code, body = raw_request(lab, f"http://{lab.address('lb')}/", host="mysite.example")
        assert (code, body.strip()) == ("200", "mysite")
    finally:
        lab.exec("lb", "rm -f /etc/nginx/sites-enabled/default; nginx -s reload", check=True)
    # Debian's own link, untouched content: disabled (moved aside) again
    lab.exec("lb", "ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default",
             check=True)
    p = fab(env["inv"], "lb")
    out = out_of(p)
    assert p.returncode == 0, out
    assert "disable Debian's default site" in out and "alone" not in out
    assert not lab.exec("lb", "ls /etc/nginx/sites-enabled/").stdout.strip()
