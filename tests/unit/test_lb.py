"""`fab lb`: pure planning and template rendering (no host)."""
import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import fake_run

from tests.paths import REPO

from tasks.engine import inventory, remote  # noqa: E402

from tasks.steps import lb
from tests.unit import inv_factory  # noqa: E402


def make_inv(tmp: Path, nodes: int = 2, **cluster) -> inventory.Inventory:
    return inv_factory.make_inv(tmp, nodes, cluster=cluster)


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path)


PKG_MD5 = "f1f26aef86f90a484f3a2f46ccc46ff6"
DEBIAN_SITE = dict(default_site=True, default_site_kind="link",
                   default_site_target="/etc/nginx/sites-available/default",
                   default_site_md5=PKG_MD5, default_site_pkg_md5=PKG_MD5)


def facts(**kw) -> lb.LbFacts:
    base = dict(nginx_version=(1, 22, 1), nginx_running=True, cert_present=True,
                key_present=True, default_site=False, files={}, hosts_content=b"127.0.0.1 localhost\n",
                hosts_state=remote.FileState("x", 0o644, "root", "root"))
    base.update(kw)
    return lb.LbFacts(**base)


def rendered(inv, version=(1, 22, 1), drain=frozenset()) -> dict[str, str]:
    return {Path(sp.path).name: sp.content.decode() for sp in lb.render_vhosts(inv, version, drain)}


def up_state(inv, **kw):
    """Facts for an LB already holding exactly what we render."""
    files = {sp.path: remote.FileState(sp.sha256, 0o644, "root", "root")
             for sp in lb.render_vhosts(inv, (1, 22, 1))}
    hosts = remote.managed_block("127.0.0.1 localhost\n", lb.hosts_block(inv),
                                 lb.HOSTS_MARKER).encode()
    return facts(files=files, hosts_content=hosts, **kw)


# --------------------------------------------------------------------- templates

def test_every_node_in_every_upstream(tmp_path):
    inv = make_inv(tmp_path, nodes=3)
    r = rendered(inv)
    for addr in ("192.0.2.11", "192.0.2.12", "192.0.2.13"):
        assert f"server {addr}:9765 max_fails=3 fail_timeout=30s;" in r["ei.http.conf"]
        assert f"server {addr}:9445 max_fails=3 fail_timeout=30s;" in r["ei.https.conf"]
        assert f"server {addr}:9445 max_fails=3 fail_timeout=30s;" in r["ui.ei.https.conf"]


def test_ports_follow_offset(tmp_path):
    inv = make_inv(tmp_path, port_offset=3)
    r = rendered(inv)
    assert "192.0.2.11:9766" in r["ei.http.conf"] and "192.0.2.11:9446" in r["ei.https.conf"]


def test_listen_80_and_443_modern(inv):
    assert "proxy_ssl_verify off;" in rendered(inv)["ei.https.conf"]  # no cluster CA yet
    from tasks.steps import cluster_ca
    cluster_ca.ensure_ca(inv)
    r = rendered(inv)
    assert "listen 80;" in r["ei.http.conf"] and "server_name ei.example.com;" in r["ei.http.conf"]
    for name in ("ei.https.conf", "ui.ei.https.conf"):
        assert "listen 443 ssl http2;" in r[name]
        assert "ssl on" not in r[name]
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in r[name]
        assert "ssl_certificate     /etc/nginx/ssl/server.crt;" in r[name]
        assert "ssl_certificate_key /etc/nginx/ssl/server.key;" in r[name]
        assert "proxy_ssl_verify on;" in r[name]
        assert "proxy_ssl_name nodes.bps.internal;" in r[name]
        assert "proxy_ssl_trusted_certificate /etc/nginx/ssl/cluster-ca.pem;" in r[name]
    assert "server_name ui.ei.example.com;" in r["ui.ei.https.conf"]


def test_http2_directive_on_new_nginx(inv):
    r = rendered(inv, version=(1, 25, 1))
    assert "listen 443 ssl;" in r["ei.https.conf"] and "http2 on;" in r["ei.https.conf"]
    r = rendered(inv, version=(1, 25, 0))
    assert "http2 on;" not in r["ei.https.conf"]


def test_affinity_on_console_only(inv):
    r = rendered(inv)
    assert "hash $remote_addr consistent;" in r["ui.ei.https.conf"]
    assert "hash $remote_addr" not in r["ei.https.conf"].replace("# ", "")
    assert "ip_hash" not in "".join(r.values()).replace("ip_hash would", "")


