#!/usr/bin/env bash
# The main job, end to end: build husk, husk-image and husk-net; make an OCI
# image of busybox whose entrypoint is a web server, with a real image tool
# (umoci); turn it into a bundle with husk-image (layers stored once, the
# rootfs an overlay); attach a network namespace with husk-net, publishing
# host port 8080 (HUSK_DEMO_PORT) to the container's port 80; run the
# container with husk; fetch the page from the host. Run as root. Leaves
# nothing behind: the container, the attachment (veth, address, NAT rules,
# and the bridge and nftables table when no other container uses them) and
# the temporary directory are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet --bins
bin=$PWD/target/x86_64-unknown-linux-gnu/release

work=$(mktemp -d /tmp/husk-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

# An OCI image layout with one layer: busybox and its applets.
umoci init --layout image
umoci new --image image:busybox
umoci unpack --image image:busybox staging >/dev/null
mkdir -p staging/rootfs/bin staging/rootfs/tmp
cp /bin/busybox staging/rootfs/bin/
for applet in $(/bin/busybox --list); do
  [ -e "staging/rootfs/bin/$applet" ] || ln -s busybox "staging/rootfs/bin/$applet"
done
mkdir -p staging/rootfs/www
echo "<h1>hello from a husk container</h1>" > staging/rootfs/www/index.html
umoci repack --image image:busybox staging
umoci config --image image:busybox --config.env=PATH=/bin \
  --config.entrypoint=httpd --config.cmd=-f --config.cmd=-p --config.cmd=80 \
  --config.cmd=-h --config.cmd=/www --config.exposedports=80/tcp

port=${HUSK_DEMO_PORT:-8080}
id="husk-demo-$$"
netns=/run/netns/$id
cleanup() {
  "$bin/husk" --root /run/husk delete --force "$id" 2>/dev/null || true
  "$bin/husk-net" del --netns "$netns" --remove-netns 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The network: a namespace on husk-net's default network (bridge husk0,
# 10.88.0.0/16, NAT), host port $port to the container's 80.
"$bin/husk-net" add --netns "$netns" --publish "$port:80" >net.json
echo "husk-net attached $netns: $(grep -o '"address": "[^"]*"' net.json)"

# The image to a bundle joining that namespace, then the container.
"$bin/husk-image" unpack --store "$work/layers" --netns "$netns" oci:image:busybox bundle
"$bin/husk" --root /run/husk run --detach --bundle bundle "$id"
echo "husk run --detach $id: $("$bin/husk" --root /run/husk state "$id" | grep -o '"status": "[^"]*"')"

# From the host, through the published port.
for _ in $(seq 50); do
  page=$(printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc 127.0.0.1 "$port" 2>/dev/null || true)
  [ -n "$page" ] && break
  sleep 0.1
done
echo "GET http://127.0.0.1:$port/ ->"
echo "$page"
echo "$page" | grep -q "hello from a husk container"
