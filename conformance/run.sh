#!/usr/bin/env bash
# Builds the conformance suite and runs it against $RUNTIME (default: this
# repository's husk). Extra arguments go to the runner (e.g. --json OUT, or a
# case-name filter). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet -p husk -p husk-conformance
# The checker runs inside containers whose rootfs has no libc: link it statically.
cargo rustc --release --quiet -p husk-conformance --bin oci-check --target-dir target/static \
  -- -C target-feature=+crt-static
runtime=${RUNTIME:-$PWD/target/release/husk}
exec target/release/husk-conformance --runtime "$runtime" --checker target/static/release/oci-check "$@"
