# shellcheck shell=sh
# Probe: the host's init, whether it is a container, and what a unit can be granted.
# Prints: "systemd" or "none", then "pid1 COMM", "container KIND", "nofile HARD NR_OPEN".

# systemd runs the host: its runtime dir AND PID 1 is systemd (a chroot or a namespace may have
# the dir from the machine, or no init at all)
c1=$(cat /proc/1/comm 2>/dev/null || echo '?')
if [ -d /run/systemd/system ] && [ "$c1" = systemd ]; then echo systemd; else echo none; fi
echo "pid1 $c1"
# a container shares the machine's kernel: systemd-detect-virt -c, else systemd's marker
v=$(systemd-detect-virt -c 2>/dev/null)
[ -n "$v" ] || v=$(cat /run/systemd/container 2>/dev/null)
echo "container ${v:-none}"
# what a unit can be granted: PID 1's hard open-files limit, and the kernel's fs.nr_open
echo "nofile $(awk '/^Max open files/ {print $5}' /proc/1/limits 2>/dev/null) $(cat /proc/sys/fs/nr_open 2>/dev/null)"
