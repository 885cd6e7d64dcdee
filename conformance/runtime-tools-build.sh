#!/usr/bin/env bash
# Builds the OCI runtime-tools suite from its source tarball into DIR, offline
# with Debian's Go (its README's recipe): DIR/src/runtime-tools/bin/*.t (the
# 58 validation programs), runtimetest and oci-runtime-tool. Everything is
# static (CGO_ENABLED=0): the programs also run in the cgroup v2 test guest,
# which has no libc. Skipped when DIR holds a build of the same tarball.
#
#   bash conformance/runtime-tools-build.sh TARBALL DIR
set -euo pipefail
tarball=$1
dir=$2
stamp=$dir/built-from
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
  exit 0
fi
command -v go >/dev/null || {
  echo "runtime-tools: installing golang-go to build the suite" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
}
rm -rf "$dir/src"
mkdir -p "$dir/src"
tar -xzf "$tarball" -C "$dir/src"
cd "$dir/src/runtime-tools"
export GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
export GOCACHE=$dir/gocache HOME=${HOME:-/root}
echo "runtime-tools: building the suite from $(basename "$tarball")" >&2
go build -ldflags '-s -w' -o runtimetest ./cmd/runtimetest
go build -ldflags '-s -w' -o oci-runtime-tool ./cmd/oci-runtime-tool
mkdir -p bin
for d in validation/*/; do
  n=$(basename "$d")
  [ "$n" = util ] && continue
  go build -ldflags '-s -w' -o "bin/$n.t" "./$d"
done
echo "$sum" > "$stamp"
