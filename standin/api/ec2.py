"""Our EC2 endpoint, in front of moto: it answers the calls moto cannot
answer faithfully and forwards every other Action to moto unchanged.

Ours (moto has no ImportSnapshot; its RegisterImage ignores the block
device mapping and boot mode and invents a snapshot of its own; its
instances do not boot):

    ImportSnapshot, DescribeImportSnapshotTasks, CancelImportTask
        the object is read from moto's S3, checked with the rules VM Import
        documents (standin/lib/standin.py aws_check_disk: qemu-img, the VHD
        footer in Python) and converted to the snapshot's raw disk, in a
        background thread as the service does after answering.
    DescribeSnapshots, DeleteSnapshot, RegisterImage, DescribeImages,
    DeregisterImage, CreateTags (on our ids)
    RunInstances, DescribeInstances, GetConsoleOutput, TerminateInstances
        instances boot the AMI's snapshot in QEMU (standin/lib start_qemu:
        OVMF for uefi / uefi-preferred, SeaBIOS for legacy-bios, NVMe).

State lives in memory (ids, records) and under the state directory
(snapshot disks, instance directories with serial.log).
"""

import base64
import os
import re
import shutil
import tempfile
import threading

from moto.ec2.models.instance_types import INSTANCE_TYPES

from standin_lib import standin

GIB = 1 << 30
#: What EC2 returns as OwnerId for the caller's own resources (moto's
#: default account, so that `sts get-caller-identity` agrees).
ACCOUNT = "123456789012"


