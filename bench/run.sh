#!/usr/bin/env bash
# Builds husk, the benchmark and the floor program, installs runc and crun from
# Debian if missing, and prints the comparison table (bench/README.md keeps the
# latest). Extra arguments go to husk-bench (--rounds N, --quick). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
if ! command -v runc >/dev/null || ! command -v crun >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun >/dev/null
fi
cargo build --release --quiet -p husk -p husk-bench
bin=target/x86_64-unknown-linux-gnu/release
exec $bin/husk-bench --husk $bin/husk --floor $bin/bench-floor \
  --runc "$(command -v runc)" --crun "$(command -v crun)" "$@"
