"""The systemd part, pure: unit rendering, nofile capping, jvm_heap parsing, systemd-or-not,
the migration plan, the kernel settings drop-in and when it is applied."""
from __future__ import annotations

import configparser

import pytest

from tasks.engine import inventory, remote

from tasks.steps import services, systemd
from tests.unit.inv_factory import make_inv, make_raw

SYSTEMD_HOST = systemd.HostInit(True, "systemd", "none", 524288, 1048576)
NSPAWN_HOST = systemd.HostInit(True, "systemd", "systemd-nspawn", 20000, 1048576)
NETNS_HOST = systemd.HostInit(False, "sshd", "none", 20000, 1048576)


def _unit(inv, nofile=65535, java="/usr/lib/jvm/java-11-openjdk-amd64") -> dict:
    text = systemd.render_unit(inv, inv.nodes[0], java, nofile).decode()
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(text)
    return {sec: dict(cp[sec]) for sec in cp.sections()} | {"_text": text}


# --------------------------------------------------------------------------- jvm_heap


@pytest.mark.parametrize("value,mb,opts", [("2g", 2048, "-Xms2g -Xmx2g"),
                                           ("2048m", 2048, "-Xms2048m -Xmx2048m"),
                                           ("2048M", 2048, "-Xms2048m -Xmx2048m"),
                                           ("256m", 256, "-Xms256m -Xmx256m")])
def test_heap_sizes_become_xms_and_xmx(value, mb, opts):
    assert inventory.heap_mb(value) == mb
    assert inventory.jvm_mem_opts(value) == opts


@pytest.mark.parametrize("value", ["2", "2 gb", "-Xmx2g", "2g -XX:+Foo", "64m", "2048k",
                                   "0g", "1025g", "2g; rm -rf /", "$(id)", ""])
def test_heap_sizes_refused(tmp_path, value):
    assert inventory.heap_mb(value) is None
    with pytest.raises(inventory.InventoryError) as e:
        make_inv(tmp_path, cluster={"jvm_heap": value})
    assert "cluster.jvm_heap" in str(e.value)


def test_defaults_are_wso2s_production_advice(tmp_path):
    cl = make_inv(tmp_path).cluster
    assert cl.jvm_mem_opts == "-Xms2048m -Xmx2048m"
    assert cl.nofile == 65535
    assert cl.apply_sysctl is True


@pytest.mark.parametrize("value", [0, 1023, 1048577])
def test_nofile_out_of_range_refused(tmp_path, value):
    with pytest.raises(inventory.InventoryError) as e:
        make_inv(tmp_path, cluster={"nofile": value})
    assert "cluster.nofile" in str(e.value)


# --------------------------------------------------------------------------- the unit


def test_unit_runs_the_product_script_in_the_foreground(tmp_path):
    inv = make_inv(tmp_path, cluster={"stop_timeout": 90, "jvm_heap": "3g",
                                      "service_user": "wso2ei"})
    u = _unit(inv, nofile=32768)
    svc, unit, install = u["Service"], u["Unit"], u["Install"]
    prof = "/opt/wso2ei-6.6.0/wso2/business-process"
    assert svc["Type"] == "simple"
    assert svc["ExecStart"] == f"/bin/sh {prof}/bin/wso2server.sh"  # no `start`: foreground
    assert (svc["User"], svc["Group"]) == ("wso2ei", "wso2ei")
    assert svc["LimitNOFILE"] == "32768"
    assert svc["TimeoutStopSec"] == "90"
    assert svc["Restart"] == "always" and svc["RestartSec"] == "10"
    assert "KillMode" not in svc  # control-group: the script and its JVM both get SIGTERM
    for absent in ("PIDFile", "ExecRestart", "ExecStop", "ExecReload"):
        assert absent not in svc, absent
    assert unit["StartLimitIntervalSec"] == "0"
    assert unit["After"] == unit["Wants"] == "network-online.target"
    assert install["WantedBy"] == "multi-user.target"
    env = u["_text"]
    assert "Environment=JAVA_HOME=/usr/lib/jvm/java-11-openjdk-amd64\n" in env
    assert 'Environment="JVM_MEM_OPTS=-Xms3g -Xmx3g"\n' in env
    assert "LC_ALL=C.UTF-8" in env


