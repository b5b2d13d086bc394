#!/usr/bin/env bash
# Demo: a real deploy of the clustered BPS profile against the lab, with the shipped hosts.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
PY=.venv/bin/python
echo "== lab: four hosts (lb, node1, node2, db) in network namespaces"
$PY lab/lab.py up --index 0 --nodes 2
echo "== fab ping"
$PY -m fabric ping
echo "== fab deploy (first run: does everything)"
$PY -m fabric deploy
echo "== fab deploy (second run: changes nothing, restarts nothing)"
$PY -m fabric deploy
echo "== through the LB (10.99.0.2): HTTP 80 and HTTPS 443, round robin"
for i in 1 2 3 4; do
  curl -s --max-time 5 -H 'Host: ei.wso2.com' http://10.99.0.2/services/ ; echo
done
for i in 1 2; do
  curl -sk --max-time 5 --resolve ei.wso2.com:443:10.99.0.2 https://ei.wso2.com/services/ ; echo
done
echo "== fab status"
$PY -m fabric status
echo
echo "The lab stays up. Try, after '. .venv/bin/activate':"
echo "  fab logs -n 5;  fab restart --rolling;  fab run --on nodes uptime;  fab deploy --check --diff"
echo "Remove it with: make lab-down"