def test_guide_proxy_headers(inv):
    r = rendered(inv)
    for name, text in r.items():
        if name == "ei.default.conf":
            continue
        for line in ("proxy_set_header X-Forwarded-Host $host;",
                     "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                     "proxy_set_header Host $http_host;", "proxy_read_timeout 5m;",
                     "proxy_send_timeout 5m;", "proxy_http_version 1.1;"):
            assert line in text, (name, line)
    assert "proxy_pass http://bps_ei_http;" in r["ei.http.conf"]
    assert "proxy_pass https://bps_ei_https;" in r["ei.https.conf"]
    assert "proxy_pass https://bps_ui_https;" in r["ui.ei.https.conf"]


def test_drain_marks_node_down(inv):
    r = rendered(inv, drain=frozenset({"node2"}))
    for name, port in (("ei.http.conf", 9765), ("ei.https.conf", 9445), ("ui.ei.https.conf", 9445)):
        assert f"server 192.0.2.12:{port} down;" in r[name]
        assert f"server 192.0.2.11:{port} max_fails=3" in r[name]


def test_drain_unknown_node_is_an_error(inv):
    with pytest.raises(lb.LbError, match="node9"):
        lb.render_vhosts(inv, (1, 22, 1), frozenset({"node9"}))


def test_allow_list(inv):
    r = rendered(inv)
    ui = r["ui.ei.https.conf"]
    assert "allow 192.0.2.0/24;" in ui and "deny all;" in ui
    assert "deny all" not in r["ei.https.conf"]


def test_empty_allow_list_is_open_and_said(tmp_path):
    inv = make_inv(tmp_path, console_allow=[])
    ui = rendered(inv)["ui.ei.https.conf"]
    assert "deny all" not in ui and "OPEN TO EVERYONE" in ui


def test_nginx_extra_in_service_vhosts(tmp_path):
    inv = make_inv(tmp_path, nginx_extra="client_max_body_size 20m;\nadd_header X-A b;")
    r = rendered(inv)
    for name in ("ei.http.conf", "ei.https.conf"):
        assert "    client_max_body_size 20m;\n    add_header X-A b;" in r[name]
    assert "client_max_body_size" not in r["ui.ei.https.conf"]


def test_undefined_value_names_template_and_line(inv, tmp_path, monkeypatch):
    (tmp_path / "bad.j2").write_text("a\nb {{ nope }}\n")
    monkeypatch.setattr(lb.vhosts, "TEMPLATES", tmp_path)
    with pytest.raises(lb.RenderError) as e:
        lb.render("bad.j2", {})
    assert "templates/bad.j2:2" in str(e.value) and "nope" in str(e.value)


def test_syntax_error_names_template_and_line(tmp_path, monkeypatch):
    (tmp_path / "bad.j2").write_text("a\n\n{% if x %}\n")
    monkeypatch.setattr(lb.vhosts, "TEMPLATES", tmp_path)
    with pytest.raises(lb.RenderError) as e:
        lb.render("bad.j2", {"x": 1})
    assert "templates/bad.j2:" in str(e.value) and "syntax error" in str(e.value)


def test_render_is_deterministic(inv):
    assert rendered(inv) == rendered(inv)


# --------------------------------------------------------------------- plans

def test_plan_fresh_lb(inv):
    plan = lb.plan_lb(facts(nginx_running=False, **DEBIAN_SITE), inv)
    assert [c.spec.path for c in plan.vhosts] == [f"/etc/nginx/conf.d/{v}" for v in lb.VHOSTS]
    assert plan.disable_default and plan.start
    assert len(plan.hosts) == 1
    text = plan.hosts[0].spec.content.decode()
    assert text.startswith("127.0.0.1 localhost\n")
    assert "192.0.2.2\tei.example.com ui.ei.example.com" in text
    assert "start nginx (not running)" in plan.changes


def test_plan_no_change(inv):
    plan = lb.plan_lb(up_state(inv), inv)
    assert plan.changes == []


def test_plan_changed_vhost_reloads(inv):
    f = up_state(inv)
    f.files["/etc/nginx/conf.d/ei.http.conf"] = remote.FileState("other", 0o644, "root", "root")
    plan = lb.plan_lb(f, inv)
    assert plan.changes == ["update /etc/nginx/conf.d/ei.http.conf", "reload nginx"]


def test_plan_drain_changes_all_vhosts(inv):
    plan = lb.plan_lb(up_state(inv), inv, frozenset({"node1"}))
    assert len(plan.vhosts) == 3


