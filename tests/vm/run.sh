#!/usr/bin/env bash
# Boots a pure cgroup v2 guest — Debian's cloud kernel and a busybox
# initramfs holding husk, test bundles and tests/vm/guest.sh — under qemu's
# software emulation, runs the tests in it, and prints their results. The
# conformance suite also runs in the guest. Exits non-zero if any test failed
# or the guest did not report. Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1 || need+=(linux-image-cloud-amd64)
[ -x /bin/busybox ] || need+=(busybox-static)
# husk links libseccomp statically (.cargo/config.toml).
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
# The v2 guest's AppArmor profiles are compiled here (tests/vm/apparmor-profiles.py),
# Docker's and containerd's from the templates in their binaries; runc runs
# beside husk there.
command -v apparmor_parser >/dev/null || need+=(apparmor)
command -v checkpolicy >/dev/null || need+=(checkpolicy)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --bench: run bench/'s comparison in the guest instead of the tests (runc and
# crun from Debian, with their libraries); there all three runtimes are on
# the same pure cgroup v2 footing.
# --v1: the guest mounts only cgroup v1 hierarchies (a pure v1 host) and
# runs tests/vm/guest-v1.sh (or, with --bench, the bench there).
# --systemd: the guest is a Debian root filesystem (mmdebstrap, cached in
# target/) with systemd as PID 1, and runs tests/vm/guest-systemd.sh: the
# systemd cgroup driver's tests, then create/delete timed against runc's;
# with --v1, systemd mounts the hybrid layout. HUSK_VM_EXTRA=husk_cri_only
# (on the guest's command line) runs only its containerd part
# (tests/vm/guest-cri.sh), when working on that.
# --selinux: the busybox v2 guest booted with SELinux as its LSM, with
# tests/vm/selinux-policy.conf (compiled here with checkpolicy) loaded, runs
# tests/vm/guest-selinux.sh.
mode=tests
v1=
sd=
se=
for arg in "$@"; do
  case $arg in
    --bench) mode=bench ;;
    --v1) v1=1 ;;
    --systemd) sd=1 ;;
    --selinux) se=1 ;;
    *) echo "usage: $0 [--bench] [--v1] [--systemd] [--selinux]" >&2; exit 2 ;;
  esac
done
if [ -n "$sd" ]; then
  sdroot=$PWD/target/vm-systemd-rootfs
  # Debian's containerd (with its runc), the reference loopback plugin, nft
  # (husk-net's rules) and kmod (the guest loads bridge, veth, overlay and
  # nf_tables as modules): containerd's CRI with SystemdCgroup = true runs
  # pods through husk there. A change of this list makes the root again.
  pkgs=systemd,dbus,libseccomp2,kmod,containerd,runc,nftables,containernetworking-plugins
  if [ ! -x "$sdroot/lib/systemd/systemd" ] || [ "$(cat "$sdroot/.husk-packages" 2>/dev/null)" != "$pkgs" ]; then
    command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    rm -rf "$sdroot.tmp" "$sdroot"
    mmdebstrap --quiet --variant=minbase --include="$pkgs" \
      --dpkgopt='path-exclude=/usr/share/{doc,man,info,locale}/*' \
      bookworm "$sdroot.tmp" http://deb.debian.org/debian
    echo "$pkgs" > "$sdroot.tmp/.husk-packages"
    mv "$sdroot.tmp" "$sdroot"
  fi
  # critest and crictl (conformance/critest-build.sh; skipped when built),
  # and the images critest runs (conformance/critest-images.sh; cached).
  tarball=${CRITEST_TARBALL:-$(ls ../shared/third_party/cri-tools-*.tar.gz 2>/dev/null | head -1 || true)}
  [ -n "$tarball" ] && bash conformance/critest-build.sh "$tarball" "$PWD/target/cri-tools"
  if [ ! -e target/vm-cri-images/.done ]; then
    rm -rf target/vm-cri-images
    bash conformance/critest-images.sh "$PWD/target/vm-cri-images"
    rm -rf target/vm-cri-images/build
    touch target/vm-cri-images/.done
  fi
fi
if [ $mode = bench ] && { ! command -v runc >/dev/null || ! command -v crun >/dev/null; }; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc crun >/dev/null
fi
cargo build --release --quiet -p husk -p husk-conformance -p husk-bench
bin=target/x86_64-unknown-linux-gnu/release
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)

