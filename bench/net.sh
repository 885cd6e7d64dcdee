#!/usr/bin/env bash
# husk-net's benchmark: builds husk-net and net-bench, installs iperf3 and the
# reference CNI plugins (Debian's containernetworking-plugins) if missing, and
# prints the table (bench/README.md keeps the latest). Extra arguments go to
# net-bench (--rounds N, --seconds S). Run as root; it works in a network
# namespace of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
if [ ! -x /usr/lib/cni/bridge ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containernetworking-plugins >/dev/null
fi
cargo build --release --quiet -p husk -p husk-bench
bin=target/x86_64-unknown-linux-gnu/release
exec $bin/net-bench --husk-net $bin/husk-net --cni-bin /usr/lib/cni "$@"
