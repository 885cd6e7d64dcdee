#!/usr/bin/env bash
# Installs what building and testing husk needs on a Debian machine, as root.
# Idempotent: installs only what is missing.
set -euo pipefail

need_apt=()
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file_static=$(ldd /bin/busybox 2>&1 || true)
case "${file_static:-dynamic}" in
  *"not a dynamic executable"*) ;;
  *) need_apt+=(busybox-static) ;;
esac
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need_apt+=(libseccomp-dev)
# The end-to-end test drives husk through containerd's runc v2 shim and ctr
# (its own daemon, socket and directories; never the system's), with a pty
# from script(1) for `ctr run -t`.
command -v containerd-shim-runc-v2 >/dev/null || need_apt+=(containerd)
command -v script >/dev/null || need_apt+=(bsdutils)
# A real image tool, to make images husk-image must read (the demo and a
# cross-check test).
command -v umoci >/dev/null || need_apt+=(umoci)
# husk-net writes its NAT and port rules through nft's JSON API; its tests
# look at links with ip and make namespaces with unshare/nsenter; the bench
# measures throughput with iperf3.
command -v nft >/dev/null || need_apt+=(nftables)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v nsenter >/dev/null || need_apt+=(util-linux)
command -v iperf3 >/dev/null || need_apt+=(iperf3)
# runc and crun are the references: tests/dropin.rs runs the configs they
# generate under them and under husk, and the OCI suite runs against all three.
command -v runc >/dev/null || need_apt+=(runc)
command -v crun >/dev/null || need_apt+=(crun)
# podman drives husk (through conmon) and husk-net (as a CNI plugin) in one
# end-to-end test, as users of either would.
command -v podman >/dev/null || need_apt+=(podman)

# containerd's CRI plugin (tests/cri.rs, conformance/critest.sh) sets up each
# pod's loopback with the reference loopback plugin; husk-net does the rest.
[ -x /usr/lib/cni/loopback ] || need_apt+=(containernetworking-plugins)
# Rootless tests (tests/rootless.rs) run husk as an unprivileged user with
# subordinate id ranges, mapped through newuidmap/newgidmap.
command -v newuidmap >/dev/null || need_apt+=(uidmap)
# Rootless podman (tests/rootless.rs): its network and its pause process.
command -v slirp4netns >/dev/null || need_apt+=(slirp4netns)
[ -x /usr/bin/catatonit ] || [ -x /usr/libexec/podman/catatonit ] || need_apt+=(catatonit)

# Docker drives husk in tests/docker.rs, with a dockerd of the test's own in
# namespaces of its own: the package's service must not start on the host.
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need_apt+=(docker.io)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # No service a package brings (docker's, containerd's) is started.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# The unprivileged user of the rootless tests, with 65536 subordinate ids.
if ! id huskrootless >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh huskrootless
fi
grep -q '^huskrootless:' /etc/subuid || usermod --add-subuids 300000-365535 huskrootless
grep -q '^huskrootless:' /etc/subgid || usermod --add-subgids 300000-365535 huskrootless

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; husk needs Rust 1.88 or newer (edition 2024, via rustup)" >&2
  exit 1
fi
