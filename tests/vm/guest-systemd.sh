#!/bin/sh
# The systemd cgroup driver's tests (--systemd-cgroup), in a guest whose PID 1
# is Debian's systemd on a pure cgroup v2 host (tests/vm/run.sh --systemd).
# Bundles were made on the host (tests/vm/make-bundles.py, sd-*).
TAG="systemd: "
. /lib.sh
sd() { husk --systemd-cgroup "$@"; }
# No unit of husk's tests left, in any state (failed ones included).
units_left() { systemctl list-units --all --plain --no-legend 'husk-*.scope' 'cri-containerd-*.scope' 'runc-*.scope' 2>/dev/null; }
pid_of() { husk state "$1" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }

echo "vm: tests start"
echo "vm: $(systemctl --version | head -1), system $(systemctl is-system-running 2>&1)"

# create: a scope in nested slices, made by systemd, with the limits as
# systemd properties and in the cgroup's files.
n=sd-run
unit=cri-containerd-sd-run.scope
cg=/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/$unit
if sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null; then ok "create"; else no "create" "$(cat /tmp/$n.out)"; fi
[ "$(systemctl is-active $unit)" = active ] && ok "the scope is active" || no "scope active" "$(systemctl is-active $unit)"
systemctl status --no-pager $unit > /tmp/status 2>&1
grep -q "husk container sd-run" /tmp/status && ok "systemctl status shows the scope" || no "systemctl status" "$(head -5 /tmp/status)"
pid=$(pid_of $n)
[ "$(cat $cg/cgroup.procs)" = "$pid" ] && ok "the init alone is in the scope (the placeholder is gone)" || no "scope's processes" "init $pid, cgroup.procs $(cat $cg/cgroup.procs 2>&1 | tr '\n' ' ')"
grep -qx "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/$unit" /proc/$pid/cgroup && ok "the init's cgroup is the scope" || no "init's cgroup" "$(cat /proc/$pid/cgroup)"
[ "$(systemctl show -P Delegate $unit)" = yes ] && ok "Delegate=yes" || no "Delegate" "$(systemctl show -P Delegate $unit)"
check() { # PROPERTY EXPECTED FILE EXPECTED
  p=$(systemctl show -P "$1" $unit)
  f=$(cat "$cg/$3")
  [ "$p" = "$2" ] && [ "$f" = "$4" ] && ok "$1=$p, $3 $f" || no "$1 and $3" "property $p (want $2), file $f (want $4)"
}
check MemoryMax 67108864 memory.max 67108864
check MemorySwapMax 0 memory.swap.max 0
check TasksMax 32 pids.max 32
check CPUQuotaPerSecUSec 500ms cpu.max "50000 100000"
husk start $n && [ "$(status $n)" = running ] && ok "start: running" || no "start" "status $(status $n)"
husk ps $n | grep -qw "$pid" && ok "ps lists the init" || no "ps" "$(husk ps $n 2>&1)"
husk events --stats $n | grep -q '"pids":{"current":1' && ok "events --stats reads the scope" || no "events --stats" "$(husk events --stats $n 2>&1 | head -c 300)"

# update: SetUnitProperties and the files, kept across a daemon-reload
# (which applies the unit's properties to its cgroup again).
sd update --memory 128m --pids-limit 16 $n && ok "update: accepted" || no "update" "exit $?"
systemctl daemon-reload
check MemoryMax 134217728 memory.max 134217728
check TasksMax 16 pids.max 16

# pause and resume through the scope's cgroup.
sd pause $n && [ "$(status $n)" = paused ] && [ "$(cat $cg/cgroup.freeze)" = 1 ] && ok "pause: frozen" || no "pause" "status $(status $n), freeze $(cat $cg/cgroup.freeze)"
sd resume $n && [ "$(status $n)" = running ] && ok "resume: running" || no "resume" "status $(status $n)"

# kill --all, then delete: no unit and no cgroup left.
sd kill --all $n KILL
wait_stopped $n 10 && ok "kill --all: stopped" || no "kill --all" "status $(status $n)"
sd delete $n && ok "delete: accepted" || no "delete" "exit $?"
[ ! -e $cg ] && ok "delete: the scope's cgroup is gone" || no "delete: cgroup" "$cg is left"
[ -z "$(units_left)" ] && ok "delete: no unit left" || no "delete: units" "$(units_left)"

