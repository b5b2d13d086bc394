#!/usr/bin/env bash
# The test command: installs what it needs (apt + pip into .venv), then runs every test:
# unit tests and the real-host lab tests (needs root; the lab tests never skip).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec .venv/bin/python -m pytest tests -q "$@"
