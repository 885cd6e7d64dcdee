#!/usr/bin/env bash
# The main job, end to end: build husk and husk-image, make an OCI image of
# busybox with a real image tool (umoci), turn it into a bundle with
# husk-image (layers stored once, the rootfs an overlay), and run a container
# from it, printing what the container sees. Run as root. Leaves nothing
# behind: the image, the layer store and the bundle live in a temporary
# directory.
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
umoci repack --image image:busybox staging
umoci config --image image:busybox --config.env=PATH=/bin \
  --config.cmd=sh --config.cmd=-c \
  --config.cmd='echo "hostname: $(hostname)"; echo "pid: $$"; echo "id: $(id)"; echo mounts:; cat /proc/self/mounts'

# The image to a bundle, then a container from it.
"$bin/husk-image" unpack --store "$work/layers" oci:image:busybox bundle
echo "husk run from oci:image:busybox (bundle $work/bundle):"
"$bin/husk" --root /run/husk run --bundle bundle "husk-demo-$$"
