#!/usr/bin/env bash
# The main job, end to end: build husk, make a busybox bundle, and run a
# container from it, printing what the container sees. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
husk=$PWD/target/x86_64-unknown-linux-gnu/release/husk

bundle=$(mktemp -d /tmp/husk-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do
  [ -e "$bundle/rootfs/bin/$applet" ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done

"$husk" spec --bundle "$bundle"
# No terminal (so it runs anywhere, including without a tty), and a script that
# shows what the container sees.
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo \"hostname: $(hostname)\"; echo \"pid: $$\"; echo \"id: $(id)\"; echo mounts:; cat /proc/self/mounts"]
json.dump(c, open(path, "w"), indent=2)
PY
echo "husk run demo (bundle $bundle):"
"$husk" --root /run/husk run --bundle "$bundle" "husk-demo-$$"
