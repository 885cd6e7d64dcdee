# Helpers of the guests' test scripts (guest.sh, guest-v1.sh), sourced by
# them. TAG goes before each result's text.
pass=0
fail=0
# Every husk call is bounded: a call that hangs is named on the console and
# the script goes on, instead of the whole guest reaching run.sh's timeout
# with nothing said about where.
husk() {
  timeout "${HUSK_CALL_TIMEOUT:-60}" /bin/husk "$@"
  r=$?
  [ $r = 143 ] && echo "vm: husk $* did not end within ${HUSK_CALL_TIMEOUT:-60} s" > /dev/console
  return $r
}
ok() { pass=$((pass + 1)); echo "ok - $TAG$1"; }
no() { fail=$((fail + 1)); echo "not ok - $TAG$1: $2"; }
# status NAME: the container's status from husk state.
status() { husk state "$1" 2>/dev/null | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p'; }
wait_stopped() { # NAME SECONDS
  i=0
  while [ "$(status "$1")" != stopped ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  [ "$(status "$1")" = stopped ]
}
start() { husk create --bundle "/bundles/$1" "$1" > "/tmp/$1.out" 2>&1 < /dev/null && husk start "$1"; }
cleanup() { husk delete --force "$1" > /dev/null 2>&1; }

# peak FILE: the highest number FILE held, read every 0.1 s for 3 s.
peak() {
  top=0
  i=0
  while [ $i -lt 30 ]; do
    cur=$(cat "$1")
    [ "$cur" -gt "$top" ] && top=$cur
    sleep 0.1
    i=$((i + 1))
  done
  echo "$top"
}

# The "count" container (a loop counting in /share/count/n): pause stops it,
# resume continues it. It is left running.
pause_and_resume_count() {
  mkdir -p /share/count
  start count
  sleep 1
  husk pause count && ok "pause: accepted" || no "pause" "exit $?"
  [ "$(status count)" = paused ] && ok "pause: status paused" || no "pause: status" "$(status count)"
  a=$(cat /share/count/n)
  sleep 1
  b=$(cat /share/count/n)
  [ "$a" = "$b" ] && ok "pause: the loop stopped" || no "pause: loop stopped" "$a -> $b"
  husk resume count && ok "resume: accepted" || no "resume" "exit $?"
  sleep 1
  c=$(cat /share/count/n)
  [ "$c" -gt "$b" ] && ok "resume: the loop continued" || no "resume: loop continued" "$b -> $c"
}

# The "devices" container: opening a device outside the rules is denied and
# the defaults allowed; making any node is allowed, as runc allows it
# (c *:* m).
check_devices() {
  start devices
  wait_stopped devices 20
  out=$(cat /tmp/devices.out)
  case "$out" in *kmsg-made*) ok "devices: mknod allowed" ;; *) no "devices: mknod allowed" "$out" ;; esac
  case "$out" in *kmsg-opened*) no "devices: /dev/kmsg denied" "$out" ;; *) ok "devices: opening 1:11 denied" ;; esac
  case "$out" in *null-opened*) ok "devices: default null device allowed" ;; *) no "devices: default allowed" "$out" ;; esac
  cleanup devices
}
