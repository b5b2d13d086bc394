"""Services the tool starts (nginx, the DB server) started at boot too: facts and a pure plan.

Where systemd runs (its runtime dir and PID 1 is systemd): `systemctl is-enabled` /
`systemctl enable`. Where PID 1 is a SysV init with update-rc.d: the S links in /etc/rc2.d /
`update-rc.d NAME enable`. Elsewhere (no init of the host's own, e.g. the namespace lab):
nothing to enable.
"""
from __future__ import annotations

from dataclasses import dataclass

from .remote import q



def boot_probe(names: tuple[str, ...]) -> str:
    """Whether each service starts at boot: `systemd NAME STATE` (systemctl is-enabled) where
    systemd runs; `sysv NAME enabled|disabled` where PID 1 is a SysV init with update-rc.d
    (S links in /etc/rc2.d); else `none PID1` (no init of the host's own: nothing to enable)."""
    ns = " ".join(q(n) for n in names)
    return ("c1=$(cat /proc/1/comm 2>/dev/null || echo '?'); "
            "if [ -d /run/systemd/system ] && [ \"$c1\" = systemd ]; then "
            f"for n in {ns}; do echo \"systemd $n $(systemctl is-enabled \"$n\" 2>/dev/null "
            "|| true)\"; done; "
            "elif [ \"$c1\" = init ] && command -v update-rc.d >/dev/null 2>&1; then "
            f"for n in {ns}; do [ -e \"/etc/init.d/$n\" ] || continue; "
            "if ls /etc/rc2.d/S[0-9][0-9]\"$n\" >/dev/null 2>&1; then echo \"sysv $n enabled\"; "
            "else echo \"sysv $n disabled\"; fi; done; "
            "else echo \"none $c1\"; fi")


@dataclass(frozen=True)
class Boot:
    kind: str  # systemd | sysv | none
    state: str  # is-enabled's word (enabled, disabled, static, masked, alias, ...) or ""


def parse_boot(out: str, name: str) -> Boot:
    kind = "none"
    for ln in out.splitlines():
        f = ln.split()
        if not f:
            continue
        kind = f[0] if f[0] in ("systemd", "sysv", "none") else kind
        if len(f) >= 2 and f[0] in ("systemd", "sysv") and f[1] == name:
            return Boot(f[0], f[2] if len(f) > 2 else "")
    return Boot(kind, "")


def boot_plan(boot: Boot, name: str) -> tuple[str | None, str | None]:
    """Pure: (the command that enables `name` at boot, or None; a note when it stays as is).

    Only a service that is plainly disabled is enabled: masked, static or unknown states are
    someone's decision, said and left alone."""
    if boot.kind == "none":
        return None, None
    if boot.state in ("disabled", "enabled-runtime"):  # runtime: gone at the next boot
        if boot.kind == "systemd":
            return f"systemctl enable {q(name)} 2>&1", None
        return (f"update-rc.d {q(name)} enable 2>/dev/null || update-rc.d {q(name)} defaults",
                None)
    if boot.state in ("enabled", "alias", "indirect", "generated"):
        return None, None
    return None, (f"{name} is not enabled at boot ({boot.state or 'unknown to ' + boot.kind}); "
                  "left as it is")
