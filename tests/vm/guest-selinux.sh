#!/bin/sh
# SELinux, in the v2 guest booted with SELinux as its LSM (tests/vm/run.sh
# --selinux) and tests/vm/selinux-policy.conf loaded, permissive: husk sets
# the process label and the mount label, for the init and for exec, and
# runc on the same bundle sees the same.
TAG="selinux: "
. /lib.sh
echo "vm: tests start"
mount -t selinuxfs selinuxfs /sys/fs/selinux
if cat /se/policy.33 > /sys/fs/selinux/load; then ok "policy loaded"; else no "policy" "load refused"; fi
[ "$(cat /sys/fs/selinux/enforce)" = 0 ] && ok "permissive" || no "mode" "enforce=$(cat /sys/fs/selinux/enforce)"
label() { tr -d '\0'; }
start se
sleep 1
got=$(label < /tmp/se.out | tr '\n' ' ')
want="system_u:system_r:container_t 2 "
[ "$got" = "$want" ] && ok "the process runs as container_t, /dev and /tmp have the mount label" || no "process and mount labels" "$got"
got=$(husk exec se cat /proc/self/attr/current | label)
[ "$got" = system_u:system_r:container_t ] && ok "exec gets the container's label" || no "exec label" "$got"
got=$(husk exec --process-label system_u:system_r:container2_t se cat /proc/self/attr/current | label)
[ "$got" = system_u:system_r:container2_t ] && ok "exec --process-label sets another" || no "exec --process-label" "$got"
cleanup se
h=$(husk run --bundle /bundles/se-run se-run 2>&1 < /dev/null | label | tr '\n' ' ')
r=$(/usr/sbin/runc --root /tmp/runc-root run --bundle /bundles/se-run se-run 2>&1 < /dev/null | label | tr '\n' ' ')
/usr/sbin/runc --root /tmp/runc-root delete --force se-run > /dev/null 2>&1
[ "$h" = "$r" ] && ok "runc sees the same: $h" || no "husk and runc differ" "husk: $h runc: $r"
cleanup se-run
echo "vm-suite: $pass passed, $fail failed"
