#!/usr/bin/env bash
# The OCI runtime-tools validation suite (58 TAP programs, the OCI's own
# conformance tests) against husk, runc and crun in one run, from the source
# tarball the team keeps beside the repository. Builds it into
# target/runtime-tools (with Debian's Go, offline), runs every program against
# each runtime, prints the table, and checks husk against the others:
#
#   - husk passes every program runc or crun passes, unless the program is in
#     conformance/runtime-tools-known.txt with its reason;
#   - husk has no more `not ok` assertions than runc, nor than crun;
#   - a listed program that husk passes now is an error too (the list stays true).
#
# A program passes when it exits 0 with at least one `ok` and no `not ok`.
# Each program runs in a private mount namespace (a runtime given a config
# without a mount namespace mounts in the one it runs in: runc leaves those
# mounts behind) with TMPDIR under target/, removed afterwards.
#
#   bash conformance/runtime-tools.sh [--only PATTERN] [--runtimes "husk runc crun"]
#   RUNTIME_TOOLS_TARBALL=FILE    the tarball (default ../shared/third_party/runtime-tools-*.tar.gz)
#
# Run as root. Writes target/runtime-tools/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

only=""
runtimes="husk runc crun"
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=$2; shift 2 ;;
    --runtimes) runtimes=$2; shift 2 ;;
    *) echo "runtime-tools: unknown argument $1" >&2; exit 2 ;;
  esac
done

tarball=${RUNTIME_TOOLS_TARBALL:-}
if [ -z "$tarball" ]; then
  tarball=$(ls ../shared/third_party/runtime-tools-*.tar.gz 2>/dev/null | head -1 || true)
fi
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "runtime-tools: the suite's tarball is not here (../shared/third_party/runtime-tools-*.tar.gz, or set RUNTIME_TOOLS_TARBALL): not run"
  exit 0
fi

work=$PWD/target/runtime-tools
src=$work/src/runtime-tools
bash conformance/runtime-tools-build.sh "$tarball" "$work"

cargo build --release --quiet -p husk
husk=$PWD/target/x86_64-unknown-linux-gnu/release/husk
runtime_path() {
  case "$1" in
    husk) echo "$husk" ;;
    runc) command -v runc ;;
    crun) echo "$PWD/conformance/runtimes/crun-hybrid.sh" ;;
  esac
}
for rt in $runtimes; do
  if [ "$rt" != husk ] && ! command -v "$rt" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$rt" >/dev/null
  fi
done

results=$work/results
rm -rf "$results"
mkdir -p "$results"
started=$work/started
touch "$started"
programs=$(cd "$src/bin" && ls *.t | sed 's/\.t$//' | grep -E "${only:-.}")
for prog in $programs; do
  for rt in $runtimes; do
    mkdir -p "$results/$rt" "$work/tmp"
    rc=0
    r=$(runtime_path "$rt")
    (cd "$src" && TMPDIR=$work/tmp RUNTIME=$r \
      timeout 180 unshare -m --propagation private "bin/$prog.t") \
      > "$results/$rt/$prog.tap" 2>&1 || rc=$?
    echo "exit $rc" >> "$results/$rt/$prog.tap"
    # A failed program can leave a container (found by its bundle under our
    # TMPDIR) and its temporary bundles; its mounts went with its namespace.
    for id in $("$r" list -f json 2>/dev/null | tr '{' '\n' | grep -F "\"bundle\":\"$work/tmp/" |
                sed -n 's/.*"id":"\([^"]*\)".*/\1/p'); do
      "$r" delete -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work/tmp"
  done
done

# The suite's cgroups (`/cgrouptest`, `testdir/cgrouptest/…`): runc and crun
# remove the container's own and leave the parents. Only empty ones made
# during this run are removed.
find /sys/fs/cgroup -depth -type d \( -name cgrouptest -o -name testdir \) -newer "$started" \
  -exec rmdir {} \; 2>/dev/null || true

exec bash conformance/runtime-tools-report.sh "$results" conformance/runtime-tools-known.txt \
  "$work/table.md" $runtimes