def test_plan_stops_without_certs(inv):
    plan = lb.plan_lb(facts(key_present=False), inv)
    assert plan.error and "fab certs" in plan.error and not plan.vhosts


def test_lb_before_the_cluster_ca_exists_says_verification_is_off(inv):
    """`fab lb` alone before a deploy created the CA: the vhosts go out with
    proxy_ssl_verify off, and the plan says so and how to turn it on."""
    plan = lb.plan_lb(facts(), inv)
    said = [w for w in plan.warnings if "cluster CA" in w]
    assert len(said) == 1 and "proxy_ssl_verify off" in said[0] and "fab deploy" in said[0]
    from tasks.steps import cluster_ca
    cluster_ca.ensure_ca(inv)
    assert not [w for w in lb.plan_lb(facts(), inv).warnings if "cluster CA" in w]


def test_plan_nginx_missing(inv):
    plan = lb.plan_lb(facts(nginx_version=None), inv)
    assert "nginx is not installed" in plan.error


def test_etc_hosts_idempotent_and_other_lines_kept(inv):
    text = b"127.0.0.1 localhost\n10.0.0.5 other.example.com\n"
    ch = lb.plan_etc_hosts(text, None, inv)
    new = ch[0].spec.content
    assert b"10.0.0.5 other.example.com\n" in new
    assert lb.plan_etc_hosts(new, None, inv) == []


def test_etc_hosts_off_removes_our_block(tmp_path):
    on = make_inv(tmp_path)
    new = lb.plan_etc_hosts(b"127.0.0.1 localhost\n", None, on)[0].spec.content
    off = dataclasses.replace(on, cluster=dataclasses.replace(on.cluster, etc_hosts=False))
    ch = lb.plan_etc_hosts(new, None, off)
    assert ch[0].spec.content == b"127.0.0.1 localhost\n"
    assert lb.plan_etc_hosts(b"127.0.0.1 localhost\n", None, off) == []


def test_etc_hosts_keeps_mode(inv):
    st = remote.FileState("x", 0o640, "root", "adm")
    sp = lb.plan_etc_hosts(b"", st, inv)[0].spec
    assert (sp.mode, sp.owner, sp.group) == (0o640, "root", "adm")


# --------------------------------------------------------------------- facts / helpers

def test_parse_facts():
    raw = {
        "nginx": remote.Fact("nginx version: nginx/1.22.1", 0),
        "running": remote.Fact("running", 0),
        "cert": remote.Fact("present", 0), "key": remote.Fact("missing", 0),
        "default_site": remote.Fact("link /etc/nginx/sites-available/default\nmd5 abc\n"
                                    "pkg abc", 0),
        "nginx_dump": remote.Fact("", 1),
        "hosts_file": remote.Fact("644 root root abc\nMTI3LjAuMC4xIGxvY2FsaG9zdAo=", 0),
        "drained": remote.Fact("", 0),
    }
    for v in lb.VHOSTS:
        raw[f"file:/etc/nginx/conf.d/{v}"] = remote.Fact("MISSING", 0)
    f = lb.parse_lb_facts(raw)
    assert f.nginx_version == (1, 22, 1) and f.nginx_running
    assert f.cert_present and not f.key_present and f.default_site
    assert (f.default_site_kind, f.default_site_target) == ("link", lb.DEBIAN_DEFAULT)
    assert f.default_site_md5 == f.default_site_pkg_md5 == "abc" and f.nginx_dump is None
    assert f.hosts_content == b"127.0.0.1 localhost\n"
    assert all(v is None for v in f.files.values())
    raw["nginx"] = remote.Fact("MISSING", 0)
    assert lb.parse_lb_facts(raw).nginx_version is None


def test_nginx_message_keeps_file_and_line():
    out = ("nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/ei.http.conf:12\n"
           "nginx: configuration file /etc/nginx/nginx.conf test failed\n")
    assert lb.nginx_message(out) == ('nginx: [emerg] unknown directive "bogus" in '
                                     '/etc/nginx/conf.d/ei.http.conf:12')


def test_service_script_variants():
    """One static script (shellcheck checks it) for every way nginx is run; the header picks."""
    s = lb.nginx_service_script("reload")
    assert s.startswith("ACTION=reload\nIF_RUNNING=0\nVALIDATE=0\n")
    assert 'systemctl "$ACTION" nginx' in s and 'service nginx "$ACTION"' in s
    assert "nginx -s reload" in s
    assert lb.nginx_service_script("reload", if_running=True, validate=True).startswith(
        "ACTION=reload\nIF_RUNNING=1\nVALIDATE=1\n")


