#!/usr/bin/env bash
# Builds the conformance suite and runs it against $RUNTIME (default: this
# repository's husk). Extra arguments go to the runner (e.g. --json OUT, or a
# case-name filter). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Everything is linked statically (.cargo/config.toml): the checker runs inside
# containers whose rootfs has no libc.
cargo build --release --quiet -p husk -p husk-conformance
bin=target/x86_64-unknown-linux-gnu/release
runtime=${RUNTIME:-$PWD/$bin/husk}
exec "$bin/husk-conformance" --runtime "$runtime" --checker "$bin/oci-check" "$@"
