#!/usr/bin/env python3
"""Compiles the AppArmor profiles the v2 guest loads (tests/vm/guest.sh) into
the directory given, with the host's apparmor_parser: two test profiles of
our own, and Docker's and containerd's default profiles, rendered from the
templates inside the installed dockerd and containerd binaries as those
daemons render them (imports of tunables/global and abstractions/base, the
parser's version, an unconfined daemon)."""
import os
import re
import subprocess
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

OWN = {
    # Everything but writes to /tmp/denied* and the chown capability.
    "husk-test": "  deny /tmp/denied* w,\n  deny capability chown,\n",
    # Everything but writes to /tmp/other*.
    "husk-test2": "  deny /tmp/other* w,\n",
}
ALLOW = "  file,\n  capability,\n  network,\n  mount,\n  umount,\n  pivot_root,\n  signal,\n  ptrace,\n  unix,\n"


def parser_version():
    v = subprocess.run(["apparmor_parser", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", v)
    major, minor, patch = (int(x) for x in m.groups())
    return major * 100000 + minor * 1000 + patch


def template(binary):
    data = open(binary, "rb").read()
    i = data.find(b"profile {{.Name}}")
    if i < 0:
        sys.exit(f"apparmor-profiles: no profile template in {binary}")
    start = data.rfind(b"{{range $value := .Imports}}", 0, i)
    end = data.find(b"\n}\n", i)
    return data[start:end + 3].decode()


def render(text, name, version):
    """The subset of Go's text/template these templates use."""
    text = re.sub(r"\{\{range \$value := \.Imports\}\}\n\{\{\$value\}\}\n\{\{end\}\}",
                  "#include <tunables/global>", text)
    text = re.sub(r"\{\{range \$value := \.InnerImports\}\}\n  \{\{\$value\}\}\n\{\{end\}\}",
                  "  #include <abstractions/base>", text)

    def cond(m):
        return m.group(2) if version >= int(m.group(1)) else ""
    text = re.sub(r"\{\{if ge \.Version (\d+)\}\}(.*?)\{\{end\}\}", cond, text, flags=re.S)
    text = text.replace("{{.Name}}", name).replace("{{.DaemonProfile}}", "unconfined")
    if "{{" in text:
        sys.exit(f"apparmor-profiles: unrendered template text in {name}:\n{text}")
    return text


def compile_profile(name, text):
    src = os.path.join(out, name)
    with open(src, "w") as f:
        f.write(text)
    with open(src + ".bin", "wb") as f:
        subprocess.run(["apparmor_parser", "--skip-kernel-load", "--stdout", src],
                       stdout=f, check=True)


version = parser_version()
for name, rules in OWN.items():
    compile_profile(name, "abi <abi/3.0>,\nprofile %s flags=(attach_disconnected,mediate_deleted) {\n%s%s}\n"
                    % (name, ALLOW, rules))
compile_profile("docker-default", render(template("/usr/sbin/dockerd"), "docker-default", version))
compile_profile("cri-containerd.apparmor.d",
                render(template("/usr/bin/containerd"), "cri-containerd.apparmor.d", version))
