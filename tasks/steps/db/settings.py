"""db-init's server settings (pure): the drop-in, the restart, max_connections.

* A drop-in (zz-bps-deploy.cnf: `!includedir` reads a folder's *.cnf files in byte order, so it
  is read after Debian's 50-server.cnf and Ubuntu's mysqld.cnf) with bind-address = 127.0.0.1
  plus the DB address (one address only where the server cannot take a list) and
  max_connections, written only when the configured values do not already fit. Whether it wins
  is checked, not assumed: a file read after ours that sets bind-address back stops the run
  before any change, naming the file; so does one my_print_defaults shows winning over our
  written drop-in (instead of restarting on every run), and, after a write, a final value that
  is still not ours (the drop-in is put back, no restart: db_settings.sh).
* max_connections: the nodes' pools summed (cnf.pool_sizes) plus 20% headroom (at least 50);
  [database] max_connections is only a floor; a larger configured or running value is never
  lowered. Raised live with SET GLOBAL.
* The server is restarted only when the bind address must change, and only with
  `[database] allow_server_restart = true`: without it the run stops before any change and
  prints the drop-in it would write.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...engine.inventory import Inventory
from ...engine.remote import FileSpec
from .cnf import (SHIPPED_POOL_TOTAL, connections_wanted, later_in_dir, parse_cnf_file,
                  render_dropin, winner_files)
from .model import CONF_DIRS, DROPIN_NAME, MANAGED_MARK, DbFacts, Server, bind_ok
from .sql import restart_command

if TYPE_CHECKING:
    from .plan import DbPlan


@dataclass
class SettingsPlan:
    """What the server settings section decided (drop-in lines, restart, SQL)."""

    dropin_changes: list[str] = field(default_factory=list)
    set_global: list[tuple[str, str]] = field(default_factory=list)  # (describe, statement)


def plan_settings(p: "DbPlan", facts: DbFacts, inv: Inventory, server: Server) -> SettingsPlan:
    out = SettingsPlan()
    d = inv.database
    addr = inv.db.address
    ours = parse_cnf_file((facts.dropin or b"").decode("utf-8", "replace"))
    legacy = (parse_cnf_file(facts.legacy_dropin.decode("utf-8", "replace"))
              if facts.legacy_dropin and MANAGED_MARK in facts.legacy_dropin else {})
    managed = {**legacy, **ours}  # what our files set now (the old name goes away)
    want_bind = f"127.0.0.1,{addr}" if server.multi_bind else addr
    p.wanted_bind = want_bind
    bind_line = want_bind if ("bind_address" in managed
                              or not bind_ok(facts.bind_configured, addr)) else None
    pools = [facts.node_pools.get(n.name, SHIPPED_POOL_TOTAL) for n in inv.nodes]
    need, wanted = connections_wanted(pools)
    target = max(wanted, d.max_connections or 0)
    why = (f"{len(pools)} nodes' pools {need} + headroom = {wanted}"
           + (f", floor {d.max_connections}" if d.max_connections else ""))
    configured = facts.max_conn_configured
    max_line = None
    if "max_connections" in managed or (configured or 151) < target:
        # never lower what is configured or running
        max_line = max(target, configured or 0, facts.max_conn_running or 0)
    if facts.skip_networking:
        p.errors.append("the server runs with skip-networking: the nodes cannot connect over "
                        "TCP; remove skip-networking from its configuration, then re-run")
    if bind_line is not None or max_line is not None:
        if not facts.conf_dir:
            p.errors.append("no MySQL/MariaDB config directory found (looked for "
                            f"{', '.join(CONF_DIRS)}); cannot set bind-address/max_connections")
        else:
            content = render_dropin(bind_line, max_line)
            if content != facts.dropin:
                p.dropin = FileSpec(facts.dropin_path, content, "root", "root", 0o644)
                what = []
                if bind_line is not None:
                    what.append(f"bind-address = {bind_line}")
                if max_line is not None:
                    what.append(f"max_connections = {max_line} ({why})")
                verb = "create" if facts.dropin is None else "update"
                out.dropin_changes.append(f"{verb} {facts.dropin_path} ({', '.join(what)})")
            elif facts.dropin_state and (facts.dropin_state.mode, facts.dropin_state.owner) != \
                    (0o644, "root"):
                p.dropin = FileSpec(facts.dropin_path, content, "root", "root", 0o644)
                out.dropin_changes.append(f"fix owner/mode of {facts.dropin_path}")
            if legacy:
                p.remove_legacy = facts.legacy_path
                out.dropin_changes.append(f"remove our old drop-in {facts.legacy_path} "
                                          f"(replaced by {DROPIN_NAME}, backed up)")
    if bind_line is not None and facts.dropin_path:
        # a file read after ours that sets the address back: ours would never win
        later = [(f, v) for f, v in facts.bind_files if later_in_dir(f, facts.dropin_path)]
        if later and not bind_ok(later[-1][1], addr):
            p.errors.append(
                f"{later[-1][0]} sets bind-address = {later[-1][1]} and is read after "
                f"{facts.dropin_path}, so the server would still not listen on {addr}; it is "
                "not ours: change or remove that line there, then re-run")
        elif p.dropin is None and not bind_ok(facts.bind_configured, addr):
            # ours already says so, yet the server's own reading ends elsewhere
            files = winner_files(facts, facts.bind_configured or "")
            where = (", ".join(files) if files else
                     "a file outside " + ", ".join(CONF_DIRS) + " (see my_print_defaults --mysqld)")
            p.errors.append(
                f"{facts.dropin_path} sets bind-address = {bind_line}, but the server reads "
                f"bind-address = {facts.bind_configured} after it, from {where}: not restarted "
                "(it would not help); change or remove that line there, then re-run")
    if not bind_ok(facts.bind_running, addr) and not p.errors:
        if bind_line is None:
            p.errors.append(f"the server listens on {facts.bind_running} only, but its "
                            f"configuration already says {facts.bind_configured}: restart it "
                            "yourself or check for a command-line override")
        elif not d.allow_server_restart:
            body = (p.dropin.content if p.dropin else facts.dropin or b"").decode()
            p.errors.append(
                f"{facts.service} must be restarted to listen on {addr} (it listens on "
                f"{facts.bind_running} only), and [database] allow_server_restart is not true: "
                "a DB server may serve other applications. Nothing was changed. With "
                f"allow_server_restart = true the tool would write {facts.dropin_path}:\n"
                + "".join(f"    {ln}\n" for ln in body.splitlines())
                + f"then restart {facts.service} ({restart_command(facts)}); or make that "
                  "change and the restart yourself, then re-run")
        else:
            p.restart = True
            out.dropin_changes.append(f"restart {facts.service} (it listens on "
                                      f"{facts.bind_running} only; needed: {want_bind})")
    if (facts.max_conn_running or 0) < target:
        out.set_global.append((f"SET GLOBAL max_connections = {target} (running: "
                               f"{facts.max_conn_running}; {why}; no restart needed)",
                               f"SET GLOBAL max_connections = {int(target)};"))
        if facts.max_conn_running and (configured or 0) >= target:
            p.warnings.append(
                f"the server runs with max_connections = {facts.max_conn_running} although its "
                f"configuration says {configured}: it lowers it at start when its open-files "
                "limit is too low; raise that (LimitNOFILE of its systemd unit, or "
                "open_files_limit under [mysqld_safe]) or the value drops at every restart")
    return out
