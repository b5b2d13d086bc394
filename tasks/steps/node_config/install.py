"""EI from cluster.ei_zip where EI_HOME is missing: uploaded once, checksum-verified, unpacked."""
from __future__ import annotations

import hashlib

from ...engine import remote
from ...engine.plan import Plan
from ...engine.remote import HostSession, q
from ...engine.report import StepResult
from ...engine.runner import Run


def install_plan(run: Run) -> Plan:
    """Pure: install the zip as EI_HOME (the caller knows EI_HOME is missing)."""
    cl = run.inv.cluster
    return Plan().add(f"install {cl.ei_zip.name} as {cl.ei_home}",
                      lambda s: install_from_zip(run, s))


def install_from_zip(run: Run, s: HostSession) -> str:
    """The install action: upload the EI zip once (checksum-verified) and unpack it as EI_HOME
    (tasks/scripts/ei_install.sh)."""
    cl = run.inv.cluster
    data = cl.ei_zip.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    staged = f"/var/tmp/bps-deploy-{sha[:16]}.zip"
    have = remote.run_script(s, f"sha256sum {q(staged)} 2>/dev/null | cut -d' ' -f1", root=False)
    if have.stdout.strip() != sha:
        with s.c.sftp() as sftp:
            sftp.put(str(cl.ei_zip), staged)
    remote.run_script(s, remote.script("ei_install.sh", STAGED=staged, SHA=sha,
                                       ZIP_NAME=cl.ei_zip.name, EI_HOME=cl.ei_home),
                      check=True, what=f"install of {cl.ei_zip.name}")
    return f"installed {cl.ei_zip.name} as {cl.ei_home}"


def install_step(run: Run, s: HostSession, step: str = "install") -> StepResult:
    """`fab deploy`'s install step on a node the preflight found without EI_HOME."""
    return run.apply(s, step, install_plan(run))
