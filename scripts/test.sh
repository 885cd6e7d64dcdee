#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests with real containers,
# formatting and lints. Installs what it needs first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# crictl (tests/cri.rs drives containerd's CRI plugin with it), from the
# cri-tools tarball kept beside the repository; built once, outside the
# parallel tests.
bash conformance/critest-build.sh ../shared/third_party/cri-tools-v1.26.1.tar.gz "$PWD/target/cri-tools"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
conf=$(mktemp)
trap 'rm -f "$log" "$conf"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?

# The OCI conformance suite against husk; cases husk does not pass yet are
# listed with their reasons and reported as TODO.
echo "== conformance (conformance/run.sh) =="
bash conformance/run.sh --known-failures conformance/husk-known-failures.txt 2>&1 | tee "$conf" || status=$?

# The OCI's own suite (runtime-tools, from ../shared/third_party when it is
# there) against husk, runc and crun: husk must pass what they pass, bar the
# listed exceptions, which the guest below runs again.
echo "== OCI runtime-tools suite (conformance/runtime-tools.sh) =="
bash conformance/runtime-tools.sh || status=$?

# The Kubernetes CRI suite (critest) through containerd's CRI plugin, with
# husk and husk-net, then with runc: husk passes every spec runc passes.
crit=$(mktemp)
echo "== Kubernetes CRI suite (conformance/critest.sh) =="
bash conformance/critest.sh 2>&1 | tee "$crit" || status=$?

# The cgroup v2 tests (and the conformance suite once more) in a pure cgroup v2
# guest booted under qemu, and the v1 ones in a pure v1 guest: this host's
# cgroups are hybrid.
vm=$(mktemp)
trap 'rm -f "$log" "$conf" "$vm" "$crit"' EXIT
echo "== cgroup v2 guest (tests/vm/run.sh) =="
bash tests/vm/run.sh 2>&1 | tee "$vm" || status=$?
# And booted with SELinux as its LSM and a small policy loaded: the process
# and mount labels, for the init and exec, beside runc.
echo "== SELinux guest (tests/vm/run.sh --selinux) =="
bash tests/vm/run.sh --selinux 2>&1 | tee -a "$vm" || status=$?
# And a pure cgroup v1 guest (no unified hierarchy): the v1 driver alone.
echo "== cgroup v1 guest (tests/vm/run.sh --v1) =="
bash tests/vm/run.sh --v1 2>&1 | tee -a "$vm" || status=$?
# And a guest with systemd as PID 1 (Debian's, from mmdebstrap): the
# systemd cgroup driver, and its create/delete timed against runc's.
echo "== systemd guest (tests/vm/run.sh --systemd) =="
bash tests/vm/run.sh --systemd 2>&1 | tee -a "$vm" || status=$?
# The same with systemd's hybrid layout (v1 controllers, as Ubuntu 20.04).
echo "== systemd guest, hybrid (tests/vm/run.sh --systemd --v1) =="
bash tests/vm/run.sh --systemd --v1 2>&1 | tee -a "$vm" || status=$?

# One closing line for the whole suite: every test binary, the conformance
# cases, and the guest's tests.
awk '/^test result:/ { p += $4; f += $6 }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     /^(vm|critest)-suite: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     END { printf "suite: %d passed, %d failed\n", p, f }' "$log" "$conf" "$vm" "$crit"
exit "$status"