class ApiError(Exception):
    """An EC2 error: HTTP status, Code, Message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(kind, rid):
    texts = {
        "InvalidInstanceID.NotFound": "The instance ID '%s' does not exist",
        "InvalidAMIID.NotFound": "The image id '[%s]' does not exist",
        "InvalidSnapshot.NotFound": "The snapshot '%s' does not exist.",
    }
    return ApiError(400, kind, texts[kind] % rid)


def now_iso():
    return standin.now_iso()


def state_name(code_name):
    codes = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}
    return {"Code": codes[code_name], "Name": code_name}


class Ec2:
    """The resources of one emulated region and the Actions on them."""

    #: Actions answered here; the rest go to moto.
    OWN = ("ImportSnapshot", "DescribeImportSnapshotTasks", "CancelImportTask",
           "DescribeSnapshots", "DeleteSnapshot", "RegisterImage", "DescribeImages",
           "DeregisterImage", "RunInstances", "DescribeInstances", "GetConsoleOutput",
           "TerminateInstances", "CreateTags")

    def __init__(self, state, faults, s3):
        self.state = state
        self.faults = faults
        self.s3 = s3  # a boto3 S3 client on moto
        self.lock = threading.RLock()
        self.tasks, self.snapshots, self.images, self.instances = {}, {}, {}, {}
        self.tokens = {}  # RunInstances ClientToken -> reservation
        self.young = {}  # instance id -> NotFound answers still due
        self.deregistered = set()  # AMI ids described as nothing, not NotFound

    # ------------------------------------------------------------ helpers --

    def path(self, *parts):
        return os.path.join(self.state, *parts)

    def handle(self, action, req):
        """Run Action `action` with input `req`; returns the output dict."""
        fn = getattr(self, "op_" + action)
        with self.lock:
            return fn(req)

    def eventual(self, rid):
        """Raise the NotFound that EC2's eventual consistency gives for a
        just-created (or just-terminated) instance or AMI, while one is
        due."""
        if self.young.get(rid, 0) > 0:
            self.young[rid] -= 1
            kind = "InvalidAMIID.NotFound" if rid.startswith("ami-") else \
                "InvalidInstanceID.NotFound"
            raise not_found(kind, rid)

    # ------------------------------------------------------------- import --

    def op_ImportSnapshot(self, req):
        if self.faults.flag("no-vmimport"):
            # VM Import's "required service role" check: "The service role
            # vmimport provided does not exist or does not have sufficient
            # permissions" (VM Import/Export User Guide, troubleshooting;
            # code InvalidParameter [U]).
            raise ApiError(400, "InvalidParameter", "The service role vmimport provided "
                           "does not exist or does not have sufficient permissions")
        dc = req.get("DiskContainer") or {}
        ub = dc.get("UserBucket") or {}
        tid = standin.new_id("import-snap-")
        detail = {"Description": dc.get("Description", req.get("Description", "")),
                  "Format": str(dc.get("Format", "")).upper(), "Progress": "3",
                  "Status": "active", "StatusMessage": "pending",
                  "UserBucket": {"S3Bucket": ub.get("S3Bucket", ""),
                                 "S3Key": ub.get("S3Key", "")}}
        task = {"Description": req.get("Description", ""), "ImportTaskId": tid,
                "SnapshotTaskDetail": detail}
        self.tasks[tid] = task
        threading.Thread(target=self.import_worker, args=(tid,), daemon=True).start()
        return task

    def import_worker(self, tid):
        """Fetch, check and convert, then complete or fail the task."""
        d = self.tasks[tid]["SnapshotTaskDetail"]
        work = tempfile.mkdtemp(prefix="import-", dir=self.state)
        try:
            problem, snap = self.import_disk(d, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with self.lock:
            if d["Status"] != "active":  # cancelled meanwhile
                if snap:
                    self.drop_snapshot(snap)
                return
            d.pop("Progress", None)
            if problem:
                d.update(Status="deleted", StatusMessage=problem)
            else:
                d.pop("StatusMessage", None)
                d.update(Status="completed", SnapshotId=snap)

    def import_disk(self, d, work):
        """(problem, snapshot id) for the task detail `d`."""
        obj = os.path.join(work, "object")
        ub = d["UserBucket"]
        try:
            self.s3.download_file(ub["S3Bucket"], ub["S3Key"], obj)
        except Exception:  # noqa: BLE001 - any S3 failure reads the same
            return "ClientError: Disk validation failed [Invalid S3 source location]", None
        if self.faults.flag("import-fail"):
            return "ClientError: Disk validation failed [Unsupported specified file format]", None
        problem = standin.aws_check_disk(obj, d["Format"])
        if problem:
            return problem, None
        qfmt = {"RAW": "raw", "VHD": "vpc", "VMDK": "vmdk"}[d["Format"]]
        raw = os.path.join(work, "disk.raw")
        ok, err = standin.convert_to_raw(obj, qfmt, raw)
        if not ok:
            return "ClientError: Disk validation failed [%s]" % err, None
        return None, self.add_snapshot(raw, d)

    def add_snapshot(self, raw, detail):
        sid = standin.new_id("snap-")
        size = os.path.getsize(raw)
        os.makedirs(self.path("snapshots"), exist_ok=True)
        os.replace(raw, self.path("snapshots", sid + ".raw"))
        with self.lock:
            self.snapshots[sid] = {
                "SnapshotId": sid, "State": "completed", "Progress": "100%",
                "VolumeSize": (size + GIB - 1) // GIB, "StartTime": now_iso(),
                "OwnerId": ACCOUNT, "Encrypted": False, "VolumeId": "vol-ffffffff",
                "Description": "Created by AWS-VMImport service for %s" % detail["Description"]}
        return sid

    def op_DescribeImportSnapshotTasks(self, req):
        ids = req.get("ImportTaskIds") or sorted(self.tasks)
        out = []
        for tid in ids:
            if tid not in self.tasks:
                raise ApiError(400, "InvalidConversionTaskId.Malformed",
                               "The import task ID '%s' is not valid" % tid)
            task = self.tasks[tid]
            if task["SnapshotTaskDetail"]["Status"] == "active":
                task["SnapshotTaskDetail"].update(Progress="42",
                                                  StatusMessage="downloading/converting")
            out.append(task)
        return {"ImportSnapshotTasks": out}

    def op_CancelImportTask(self, req):
        tid = req.get("ImportTaskId", "")
        task = self.tasks.get(tid)
        if task is None:
            raise ApiError(400, "InvalidConversionTaskId",
                           "The task ID '%s' does not exist" % tid)
        d = task["SnapshotTaskDetail"]
        if d["Status"] != "active":
            raise ApiError(400, "IncorrectState", "The import task %s cannot be canceled; "
                           "it is %s" % (tid, d["Status"]))
        d.pop("Progress", None)
        d.update(Status="deleted", StatusMessage="User initiated task cancelation")
        return {"ImportTaskId": tid, "PreviousState": "active", "State": "deleting"}

    # ---------------------------------------------------------- snapshots --

    def drop_snapshot(self, sid):
        self.snapshots.pop(sid, None)
        p = self.path("snapshots", sid + ".raw")
        if os.path.exists(p):
            os.remove(p)

    def op_DescribeSnapshots(self, req):
        ids = req.get("SnapshotIds") or []
        for sid in ids:
            if sid not in self.snapshots:
                raise not_found("InvalidSnapshot.NotFound", sid)
        return {"Snapshots": [s for k, s in sorted(self.snapshots.items())
                              if not ids or k in ids]}

    def op_DeleteSnapshot(self, req):
        sid = req.get("SnapshotId", "")
        if sid not in self.snapshots:
            raise not_found("InvalidSnapshot.NotFound", sid)
        for img in self.images.values():
            if img["snapshot"] == sid:
                raise ApiError(400, "InvalidSnapshot.InUse", "The snapshot %s is currently "
                               "in use by %s" % (sid, img["ImageId"]))
        self.drop_snapshot(sid)
        return {}

    # ------------------------------------------------------------- images --

    def op_RegisterImage(self, req):
        name, root = req.get("Name", ""), req.get("RootDeviceName", "")
        mode = req.get("BootMode", "legacy-bios")
        if mode not in ("uefi", "legacy-bios", "uefi-preferred"):
            raise ApiError(400, "InvalidParameterValue",
                           "Value (%s) for parameter bootMode is invalid." % mode)
        if req.get("Architecture", "i386") != "x86_64":
            raise ApiError(400, "InvalidParameterValue", "only x86_64 images boot here")
        roots = [m for m in req.get("BlockDeviceMappings", []) if m.get("DeviceName") == root]
        if not roots:
            raise ApiError(400, "InvalidBlockDeviceMapping",
                           "The root device name %s has no mapping" % root)
        sid = (roots[0].get("Ebs") or {}).get("SnapshotId", "")
        if sid not in self.snapshots:
            raise not_found("InvalidSnapshot.NotFound", sid)
        for img in self.images.values():
            if img["Name"] == name:
                raise ApiError(400, "InvalidAMIName.Duplicate", "AMI name %s is already in use "
                               "by AMI %s" % (name, img["ImageId"]))
        ami = standin.new_id("ami-")
        self.images[ami] = {
            "ImageId": ami, "Name": name, "Architecture": "x86_64", "RootDeviceName": root,
            "RootDeviceType": "ebs", "BlockDeviceMappings": req["BlockDeviceMappings"],
            "BootMode": mode, "EnaSupport": bool(req.get("EnaSupport")), "State": "available",
            "VirtualizationType": req.get("VirtualizationType", "hvm"), "OwnerId": ACCOUNT,
            "CreationDate": now_iso(), "Tags": self.tags_for(req, "image"), "snapshot": sid}
        self.young[ami] = self.faults.number("notfound-after-register")
        return {"ImageId": ami}

    def op_DescribeImages(self, req):
        # An id EC2 never had is `InvalidAMIID.NotFound` ("The image id
        # '[ami-...]' does not exist", as the real API answers in the
        # botocore debug log of boto/botocore#2194); a recently deregistered
        # one is described as nothing, an empty list (the same issue, and
        # hashicorp/terraform-provider-aws#47945). How long "recently"
        # lasts is not documented [U]: here, for the emulator's life.
        ids = req.get("ImageIds") or []
        for ami in ids:
            if ami in self.images:
                self.eventual(ami)
            elif ami not in self.deregistered:
                raise not_found("InvalidAMIID.NotFound", ami)
        fl = filters(req)
        out = []
        for ami, img in sorted(self.images.items()):
            if (ids and ami not in ids) or not matches(img, fl, {"name": [img["Name"]]}):
                continue
            if ami not in ids and self.young.get(ami, 0) > 0:
                continue  # not visible yet to a filtered list
            out.append(public(img))
        return {"Images": out}

    def op_DeregisterImage(self, req):
        ami = req.get("ImageId", "")
        if ami not in self.images:
            raise not_found("InvalidAMIID.NotFound", ami)
        self.eventual(ami)
        del self.images[ami]
        self.deregistered.add(ami)
        return {"Return": True}

    # ---------------------------------------------------------- instances --

    def op_RunInstances(self, req):
        token = req.get("ClientToken")
        if token and token in self.tokens:
            return self.tokens[token]  # idempotent: the same reservation again
        if not req.get("SubnetId") and self.faults.flag("no-default-vpc"):
            # "VPCIdNotSpecified: You have no default VPC in which to carry
            # out the request. Specify a VPC or subnet ID" (EC2 API error
            # codes); the message is the one the API gives [U].
            raise ApiError(400, "VPCIdNotSpecified", "No default VPC for this user. GroupName "
                           "is only supported for EC2-Classic and default VPC.")
        ami = req.get("ImageId", "")
        img = self.images.get(ami)
        if img is None:
            raise not_found("InvalidAMIID.NotFound", ami)
        self.eventual(ami)
        res = {"ReservationId": standin.new_id("r-"), "OwnerId": ACCOUNT, "Groups": [],
               "Instances": [self.launch(img, req)]}
        if token:
            self.tokens[token] = res
        return res

    def launch(self, img, req):
        """Start one instance of `img` in QEMU; returns its record."""
        iid = standin.new_id("i-")
        d = self.path("instances", iid)
        os.makedirs(d)
        firmware = "bios" if img["BootMode"] == "legacy-bios" else "uefi"
        raw = self.path("snapshots", img["snapshot"] + ".raw")
        inst = {"InstanceId": iid, "ImageId": img["ImageId"],
                "InstanceType": req.get("InstanceType", "m1.small"),
                "State": state_name("pending"), "LaunchTime": now_iso(),
                "BootMode": img["BootMode"], "Tags": self.tags_for(req, "instance"),
                "SubnetId": req.get("SubnetId"), "ClientToken": req.get("ClientToken"),
                "SecurityGroups": [{"GroupId": g} for g in req.get("SecurityGroupIds", [])],
                "dir": d, "describes_left": None}
        self.instances[iid] = inst
        # standin/lib reads its faults from the environment.
        os.environ["CLOUDIMG_STANDIN_FAULTS"] = (
            "no-landmark" if self.faults.flag("no-landmark") else "")
        inst["pid"] = standin.start_qemu(d, raw, firmware, "nvme")
        self.young[iid] = self.faults.number("notfound-after-run")
        return public(inst)

    def instance(self, iid):
        inst = self.instances.get(iid)
        if inst is None:
            raise not_found("InvalidInstanceID.NotFound", iid)
        self.eventual(iid)
        return inst

    def op_DescribeInstances(self, req):
        ids = req.get("InstanceIds") or []
        for iid in ids:
            self.instance(iid)
        fl = filters(req)
        found = []
        for iid, inst in sorted(self.instances.items()):
            if ids and iid not in ids:
                continue
            if iid not in ids and self.young.get(iid, 0) > 0:
                continue  # not visible yet (or no more) to a filtered list
            self.advance(inst)
            names = [t["Value"] for t in inst["Tags"] if t["Key"] == "Name"]
            if matches(inst, fl, {"tag:Name": names,
                                  "instance-state-name": [inst["State"]["Name"]]}):
                found.append(public(inst))
        return {"Reservations": [{"ReservationId": "r-standin", "OwnerId": ACCOUNT,
                                  "Instances": found}] if found else []}

    def advance(self, inst):
        """pending -> running; shutting-down -> terminated when due."""
        name = inst["State"]["Name"]
        if name == "pending":
            inst["State"] = state_name("running")
        elif name == "shutting-down":
            if inst["describes_left"] > 0:
                inst["describes_left"] -= 1
            else:
                self.finish(inst)

    def finish(self, inst):
        standin.stop_qemu(inst["dir"])
        shutil.rmtree(inst["dir"], ignore_errors=True)
        inst["State"] = state_name("terminated")

    def op_GetConsoleOutput(self, req):
        inst = self.instance(req.get("InstanceId", ""))
        if req.get("Latest") and hypervisor(inst["InstanceType"]) != "nitro":
            # "You can optionally retrieve the latest serial console output
            # ... This option is supported on instance types that use the
            # Nitro hypervisor" (GetConsoleOutput, EC2 API reference). The
            # code and message of the refusal [U].
            raise ApiError(400, "UnsupportedOperation", "The instance type %s does not "
                           "support the latest console output. Retry without the latest "
                           "option." % inst["InstanceType"])
        data = standin.read_serial(inst["dir"]) if os.path.isdir(inst["dir"]) else b""
        out = {"InstanceId": inst["InstanceId"], "Timestamp": now_iso()}
        if data:
            out["Output"] = base64.b64encode(data).decode()
        return out

    def op_TerminateInstances(self, req):
        res = []
        for iid in req.get("InstanceIds", []):
            inst = self.instance(iid)
            if self.faults.countdown("notfound-on-terminate"):
                # "If you terminate an instance right after launching it,
                # you might get InvalidInstanceID.NotFound ... this does
                # not mean the instance is or will be terminated" [U:
                # paraphrase of AWS's eventual-consistency guidance,
                # docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html].
                raise not_found("InvalidInstanceID.NotFound", iid)
            prev = dict(inst["State"])
            if prev["Name"] != "terminated":
                inst["State"] = state_name("shutting-down")
                inst["describes_left"] = self.faults.number("shutting-down")
                self.young[iid] = self.faults.number("notfound-after-terminate")
                if inst["describes_left"] == 0:
                    self.finish(inst)
            res.append({"InstanceId": iid, "PreviousState": prev,
                        "CurrentState": state_name("shutting-down")
                        if prev["Name"] != "terminated" else prev})
        return {"TerminatingInstances": res}

    # --------------------------------------------------------------- tags --

    @staticmethod
    def tags_for(req, kind):
        tags = []
        for spec in req.get("TagSpecifications", []):
            if spec.get("ResourceType") == kind:
                tags += spec.get("Tags", [])
        return tags

    def op_CreateTags(self, req):
        for rid in req.get("Resources", []):
            rec = self.images.get(rid) or self.snapshots.get(rid) or self.instances.get(rid)
            if rec is None:
                raise ApiError(400, "InvalidID", "The ID '%s' is not valid" % rid)
            rec.setdefault("Tags", []).extend(req.get("Tags", []))
        return {}

    # ---------------------------------------------------------- leftovers --

    def leftovers(self):
        """Every resource still held: live instances, images, snapshots,
        active import tasks, and QEMU processes under the state dir."""
        with self.lock:
            out = ["instance %s %s" % (k, v["State"]["Name"])
                   for k, v in self.instances.items() if v["State"]["Name"] != "terminated"]
            out += ["image " + k for k in self.images]
            out += ["snapshot " + k for k in self.snapshots]
            out += ["import task " + k for k, t in self.tasks.items()
                    if t["SnapshotTaskDetail"]["Status"] == "active"]
        out += ["qemu pid %d" % p for p in qemus_under(self.state)]
        return out

    def shutdown(self):
        """Stop every QEMU (the emulator is going away)."""
        with self.lock:
            for inst in self.instances.values():
                if inst["State"]["Name"] != "terminated":
                    standin.stop_qemu(inst["dir"])


def hypervisor(instance_type):
    """`nitro` or `xen`: the Hypervisor moto's DescribeInstanceTypes gives
    the type (its table of EC2's instance types); an unknown type, nitro."""
    return INSTANCE_TYPES.get(instance_type, {}).get("Hypervisor", "nitro")


def public(rec):
    """A record without our private keys (lower-case ones)."""
    return {k: v for k, v in rec.items() if k[:1].isupper() and v is not None}


def filters(req):
    return {f.get("Name"): f.get("Values", []) for f in req.get("Filters", [])}


def value_matches(value, patterns):
    """EC2 filter values take wildcards: "An asterisk (*) matches zero or
    more characters, and a question mark (?) matches zero or one
    character" (EC2 API reference, Filter). Applied as EC2 does, so that a
    hostile name in a journal shows what it would really match."""
    for p in patterns:
        rx = "".join(".*" if c == "*" else ".?" if c == "?" else re.escape(c) for c in p)
        if re.fullmatch(rx, value, re.DOTALL):
            return True
    return False


def matches(rec, fl, fields):
    """Every filter matches one of the record's values for it (EC2 filter
    wildcards, `value_matches`); unknown names match."""
    for name, patterns in fl.items():
        if name in fields and not any(value_matches(v, patterns) for v in fields[name]):
            return False
    return True


def qemus_under(state):
    """Pids of live processes whose cwd is under `state`."""
    root = os.path.realpath(state)
    pids = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % e)
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + "/")) and standin.pid_alive(int(e)):
            pids.append(int(e))
    return pids