def test_unit_java_home_defaults_to_the_jdk_found_on_path():
    assert systemd.java_home_of("java 11.0.13 (/opt/jdk-11)", None) == "/opt/jdk-11"
    assert systemd.java_home_of("java 11.0.2 (/usr/lib/jvm/default-java -> /usr/lib/jvm/j11)",
                                None) == "/usr/lib/jvm/default-java"
    assert systemd.java_home_of("anything", "/opt/jdk8") == "/opt/jdk8"
    assert systemd.java_home_of('openjdk version "11.0.2"', None) is None


def test_unit_render_is_stable(tmp_path):
    inv = make_inv(tmp_path)
    a = systemd.render_unit(inv, inv.nodes[0], "/opt/jdk", 100)
    assert a == systemd.render_unit(inv, inv.nodes[0], "/opt/jdk", 100)
    assert systemd.unit_nofile(a) == 100


# --------------------------------------------------------------------------- nofile


def test_nofile_capped_at_the_hosts_hard_limit_with_a_warning():
    n, warning = systemd.cap_nofile(65535, NSPAWN_HOST)
    assert n == 20000
    assert "cluster.nofile = 65535" in warning and "20000" in warning


def test_nofile_below_the_limit_is_kept():
    assert systemd.cap_nofile(16384, NSPAWN_HOST) == (16384, None)
    assert systemd.cap_nofile(65535, SYSTEMD_HOST) == (65535, None)
    assert systemd.cap_nofile(65535, systemd.HostInit(True, "systemd")) == (65535, None)


def test_nofile_capped_at_nr_open():
    n, warning = systemd.cap_nofile(65535, systemd.HostInit(True, "systemd", "none", None, 4096))
    assert n == 4096 and "fs.nr_open" in warning


def test_limits_problem_compares_the_jvm_with_the_unit():
    ok = systemd.UnitState(True, "active", "running", "7", "enabled", loaded=True,
                           limit_nofile=16384, limit_soft=16384,
                           jvm_limits=(("9", "16384", "16384"),))
    assert systemd.limits_problem(ok) is None
    bad = systemd.UnitState(True, "active", "running", "7", "enabled", loaded=True,
                            limit_nofile=16384, limit_soft=16384,
                            jvm_limits=(("9", "1024", "20000"),))
    assert "1024 files (soft) / 20000 (hard)" in systemd.limits_problem(bad)


# --------------------------------------------------------------------------- systemd or not


def test_init_probe_parsing():
    h = systemd.parse_init("systemd\npid1 systemd\ncontainer systemd-nspawn\nnofile 20000 1048576")
    assert h == systemd.HostInit(True, "systemd", "systemd-nspawn", 20000, 1048576)
    h = systemd.parse_init("none\npid1 sshd\ncontainer none\nnofile unlimited 1048576")
    assert (h.systemd, h.pid1, h.nofile_hard, h.nr_open) == (False, "sshd", None, 1048576)


def test_unit_state_parsing_and_who_manages():
    out = ("systemd\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=812\n"
           "UnitFileState=enabled\nNRestarts=2\nLimitNOFILE=16384\nLimitNOFILESoft=16384\n"
           "in 815\nout 990\nlimits 815 16384 16384\n")
    u = systemd.parse_unit_state(out)
    assert u.managed and u.running and u.main_pid == "812" and u.restarts == 2
    assert (u.inside, u.outside) == (("815",), ("990",))
    assert u.jvm_limits == (("815", "16384", "16384"),)
    assert not systemd.parse_unit_state("none\n").managed
    # systemd runs, but the unit is not installed yet: the old way still starts EI
    nounit = systemd.parse_unit_state("systemd\nLoadState=not-found\nActiveState=inactive\n")
    assert nounit.systemd and not nounit.managed


