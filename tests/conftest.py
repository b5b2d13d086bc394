"""Suite-wide rules.

No test may skip: on a fresh machine `scripts/install-deps.sh` installs everything the suite
needs, and WSO2's files are in tests/fixtures. A skip would hide a missing install step or a
missing fixture behind a green run, so it is reported as a failure with its reason.
"""
from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and this suite never skips: {reason}"
