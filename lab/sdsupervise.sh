#!/bin/sh
# Supervises one systemd lab host (lab.py, kind "systemd"): moves itself into the host's own
# cgroups, then runs systemd-nspawn and starts it again as long as it exits with 133 (the
# container rebooted). Any other exit code is a power-off (0) or a failure: it stops.
#
# Usage: sdsupervise.sh "CGROUP_DIR..." systemd-nspawn ARGS...
#   CGROUP_DIRs: the host's folder in each hierarchy, e.g.
#   "/sys/fs/cgroup/systemd/bpslab7/node1 /sys/fs/cgroup/unified/bpslab7/node1"
set -u
dirs=$1
shift
for d in $dirs; do
    mkdir -p "$d" && echo $$ > "$d/cgroup.procs" || exit 1
done
while :; do
    echo "lab: $(date -u +%FT%TZ) starting: $*"
    "$@"
    rc=$?
    echo "lab: $(date -u +%FT%TZ) systemd-nspawn exited with $rc"
    [ "$rc" -eq 133 ] || exit "$rc"
done