def _sh(script: str, tmp_path, path_dir) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          env={"PATH": f"{path_dir}:/usr/bin:/bin"}, cwd=tmp_path)


def test_default_site_probe_and_disable_on_local_files(tmp_path):
    """The probe and the disable script against a scratch tree (no root): a link is described,
    then moved to a backup; a failing nginx -t puts it back."""
    site, pkg = tmp_path / "sites-enabled" / "default", tmp_path / "sites-available" / "default"
    site.parent.mkdir()
    pkg.parent.mkdir()
    pkg.write_text("server {}\n")
    site.symlink_to(pkg)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "nginx").write_text("#!/bin/sh\nexit ${NGINX_RC:-0}\n")
    (bin_ / "nginx").chmod(0o755)
    probe = remote.script("nginx_default_site.sh", ACTION="probe", SITE=site, PACKAGE_SITE=pkg,
                          BACKUP="")
    got = lb.parse_default_site(_sh(probe, tmp_path, bin_).stdout)
    assert got["kind"] == "link" and got["target"] == str(pkg)
    assert got["md5"] == hashlib.md5(b"server {}\n").hexdigest()
    bak = tmp_path / "bak" / "sites-enabled%default.20260101T000000Z~"
    disable = remote.script("nginx_default_site.sh", ACTION="disable", SITE=site,
                            PACKAGE_SITE=pkg, BACKUP=bak)
    r = _sh("export NGINX_RC=1\n" + disable, tmp_path, bin_)
    assert r.returncode == 3 and "default site restored" in r.stderr and site.is_symlink()
    r = _sh(disable, tmp_path, bin_)
    assert r.returncode == 0 and not site.exists() and not site.is_symlink(), r.stderr
    # a link, kept apart from the run manifests (fab rollback rewrites files, never links)
    assert bak.is_symlink() and not (tmp_path / "bak" / "runs").exists()


# --------------------------------------------------------------------- hostile input: item 3

import re  # noqa: E402
import urllib.parse  # noqa: E402

from tasks.steps import lb_rules, nginx_conf  # noqa: E402


def nginx_uri(raw: str) -> str:
    """What nginx matches locations against: no query, %XX decoded, // merged."""
    path = urllib.parse.unquote(raw.split("?", 1)[0])
    return re.sub(r"/{2,}", "/", path)


def guarded(text: str, raw_uri: str) -> bool:
    """True when one of the vhost's `return 404` regex locations takes the request."""
    uri = nginx_uri(raw_uri)
    for flag, rx in re.findall(r'location (~\*?) "([^"]+)" \{\n\s+return 404;', text):
        if re.search(rx, uri, re.I if flag == "~*" else 0):
            return True
    return False


BLOCKED = ["/carbon", "/carbon/", "/carbon/admin/login.jsp", "/CARBON/", "/Carbon/admin/",
           "/services/UserAdmin", "/services//UserAdmin", "/SERVICES/UserAdmin",
           "/services/useradmin", "/services/UserAdmin.UserAdminHttpsSoap12Endpoint",
           "/services/UserAdmin?wsdl", "/services/UserAdmin/getUsers",
           "/services/%55serAdmin", "/services%2FUserAdmin", "/services/t/a.com/UserAdmin",
           "/services/AuthenticationAdmin", "/services/RemoteUserStoreManagerService",
           "/services/ServerAdmin", "/services/BPELPackageManagementService",
           "/services/HumanTaskPackageManagementService", "/services/ProcessManagementService",
           "/services/InstanceManagementService", "/services/LoggingAdmin",
           "/services/TenantMgtAdminService.TenantMgtAdminServiceHttpsSoap11Endpoint",
           "/services/..;/carbon/", "/;x/carbon/", "/services/UserAdmin;x",
           "/bpmn/", "/bpmn-explorer/", "/humantask-explorer/", "/BPMN/runtime"]
ALLOWED = ["/", "/services/", "/services/OrderProcess",
           "/services/OrderProcess.OrderProcessHttpSoap11Endpoint/", "/services/Echo?wsdl",
           "/services/AdministrativeTasks", "/bpmnx", "/carbonara"]


@pytest.mark.parametrize("uri", BLOCKED)
def test_service_vhosts_never_serve_console_or_admin(inv, uri):
    r = rendered(inv)
    for name in ("ei.http.conf", "ei.https.conf"):
        assert guarded(r[name], uri), (name, uri)
    assert not guarded(r["ui.ei.https.conf"], uri)  # the console name serves everything


