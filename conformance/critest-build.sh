#!/usr/bin/env bash
# Builds the Kubernetes CRI validation suite (critest) and crictl from the
# cri-tools source tarball into DIR, offline with Debian's Go (the tarball's
# README recipe): DIR/critest, DIR/crictl. Skipped when DIR holds a build of
# the same tarball.
#
#   bash conformance/critest-build.sh TARBALL DIR
set -euo pipefail
tarball=$1
dir=$2
. "$(dirname "$0")/go-suite.sh"
go_suite_unpack "$tarball" "$dir" || exit 0
cd "$dir/src/cri-tools"
echo "critest: building critest and crictl from $(basename "$tarball")" >&2
go test -c -o "$dir/critest" \
  -ldflags '-s -w -X github.com/kubernetes-sigs/cri-tools/pkg/version.Version=1.26.1' ./cmd/critest
go build -ldflags '-s -w' -o "$dir/crictl" ./cmd/crictl
go_suite_done
