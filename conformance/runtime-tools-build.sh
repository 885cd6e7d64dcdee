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
. "$(dirname "$0")/go-suite.sh"
go_suite_unpack "$tarball" "$dir" || exit 0
cd "$dir/src/runtime-tools"
echo "runtime-tools: building the suite from $(basename "$tarball")" >&2
go build -ldflags '-s -w' -o runtimetest ./cmd/runtimetest
go build -ldflags '-s -w' -o oci-runtime-tool ./cmd/oci-runtime-tool
mkdir -p bin
for d in validation/*/; do
  n=$(basename "$d")
  [ "$n" = util ] && continue
  go build -ldflags '-s -w' -o "bin/$n.t" "./$d"
done
go_suite_done