# A memory limit is enforced: the default scope (system.slice/husk-ID.scope)
# of a container that allocates without bound is OOM-killed.
n=sd-oom
unit=husk-sd-oom.scope
sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null
[ -d /sys/fs/cgroup/system.slice/$unit ] && ok "default: system.slice/husk-ID.scope" || no "default scope" "$(ls /sys/fs/cgroup/system.slice)"
husk events --interval 100ms $n > /tmp/$n.events 2>&1 &
evpid=$!
husk start $n
wait_stopped $n 60 && ok "oom: the container stopped" || no "oom: stopped" "status $(status $n)"
i=0
while kill -0 $evpid 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill $evpid 2>/dev/null
grep -q '"type":"oom"' /tmp/$n.events && ok "oom: events reported oom" || no "oom: events" "$(systemctl show -p ActiveState,Result,OOMPolicy $unit | tr '\n' ' ') $(grep -o '"type":"[a-z]*"' /tmp/$n.events | sort | uniq -c | tr '\n' ' ') $(grep -v '^{' /tmp/$n.events | head -3)"
sd delete $n
[ -z "$(units_left)" ] && [ ! -e /sys/fs/cgroup/system.slice/$unit ] && ok "oom: delete leaves no unit (failed ones reset)" || no "oom: left" "$(units_left)"

# A create killed (SIGKILL) while its createRuntime hook runs, after the
# scope started: delete --force takes the scope back.
n=sd-hook
unit=husk-sd-hook.scope
sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null &
cpid=$!
i=0
while [ "$(systemctl is-active $unit)" != active ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -9 $cpid
wait $cpid 2>/dev/null
[ -d /sys/fs/cgroup/machine.slice/$unit ] && ok "killed create: its scope was there" || no "killed create: scope" "not made"
sd delete --force $n && ok "killed create: delete --force" || no "killed create: delete" "exit $?"
[ ! -e /sys/fs/cgroup/machine.slice/$unit ] && [ -z "$(units_left)" ] && ok "killed create: no unit, no cgroup left" || no "killed create: left" "$(units_left)"
[ ! -e /run/husk/$n ] && ok "killed create: no state left" || no "killed create: state" "$(ls /run/husk/$n)"

# A cgroupsPath that is not slice:prefix:name is refused, naming the field.
sd create --bundle /bundles/sd-bad sd-bad > /tmp/sd-bad.out 2>&1 < /dev/null
grep -q 'linux.cgroupsPath.*slice:prefix:name' /tmp/sd-bad.out && ok "a bad path is refused" || no "bad path" "$(cat /tmp/sd-bad.out)"
[ -z "$(units_left)" ] && [ ! -e /run/husk/sd-bad ] && ok "a refused create leaves nothing" || no "refused create" "$(units_left)"

echo "vm-suite: $pass passed, $fail failed"

# create + delete with the systemd driver, husk and runc interleaved
# (3 rounds of 5 each), both with the same bundle (limits, default scope).
if [ -x /usr/sbin/runc ]; then
  cycle() { # RUNTIME...: ms for one create+delete, the mean of 5
    t0=$(date +%s%N)
    for i in 0 1 2 3 4; do
      "$@" create --bundle /bundles/sd-bench bench$i > /dev/null 2>&1 < /dev/null || echo "vm: bench: $1 create failed"
      "$@" delete --force bench$i > /dev/null 2>&1
    done
    echo $((($(date +%s%N) - t0) / 5000000))
  }
  h=0
  r=0
  for round in 1 2 3; do
    h=$((h + $(cycle /bin/husk --systemd-cgroup)))
    r=$((r + $(cycle /usr/sbin/runc --systemd-cgroup)))
  done
  echo "| create+delete, systemd driver (ms, mean of 15) | husk $((h / 3)) | runc $((r / 3)) | husk/runc $((h * 100 / r))% |"
  [ -z "$(units_left)" ] || echo "vm: bench left units: $(units_left)"
fi
echo "vm: done"
systemctl poweroff --force --force
