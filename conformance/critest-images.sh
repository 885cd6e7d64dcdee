#!/usr/bin/env bash
# Makes the images critest runs, under the names it asks for, as OCI
# archives in DIR for `ctr images import`: no registry is reachable here.
# Each is built from Debian packages and small programs of our own
# (conformance/critest/), to behave as the upstream image does where a spec
# looks:
#   busybox:1.29-2   Debian's dynamic busybox with every applet a hard link
#                    (a masked /bin/ls is then really masked, as in the
#                    upstream image), `ipcs` and `pgrep` (read from /proc).
#   pause:3.6        a static pause of our own.
#   nginx:1.14-2, hostnet-nginx-amd64, httpd:2.4.39-4
#                    a static HTTP server of our own named as the server,
#                    writing its pid file, on port 80 (12003 for hostnet),
#                    its command line showing "master process" as nginx's.
#   nonewprivs:1.3   a setuid-root program printing its effective uid.
#   test-image-predefined-group
#                    user 1000 in group 50000, from the image's /etc/group.
#
#   bash conformance/critest-images.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
src=conformance/critest
work=$out/build
rm -rf "$work"
mkdir -p "$work"
image() { # ROOTFS NAME CONFIG
  python3 conformance/critest-image.py "$1" "$2" "$3" "$out/$(echo "$2" | tr '/:@' '___').tar"
}
gcc -static -O2 -o "$work/webserver" "$src/webserver.c"
gcc -static -O2 -o "$work/nnp" "$src/nnp.c"
gcc -static -O2 -o "$work/pause" "$src/pause.c"

# Debian's dynamic busybox (the static one runs applets inside its shell, so
# a masked /bin/ls is never looked at), with its libraries.
# On a fresh machine the package lists may not be there yet.
(cd "$work" && { apt-get download -qq busybox 2>/dev/null ||
  { apt-get update -qq && apt-get download -qq busybox; }; })
bb=$work/busybox
mkdir -p "$bb"
dpkg-deb -x "$work"/busybox_*.deb "$work/deb"
mkdir -p "$bb"/{bin,etc,tmp,root,proc,sys,dev,var/run,usr/local/bin,usr/sbin}
cp "$work/deb/bin/busybox" "$bb/bin/busybox"
for lib in $(ldd "$bb/bin/busybox" | grep -o '/[^ ]*'); do
  mkdir -p "$bb$(dirname "$lib")"
  cp -L "$lib" "$bb$lib"
done
for a in $("$bb/bin/busybox" --list); do
  [ -e "$bb/bin/$a" ] || ln "$bb/bin/busybox" "$bb/bin/$a"
done
# Applets Debian's build lacks, from what the kernel shows.
printf '#!/bin/sh\n# ipcs -m: the shared memory segments of this IPC namespace.\ncat /proc/sysvipc/shm\n' > "$bb/bin/ipcs"
cat > "$bb/bin/pgrep" <<'P'
#!/bin/sh
# pgrep NAME: the pids whose command name is NAME; status 1 when none.
found=1
for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ] && echo "${d#/proc/}" && found=0
done
exit $found
P
chmod 755 "$bb/bin/ipcs" "$bb/bin/pgrep"
printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n' > "$bb/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' > "$bb/etc/group"
image "$bb" registry.k8s.io/e2e-test-images/busybox:1.29-2 '{"Cmd": ["sh"]}'

# The sandbox image: its process is named pause, as upstream's (a pod's
# containers sharing its pid namespace see it as PID 1).
mkdir -p "$work/pause-root"
cp "$work/pause" "$work/pause-root/pause"
image "$work/pause-root" registry.k8s.io/pause:3.6 '{"Entrypoint": ["/pause"]}'

# Web servers: busybox's tools beside the server (the specs exec into them).
web() { # DIR SERVER-PATH
  cp -a "$bb" "$1"
  cp "$work/webserver" "$1$2"
}
web "$work/nginx" /usr/sbin/nginx
image "$work/nginx" registry.k8s.io/e2e-test-images/nginx:1.14-2 \
  '{"Cmd": ["nginx", "80", "/var/run/nginx.pid", "nginx: master process"]}'
image "$work/nginx" gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest \
  '{"Cmd": ["nginx", "12003", "/var/run/nginx.pid", "nginx: master process"]}'
web "$work/httpd" /usr/local/bin/httpd
image "$work/httpd" registry.k8s.io/e2e-test-images/httpd:2.4.39-4 \
  '{"Cmd": ["httpd", "80", "/tmp/httpd.pid", "httpd -D FOREGROUND"]}'

# nonewprivs: setuid root, run as uid 1000 by the spec.
nnp=$work/nnp-root
mkdir -p "$nnp"
cp "$work/nnp" "$nnp/nnp"
chmod 4755 "$nnp/nnp"
image "$nnp" registry.k8s.io/e2e-test-images/nonewprivs:1.3 '{"Entrypoint": ["/nnp"]}'

# A user whose group is defined only in the image.
grp=$work/group
cp -a "$bb" "$grp"
echo 'default-user:x:1000:1000::/home/default-user:/bin/sh' >> "$grp/etc/passwd"
printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >> "$grp/etc/group"
image "$grp" gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest '{"User": "1000"}'
rm -rf "$work"
