#!/bin/sh
# The systemd cgroup driver's tests (--systemd-cgroup), in a guest whose PID 1
# is Debian's systemd (tests/vm/run.sh --systemd): on a pure cgroup v2 host,
# or with --v1 on a hybrid one (systemd.unified_cgroup_hierarchy=0, v1
# controllers beside the unified hierarchy, as Ubuntu 20.04 and RHEL 8).
# Bundles were made on the host (tests/vm/make-bundles.py, sd-*).
TAG="systemd: "
. /lib.sh
hybrid=
[ -d /sys/fs/cgroup/memory ] && hybrid=1 && TAG="systemd (hybrid): "
# file CONTROLLER V2FILE V1FILE: where a scope's setting is (REL is its path).
file() { if [ -n "$hybrid" ]; then echo "/sys/fs/cgroup/$1/$rel/$3"; else echo "/sys/fs/cgroup/$rel/$2"; fi; }
# Every directory the scope has, in any hierarchy.
dirs_left() { for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do [ -d "$h/$rel" ] && echo "$h/$rel"; done; }
sd() { husk --systemd-cgroup "$@"; }
# No unit of husk's tests left, in any state (failed ones included).
units_left() { systemctl list-units --all --plain --no-legend 'husk-*.scope' 'cri-containerd-*.scope' 'runc-*.scope' 2>/dev/null; }
pid_of() { husk state "$1" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }

echo "vm: tests start"
echo "vm: $(systemctl --version | head -1), system $(systemctl is-system-running 2>&1)"
if grep -q husk_cri_only /proc/cmdline; then . /guest-cri.sh; echo "vm-suite: $pass passed, $fail failed"; systemctl poweroff --force --force; fi

# create: a scope in nested slices, made by systemd, with the limits as
# systemd properties and in the cgroup's files.
n=sd-run
unit=cri-containerd-sd-run.scope
rel=kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/$unit
cg=/sys/fs/cgroup${hybrid:+/unified}/$rel
if sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null; then ok "create"; else no "create" "$(cat /tmp/$n.out)"; fi
[ "$(systemctl is-active $unit)" = active ] && ok "the scope is active" || no "scope active" "$(systemctl is-active $unit)"
systemctl status --no-pager $unit > /tmp/status 2>&1
grep -q "husk container sd-run" /tmp/status && ok "systemctl status shows the scope" || no "systemctl status" "$(head -5 /tmp/status)"
pid=$(pid_of $n)
[ "$(cat $cg/cgroup.procs)" = "$pid" ] && ok "the init alone is in the scope (the placeholder is gone)" || no "scope's processes" "init $pid, cgroup.procs $(cat $cg/cgroup.procs 2>&1 | tr '\n' ' ')"
grep -qx "0::/$rel" /proc/$pid/cgroup && ok "the init's cgroup is the scope" || no "init's cgroup" "$(cat /proc/$pid/cgroup)"
if [ -n "$hybrid" ]; then
  for c in memory pids cpu,cpuacct freezer devices; do
    grep -q ":$c:/$rel\$" /proc/$pid/cgroup && ok "the init is in the scope's $c cgroup" || no "init's $c cgroup" "$(cat /proc/$pid/cgroup)"
  done
fi
[ "$(systemctl show -P Delegate $unit)" = yes ] && ok "Delegate=yes" || no "Delegate" "$(systemctl show -P Delegate $unit)"
check() { # PROPERTY EXPECTED FILE EXPECTED
  p=$(systemctl show -P "$1" $unit)
  f=$(cat "$3")
  [ "$p" = "$2" ] && [ "$f" = "$4" ] && ok "$1=$p, ${3##*/} $f" || no "$1 and $3" "property $p (want $2), file $f (want $4)"
}
if [ -n "$hybrid" ]; then
  check MemoryLimit 67108864 "$(file memory - memory.limit_in_bytes)" 67108864
  check TasksMax 32 "$(file pids - pids.max)" 32
  check CPUQuotaPerSecUSec 500ms "$(file cpu - cpu.cfs_quota_us)" 50000
else
  check MemoryMax 67108864 "$(file - memory.max)" 67108864
  check MemorySwapMax 0 "$(file - memory.swap.max)" 0
  check TasksMax 32 "$(file - pids.max)" 32
  check CPUQuotaPerSecUSec 500ms "$(file - cpu.max)" "50000 100000"