@pytest.mark.parametrize("uri", ALLOWED)
def test_service_vhosts_serve_services(inv, uri):
    for name in ("ei.http.conf", "ei.https.conf"):
        assert not guarded(rendered(inv)[name], uri), (name, uri)


def test_admin_list_in_one_place_rendered(inv):
    text = rendered(inv)["ei.https.conf"]
    for svc in lb_rules.ADMIN_SERVICES:
        assert svc in text
    assert 'location ~* "' + lb_rules.admin_services_regex() + '"' in text


def test_admin_services_extra_and_expose(tmp_path):
    inv = make_inv(tmp_path, admin_services_extra=["MyOpsService"],
                   expose_on_service=["bpmn", "humantask-explorer"])
    r = rendered(inv)["ei.http.conf"]
    assert guarded(r, "/services/MyOpsService.x") and guarded(r, "/bpmn-explorer/")
    assert not guarded(r, "/bpmn/runtime/tasks") and not guarded(r, "/humantask-explorer/")
    assert guarded(r, "/carbon/")  # never exposable


@pytest.mark.parametrize("key,value,msg", [
    ("admin_services_extra", ["Bad|(.*)"], "not a plain service name"),
    ("admin_services_extra", ["a b"], "not a plain service name"),
    ("admin_services_extra", [3], "not a plain service name"),
    ("expose_on_service", ["carbon"], "is not one of bpmn"),
    ("expose_on_service", ["bpmn-explorr"], "did you mean 'bpmn-explorer'"),
])
def test_new_keys_validated(tmp_path, key, value, msg):
    with pytest.raises(inventory.InventoryError, match=re.escape(msg)):
        make_inv(tmp_path, **{key: value})


def test_catch_all_default_server(inv):
    d = rendered(inv)["ei.default.conf"]
    assert "listen 80 default_server;" in d and "return 444;" in d
    assert "listen 443 ssl default_server;" in d and "ssl_reject_handshake on;" in d
    assert "return 421;" in d and "ssl_certificate" not in d
    old = rendered(inv, version=(1, 18, 0))["ei.default.conf"]
    assert "ssl_reject_handshake on" not in old
    assert "ssl_certificate     /etc/nginx/ssl/server.crt;" in old and "return 421;" in old
    for name, text in rendered(inv).items():  # nobody else claims to be the default
        if name != "ei.default.conf":
            assert "default_server" not in text


def test_catch_all_left_out_where_another_file_is_default(inv):
    d = rendered_with_owners(inv, {80: "/etc/nginx/sites-enabled/default"})
    assert "listen 80 default_server" not in d and "listen 443 ssl default_server;" in d
    assert "port 80: /etc/nginx/sites-enabled/default declares its own default_server" in d


def rendered_with_owners(inv, owners):
    specs = lb.render_vhosts(inv, (1, 22, 1), frozenset(), owners)
    return {Path(sp.path).name: sp.content.decode() for sp in specs}["ei.default.conf"]


# --------------------------------------------------------------------- item 12: nginx_extra

@pytest.mark.parametrize("snippet", [
    "client_max_body_size 20m;",
    "location /x { return 200 'ok'; }",
    "location /x {\n  if ($arg_a) { return 403; }\n}",
    "add_header X-A \"a } b\";  # } in a comment",
    "add_header X-B 'it\\'s } fine';",
    "set $v \"${host}x\";",
    "",
    "# only a comment }",
])
def test_snippet_allowed(snippet):
    assert nginx_conf.snippet_problem(snippet) is None


@pytest.mark.parametrize("snippet,msg", [
    ("}\nserver { listen 80; server_name ei.example.com; return 200 'x'; }", "closes the server"),
    ("location /x { }\n}", "closes the server"),
    ("return 200 'x'; } server {", "closes the server"),
    ("location /x {", "never closed"),
    ("add_header X \"unterminated;", "never closed"),
    ("add_header X 'a\\' }", "never closed"),
    ("add_header X-A b", "no terminating"),
])
def test_snippet_rejected(snippet, msg):
    assert msg in (nginx_conf.snippet_problem(snippet) or "")


def test_snippet_closing_server_block_rejected_at_load_and_plan(tmp_path, inv):
    bad = "}\nserver {\n    listen 80;\n    server_name ei.example.com;\n"
    with pytest.raises(inventory.InventoryError, match="cluster.nginx_extra: line 1"):
        make_inv(tmp_path, nginx_extra=bad + "}")
    # an Inventory built without the loader: the plan refuses it too
    cl = dataclasses.replace(inv.cluster, nginx_extra=bad + "}")
    with pytest.raises(lb.LbError, match="closes the server block"):
        lb.plan_lb(facts(), dataclasses.replace(inv, cluster=cl))


