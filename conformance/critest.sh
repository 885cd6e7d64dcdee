#!/usr/bin/env bash
# The Kubernetes CRI validation suite (critest, from the cri-tools tarball
# kept beside the repository) against containerd's CRI plugin, with husk as
# the runtime handler and husk-net as the CNI plugin, then with runc, in one
# run: husk must pass every spec runc passes. Each run is in pid, mount and
# network namespaces of its own (conformance/critest-inner.sh).
#
# No registry is reachable: the images the specs run are made here under the
# names critest asks for (conformance/critest-images.sh), and the "Image
# Manager" specs, which pull, are skipped for both runtimes. What both
# runtimes fail is listed as such.
#
#   bash conformance/critest.sh
#   CRITEST_TARBALL=FILE    the tarball (default ../shared/third_party/cri-tools-*.tar.gz)
#
# Run as root. Writes target/critest/{husk,runc}/critest.out.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

tarball=${CRITEST_TARBALL:-$(ls ../shared/third_party/cri-tools-*.tar.gz 2>/dev/null | head -1 || true)}
if [ -z "$tarball" ] || [ ! -f "$tarball" ]; then
  echo "critest: the cri-tools tarball is missing (../shared/third_party/cri-tools-*.tar.gz)" >&2
  exit 1
fi
bash conformance/critest-build.sh "$tarball" "$PWD/target/cri-tools"
cargo build --release --quiet -p husk
bin=$PWD/target/x86_64-unknown-linux-gnu/release
work=$PWD/target/critest
rm -rf "$work"
mkdir -p "$work"

# The images, made here under the names critest asks for
# (conformance/critest-images.sh).
bash conformance/critest-images.sh "$work/images"

for rt in husk runc; do
  mkdir -p "$work/$rt"
  start=$(date +%s)
  unshare --pid --fork --mount --net --mount-proc bash conformance/critest-inner.sh \
    "$work/$rt" "$rt" "$bin/husk" "$bin/husk-net" "$PWD/target/cri-tools/critest" "$work/images" \
    --ginkgo.skip "Image Manager" --ginkgo.no-color || true
  echo "critest: $rt ran for $(( $(date +%s) - start )) s" >&2
  { grep -E '^\s*\[FAIL\]' "$work/$rt/critest.out" || true; } | sed -E 's/^\s*\[FAIL\] //' | sort -u > "$work/$rt.failed"
  grep -E '^(FAIL|SUCCESS)! --' "$work/$rt/critest.out" | tail -1 > "$work/$rt.summary" || true
  echo "critest $rt: $(cat "$work/$rt.summary")"
done
if [ ! -s "$work/husk.summary" ] || [ ! -s "$work/runc.summary" ]; then
  echo "critest: a run did not finish (target/critest/*/critest.out)" >&2
  exit 1
fi
echo "specs both fail here (images not made here, or the host's):"
comm -12 "$work/husk.failed" "$work/runc.failed" | sed 's/^/  /'
worse=$(comm -23 "$work/husk.failed" "$work/runc.failed")
# For scripts/test.sh's closing line: husk's passed specs, and those it
# fails that runc passes.
passed=$(sed -E 's/.* ([0-9]+) Passed.*/\1/' "$work/husk.summary")
echo "critest-suite: $passed passed, $(printf '%s' "$worse" | grep -c . || true) failed"
if [ -n "$worse" ]; then
  echo "critest: husk fails what runc passes:"
  echo "$worse" | sed 's/^/  /'
  exit 1
fi
better=$(comm -13 "$work/husk.failed" "$work/runc.failed")
[ -n "$better" ] && { echo "husk passes what runc fails:"; echo "$better" | sed 's/^/  /'; }
echo "critest: husk passes every spec runc passes"
