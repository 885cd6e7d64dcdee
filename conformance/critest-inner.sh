#!/usr/bin/env bash
# One critest run against containerd's CRI plugin with RUNTIME as the
# handler; run by conformance/critest.sh inside new pid, mount and network
# namespaces, so containerd, its shims, the pods and the CNI bridge are all
# gone when it ends, and nothing reaches the machine's network.
#
#   critest-inner.sh DIR RUNTIME HUSK HUSK_NET CRITEST IMAGES_DIR [critest flags…]
set -u
dir=$1 runtime=$2 husk=$3 husk_net=$4 critest=$5 images=$6
shift 6
mount --make-rprivate /
# husk's and containerd's state (/run), and the CNI's, on tmpfs of this run.
mount -t tmpfs tmpfs /run
mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni
ip link set lo up
mkdir -p "$dir/cni-bin" "$dir/cni-conf"
ln -sf "$husk_net" "$dir/cni-bin/husk-net"
ln -sf /usr/lib/cni/loopback "$dir/cni-bin/loopback"
cat > "$dir/cni-conf/10-husk.conflist" <<J
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
 {"type": "husk-net", "bridge": "cni0", "isGateway": true, "ipMasq": true,
  "ipam": {"subnet": "10.88.0.0/16", "dataDir": "$dir/ipam"},
  "capabilities": {"portMappings": true}}]}
J
cri='plugins."io.containerd.grpc.v1.cri"'
cat > "$dir/config.toml" <<T
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[$cri]
  sandbox_image = "registry.k8s.io/pause:3.6"
  # Root here lacks CAP_SYS_RESOURCE: without it every sandbox fails.
  restrict_oom_score_adj = true
[$cri.containerd]
  default_runtime_name = "$runtime"
[$cri.containerd.runtimes.husk]
  runtime_type = "io.containerd.runc.v2"
[$cri.containerd.runtimes.husk.options]
  BinaryName = "$husk"
[$cri.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[$cri.containerd.runtimes.runc.options]
  BinaryName = "$(command -v runc)"
[$cri.cni]
  bin_dir = "$dir/cni-bin"
  conf_dir = "$dir/cni-conf"
T
containerd --config "$dir/config.toml" > "$dir/containerd.log" 2>&1 &
ctd=$!
for _ in $(seq 200); do
  ctr --address "$dir/containerd.sock" version > /dev/null 2>&1 && break
  sleep 0.1
done
for t in "$images"/*.tar; do
  ctr --address "$dir/containerd.sock" -n k8s.io images import "$t" > /dev/null || echo "critest: import $t failed" >&2
done
"$critest" --runtime-endpoint "unix://$dir/containerd.sock" \
  --image-endpoint "unix://$dir/containerd.sock" --runtime-handler "$runtime" "$@" \
  > "$dir/critest.out" 2>&1
rc=$?
kill "$ctd"
wait "$ctd"
exit $rc
