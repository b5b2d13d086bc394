#!/usr/bin/env bash
# Install what the lab, the tests and the tool need on a fresh Debian 12 machine (as root).
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(python3 python3-venv make nginx mariadb-server mariadb-client openssh-server openssh-client openssl shellcheck
              libmariadb-java openjdk-17-jdk-headless sudo curl iproute2 procps psmisc unzip
              util-linux nftables
              systemd-container debootstrap)   # lab hosts that boot systemd (lab.py --kind systemd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # daemons must not start machine-wide: the lab starts them inside its hosts
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# Python packages go into .venv (pinned in requirements.txt): no clash with the system's
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
