#!/usr/bin/env bash
# Runs the suite against runc, crun (Debian's) and husk, and prints the
# markdown table kept in conformance/README.md. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v runc >/dev/null && command -v crun >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun >/dev/null
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
RUNTIME=$(command -v runc) bash conformance/run.sh --json "$out/runc.json" >/dev/null || true
RUNTIME=$PWD/conformance/runtimes/crun-hybrid.sh bash conformance/run.sh --json "$out/crun.json" >/dev/null || true
bash conformance/run.sh --json "$out/husk.json" >/dev/null || true
target/x86_64-unknown-linux-gnu/release/husk-conformance --table runc="$out/runc.json" crun="$out/crun.json" husk="$out/husk.json"
