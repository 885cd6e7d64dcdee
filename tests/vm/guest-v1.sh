#!/bin/sh
# cgroup v1 tests inside a guest with only v1 hierarchies mounted (no
# unified one: a pure v1 host, as CentOS 7 or a kernel booted with
# systemd.unified_cgroup_hierarchy=0 and no hybrid mount). Same bundles as
# guest.sh; each container's cgroup is /vmtest/NAME in every hierarchy.
TAG="v1 "
. /lib.sh
cg() { echo "/sys/fs/cgroup/$1/vmtest/$2"; } # CONTROLLER NAME
# Every hierarchy holding NAME's cgroup.
left() { for h in /sys/fs/cgroup/*; do [ -d "$h/vmtest/$1" ] && echo "$h/vmtest/$1"; done; }

echo "vm: tests start (cgroup v1)"
[ ! -e /sys/fs/cgroup/cgroup.controllers ] && ok "the host has no unified hierarchy" || no "host" "cgroup2 mounted"

# memory.limit_in_bytes 32M: the allocation is OOM-killed, events says so.
husk create --bundle /bundles/oom oom > /tmp/oom.out 2>&1 < /dev/null
[ "$(cat "$(cg memory oom)/memory.limit_in_bytes")" = 33554432 ] && ok "oom: memory.limit_in_bytes is 32M" || no "oom: limit" "$(cat /tmp/oom.out) $(cat "$(cg memory oom)/memory.limit_in_bytes")"
husk events --interval 100ms oom > /tmp/oom.events 2>&1 &
evpid=$!
husk start oom
if wait_stopped oom 60; then ok "oom: container stopped"; else no "oom: container stopped" "status $(status oom)"; fi
i=0
while kill -0 $evpid 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill $evpid 2>/dev/null
grep -q '"type":"oom"' /tmp/oom.events && ok "oom: events reported oom" || no "oom: events" "$(tail -c 300 /tmp/oom.events)"
grep -q 'oom_kill [1-9]' "$(cg memory oom)/memory.oom_control" && ok "oom: memory.oom_control counts the kill" || no "oom: oom_control" "$(cat "$(cg memory oom)/memory.oom_control")"
cleanup oom
[ -z "$(left oom)" ] && ok "oom: delete left no cgroup" || no "oom: cgroups left" "$(left oom)"

# pids.max 20 stops a fork bomb at 20 processes; ps and stats see them.
start pids
top=$(peak "$(cg pids pids)/pids.current")
[ "$top" = 20 ] && ok "pids: the fork bomb peaked at 20 processes" || no "pids: limit" "peak pids.current $top"
[ "$(status pids)" = running ] && ok "pids: the container survives refused forks" || no "pids: container" "status $(status pids)"
# Frozen (the fork loop would change the count between the two reads).
husk pause pids
n=$(husk ps --format json pids | tr ',' '\n' | grep -c '[0-9]')
k=$(wc -l < "$(cg pids pids)/cgroup.procs")
husk resume pids
[ "$n" -ge 15 ] && [ "$n" = "$k" ] && ok "ps: lists the $n processes of the cgroup" || no "ps" "ps $n, cgroup.procs $k"
husk events --stats pids > /tmp/pids.stats 2>&1
grep -q '"pids":{"current":\(19\|20\)' /tmp/pids.stats && ok "events --stats: pids.current from the v1 pids cgroup" || no "events --stats: pids" "$(head -c 300 /tmp/pids.stats)"
sed 's/.*"memory":{//' /tmp/pids.stats | grep -o '"usage":{[^}]*}' | head -1 | grep -q '"usage":[1-9]' && ok "events --stats: memory usage from the v1 memory cgroup" || no "events --stats: memory" "$(head -c 400 /tmp/pids.stats)"
husk kill --all pids KILL
sleep 1
[ -z "$(cat "$(cg pids pids)/cgroup.procs")" ] && ok "kill --all: no process left" || no "kill --all" "$(cat "$(cg pids pids)/cgroup.procs")"
cleanup pids

# cpu.cfs_quota_us 20000/100000 keeps a busy loop near 20% of a CPU.
start cpu
[ "$(cat "$(cg cpu cpu)/cpu.cfs_quota_us")" = 20000 ] && ok "cpu: cfs_quota_us is 20000" || no "cpu: quota" "$(cat "$(cg cpu cpu)/cpu.cfs_quota_us")"
sleep 1
u1=$(cat "$(cg cpuacct cpu)/cpuacct.usage")
sleep 4
u2=$(cat "$(cg cpuacct cpu)/cpuacct.usage")
pct=$(( (u2 - u1) / 40000000 ))
[ "$pct" -ge 10 ] && [ "$pct" -le 30 ] && ok "cpu: busy loop used $pct% under a 20% quota" || no "cpu: quota" "used $pct%"
cleanup cpu

# update on a running container: the new limits are enforced.
start update
sleep 1
husk update --pids-limit 7 --memory 48m update && ok "update: accepted" || no "update: accepted" "exit $?"
[ "$(cat "$(cg pids update)/pids.max")" = 7 ] && ok "update: pids.max is 7" || no "update: pids.max" "$(cat "$(cg pids update)/pids.max")"
[ "$(cat "$(cg memory update)/memory.limit_in_bytes")" = 50331648 ] && ok "update: memory limit is 48M" || no "update: memory" "$(cat "$(cg memory update)/memory.limit_in_bytes")"
sleep 3
cur=$(cat "$(cg pids update)/pids.current")
[ "$cur" -le 7 ] && [ "$cur" -ge 2 ] && ok "update: $cur processes under the new pids.max 7" || no "update: pids enforced" "pids.current $cur"
cleanup update

# pause through the v1 freezer stops a counting loop, resume continues it.
pause_and_resume_count
husk pause count
[ "$(cat "$(cg freezer count)/freezer.state")" = FROZEN ] && ok "pause: freezer.state FROZEN" || no "pause: freezer" "$(cat "$(cg freezer count)/freezer.state")"
# A paused container is ended whole by delete --force (the count bundle
# shares the host's pid namespace: every process must be killed).
husk delete --force count && ok "delete --force of a paused container" || no "delete --force paused" "exit $?"
[ -z "$(left count)" ] && ok "delete: no cgroup left in any hierarchy" || no "delete: cgroups left" "$(left count)"

# The v1 device lists deny opening a device outside the rules and allow the
# defaults.
check_devices

echo "vm-suite: $pass passed, $fail failed"