def test_rendered_vhosts_are_well_formed(tmp_path, monkeypatch):
    inv = make_inv(tmp_path, nginx_extra="location /x { return 200 'a}b'; }")
    for sp in lb.render_vhosts(inv, (1, 22, 1)):
        assert nginx_conf.structure_problem(sp.content.decode()) is None
    # a template that renders an unbalanced file is refused before anything is written
    monkeypatch.setattr(lb.vhosts, "tidy", lambda t: t + "}\n")
    with pytest.raises(lb.RenderError, match="not well-formed"):
        lb.render_vhosts(inv, (1, 22, 1))


def test_tokenizer():
    toks = nginx_conf.tokenize("a 'b c' \"d\\\"e\" ${x}y; # c }\n{ }")
    assert [(t.kind, t.value) for t in toks] == [
        ("word", "a"), ("string", "b c"), ("string", 'd"e'), ("word", "${x}y"), (";", ";"),
        ("{", "{"), ("}", "}")]
    assert toks[-1].line == 2


# --------------------------------------------------------------------- item 13: nginx -T

DUMP = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
user www-data;
events { worker_connections 768; }
http {
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
stream { server { listen 443; proxy_pass x; } }

# configuration file /etc/nginx/conf.d/aaa-other.conf:
server {
    listen 80;
    server_name EI.example.com www.other.com;  # same name, other case
    location / { return 200 "other"; }
}

# configuration file /etc/nginx/conf.d/ei.http.conf:
upstream bps_ei_http { server 192.0.2.11:9765; }
server {
    listen 80;
    server_name ei.example.com;
}

# configuration file /etc/nginx/conf.d/wild.conf:
server {
    listen 10.0.0.1:443 ssl;
    server_name *.example.com "~^ui\\.";
}
server {
    server_name ui.ei.example.com;  # no listen: port 80, not ours for the console
}

# configuration file /etc/nginx/sites-enabled/mysite:
server {
    listen [::]:8080 default_server;
    listen 80 default_server;
    server_name mysite.example.org;
}
"""


def test_parse_nginx_T():
    servers = nginx_conf.parse_servers(DUMP)
    by_file = {}
    for b in servers:
        by_file.setdefault(b.file, []).append(b)
    assert "/etc/nginx/nginx.conf" not in by_file  # the stream server is skipped
    other = by_file["/etc/nginx/conf.d/aaa-other.conf"][0]
    assert other.ports == {80} and other.names == ["EI.example.com", "www.other.com"]
    assert other.line == 1
    wild = by_file["/etc/nginx/conf.d/wild.conf"]
    assert wild[0].ports == {443} and wild[1].ports == {80}
    mine = by_file["/etc/nginx/sites-enabled/mysite"][0]
    assert mine.ports == {80, 8080} and mine.default_ports == {80, 8080}


def test_name_conflicts(inv):
    found = lb.name_conflicts(DUMP, inv)
    exact = [c for c in found if c.exact]
    assert [(c.file, c.name, c.port) for c in exact] == [
        ("/etc/nginx/conf.d/aaa-other.conf", "ei.example.com", 80)]
    maybe = sorted((c.other_name, c.name) for c in found if not c.exact)
    assert maybe == [("*.example.com", "ei.example.com"), ("*.example.com", "ui.ei.example.com"),
                     ("~^ui\\.", "ui.ei.example.com")]
    assert "aaa-other.conf:1 also claims server_name ei.example.com on port 80" in \
        exact[0].describe()


def test_plan_fails_on_exact_conflict_and_writes_nothing(inv):
    plan = lb.plan_lb(facts(nginx_dump=DUMP), inv)
    assert plan.error and "/etc/nginx/conf.d/aaa-other.conf" in plan.error
    assert not plan.vhosts and not plan.disable_default and not plan.hosts


def test_plan_warns_on_wildcard_and_foreign_default(inv):
    dump = DUMP.replace("EI.example.com ", "")
    plan = lb.plan_lb(facts(nginx_dump=dump), inv)
    assert plan.error is None
    text = "\n".join(plan.warnings)
    assert "*.example.com" in text and "could match ei.example.com" in text
    assert "/etc/nginx/sites-enabled/mysite is the default_server on port 80" in text
    d = {Path(c.spec.path).name: c.spec.content.decode() for c in plan.vhosts}
    assert "listen 80 default_server" not in d["ei.default.conf"]


def test_no_dump_no_conflict(inv):
    assert lb.name_conflicts(None, inv) == [] and lb.default_owners(None, set()) == {}


# --------------------------------------------------------------------- item 14: default site

@pytest.mark.parametrize("kind,target,md5,pkg,disable,why", [
    ("absent", "", "", PKG_MD5, False, None),
    ("link", "/etc/nginx/sites-available/default", PKG_MD5, PKG_MD5, True, None),
    ("file", "", PKG_MD5, PKG_MD5, False, "regular file"),
    ("link", "/etc/nginx/sites-available/mysite", PKG_MD5, PKG_MD5, False, "links to"),
    ("link", "/etc/nginx/sites-available/default", "0" * 32, PKG_MD5, False, "was edited"),
    ("link", "/etc/nginx/sites-available/default", PKG_MD5, "", False, "no checksum"),
])
def test_default_site_decision(kind, target, md5, pkg, disable, why):
    d, warning = lb.default_site_decision(kind, target, md5, pkg)
    assert d is disable
    if why:
        assert why in warning and "left /etc/nginx/sites-enabled/default alone" in warning
    else:
        assert warning is None


def test_plan_leaves_operator_site_and_says_so(inv):
    plan = lb.plan_lb(facts(default_site=True, default_site_kind="file",
                            default_site_md5="1" * 32, default_site_pkg_md5=PKG_MD5), inv)
    assert not plan.disable_default
    assert any("left /etc/nginx/sites-enabled/default alone" in w for w in plan.warnings)
    assert not any("disable" in c for c in plan.changes)


def test_parse_default_site_probe():
    assert lb.parse_default_site("file\nmd5 abc\npkg \n") == {
        "kind": "file", "target": "", "md5": "abc", "pkg_md5": ""}
    assert lb.parse_default_site("absent\nmd5 \npkg x\n")["kind"] == "absent"


def test_apply_checks_the_live_config_for_conflicts(inv, monkeypatch):
    """A vhost that appeared between the fact read and the reload fails the step, named."""
    run, hosts = fake_run(inv, monkeypatch)
    hosts["lb"].answer(r"^nginx -T", stdout=DUMP)
    f = facts()
    r = run.apply(run.session(inv.lb), lb.STEP, lb.lb_actions(run, f, lb.plan_lb(f, inv)))
    assert r.status == "failed" and "new config is live" in r.msg
    assert "/etc/nginx/conf.d/aaa-other.conf:1 also claims" in r.msg
    assert hosts["lb"].ran(r"^nginx -T")


def test_lb_apply_path_check_mode_diff_and_write(inv, monkeypatch):
    """The same plan: check mode runs nothing and shows the diff; a real run writes, validates
    with nginx -t and reloads, in that order."""
    f = facts()
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    r = run.apply(run.session(inv.lb), lb.STEP, lb.lb_actions(run, f, lb.plan_lb(f, inv)))
    assert r.status == "changed" and "would change (check mode)" in r.msg
    assert r.diffs and "reload nginx" in r.changes
    assert hosts["lb"].scripts == []  # nothing ran: the plan came from the given facts
    run, hosts = fake_run(inv, monkeypatch)
    r = run.apply(run.session(inv.lb), lb.STEP, lb.lb_actions(run, f, lb.plan_lb(f, inv)))
    assert r.status == "changed", r.msg
    writes = [i for i, sc in enumerate(hosts["lb"].scripts) if "nginx -t" in sc]
    reloads = [i for i, sc in enumerate(hosts["lb"].scripts) if "reload" in sc]
    assert writes and reloads and writes[0] < reloads[0]


def test_lb_validation_failure_is_named_and_nothing_reloads(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    hosts["lb"].answer(r"nginx -t", stderr="nginx: [emerg] unknown directive \"x\" in "
                       "/etc/nginx/conf.d/ei.http.conf:3", exit=3)
    f = facts()
    r = run.apply(run.session(inv.lb), lb.STEP, lb.lb_actions(run, f, lb.plan_lb(f, inv)))
    assert r.status == "failed" and "nginx -t rejected" in r.msg and "ei.http.conf:3" in r.msg
    assert not hosts["lb"].ran("reload")


def test_node_hosts_writes_the_lb_names_block_once(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    hosts[node.name].files["/etc/hosts"] = b"127.0.0.1 localhost\n"
    r = lb.node_hosts(run, run.session(node))
    assert r.status == "changed" and any("map ei.example.com ui.ei.example.com" in c
                                         for c in r.changes)
    assert len(hosts[node.name].scripts) == 2  # one fact read, one write
    # settled for this run: a later step does not read it again
    assert lb.node_hosts(run, run.session(node)).status == "ok"
    assert len(hosts[node.name].scripts) == 2


# --------------------------------------------------------------------- lb_host_step, fake LB


def fake_lb(inv, monkeypatch, *, running=True, site="absent\nmd5 \npkg \n", current=True,
            **kw):
    """A fake LB answering every probe of lb_probes; `current`: it holds what we render."""
    run, hosts = fake_run(inv, monkeypatch, **kw)
    h = hosts["lb"]
    h.answer(r"nginx -v", stdout="nginx version: nginx/1.22.1")
    h.answer(r"^ACTION=status$", stdout="running" if running else "stopped")
    h.answer(r"^ACTION=probe$", stdout=site)
    h.answer(r"\[ -s .*/server\.(crt|key)", stdout="present")
    h.answer(r"/proc/1/comm", stdout="none bash")
    hosts_text = remote.managed_block("127.0.0.1 localhost\n", lb.hosts_block(inv),
                                      lb.HOSTS_MARKER).encode()
    h.files["/etc/hosts"] = hosts_text
    if current:
        for sp in lb.render_vhosts(inv, (1, 22, 1)):
            h.files[sp.path] = sp.content
    return run, hosts


def lb_scripts(hosts) -> list[str]:
    return [s for s in hosts["lb"].scripts if "@@BPS-FACT-BEGIN" not in s]


def test_lb_host_step_noop_is_one_fact_read(inv, monkeypatch):
    run, hosts = fake_lb(inv, monkeypatch)
    r = lb.lb_host_step(run)
    assert r.status == "ok" and "no reload" in r.msg, r.msg
    assert len(hosts["lb"].scripts) == 1


def test_lb_host_step_disables_debian_site_first_then_writes_and_reloads(inv, monkeypatch):
    site = f"link {lb.DEBIAN_DEFAULT}\nmd5 {PKG_MD5}\npkg {PKG_MD5}\n"
    run, hosts = fake_lb(inv, monkeypatch, site=site, current=False)
    r = lb.lb_host_step(run)
    assert r.status == "changed", r.msg
    steps = lb_scripts(hosts)
    assert "\nACTION=disable\n" in steps[0] and "sites-enabled%default." in steps[0]
    assert "nginx -t" in steps[1] and "\nACTION=reload\n" in steps[2]
    assert any("disable Debian's default site" in c for c in r.changes)


def test_default_site_that_fails_nginx_t_is_restored_and_named(inv, monkeypatch):
    site = f"link {lb.DEBIAN_DEFAULT}\nmd5 {PKG_MD5}\npkg {PKG_MD5}\n"
    run, hosts = fake_lb(inv, monkeypatch, site=site, current=False)
    hosts["lb"].rules.insert(0, (re.compile(r"^ACTION=disable$", re.M), remote.CmdResult(
        "", "nginx: [emerg] host not found in /etc/nginx/conf.d/x.conf:2\n"
            "validation failed: default site restored\n", 3)))
    r = lb.lb_host_step(run)
    assert r.status == "failed" and "the site was restored" in r.msg
    assert "/etc/nginx/conf.d/x.conf:2" in r.msg
    assert r.changes == []  # nothing changed: the link is back
    assert len(lb_scripts(hosts)) == 1  # no vhost written, no reload


def test_stopped_nginx_is_started_not_reloaded_and_check_mode_runs_nothing(inv, monkeypatch):
    run, hosts = fake_lb(inv, monkeypatch, running=False, check=True, diff=True)
    r = lb.lb_host_step(run)
    assert r.status == "changed" and "would change (check mode)" in r.msg
    assert r.changes == ["start nginx (not running)"] and not lb_scripts(hosts)
    run, hosts = fake_lb(inv, monkeypatch, running=False)
    r = lb.lb_host_step(run)
    assert r.status == "changed"
    start, verify = lb_scripts(hosts)
    assert "\nACTION=start\n" in start and "reload" not in start.split("# shellcheck")[0]
    assert "nginx -T" in verify  # the live config checked for name conflicts


def test_config_mistake_is_refused_through_the_runner(inv, monkeypatch):
    run, hosts = fake_lb(inv, monkeypatch)
    r = lb.lb_host_step(run, drain=frozenset({"node9"}))
    assert r.status == "failed" and "cannot drain node9: no such node" in r.msg
    assert len(hosts["lb"].scripts) == 1  # the fact read only
