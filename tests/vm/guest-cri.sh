# Kubernetes' path in the systemd guest, sourced by tests/vm/guest-systemd.sh:
# Debian's containerd, its CRI plugin configured with the README's runtime
# table as written (/cri/runtime.toml: husk as the runtime handler through
# the runc v2 shim, SystemdCgroup = true), husk-net as the CNI plugin. A pod
# and a container as the kubelet makes them (a kubepods slice as the cgroup
# parent), with husk and (on pure v2) with runc as the handler.
#
# critest itself cannot run here: its pods (cri-tools 1.26) have no cgroup
# parent, so containerd gives their containers the cgroupfs path
# "/k8s.io/ID", which runc and husk both refuse with --systemd-cgroup (the
# kubelet always passes a slice). The host's critest run covers the rest of
# CRI with the cgroupfs driver.
cri=plugins.\"io.containerd.grpc.v1.cri\"
# crictl's own deadline is 2 s, too short for a pod under emulation.
crictl() { timeout 300 /usr/local/bin/crictl --runtime-endpoint unix:///run/containerd/containerd.sock --timeout 120s "$@"; }
# get ADDRESS PORT PATH: the body of an HTTP GET.
get() {
  timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "GET %s HTTP/1.0\r\n\r\n" "$3" >&3 && cat <&3' _ "$@" 2>&1 |
    tr -d '\r' | sed '1,/^$/d'
}
# json FIELD: FIELD (a "key": value line's value) from the JSON on stdin.
json() { sed -n "s/^ *\"$1\": \"\\{0,1\\}\\([^\",]*\\).*/\\1/p" | head -1; }

cri_setup() {
  mkdir -p /etc/containerd /etc/cni/net.d /var/lib/containerd
  # containerd's snapshots on a tmpfs: overlayfs takes no upper directory
  # on the initramfs's own root.
  mount -t tmpfs tmpfs /var/lib/containerd
  {
    echo 'version = 2'
    echo "[$cri]"
    echo '  sandbox_image = "registry.k8s.io/pause:3.6"'
    echo "[$cri.containerd.runtimes.runc]"
    echo '  runtime_type = "io.containerd.runc.v2"'
    echo "[$cri.containerd.runtimes.runc.options]"
    echo '  SystemdCgroup = true'
    cat /cri/runtime.toml
  } > /etc/containerd/config.toml
  cat > /etc/cni/net.d/10-husk.conflist <<J
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
 {"type": "husk-net", "bridge": "cni0", "isGateway": true, "ipMasq": true,
  "ipam": {"subnet": "10.88.0.0/16"},
  "capabilities": {"portMappings": true}}]}