fi
husk start $n && [ "$(status $n)" = running ] && ok "start: running" || no "start" "status $(status $n)"
[ "$(systemctl show -P DevicePolicy $unit)" = strict ] && ok "DevicePolicy=strict" || no "DevicePolicy" "$(systemctl show -P DevicePolicy $unit)"
# Under systemd's device policy and husk's, the default devices work.
out=$(husk exec $n sh -c 'head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok' 2>&1)
[ "$(echo $out)" = "3 null-ok" ] && ok "exec: /dev/zero and /dev/null work" || no "exec: default devices" "$out"
husk ps $n | grep -qw "$pid" && ok "ps lists the init" || no "ps" "$(husk ps $n 2>&1)"
husk events --stats $n | grep -q '"pids":{"current":1' && ok "events --stats reads the scope" || no "events --stats" "$(husk events --stats $n 2>&1 | head -c 300)"

# update: SetUnitProperties and the files, kept across a daemon-reload
# (which applies the unit's properties to its cgroup again).
# (v1 keeps memory+swap in one limit, which must not be below the memory
# limit: both are raised, as docker update must.)
sd update --memory 128m --memory-swap 128m --pids-limit 16 $n && ok "update: accepted" || no "update" "exit $?"
systemctl daemon-reload
if [ -n "$hybrid" ]; then
  check MemoryLimit 134217728 "$(file memory - memory.limit_in_bytes)" 134217728
else
  check MemoryMax 134217728 "$(file - memory.max)" 134217728
fi
check TasksMax 16 "$(file pids pids.max pids.max)" 16
# systemd applies its device policy again on a daemon-reload: on v1 a unit
# without one gets `devices.allow a`, which would open every device.
if [ -n "$hybrid" ]; then
  list=$(cat "$(file devices - devices.list)")
  case "$list" in *"a *:* rwm"*) no "devices: still restricted after a daemon-reload" "$(echo $list | head -c 200)" ;; *) ok "devices: still restricted after a daemon-reload" ;; esac
fi

# pause and resume through the scope's cgroup.
# (On a hybrid host too, the unified hierarchy's freezer, as on the host.)
sd pause $n && [ "$(status $n)" = paused ] && [ "$(cat $cg/cgroup.freeze)" = 1 ] && ok "pause: frozen" || no "pause" "status $(status $n), cgroup.freeze $(cat $cg/cgroup.freeze)"
sd resume $n && [ "$(status $n)" = running ] && ok "resume: running" || no "resume" "status $(status $n)"

# kill --all, then delete: no unit and no cgroup left.
sd kill --all $n KILL
wait_stopped $n 10 && ok "kill --all: stopped" || no "kill --all" "status $(status $n)"
sd delete $n && ok "delete: accepted" || no "delete" "exit $?"
[ -z "$(dirs_left)" ] && ok "delete: the scope's cgroups are gone" || no "delete: cgroups" "left: $(dirs_left)"
[ -z "$(units_left)" ] && ok "delete: no unit left" || no "delete: units" "$(units_left)"

# A memory limit is enforced: the default scope (system.slice/husk-ID.scope)
# of a container that allocates without bound is OOM-killed.
n=sd-oom
unit=husk-sd-oom.scope
rel=system.slice/$unit
sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null
[ -f "$(file memory memory.max memory.limit_in_bytes)" ] && ok "default: system.slice/husk-ID.scope" || no "default scope" "$(cat /tmp/$n.out)"
husk events --interval 100ms $n > /tmp/$n.events 2>&1 &
evpid=$!
husk start $n
wait_stopped $n 60 && ok "oom: the container stopped" || no "oom: stopped" "status $(status $n)"
i=0
while kill -0 $evpid 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill $evpid 2>/dev/null
grep -q '"type":"oom"' /tmp/$n.events && ok "oom: events reported oom" || no "oom: events" "$(systemctl show -p ActiveState,Result,OOMPolicy $unit | tr '\n' ' ') $(grep -o '"type":"[a-z]*"' /tmp/$n.events | sort | uniq -c | tr '\n' ' ') $(grep -v '^{' /tmp/$n.events | head -3)"
sd delete $n
[ -z "$(units_left)" ] && [ -z "$(dirs_left)" ] && ok "oom: delete leaves no unit and no cgroup" || no "oom: left" "$(units_left) $(dirs_left)"

