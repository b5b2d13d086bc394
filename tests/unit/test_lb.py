"""`fab lb`: pure planning and template rendering (no host)."""
import dataclasses
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

from tasks import inventory, lb, remote  # noqa: E402
from tests.unit import inv_factory  # noqa: E402


def make_inv(tmp: Path, nodes: int = 2, **cluster) -> inventory.Inventory:
    return inv_factory.make_inv(tmp, nodes, cluster=cluster)


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path)


def facts(**kw) -> lb.LbFacts:
    base = dict(nginx_version=(1, 22, 1), nginx_running=True, systemd=False, cert_present=True,
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
    r = rendered(inv)
    assert "listen 80;" in r["ei.http.conf"] and "server_name ei.example.com;" in r["ei.http.conf"]
    for name in ("ei.https.conf", "ui.ei.https.conf"):
        assert "listen 443 ssl http2;" in r[name]
        assert "ssl on" not in r[name]
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in r[name]
        assert "ssl_certificate     /etc/nginx/ssl/server.crt;" in r[name]
        assert "ssl_certificate_key /etc/nginx/ssl/server.key;" in r[name]
        assert "proxy_ssl_verify off;" in r[name]
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
    monkeypatch.setattr(lb, "TEMPLATES", tmp_path)
    with pytest.raises(lb.RenderError) as e:
        lb.render("bad.j2", {})
    assert "templates/bad.j2:2" in str(e.value) and "nope" in str(e.value)


def test_syntax_error_names_template_and_line(tmp_path, monkeypatch):
    (tmp_path / "bad.j2").write_text("a\n\n{% if x %}\n")
    monkeypatch.setattr(lb, "TEMPLATES", tmp_path)
    with pytest.raises(lb.RenderError) as e:
        lb.render("bad.j2", {"x": 1})
    assert "templates/bad.j2:" in str(e.value) and "syntax error" in str(e.value)


def test_render_is_deterministic(inv):
    assert rendered(inv) == rendered(inv)


# --------------------------------------------------------------------- plans

def test_plan_fresh_lb(inv):
    plan = lb.plan_lb(facts(nginx_running=False, default_site=True), inv)
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
        "running": remote.Fact("running", 0), "systemd": remote.Fact("no", 0),
        "cert": remote.Fact("present", 0), "key": remote.Fact("missing", 0),
        "default_site": remote.Fact("present", 0),
        "hosts_file": remote.Fact("abc 644 root root", 0),
        "hosts_content": remote.Fact("MTI3LjAuMC4xIGxvY2FsaG9zdAo=", 0),
        "drained": remote.Fact("", 0),
    }
    for v in lb.VHOSTS:
        raw[f"file:/etc/nginx/conf.d/{v}"] = remote.Fact("MISSING", 0)
    f = lb.parse_lb_facts(raw)
    assert f.nginx_version == (1, 22, 1) and f.nginx_running and not f.systemd
    assert f.cert_present and not f.key_present and f.default_site
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
    assert "systemctl reload nginx" in lb.nginx_service_script("reload", True)
    s = lb.nginx_service_script("reload", False)
    assert "service nginx reload" in s and "nginx -s reload" in s
    assert "else nginx; fi" in lb.nginx_service_script("start", False)