work=$(mktemp -d /tmp/husk-vm.XXXXXX)
trap 'cp "$work/console.log" "${HUSK_VM_LOG:-/dev/null}" 2>/dev/null; rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"
# The systemd guest's root is Debian's; the others' is busybox.
[ -n "$sd" ] && cp -a "$sdroot/." "$root/"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,rootfs/bin,rootfs/proc,rootfs/sys,rootfs/dev,rootfs/tmp}
cp /bin/busybox "$root/bin/"
cp /bin/busybox "$root/rootfs/bin/"
for a in $(/bin/busybox --list); do
  [ -n "$sd" ] || [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  [ -e "$root/rootfs/bin/$a" ] || ln -s busybox "$root/rootfs/bin/$a"
done
# husk and the conformance runner are static: nothing else to copy.
cp "$bin/husk" "$bin/husk-conformance" "$bin/oci-check" "$root/bin/"
users='root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n'
groups='root:x:0:\nuser:x:1000:\n'
[ -n "$sd" ] || { printf "$users" > "$root/etc/passwd"; printf "$groups" > "$root/etc/group"; }
mkdir -p "$root/rootfs/etc"
printf "$users" > "$root/rootfs/etc/passwd"
printf "$groups" > "$root/rootfs/etc/group"
cp tests/vm/init "$root/init"
if [ -n "$sd" ]; then
  cp tests/vm/init-systemd "$root/init"
  cp tests/vm/guest-systemd.sh "$root/"
  cp tests/vm/guest-cri.sh "$root/"
  cp tests/vm/husk-tests.service "$root/etc/systemd/system/"
  ln -sf ../husk-tests.service "$root/etc/systemd/system/multi-user.target.wants/"
  # The serial console is the tests'.
  ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
  # containerd is started by the tests, with their configuration.
  rm -f "$root/etc/systemd/system/multi-user.target.wants/containerd.service"
  # husk where the README's containerd configuration names it, husk-net as
  # the CNI plugin, crictl, critest's pause and busybox images, and the README's runtime
  # table as written (the block naming runtimes.husk).
  cp "$bin/husk" "$root/usr/local/bin/husk"
  mkdir -p "$root/opt/cni/bin" "$root/cri/images"
  cp "$bin/husk-net" "$root/opt/cni/bin/"
  ln -sf /usr/lib/cni/loopback "$root/opt/cni/bin/loopback"
  [ -x target/cri-tools/crictl ] && cp target/cri-tools/crictl "$root/usr/local/bin/"
  cp target/vm-cri-images/registry.k8s.io_pause_3.6.tar \
    target/vm-cri-images/registry.k8s.io_e2e-test-images_busybox_1.29-2.tar "$root/cri/images/"
  awk '/^```toml$/ {blk=""; inb=1; next} inb && /^```$/ {inb=0; if (blk ~ /runtimes\.husk\]/) print blk; next} inb {blk = blk $0 "\n"}' \
    README.md > "$root/cri/runtime.toml"
  grep -q 'SystemdCgroup = true' "$root/cri/runtime.toml"
  # The kernel's modules the pods' network and containerd's snapshots need
  # (the cloud kernel builds them as modules), with what they depend on.
  kver=$(basename "$kernel" | sed 's/^vmlinuz-//')
  mods=/lib/modules/$kver
  mkdir -p "$root$mods"
  cp "$mods"/modules.* "$root$mods/"
  python3 - "$mods" "$root" <<'PY'
import os, shutil, sys
mods, root = sys.argv[1], sys.argv[2]
dep = {}
for line in open(f"{mods}/modules.dep"):
    k, v = line.split(":", 1)
    dep[k] = v.split()
roots = ("kernel/net/netfilter/", "kernel/net/ipv4/netfilter/", "kernel/net/ipv6/netfilter/",
         "kernel/net/bridge/", "kernel/drivers/net/veth.ko", "kernel/fs/overlayfs/")
need = set()
for k in dep:
    if k.startswith(roots):
        need.add(k)
        need.update(dep[k])
for k in need:
    os.makedirs(os.path.dirname(f"{root}{mods}/{k}"), exist_ok=True)
    shutil.copy(f"{mods}/{k}", f"{root}{mods}/{k}")
PY
fi
cp tests/vm/guest.sh "$root/guest.sh"
cp tests/vm/guest-v1.sh "$root/guest-v1.sh"
cp tests/vm/guest-selinux.sh "$root/guest-selinux.sh"
mkdir -p "$root/se"
checkpolicy -U allow -c 33 -o "$root/se/policy.33" tests/vm/selinux-policy.conf > /dev/null
cp tests/vm/lib.sh "$root/lib.sh"
chmod +x "$root/init"
HUSK="$bin/husk" python3 tests/vm/make-bundles.py "$root/bundles"
if [ -z "$sd" ] && [ -z "$v1" ] && [ $mode != bench ]; then
  python3 tests/vm/apparmor-profiles.py "$root/aa" 2> >(grep -v '^Cache read/write disabled' >&2)
fi
# The OCI runtime-tools programs husk fails on the hybrid host for the host's
# reasons (conformance/runtime-tools-known.txt, WHERE=host), when the suite
# was built (conformance/runtime-tools.sh): the guest runs them against husk.
rt=target/runtime-tools/src/runtime-tools
listed=$(awk '!/^#/ && $2 == "host" {print $1}' conformance/runtime-tools-known.txt)
if [ -x "$rt/runtimetest" ] && [ -n "$listed" ] && [ -z "$sd" ]; then
  mkdir -p "$root/rt/bin"
  cp "$rt/runtimetest" "$root/rt/"
  # The suite runs `tar -xf rootfs-amd64.tar.gz`; busybox's tar does not
  # detect gzip, so the guest gets it uncompressed under that name.
  gzip -dc "$rt/rootfs-amd64.tar.gz" > "$root/rt/rootfs-amd64.tar.gz"
  for p in $listed; do
    cp "$rt/bin/$p.t" "$root/rt/bin/"
  done
fi
# Under software emulation the kernel's TSC calibration against the PIT
# fails in about one boot of two, and a microvm has no HPET or PM timer to
# fall back on: the boot hangs before init. Giving the TSC frequency (the
# host's, which the emulated TSC follows) skips that calibration.
khz=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
base="console=ttyS0 quiet panic=-1 tsc_early_khz=${khz:-2000000}"
cmdline="$base HUSK_CONFORMANCE=1"
[ -n "$v1" ] && cmdline="$base HUSK_CGROUP_V1=1"
[ -n "$sd" ] && cmdline="$base systemd.show_status=0 ${HUSK_VM_EXTRA:-}"
[ -n "$se" ] && cmdline="$base lsm=landlock,lockdown,yama,integrity,selinux,bpf HUSK_SELINUX=1"
# --systemd --v1: systemd's hybrid layout (v1 controllers, the unified
# hierarchy beside them for its own tracking).
[ -n "$sd" ] && [ -n "$v1" ] &&
  cmdline="$cmdline systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0"
# Dynamically linked binaries (runc, crun) with the libraries they load.
copy_with_libs() {
  for b in "$@"; do
    mkdir -p "$root$(dirname "$b")"
    cp "$b" "$root$b"
    for lib in $(ldd "$b" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
}
[ -z "$sd" ] && [ -z "$v1" ] && [ $mode != bench ] && copy_with_libs "$(command -v runc)"
if [ $mode = bench ]; then
  cp "$bin/husk-bench" "$bin/bench-floor" "$root/bin/"
  copy_with_libs "$(command -v runc)" "$(command -v crun)"
  cmdline="$base HUSK_BENCH=1${v1:+ HUSK_CGROUP_V1=1}"
fi
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# A normal run takes about 30 s. Should a boot still hang before init
# printed anything, a watchdog ends a boot that printed no "vm: tests start"
# within 60 s (180 s for systemd's), and the guest is booted again.
# systemd's boot takes longer under emulation, and its root is larger.
mem=1536
wait_s=60
timeout_s=${HUSK_VM_TIMEOUT:-300}
# The systemd guests boot Debian and run containerd's pods besides the
# driver's tests and the bench: about 5 minutes under emulation.
[ -n "$sd" ] && mem=4096 && wait_s=180 && timeout_s=${HUSK_VM_TIMEOUT:-720}
for attempt in 1 2 3; do
  echo "vm: booting $kernel under qemu (software emulation), attempt $attempt" >&2
  start=$(date +%s)
  timeout "$timeout_s" qemu-system-x86_64 -accel tcg,thread=multi -M microvm -cpu max -m "$mem" -smp 2 \
    -nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "$cmdline" < /dev/null > "$work/raw.log" 2>&1 &
  qpid=$!
  for _ in $(seq "$wait_s"); do
    sleep 1
    grep -q '^vm: tests start' "$work/raw.log" && break
    kill -0 "$qpid" 2>/dev/null || break
  done
  if ! grep -q '^vm: tests start' "$work/raw.log"; then
    echo "vm: no sign of the guest's tests after $wait_s s; ending this boot" >&2
    kill "$qpid" 2>/dev/null || true
  fi
  wait "$qpid" || true
  tr -d '\r' < "$work/raw.log" > "$work/console.log"
  cat "$work/console.log"
  echo "vm: guest ran for $(( $(date +%s) - start )) s" >&2
  grep -q '^vm: tests start' "$work/console.log" && break
done

if [ $mode = bench ]; then
  grep -q '^| run /bin/true' "$work/console.log"
  exit
fi
line=$(grep -E '^vm-suite: [0-9]+ passed, [0-9]+ failed$' "$work/console.log" | tail -1 || true)
conf=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/console.log" | tail -1 || true)
if [ -z "$line" ]; then
  echo "vm: the guest did not report its results" >&2
  exit 1
fi
failed=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
# The pure v1, systemd and SELinux guests run no conformance suite.
[ -n "$v1$sd$se" ] && conf=${conf:-0 passed, 0 failed}
cfailed=$(echo "${conf:-0 passed, 1 failed}" | sed -E 's/.* ([0-9]+) failed$/\1/')
[ "$failed" = 0 ] && [ "$cfailed" = 0 ]
