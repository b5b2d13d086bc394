"""Where things are, for every test: the repo, WSO2's files, and how to start the tool.

The tool is started the way the README tells a user to (the venv's interpreter running Fabric),
never as a bare `fab` that exists only where a venv is activated or fab was installed by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

from lab.lab import WSO2_FILES  # noqa: F401  (one definition, shared with the lab)

REPO = Path(__file__).resolve().parents[1]
FAB = [sys.executable, "-m", "fabric"]
PROFILE_CONF = WSO2_FILES / "wso2" / "business-process" / "conf"

# Where the lab puts EI on each node (lab.lab.EI_HOME) and its profile
EI = "/opt/wso2ei-6.6.0"
PROFILE = f"{EI}/wso2/business-process"
LOCK = "/var/lib/bps-deploy/deploy.lock"
