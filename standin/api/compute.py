"""Our Compute Engine API endpoint (compute/v1, JSON over HTTP) for the
real `gcloud`: the methods cloudimg's GCP flow reaches.

    images.insert / get / delete        rawDisk.source is read from the
        fake GCS server and checked with the rules GCP documents
        (standin/lib/standin.py gcp_check_tarball), then extracted with
        GNU tar.
    instances.insert / get / delete     boots the image in QEMU (OVMF when
        guestOsFeatures has UEFI_COMPATIBLE, else SeaBIOS; virtio-scsi).
    instances.getSerialPortOutput       serial port 1 from byte `start`.
    globalOperations / zoneOperations get and wait.

Operations finish before they are returned (status DONE), except images
insert, which runs in a thread and is RUNNING until the image is READY
or the import failed (the operation then carries the error).
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from standin_lib import standin

GIB = 1 << 30


class ApiError(Exception):
    """A Compute API error: HTTP status, reason, message."""

    def __init__(self, status, reason, message, domain="global"):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.domain = domain

    def body(self):
        return {"error": {"code": self.status, "message": self.message,
                          "errors": [{"domain": self.domain, "reason": self.reason,
                                      "message": self.message}]}}


def not_found(kind, project, name, where="global"):
    return ApiError(404, "notFound", "The resource 'projects/%s/%s/%s/%s' was not found"
                    % (project, where, kind, name))


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())


class Compute:
    """Images, instances and operations of one emulated project set."""

    def __init__(self, state, faults, gcs_url, base):
        self.state, self.faults, self.gcs_url, self.base = state, faults, gcs_url, base
        self.lock = threading.RLock()
        self.images, self.instances, self.ops = {}, {}, {}
        #: Fault `visible-after-delete=N`: (kind, name) -> [gets left,
        #: the record as still described].
        self.ghosts = {}

    def path(self, *parts):
        return os.path.join(self.state, *parts)

    def link(self, rel):
        return "%s/compute/v1/%s" % (self.base, rel)

    # --------------------------------------------------------- operations --

    def operation(self, project, where, kind, target, op_type, done=True):
        """Record and return an operation on `target` (a relative path)."""
        name = "operation-%d-%s" % (time.time_ns(), standin.new_id("")[:8])
        scope = "global" if where == "global" else "zones/" + where
        op = {"kind": "compute#operation", "id": str(time.time_ns()), "name": name,
              "operationType": op_type, "targetLink": self.link(target),
              "status": "DONE" if done else "RUNNING", "progress": 100 if done else 0,
              "insertTime": now_rfc3339(), "user": "standin@example.com",
              "selfLink": self.link("projects/%s/%s/operations/%s" % (project, scope, name))}
        if where != "global":
            op["zone"] = self.link("projects/%s/zones/%s" % (project, where))
        self.ops[name] = op
        return op

    def get_operation(self, name):
        op = self.ops.get(name)
        if op is None:
            raise ApiError(404, "notFound", "The resource 'operations/%s' was not found" % name)
        return op

    def wait_operation(self, name, timeout=30.0):
        """operations.wait: return once DONE or after `timeout` seconds."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            with self.lock:
                op = self.get_operation(name)
                if op["status"] == "DONE":
                    return op
            time.sleep(0.2)
        return self.get_operation(name)

    # ------------------------------------------------------------- images --

    def insert_image(self, project, body):
        name = body.get("name", "")
        if name in self.images:
            raise ApiError(409, "alreadyExists", "The resource 'projects/%s/global/images/%s' "
                           "already exists" % (project, name))
        source = (body.get("rawDisk") or {}).get("source", "")
        img = {"kind": "compute#image", "id": str(time.time_ns()), "name": name,
               "status": "PENDING", "sourceType": "RAW", "rawDisk": {"source": source},
               "guestOsFeatures": body.get("guestOsFeatures", []),
               "labels": body.get("labels", {}), "family": body.get("family"),
               "creationTimestamp": now_rfc3339(),
               "selfLink": self.link("projects/%s/global/images/%s" % (project, name))}
        self.images[name] = img
        op = self.operation(project, "global", "images",
                            "projects/%s/global/images/%s" % (project, name), "insert", False)
        threading.Thread(target=self.import_image, args=(img, op), daemon=True).start()
        return op

    def import_image(self, img, op):
        """Fetch the tarball, apply the rawDisk rules, extract disk.raw."""
        work = tempfile.mkdtemp(prefix="image-", dir=self.state)
        try:
            problem = self.fetch_and_extract(img, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with self.lock:
            if problem:
                self.images.pop(img["name"], None)
                op["error"] = {"errors": [{"code": "INVALID_IMAGE_FILE",
                                           "message": problem}]}
                op["httpErrorStatusCode"], op["httpErrorMessage"] = 400, "BAD REQUEST"
            else:
                img["status"] = "READY"
            op.update(status="DONE", progress=100, endTime=now_rfc3339())

    def fetch_and_extract(self, img, work):
        """None when the image is READY (its disk in images/NAME.raw), else
        the message GCP gives."""
        obj = os.path.join(work, "object")
        try:
            self.fetch_gcs(img["rawDisk"]["source"], obj)
        except (OSError, ValueError) as e:
            return "The resource '%s' of type 'GCS object' was not found. (%s)" % (
                img["rawDisk"]["source"], e)
        if self.faults.flag("import-fail"):
            return "The tar archive is not a valid image."
        problem = standin.gcp_check_tarball(obj)
        if problem:
            return problem
        r = subprocess.run(["tar", "-xzf", obj, "-C", work, "disk.raw"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return "The tar archive is not a valid image."
        os.makedirs(self.path("images"), exist_ok=True)
        os.replace(os.path.join(work, "disk.raw"), self.path("images", img["name"] + ".raw"))
        img["archiveSizeBytes"] = str(os.path.getsize(obj))
        img["diskSizeGb"] = str(os.path.getsize(self.path("images", img["name"] + ".raw"))
                                // GIB)
        return None

    def fetch_gcs(self, source, dest):
        """Download `source` (gs://B/O, https://storage.googleapis.com/B/O,
        or the JSON API's .../storage/v1/b/B/o/O, which gcloud sends) from
        the fake GCS server."""
        u = urllib.parse.urlparse(source)
        api = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", u.path)
        if u.scheme == "gs":
            bucket, obj = u.netloc, u.path.lstrip("/")
        elif api:  # the JSON API's object URL, as gcloud sends it
            bucket, obj = api.group(1), api.group(2)
        else:  # https://storage.googleapis.com/BUCKET/OBJECT
            bucket, _, obj = u.path.lstrip("/").partition("/")
        if not bucket or not obj:
            raise ValueError("not a Cloud Storage URL")
        url = "%s/storage/v1/b/%s/o/%s?alt=media" % (
            self.gcs_url, urllib.parse.quote(bucket, safe=""),
            urllib.parse.quote(urllib.parse.unquote(obj), safe=""))
        with urllib.request.urlopen(url, timeout=120) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)

    def haunt(self, kind, rec, status):
        """Fault `visible-after-delete=N`: the deleted resource is still
        described (in `status`) by the next N gets, as a deletion that
        has not finished everywhere yet would be."""
        n = self.faults.number("visible-after-delete")
        if n > 0:
            ghost = dict(rec, status=status)
            ghost.pop("dir", None)
            self.ghosts[(kind, rec["name"])] = [n, ghost]

    def ghost(self, kind, name):
        """The still-visible record of a deleted resource, or None."""
        g = self.ghosts.get((kind, name))
        if g is None or g[0] <= 0:
            return None
        g[0] -= 1
        return g[1]

    def get_image(self, project, name):
        img = self.images.get(name)
        if img is None:
            img = self.ghost("images", name)
        if img is None:
            raise not_found("images", project, name)
        return {k: v for k, v in img.items() if v is not None}

    def delete_image(self, project, name):
        if name not in self.images:
            raise not_found("images", project, name)
        self.haunt("images", self.images.pop(name), "DELETING")
        p = self.path("images", name + ".raw")
        if os.path.exists(p):
            os.remove(p)
        return self.operation(project, "global", "images",
                              "projects/%s/global/images/%s" % (project, name), "delete")

    # ---------------------------------------------------------- instances --

    def insert_instance(self, project, zone, body):
        name = body.get("name", "")
        if name in self.instances:
            raise ApiError(409, "alreadyExists", "The resource 'projects/%s/zones/%s/instances/"
                           "%s' already exists" % (project, zone, name))
        img = self.boot_image(project, body)
        self.check_external_ip(project, zone, name, body)
        d = self.path("instances", name)
        os.makedirs(d)
        uefi = any(f.get("type") == "UEFI_COMPATIBLE" for f in img.get("guestOsFeatures", []))
        rel = "projects/%s/zones/%s/instances/%s" % (project, zone, name)
        inst = {"kind": "compute#instance", "id": str(time.time_ns()), "name": name,
                "status": "RUNNING", "zone": self.link("projects/%s/zones/%s" % (project, zone)),
                "machineType": body.get("machineType", ""),
                "networkInterfaces": body.get("networkInterfaces", []),
                "disks": body.get("disks", []), "labels": body.get("labels", {}),
                "creationTimestamp": now_rfc3339(), "selfLink": self.link(rel), "dir": d}
        self.instances[name] = inst
        os.environ["CLOUDIMG_STANDIN_FAULTS"] = (
            "no-landmark" if self.faults.flag("no-landmark") else "")
        standin.start_qemu(d, self.path("images", img["name"] + ".raw"),
                           "uefi" if uefi else "bios", "scsi")
        return self.operation(project, zone, "instances", rel, "insert")

    def check_external_ip(self, project, zone, name, body):
        """Fault `no-external-ip`: the organization policy
        constraints/compute.vmExternalIpAccess forbids external addresses
        (an access config on any interface)."""
        if not self.faults.flag("no-external-ip"):
            return
        if any(n.get("accessConfigs") for n in body.get("networkInterfaces", [])):
            raise ApiError(412, "conditionNotMet", "Constraint constraints/compute."
                           "vmExternalIpAccess violated for project %s. Add instance "
                           "projects/%s/zones/%s/instances/%s to the constraint to use "
                           "external IP with it." % (project, project, zone, name))

    def boot_image(self, project, body):
        """The READY image the boot disk's sourceImage names."""
        disks = [d for d in body.get("disks", []) if d.get("boot")] or body.get("disks", [])
        src = ((disks[0] if disks else {}).get("initializeParams") or {}).get("sourceImage", "")
        name = src.rstrip("/").rsplit("/", 1)[-1]
        img = self.images.get(name)
        if img is None or img["status"] != "READY":
            raise ApiError(400, "invalid", "Invalid value for field 'resource.disks[0]."
                           "initializeParams.sourceImage': '%s'. The referenced image resource "
                           "cannot be found." % src)
        return img

    def instance(self, project, zone, name):
        inst = self.instances.get(name)
        if inst is None:
            raise not_found("instances", project, name, "zones/" + zone)
        return inst

    def get_instance(self, project, zone, name):
        ghost = None if name in self.instances else self.ghost("instances", name)
        if ghost is not None:
            return ghost
        inst = self.instance(project, zone, name)
        return {k: v for k, v in inst.items() if k != "dir"}

    def delete_instance(self, project, zone, name):
        inst = self.instance(project, zone, name)
        standin.stop_qemu(inst["dir"])
        shutil.rmtree(inst["dir"], ignore_errors=True)
        self.haunt("instances", self.instances.pop(name), "STOPPING")
        return self.operation(project, zone, "instances", "projects/%s/zones/%s/instances/%s"
                              % (project, zone, name), "delete")

    def serial(self, project, zone, name, start):
        inst = self.instance(project, zone, name)
        data = standin.read_serial(inst["dir"])
        start = min(max(start, 0), len(data))
        return {"kind": "compute#serialPortOutput",
                "contents": data[start:].decode("utf-8", "replace"),
                "start": str(start), "next": str(len(data)),
                "selfLink": inst["selfLink"] + "/serialPort"}

    # ---------------------------------------------------------- leftovers --

    def leftovers(self):
        with self.lock:
            out = ["image " + k for k in self.images]
            out += ["instance " + k for k in self.instances]
            out += ["%s %s (deleted, still described %d more times)"
                    % (kind[:-1], name, g[0])
                    for (kind, name), g in self.ghosts.items() if g[0] > 0]
        return out

    def shutdown(self):
        with self.lock:
            for inst in self.instances.values():
                standin.stop_qemu(inst["dir"])
