#!/usr/bin/env python3
"""Writes the guest's test bundles (config.json only; the rootfs is /rootfs in
the guest) into the directory given as the first argument."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

out = sys.argv[1]


def bundle(name, args, resources=None, namespaces=None, mounts=(), caps=None,
           cgroups_path=None, hooks=None):
    caps = caps or ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    ns = namespaces or ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    config = {
        "ociVersion": "1.2.1",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": "/rootfs", "readonly": True},
        "hostname": name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            *mounts,
        ],
        "linux": {
            "cgroupsPath": f"/vmtest/{name}" if cgroups_path is None else cgroups_path,
            "namespaces": [{"type": t} for t in ns],
        },
    }
    if not config["linux"]["cgroupsPath"]:
        del config["linux"]["cgroupsPath"]
    if hooks:
        config["hooks"] = hooks
    if resources:
        config["linux"]["resources"] = resources
    os.makedirs(f"{out}/{name}", exist_ok=True)
    with open(f"{out}/{name}/config.json", "w") as f:
        json.dump(config, f, indent=1)


grow = 'BEGIN { s = "x"; while (1) s = s s }'
bundle("oom", ["awk", grow], {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
# awk survives a refused fork (system() returns -1), where a shell would exit.
bundle("pids", ["awk", 'BEGIN { while (1) system("sleep 30 &") }'], {"pids": {"limit": 20}})
bundle("cpu", ["sh", "-c", "while :; do :; done"], {"cpu": {"quota": 20000, "period": 100000}})
hold = ('BEGIN { s = "x"; while (length(s) < 16777216) s = s s; '
        'while (1) { system("sleep 100 &"); system("sleep 0.2") } }')
bundle("update", ["awk", hold], {"memory": {"limit": 256 << 20, "swap": 256 << 20}})
bundle("count", ["sh", "-c", "sleep 100 & i=0; while :; do i=$((i+1)); echo $i > /share/n.new; mv /share/n.new /share/n; sleep 0.05; done"],
       namespaces=["ipc", "uts", "mount"],
       mounts=[{"destination": "/share", "type": "bind", "source": "/share/count", "options": ["rbind"]}])
bundle("devices", ["sh", "-c", "mknod /dev/kmsg2 c 1 11 && echo kmsg-made; "
                               "echo x 2>/dev/null > /dev/kmsg2 && echo kmsg-opened; "
                               "mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo null-opened; "
                               "head -c 1 /dev/zero | wc -c"],
       {"devices": [{"allow": False, "access": "rwm"}]}, caps=["CAP_MKNOD"])

# The systemd guest's (tests/vm/guest-systemd.sh): cgroupsPath in systemd's
# slice:prefix:name form; "" leaves it out (husk's default scope).
limits = {"memory": {"limit": 64 << 20, "swap": 64 << 20}, "pids": {"limit": 32},
          "cpu": {"quota": 50000, "period": 100000}}
bundle("sd-run", ["sleep", "1000"], limits,
       cgroups_path="kubepods-besteffort-pod1.slice:cri-containerd:sd-run")
bundle("sd-oom", ["awk", grow], {"memory": {"limit": 32 << 20, "swap": 32 << 20}},
       cgroups_path="")
bundle("sd-hook", ["true"], cgroups_path="machine.slice:husk:sd-hook",
       hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]})
bundle("sd-bad", ["true"], cgroups_path="/not/a/systemd/path")
bundle("sd-bench", ["true"], limits, cgroups_path="")

# AppArmor (guest.sh): profiles from tests/vm/apparmor-profiles.py.
def with_profile(name, profile):
    path = f"{out}/{name}/config.json"
    with open(path) as f:
        c = json.load(f)
    c["process"]["apparmorProfile"] = profile
    with open(path, "w") as f:
        json.dump(c, f, indent=1)


bundle("aa", ["sh", "-c", "cat /proc/self/attr/current; echo x > /tmp/ok && echo wrote-ok; "
              "(echo x > /tmp/denied) 2>/dev/null || echo write-denied; "
              "chown 1 /tmp/ok 2>/dev/null || echo chown-denied; exec sleep 100"],
       caps=["CAP_CHOWN", "CAP_KILL"])
with_profile("aa", "husk-test")
bundle("aa-missing", ["true"])
with_profile("aa-missing", "husk-not-loaded")
lsm_shell = ("cat /proc/self/attr/current; (echo 1 > /proc/sysrq-trigger) 2>/dev/null || echo sysrq-denied; "
             "mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>/dev/null || echo mount-denied; "
             "ls / > /dev/null && echo shell-ran")
for name, profile in [("aa-docker", "docker-default"), ("aa-cri", "cri-containerd.apparmor.d")]:
    bundle(name, ["sh", "-c", lsm_shell], caps=["CAP_SYS_ADMIN", "CAP_KILL"])
    with_profile(name, profile)

# SELinux (guest-selinux.sh): labels of tests/vm/selinux-policy.conf.
def with_labels(name, process, mount):
    path = f"{out}/{name}/config.json"
    with open(path) as f:
        c = json.load(f)
    c["process"]["selinuxLabel"] = process
    c["linux"]["mountLabel"] = mount
    with open(path, "w") as f:
        json.dump(c, f, indent=1)


se_probe = ("cat /proc/self/attr/current; echo; "
            "grep -E ' /(dev|tmp) ' /proc/self/mounts | grep -c 'context=.*container_file_t'")
bundle("se", ["sh", "-c", se_probe + "; exec sleep 100"])
with_labels("se", "system_u:system_r:container_t", "system_u:object_r:container_file_t")
bundle("se-run", ["sh", "-c", se_probe])
with_labels("se-run", "system_u:system_r:container_t", "system_u:object_r:container_file_t")

# Rootless (guest.sh, as the guest's user 1000, in a subtree delegated to it):
# the config `husk spec --rootless` writes for that user, with limits.
husk = os.environ.get("HUSK")
if husk:
    tmp = tempfile.mkdtemp()
    os.chown(tmp, 1000, 1000)
    subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                    os.path.abspath(husk), "spec", "--rootless"], cwd=tmp, check=True)
    with open(f"{tmp}/config.json") as f:
        spec = f.read()
    shutil.rmtree(tmp)
    for name, args, resources in [
        ("rl-pids", ["awk", 'BEGIN { while (1) system("sleep 30 &") }'],
         {"pids": {"limit": 20}, "memory": {"limit": 64 << 20}}),
        ("rl-oom", ["awk", grow], {"memory": {"limit": 32 << 20, "swap": 32 << 20}}),
    ]:
        c = json.loads(spec)
        c["root"]["path"] = "/rootfs"
        c["process"]["terminal"] = False
        c["process"]["args"] = args
        c["process"]["env"] = ["PATH=/bin"]
        c["linux"]["resources"] = resources
        os.makedirs(f"{out}/{name}", exist_ok=True)
        with open(f"{out}/{name}/config.json", "w") as f:
            json.dump(c, f, indent=1)
