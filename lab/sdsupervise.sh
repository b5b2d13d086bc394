#!/bin/sh
# Supervises one systemd lab host (lab.py, kind "systemd"): moves itself into the host's own
# cgroups, then runs systemd-nspawn and starts it again as long as it exits with 133 (the
# container rebooted). Any other exit code is a power-off (0) or a failure: it stops.
#
# Usage: sdsupervise.sh CGROUP systemd-nspawn ARGS...   (CGROUP: e.g. bpslab7/node1)
set -u
cg=$1
shift
for h in unified systemd; do
    mkdir -p "/sys/fs/cgroup/$h/$cg"
    echo $$ > "/sys/fs/cgroup/$h/$cg/cgroup.procs"
done
while :; do
    echo "lab: $(date -u +%FT%TZ) starting: $*"
    "$@"
    rc=$?
    echo "lab: $(date -u +%FT%TZ) systemd-nspawn exited with $rc"
    [ "$rc" -eq 133 ] || exit "$rc"
done
