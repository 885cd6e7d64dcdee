#!/usr/bin/env python3
"""critest-image.py ROOTFS_DIR NAME CONFIG_JSON OUT.tar

Writes an OCI image archive of one layer (ROOTFS_DIR as it is) named NAME,
with CONFIG_JSON over a default PATH and working directory, for
`ctr images import`: critest's images, made here because no registry is
reachable (conformance/critest.sh)."""
import hashlib, json, os, subprocess, sys, tempfile, shutil
rootfs, name, cfg, out = sys.argv[1:5]
d = tempfile.mkdtemp()
os.makedirs(f"{d}/blobs/sha256")
def blob(data, media):
    h = hashlib.sha256(data).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(data)
    return {"mediaType": media, "digest": "sha256:" + h, "size": len(data)}
layer = subprocess.run(["tar", "-C", rootfs, "-cf", "-", "."], check=True, capture_output=True).stdout
ld = blob(layer, "application/vnd.oci.image.layer.v1.tar")
conf = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"}
conf.update(json.loads(cfg))
cd = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": conf,
                      "rootfs": {"type": "layers", "diff_ids": [ld["digest"]]}}).encode(),
          "application/vnd.oci.image.config.v1+json")
md = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": cd, "layers": [ld]}).encode(), "application/vnd.oci.image.manifest.v1+json")
md["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
md["platform"] = {"architecture": "amd64", "os": "linux"}
json.dump({"schemaVersion": 2, "manifests": [md]}, open(f"{d}/index.json", "w"))
open(f"{d}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
subprocess.run(["tar", "-C", d, "-cf", out, "oci-layout", "index.json", "blobs"], check=True)
shutil.rmtree(d)