J
  systemctl start containerd
  i=0
  until ctr version > /dev/null 2>&1 || [ $i -ge 100 ]; do sleep 0.2; i=$((i + 1)); done
  for t in /cri/images/*.tar; do
    ctr -n k8s.io images import "$t" > /dev/null 2>&1 || echo "vm: cri: import $t failed"
  done
}

# cri_pod RUNTIME: a pod in a kubepods slice, a container with limits in it,
# exec, update, then everything removed; the container's cgroup is a scope
# made by systemd, and nothing is left.
cri_pod() {
  rt=$1
  T="cri ($rt): "
  uid=pod$rt
  slice=kubepods-besteffort-$uid.slice
  hport=$((18000 + ${#rt}))
  cat > /tmp/pod.json <<J
{"metadata": {"name": "sd-$rt", "namespace": "default", "uid": "$uid", "attempt": 0},
 "port_mappings": [{"protocol": 0, "container_port": 8080, "host_port": $hport}],
 "log_directory": "/tmp/pod-logs-$rt", "linux": {"cgroup_parent": "$slice"}}
J
  cat > /tmp/ctr.json <<J
{"metadata": {"name": "c"}, "image": {"image": "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
 "command": ["sh", "-c", "echo hello-$rt > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"], "log_path": "c.log",
 "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000, "cpu_quota": 50000}}}
J
  pod=$(crictl runp --runtime "$rt" /tmp/pod.json 2> /tmp/runp.err)
  [ -n "$pod" ] && ok "${T}runp" || no "${T}runp" "$(tail -3 /tmp/runp.err)"
  ip=$(crictl inspectp "$pod" 2>/dev/null | json ip)
  case "$ip" in 10.88.*) ok "${T}the pod's address from husk-net ($ip)" ;; *) no "${T}pod address" "'$ip'" ;; esac
  sunit=cri-containerd-$pod.scope
  srel=kubepods.slice/kubepods-besteffort.slice/$slice/$sunit
  [ "$(systemctl is-active "$sunit")" = active ] && ok "${T}the sandbox is a scope in $slice" || no "${T}sandbox scope" "$(systemctl is-active "$sunit" 2>&1)"
  ctr=$(crictl create "$pod" /tmp/ctr.json /tmp/pod.json 2> /tmp/create.err)
  [ -n "$ctr" ] && ok "${T}create" || no "${T}create" "$(tail -3 /tmp/create.err)"
  crictl start "$ctr" > /tmp/start.err 2>&1 && ok "${T}start" || no "${T}start" "$(tail -3 /tmp/start.err)"
  cunit=cri-containerd-$ctr.scope
  rel=kubepods.slice/kubepods-besteffort.slice/$slice/$cunit
  cpid=$(crictl inspect "$ctr" 2>/dev/null | json pid)
  cg=$(sed -n 's/^0:://p' "/proc/$cpid/cgroup" 2>/dev/null)
  [ "$cg" = "/$rel" ] && ok "${T}the container's cgroup is its scope" || no "${T}container cgroup" "pid $cpid: '$cg', want /$rel"
  [ "$(systemctl show -P Delegate "$cunit")" = yes ] && ok "${T}the scope is delegated" || no "${T}Delegate" "$(systemctl show -P Delegate "$cunit")"
  if [ -n "$hybrid" ]; then
    lim=$(cat "/sys/fs/cgroup/memory/$rel/memory.limit_in_bytes" 2>&1)
    quota=$(cat "/sys/fs/cgroup/cpu/$rel/cpu.cfs_quota_us" 2>&1)
  else
    lim=$(cat "/sys/fs/cgroup/$rel/memory.max" 2>&1)
    quota=$(cut -d' ' -f1 "/sys/fs/cgroup/$rel/cpu.max" 2>&1)
  fi
  [ "$lim" = 67108864 ] && [ "$quota" = 50000 ] && ok "${T}the limits in the scope's files" || no "${T}limits" "memory $lim, quota $quota"
  out=$(crictl exec -s "$ctr" sh -c 'echo $((6 * 7))' 2>&1)
  [ "$out" = 42 ] && ok "${T}exec" || no "${T}exec" "$out"
  # The pod's web server from the guest, at its address and at the port
  # the pod publishes (bash's /dev/tcp: the static busybox's wget crashes in
  # glibc's resolver on Debian's root).
  i=0
  until out=$(get "$ip" 8080 /index.html) && [ "$out" = "hello-$rt" ] || [ $i -ge 20 ]; do
    sleep 0.5
    i=$((i + 1))
  done
  [ "$out" = "hello-$rt" ] && ok "${T}the pod's server reached from the host through husk-net" ||
    no "${T}pod's server" "'$out'; log: $(crictl logs "$ctr" 2>&1 | tail -3)"
  out=$(get 127.0.0.1 $hport /index.html)
  [ "$out" = "hello-$rt" ] && ok "${T}the published port $hport reaches it" || no "${T}published port $hport" "'$out'"
  mem=$(crictl stats -o json "$ctr" 2>&1 | sed -n '/"workingSetBytes"/,/}/s/.*"value": "\{0,1\}\([0-9]*\).*/\1/p' | head -1)
  [ "${mem:-0}" -gt 0 ] && ok "${T}stats: working set $mem bytes, from the scope" || no "${T}stats" "$(crictl stats -o json "$ctr" 2>&1 | head -20 | tr '\n' ' ')"
  crictl update --memory 134217728 "$ctr" > /tmp/update.err 2>&1 && ok "${T}update" || no "${T}update" "$(tail -3 /tmp/update.err)"
  if [ -n "$hybrid" ]; then
    p=$(systemctl show -P MemoryLimit "$cunit")
    f=$(cat "/sys/fs/cgroup/memory/$rel/memory.limit_in_bytes" 2>&1)
  else
    p=$(systemctl show -P MemoryMax "$cunit")
    f=$(cat "/sys/fs/cgroup/$rel/memory.max" 2>&1)
  fi
  [ "$p" = 134217728 ] && [ "$f" = 134217728 ] && ok "${T}update: the unit's property and the file" || no "${T}update" "property $p, file $f"
  crictl stop -t 2 "$ctr" > /dev/null 2>&1 && crictl rm "$ctr" > /dev/null 2>&1 && ok "${T}stop, rm" || no "${T}stop, rm" "$(crictl ps -a 2>&1 | tail -2)"
  crictl stopp "$pod" > /dev/null 2>&1 && crictl rmp "$pod" > /dev/null 2>&1 && ok "${T}stopp, rmp" || no "${T}stopp, rmp" "$(crictl pods 2>&1 | tail -2)"
  left=$(systemctl list-units --all --plain --no-legend 'cri-containerd-*.scope')
  [ -z "$left" ] && ok "${T}no unit left" || no "${T}units left" "$left"
  left=$(dirs_left; rel=$srel dirs_left)
  [ -z "$left" ] && ok "${T}no cgroup left, in any hierarchy" || no "${T}cgroups left" "$left"
  left=$(grep -c -e /run/containerd/io.containerd -e /run/netns/ /proc/self/mounts)
  [ "$left" = 0 ] && ok "${T}no mount left" || no "${T}mounts left" "$(grep -e /run/containerd/io.containerd -e /run/netns/ /proc/self/mounts | head -3)"
  if [ "$rt" = husk ]; then
    left=$(husk --root /run/containerd/runc/k8s.io list -q 2>&1)
    [ -z "$left" ] && ok "${T}husk lists no container" || no "${T}husk's containers left" "$left"
  fi
  systemctl stop "$slice" 2>/dev/null
}

if [ -x /usr/local/bin/crictl ] && command -v containerd > /dev/null; then
  cri_setup
  cri_pod husk
  # runc beside it on the pure v2 host, as the reference (the hybrid guest
  # saves the time).
  [ -n "$hybrid" ] || cri_pod runc
  systemctl stop containerd
else
  no "cri" "crictl or containerd missing from the guest"
fi