# A create killed (SIGKILL) while its createRuntime hook runs, after the
# scope started: delete --force takes the scope back.
n=sd-hook
unit=husk-sd-hook.scope
rel=machine.slice/$unit
sd create --bundle /bundles/$n $n > /tmp/$n.out 2>&1 < /dev/null &
cpid=$!
i=0
while [ "$(systemctl is-active $unit)" != active ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
kill -9 $cpid
wait $cpid 2>/dev/null
[ -n "$(dirs_left)" ] && ok "killed create: its scope was there" || no "killed create: scope" "not made"
sd delete --force $n && ok "killed create: delete --force" || no "killed create: delete" "exit $?"
[ -z "$(dirs_left)" ] && [ -z "$(units_left)" ] && ok "killed create: no unit, no cgroup left" || no "killed create: left" "$(units_left) $(dirs_left)"
[ ! -e /run/husk/$n ] && ok "killed create: no state left" || no "killed create: state" "$(ls /run/husk/$n)"

# A cgroupsPath that is not slice:prefix:name is refused, naming the field.
sd create --bundle /bundles/sd-bad sd-bad > /tmp/sd-bad.out 2>&1 < /dev/null
grep -q 'linux.cgroupsPath.*slice:prefix:name' /tmp/sd-bad.out && ok "a bad path is refused" || no "bad path" "$(cat /tmp/sd-bad.out)"
[ -z "$(units_left)" ] && [ ! -e /run/husk/sd-bad ] && ok "a refused create leaves nothing" || no "refused create" "$(units_left)"

# runc's own default config (`runc spec`, made here) under husk's systemd
# driver and runc's: husk runs it, and systemd gets the same unit settings
# from both (runc's deny-all device rule as DevicePolicy=strict and the
# default devices' allow list).
if [ -x /usr/sbin/runc ]; then
  mkdir -p /tmp/rs
  (cd /tmp/rs && /usr/sbin/runc spec)
  sed -i 's/"terminal": true/"terminal": false/; s#"path": "rootfs"#"path": "/rootfs"#; s/^\([[:space:]]*\)"sh"$/\1"sleep", "100"/' /tmp/rs/config.json
  sd create --bundle /tmp/rs spec-husk > /tmp/spec.out 2>&1 < /dev/null && ok "runc spec: create" || no "runc spec: create" "$(cat /tmp/spec.out)"
  /usr/sbin/runc --systemd-cgroup create --bundle /tmp/rs spec-runc > /tmp/spec-runc.out 2>&1 < /dev/null
  out=$(husk exec spec-husk sh -c 'echo x > /dev/null && echo null-ok' 2>&1)
  [ "$out" = null-ok ] && ok "runc spec: /dev/null works" || no "runc spec: /dev/null" "$out"
  for prop in Delegate DevicePolicy TasksAccounting; do
    h=$(systemctl show -P $prop husk-spec-husk.scope)
    r=$(systemctl show -P $prop runc-spec-runc.scope)
    [ "$h" = "$r" ] && ok "runc spec: $prop as runc's ($h)" || no "runc spec: $prop" "husk: $h; runc: $r ($(cat /tmp/spec-runc.out))"
  done
  # DeviceAllow: runc's entries, and besides them only nodes this host has
  # no device for, which runc leaves out ("skipping device … for systemd")
  # and husk keeps, as the config lists them.
  systemctl show -p DeviceAllow husk-spec-husk.scope | sort > /tmp/da-husk
  systemctl show -p DeviceAllow runc-spec-runc.scope | sort > /tmp/da-runc
  extra=$(comm -23 /tmp/da-husk /tmp/da-runc | while read -r spec _; do
    n=${spec#DeviceAllow=/dev/char/}
    { [ "$n" != "$spec" ] && [ ! -e "/sys/dev/char/$n" ]; } || echo "$spec"
  done)
  [ -s /tmp/da-runc ] && [ -z "$(comm -13 /tmp/da-husk /tmp/da-runc)" ] && [ -z "$extra" ] &&
    ok "runc spec: DeviceAllow as runc's ($(wc -l < /tmp/da-runc) entries)" ||
    no "runc spec: DeviceAllow" "runc only: $(comm -13 /tmp/da-husk /tmp/da-runc | tr '\n' ' '); husk only: $extra"
  sd delete --force spec-husk
  /usr/sbin/runc --systemd-cgroup delete --force spec-runc
fi

# Kubernetes' path: containerd's CRI with SystemdCgroup = true.
. /guest-cri.sh

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
  echo "| create+delete, systemd driver${hybrid:+, hybrid} (ms, mean of 15) | husk $((h / 3)) | runc $((r / 3)) | husk/runc $((h * 100 / r))% |"
  [ -z "$(units_left)" ] || echo "vm: bench left units: $(units_left)"
fi
echo "vm: done"
systemctl poweroff --force --force
