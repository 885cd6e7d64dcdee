# Sourced by the build scripts of the Go suites kept beside the repository
# (runtime-tools-build.sh, critest-build.sh): `go_suite_unpack TARBALL DIR`
# returns 1 when DIR holds a build of that tarball already; otherwise it
# unpacks the tarball into DIR/src, installs Go if it is missing, and sets an
# offline, static build environment. `go_suite_done` marks the build.
go_suite_unpack() {
  go_suite_stamp=$2/built-from
  go_suite_sum=$(sha256sum "$1" | cut -d' ' -f1)
  if [ -f "$go_suite_stamp" ] && [ "$(cat "$go_suite_stamp")" = "$go_suite_sum" ]; then
    return 1
  fi
  command -v go >/dev/null || {
    echo "$(basename "$1"): installing golang-go to build the suite" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  }
  rm -rf "$2/src"
  mkdir -p "$2/src"
  tar -xzf "$1" -C "$2/src"
  export GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
  export GOCACHE=$2/gocache HOME=${HOME:-/root}
}
go_suite_done() { echo "$go_suite_sum" > "$go_suite_stamp"; }