def test_parse_state_reads_the_first_line_for_the_jvm():
    facts = {"proc": remote.Fact("alive 815 \nsystemd\nLoadState=loaded\nActiveState=active\n"
                                 "in 815", 0),
             "log_size": remote.Fact("100 7", 0), "pending": remote.Fact("", 0)}
    st = services.parse_state(facts)
    assert st.running and st.pid == "815" and st.unit.managed and st.unit.inside == ("815",)


# --------------------------------------------------------------------------- start/stop plans


def test_migration_stops_the_outside_jvm_before_systemd_starts():
    u = systemd.UnitState(True, "inactive", "dead", "", "enabled", outside=("990",), loaded=True)
    steps = systemd.start_commands(u, jvm_running=True)
    assert steps == ["stop-outside", "systemctl-start"]
    script = systemd.unit_script(steps)
    assert script.index("stop_outside") < script.index("unit_start")
    lib = remote.script("ei_process.sh")  # stop_outside is ei_stop; unit_start systemctl start
    assert "ei_stop" in lib.split("stop_outside() {")[1].split("}")[0]


def test_restart_under_systemd_is_stop_then_start():
    u = systemd.UnitState(True, "active", "running", "7", "enabled", inside=("9",), loaded=True)
    assert systemd.start_commands(u, jvm_running=True) == ["systemctl-stop", "systemctl-start"]
    assert systemd.start_commands(systemd.UnitState(True, "inactive", loaded=True), False) == \
        ["systemctl-start"]


def test_stop_under_systemd_goes_through_systemctl_first():
    u = systemd.UnitState(True, "active", "running", "7", inside=("9",), outside=("5",),
                          loaded=True)
    assert systemd.stop_commands(u) == ["systemctl-stop", "stop-outside"]
    assert systemd.unit_script(systemd.stop_commands(u)) == "unit_stop\nstop_outside\n"
    body = remote.script("ei_process.sh").split("unit_stop() {")[1].split("\n}")[0]
    assert "Result" in body and "killed" in body  # a SIGKILL after TimeoutStopSec is said


def test_stop_script_picks_the_way_from_the_unit(tmp_path):
    inv = make_inv(tmp_path)
    old = services.stop_script(inv)
    assert old.endswith("}\nei_stop\n")  # the library, then only ei_stop: no systemctl
    managed = systemd.UnitState(True, "active", "running", "7", inside=("9",), loaded=True)
    assert services.stop_script(inv, managed).endswith("unit_stop\n")


# --------------------------------------------------------------------------- sysctl


RUNNING = {"net.ipv4.tcp_fin_timeout": "60", "net.ipv4.tcp_tw_reuse": "2",
           "fs.file-max": "9223372036854775807", "net.core.rmem_default": "212992",
           "net.core.wmem_default": "212992", "net.core.rmem_max": "212992",
           "net.core.wmem_max": "212992", "net.ipv4.tcp_rmem": "4096 131072 6291456",
           "net.ipv4.tcp_wmem": "4096 16384 4194304", "net.ipv4.tcp_keepalive_time": "7200",
           "net.ipv4.tcp_keepalive_intvl": "75", "net.ipv4.tcp_keepalive_probes": "9"}


def test_sysctl_dropin_has_a_source_for_each_value_and_never_lowers():
    text = systemd.render_sysctl(RUNNING).decode()
    assert "net.ipv4.tcp_fin_timeout = 30" in text
    assert "fs.file-max = 9223372036854775807" in text  # already above WSO2's 2097152
    assert "net.ipv4.tcp_rmem = 4096 131072 16777216" in text  # field by field
    assert "net.core.rmem_max = 67108864" in text
    assert "\nnet.ipv4.tcp_tw_recycle" not in text and "\nnet.ipv4.ip_local_port_range" not in text
    assert "removed from Linux in 4.12" in text
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln and not ln.startswith("#"):
            assert lines[i - 1].startswith("# "), ln  # each value says where it comes from


def test_sysctl_key_missing_from_the_kernel_is_left_out():
    text = systemd.render_sysctl({**RUNNING, "net.ipv4.tcp_tw_reuse": None}).decode()
    assert "# net.ipv4.tcp_tw_reuse: not set, this kernel has no such setting" in text


def test_sysctl_probe_parsing():
    got = systemd.parse_sysctl("net.ipv4.tcp_rmem=4096 131072  6291456\nfs.file-max=MISSING\n")
    assert got == {"net.ipv4.tcp_rmem": "4096 131072 6291456", "fs.file-max": None}


def test_sysctl_applied_only_on_a_host_with_its_own_kernel():
    assert systemd.sysctl_decision(True, SYSTEMD_HOST)[0] is True
    ok, why = systemd.sysctl_decision(True, NSPAWN_HOST)
    assert not ok and "container (systemd-nspawn)" in why
    ok, why = systemd.sysctl_decision(True, NETNS_HOST)
    assert not ok and "PID 1 here is sshd" in why
    ok, why = systemd.sysctl_decision(False, SYSTEMD_HOST)
    assert not ok and "apply_sysctl is false" in why


# --------------------------------------------------------------------------- the plan


def _facts(host: systemd.HostInit, unit_file=None, sysctl_file=None, running=RUNNING):
    return systemd.SystemFacts(host, "java 11.0.13 (/opt/jdk-11)", dict(running),
                               unit_file, sysctl_file)


def _state(data: bytes) -> remote.FileState:
    import hashlib
    return remote.FileState(hashlib.sha256(data).hexdigest(), 0o644, "root", "root", data)


def test_plan_on_a_fresh_systemd_host(tmp_path):
    inv = make_inv(tmp_path, cluster={"nofile": 16384})
    plan = systemd.plan_system(inv, inv.nodes[0], _facts(NSPAWN_HOST), systemd.UnitState(True))
    paths = [c.spec.path for c in plan.files]
    assert paths == [systemd.UNIT_PATH, systemd.SYSCTL_PATH]
    assert all((c.spec.owner, c.spec.mode) == ("root", 0o644) for c in plan.files)
    assert plan.daemon_reload and plan.enable and not plan.apply_sysctl
    assert plan.restart_reasons == [systemd.UNIT_NAME]
    assert any("not applied" in n and "container" in n for n in plan.notes)
    script = systemd.system_script(plan, "S", 10)
    assert script.index("daemon-reload") < script.index("systemctl enable")
    assert "sysctl -q -p" not in script


def test_plan_is_empty_when_everything_is_in_place(tmp_path):
    inv = make_inv(tmp_path, cluster={"nofile": 16384})
    unit = systemd.render_unit(inv, inv.nodes[0], "/opt/jdk-11", 16384)
    drop = systemd.render_sysctl(RUNNING)
    plan = systemd.plan_system(inv, inv.nodes[0],
                               _facts(NSPAWN_HOST, _state(unit), _state(drop)),
                               systemd.UnitState(True, "active", enabled="enabled", loaded=True))
    assert plan.empty and not plan.restart_reasons


def test_plan_a_changed_unit_reloads_and_marks_a_restart(tmp_path):
    inv = make_inv(tmp_path, cluster={"nofile": 16384})
    old = systemd.render_unit(inv, inv.nodes[0], "/opt/jdk-11", 8192)
    plan = systemd.plan_system(inv, inv.nodes[0], _facts(NSPAWN_HOST, _state(old)),
                               systemd.UnitState(True, "active", enabled="enabled", loaded=True))
    assert plan.daemon_reload and not plan.enable and plan.restart_reasons


def test_plan_capped_nofile_warns(tmp_path):
    inv = make_inv(tmp_path)  # 65535
    plan = systemd.plan_system(inv, inv.nodes[0], _facts(NSPAWN_HOST), systemd.UnitState(True))
    assert systemd.unit_nofile(plan.files[0].spec.content) == 20000
    assert plan.warnings and "20000" in plan.warnings[0]


def test_plan_without_systemd_writes_no_unit_but_the_dropin(tmp_path):
    inv = make_inv(tmp_path)
    plan = systemd.plan_system(inv, inv.nodes[0], _facts(NETNS_HOST), systemd.UnitState())
    assert [c.spec.path for c in plan.files] == [systemd.SYSCTL_PATH]
    assert not (plan.enable or plan.daemon_reload or plan.apply_sysctl or plan.restart_reasons)


def test_plan_applies_the_dropin_on_a_real_host_until_the_kernel_has_it(tmp_path):
    inv = make_inv(tmp_path)
    plan = systemd.plan_system(inv, inv.nodes[0], _facts(SYSTEMD_HOST), systemd.UnitState(True))
    assert plan.apply_sysctl
    script = systemd.system_script(plan, "S", 10)
    assert script.endswith("sysctl_apply\n") and "DROPIN=/etc/sysctl.d/60-wso2ei.conf\n" in script
    applied = {s.key: v for s, v in systemd.wanted_sysctls(RUNNING)}
    drop = systemd.render_sysctl(applied)
    assert drop == systemd.render_sysctl(RUNNING)  # stable once applied
    unit = systemd.render_unit(inv, inv.nodes[0], "/opt/jdk-11", 65535)
    again = systemd.plan_system(inv, inv.nodes[0],
                                _facts(SYSTEMD_HOST, _state(unit), _state(drop), applied),
                                systemd.UnitState(True, "active", enabled="enabled", loaded=True))
    assert again.empty


def test_plan_refuses_a_systemd_host_without_a_java_home(tmp_path):
    inv = make_inv(tmp_path)
    f = systemd.SystemFacts(SYSTEMD_HOST, "", dict(RUNNING))
    plan = systemd.plan_system(inv, inv.nodes[0], f, systemd.UnitState(True))
    assert plan.error and "cluster.java_home" in plan.error


# --------------------------------------------------------------------------- nginx / DB at boot


from tasks.engine import boot  # noqa: E402


def test_boot_probe_parsing_and_plan():
    b = boot.parse_boot("systemd mariadb disabled\nsystemd mysql alias\nsystemd mysqld alias\n",
                        "mariadb")
    assert b == boot.Boot("systemd", "disabled")
    assert boot.boot_plan(b, "mariadb") == ("systemctl enable mariadb 2>&1", None)
    assert boot.boot_plan(boot.Boot("systemd", "enabled"), "nginx") == (None, None)
    cmd, _ = boot.boot_plan(boot.Boot("systemd", "enabled-runtime"), "nginx")
    assert cmd.startswith("systemctl enable nginx")  # runtime enablement is gone at next boot
    cmd, note = boot.boot_plan(boot.Boot("systemd", "masked"), "nginx")
    assert cmd is None and "masked" in note and "left as it is" in note
    cmd, _ = boot.boot_plan(boot.parse_boot("sysv nginx disabled", "nginx"), "nginx")
    assert "update-rc.d nginx enable" in cmd
    # the namespace lab: no init of the host's own, nothing to enable, nothing said
    assert boot.boot_plan(boot.parse_boot("none sshd", "nginx"), "nginx") == (None, None)


def test_db_plan_enables_the_server_at_boot(tmp_path):
    from tasks.steps import db
    inv = make_inv(tmp_path)
    f = db.DbFacts(service="mariadb", boot_out="systemd mariadb disabled\n")
    p = db.plan_db(f, inv)
    assert p.enable == "systemctl enable mariadb 2>&1"
    assert "start mariadb at boot: systemctl enable mariadb" in p.changes
    f.boot_out = "systemd mariadb enabled\n"
    assert db.plan_db(f, inv).enable is None
