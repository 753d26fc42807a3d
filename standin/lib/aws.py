"""The `aws` stand-in (see standin.py)."""

import base64
import json
import os
import re
import shutil
import sys

from standin import (CliError, aws_check_disk, convert_to_raw, due, fault_count, faults,
                     fault_ops, new_id,
                     now_iso, one, parse_args, path, read_json, read_serial, start_qemu,
                     stop_qemu, transient_due, write_json, GIB)

BOOLS = {"ena-support", "no-ena-support", "latest", "no-latest", "dry-run", "no-dry-run",
         "quiet", "no-cli-pager", "recursive", "only-show-errors"}


def fail(code, op, message):
    """The AWS CLI's service error shape; exit status 254 (CLI v2)."""
    raise CliError("\nAn error occurred (%s) when calling the %s operation: %s\n"
                   % (code, op, message), 254)


def inject(key, op):
    if transient_due(key):
        fail("RequestLimitExceeded", op, "Request limit exceeded.")
    if key in fault_ops("quota"):
        fail("VcpuLimitExceeded", op, "You have requested more vCPU capacity than your "
             "current vCPU limit of 0 allows for the instance bucket that the specified "
             "instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-"
             "request to request an adjustment to this limit.")
    if key in fault_ops("permission"):
        fail("UnauthorizedOperation", op, "You are not authorized to perform this operation.")


def out(value):
    print(json.dumps(value, indent=4))


def hidden(record_p, rec, code, op, what):
    """Eventual consistency: a resource made under `notfound-after-create`
    answers NotFound to the next `hidden` calls that name it (AWS: "its ID
    might not have propagated throughout the system")."""
    n = rec.get("standin", {}).get("hidden", 0)
    if n > 0:
        rec["standin"]["hidden"] = n - 1
        write_json(record_p, rec)
        fail(code, op, "The %s does not exist" % what)


# -------------------------------------------------------------------- s3 ----


def split_s3(uri):
    if not uri.startswith("s3://"):
        raise CliError("\nparameter validation failed: not an s3 URI: %s\n" % uri, 252)
    b, _, k = uri[5:].partition("/")
    return b, k


def s3_cp(args):
    pos, flags = parse_args(args, BOOLS)
    src, dst = pos
    b, k = split_s3(dst)
    if transient_due("s3-cp"):
        raise CliError("upload failed: %s to %s Could not connect to the endpoint URL: "
                       "\"https://%s.s3.amazonaws.com/%s\"\n" % (src, dst, b, k), 1)
    if "s3-cp" in fault_ops("permission"):
        raise CliError("upload failed: %s to %s An error occurred (AccessDenied) when calling "
                       "the PutObject operation: Access Denied\n" % (src, dst), 1)
    if not os.path.isdir(path("s3", b)):
        raise CliError("upload failed: %s to %s An error occurred (NoSuchBucket) when calling "
                       "the PutObject operation: The specified bucket does not exist\n"
                       % (src, dst), 1)
    target = path("s3", b, k)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(src, target + ".uploading")
    os.replace(target + ".uploading", target)
    if "only-show-errors" not in flags:
        print("upload: %s to %s" % (src, dst))


def s3_rm(args):
    pos, _ = parse_args(args, BOOLS)
    b, k = split_s3(pos[0])
    target = path("s3", b, k)
    if os.path.isfile(target):
        os.remove(target)
    print("delete: %s" % pos[0])  # S3 deletes are idempotent


# ---------------------------------------------------------- import tasks ----


def task_path(tid):
    return path("aws", "tasks", tid + ".json")


def task_files(tid):
    """The task record, the worker's result, and the worker's directory."""
    return (task_path(tid), path("aws", "tasks", tid + ".result.json"),
            path("aws", "tasks", tid + ".work"))


def import_worker(tid, obj, fmt, workdir):
    """Validate and convert in the background, like the service does after
    ImportSnapshot has returned; writes the result file at the end."""
    _, result_p, _ = task_files(tid)
    if not os.path.isfile(obj):
        problem = "ClientError: Disk validation failed [Invalid S3 source location]"
    elif "import-fail" in faults():
        problem = "ClientError: Disk validation failed [Unsupported specified file format]"
    else:
        problem = aws_check_disk(obj, fmt)
    result = {"problem": problem}
    if problem is None:
        snap = new_id("snap-")
        # Claimed before anything exists, so a cancel can clean up.
        with open(os.path.join(workdir, "snap.id"), "w") as f:
            f.write(snap)
        tmp = os.path.join(workdir, "disk.raw")
        qfmt = {"RAW": "raw", "VHD": "vpc", "VMDK": "vmdk"}[fmt]
        ok, err = convert_to_raw(obj, qfmt, tmp)
        if not ok:
            result["problem"] = "ClientError: Disk validation failed [%s]" % err
        else:
            size = os.path.getsize(tmp)
            os.makedirs(path("aws", "snapshots"), exist_ok=True)
            os.replace(tmp, path("aws", "snapshots", snap + ".raw"))
            write_json(path("aws", "snapshots", snap + ".json"), {
                "SnapshotId": snap, "State": "completed", "Progress": "100%",
                "VolumeSize": (size + GIB - 1) // GIB, "StartTime": now_iso(),
                "Description": "Created by AWS-VMImport service for %s" % tid,
                "Encrypted": False})
            result["snapshot"] = snap
    write_json(result_p, result)


def import_snapshot(args):
    op = "ImportSnapshot"
    _, flags = parse_args(args, BOOLS)
    inject("import-snapshot", op)
    if "no-vmimport" in faults():
        fail("InvalidParameter", op, "The service role vmimport provided does not exist or "
             "does not have sufficient permissions")
    try:
        dc = json.loads(one(flags, "disk-container", ""))
    except ValueError:
        raise CliError("\nError parsing parameter '--disk-container': Invalid JSON\n", 252)
    fmt = str(dc.get("Format", "")).upper()
    ub = dc.get("UserBucket") or {}
    bucket, key = ub.get("S3Bucket", ""), ub.get("S3Key", "")
    tid = new_id("import-snap-")
    desc = one(flags, "description", "")
    detail = {"Description": dc.get("Description", desc), "Format": fmt,
              "UserBucket": {"S3Bucket": bucket, "S3Key": key}, "Progress": "3",
              "Status": "active", "StatusMessage": "pending"}
    task = {"Description": desc, "ImportTaskId": tid, "SnapshotTaskDetail": detail}
    task_p, _, workdir = task_files(tid)
    write_json(task_p, task)
    os.makedirs(workdir, exist_ok=True)
    if os.fork() == 0:  # the worker: detached, like the service itself
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.chdir(workdir)
            import_worker(tid, path("s3", bucket, key), fmt, workdir)
            os.chdir("/")
            shutil.rmtree(workdir, ignore_errors=True)
        finally:
            os._exit(0)
    out(task)


def describe_import_snapshot_tasks(args):
    op = "DescribeImportSnapshotTasks"
    _, flags = parse_args(args, BOOLS)
    inject("describe-import-snapshot-tasks", op)
    ids = flags.get("import-task-ids", [])
    if not ids:
        d = path("aws", "tasks")
        ids = sorted(n[:-5] for n in os.listdir(d) if n.endswith(".json")
                     and not n.endswith(".result.json")) if os.path.isdir(d) else []
    result = []
    for tid in ids:
        task_p, result_p, _ = task_files(tid)
        if not os.path.exists(task_p):
            fail("InvalidConversionTaskId.Malformed", op,
                 "The import task ID '%s' is not valid" % tid)
        task = read_json(task_p)
        d = task["SnapshotTaskDetail"]
        if d["Status"] == "active":
            if os.path.exists(result_p):
                r = read_json(result_p)
                d.pop("Progress", None)
                if r.get("problem"):
                    d.update(Status="deleted", StatusMessage=r["problem"])
                else:
                    d.pop("StatusMessage", None)
                    d.update(Status="completed", SnapshotId=r["snapshot"])
            else:
                d.update(Progress="42", StatusMessage="downloading/converting")
            write_json(task_p, task)
        result.append(task)
    out({"ImportSnapshotTasks": result})


def cancel_import_task(args):
    op = "CancelImportTask"
    _, flags = parse_args(args, BOOLS)
    tid = one(flags, "import-task-id", "")
    task_p, result_p, workdir = task_files(tid)
    if not os.path.exists(task_p):
        fail("InvalidConversionTaskId", op, "The task ID '%s' does not exist" % tid)
    task = read_json(task_p)
    d = task["SnapshotTaskDetail"]
    if d["Status"] != "active":
        fail("IncorrectState", op, "The import task %s cannot be canceled; it is %s"
             % (tid, d["Status"]))
    # Stop the worker; a cancelled task leaves no snapshot behind.
    stop_qemu(workdir)
    snaps = []
    claim = os.path.join(workdir, "snap.id")
    if os.path.exists(claim):
        with open(claim) as f:
            snaps.append(f.read().strip())
    if os.path.exists(result_p):
        snaps.append(read_json(result_p).get("snapshot"))
        os.remove(result_p)
    for snap in filter(None, snaps):
        for ext in (".json", ".raw"):
            q = path("aws", "snapshots", snap + ext)
            if os.path.exists(q):
                os.remove(q)
    shutil.rmtree(workdir, ignore_errors=True)
    d.pop("Progress", None)
    d.update(Status="deleted", StatusMessage="User initiated task cancelation")
    write_json(task_p, task)
    out({"ImportTaskId": tid, "PreviousState": "active", "State": "deleting"})


# -------------------------------------------------------------- snapshots ----


def delete_snapshot(args):
    op = "DeleteSnapshot"
    _, flags = parse_args(args, BOOLS)
    inject("delete-snapshot", op)
    sid = one(flags, "snapshot-id", "")
    meta = path("aws", "snapshots", sid + ".json")
    if not os.path.exists(meta):
        fail("InvalidSnapshot.NotFound", op, "The snapshot '%s' does not exist." % sid)
    for name in os.listdir(path("aws", "images")) if os.path.isdir(path("aws", "images")) else []:
        img = read_json(path("aws", "images", name))
        for m in img.get("BlockDeviceMappings", []):
            if (m.get("Ebs") or {}).get("SnapshotId") == sid:
                fail("InvalidSnapshot.InUse", op, "The snapshot %s is currently in use by %s"
                     % (sid, img["ImageId"]))
    os.remove(meta)
    raw = path("aws", "snapshots", sid + ".raw")
    if os.path.exists(raw):
        os.remove(raw)


def describe_snapshots(args):
    op = "DescribeSnapshots"
    _, flags = parse_args(args, BOOLS)
    found = []
    for sid in flags.get("snapshot-ids", []):
        meta = path("aws", "snapshots", sid + ".json")
        if not os.path.exists(meta):
            fail("InvalidSnapshot.NotFound", op, "The snapshot '%s' does not exist." % sid)
        found.append(read_json(meta))
    out({"Snapshots": found})


# ----------------------------------------------------------------- images ----


def register_image(args):
    op = "RegisterImage"
    _, flags = parse_args(args, BOOLS)
    inject("register-image", op)
    name = one(flags, "name")
    if not name:
        fail("MissingParameter", op, "The request must contain the parameter name")
    try:
        bdm = json.loads(one(flags, "block-device-mappings", "[]"))
    except ValueError:
        raise CliError("\nError parsing parameter '--block-device-mappings': Invalid JSON\n", 252)
    root = one(flags, "root-device-name")
    mode = one(flags, "boot-mode", "legacy-bios")
    if mode not in ("uefi", "legacy-bios", "uefi-preferred"):
        fail("InvalidParameterValue", op, "Value (%s) for parameter bootMode is invalid." % mode)
    arch = one(flags, "architecture", "i386")
    if arch != "x86_64":
        fail("InvalidParameterValue", op, "The standin only boots x86_64 images")
    root_map = [m for m in bdm if m.get("DeviceName") == root]
    if not root_map:
        fail("InvalidBlockDeviceMapping", op, "The root device name %s has no mapping" % root)
    sid = (root_map[0].get("Ebs") or {}).get("SnapshotId", "")
    if not os.path.exists(path("aws", "snapshots", sid + ".json")):
        fail("InvalidSnapshot.NotFound", op, "The snapshot '%s' does not exist." % sid)
    images = path("aws", "images")
    if os.path.isdir(images):
        for n in os.listdir(images):
            if read_json(os.path.join(images, n)).get("Name") == name:
                fail("InvalidAMIName.Duplicate", op,
                     "AMI name %s is already in use by AMI %s" % (name, n[:-5]))
    ami = new_id("ami-")
    write_json(path("aws", "images", ami + ".json"), {
        "ImageId": ami, "Name": name, "Architecture": arch, "RootDeviceName": root,
        "RootDeviceType": "ebs", "BlockDeviceMappings": bdm, "BootMode": mode,
        "EnaSupport": "ena-support" in flags, "State": "available",
        "VirtualizationType": one(flags, "virtualization-type", "hvm"),
        "CreationDate": now_iso(), "OwnerId": "123456789012",
        "Tags": [t for spec in flags.get("tag-specifications", [])
                 for s in json.loads(spec) if s.get("ResourceType") == "image"
                 for t in s.get("Tags", [])],
        "standin": {"hidden": fault_count("notfound-after-create", "register-image") or 0}})
    out({"ImageId": ami})


def filters(flags):
    out_ = {}
    for f in flags.get("filters", []):
        parts = dict(p.split("=", 1) for p in str(f).split(",", 1))
        out_[parts.get("Name")] = parts.get("Values", "").split(",")
    return out_


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


def describe_images(args):
    op = "DescribeImages"
    _, flags = parse_args(args, BOOLS)
    ids = flags.get("image-ids", [])
    fl = filters(flags)
    images = []
    d = path("aws", "images")
    for ami in ids:
        p = os.path.join(d, ami + ".json")
        if not os.path.exists(p):
            fail("InvalidAMIID.NotFound", op, "The image id '[%s]' does not exist" % ami)
        hidden(p, read_json(p), "InvalidAMIID.NotFound", op, "image id '[%s]'" % ami)
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        img = read_json(os.path.join(d, n))
        if ids and img["ImageId"] not in ids:
            continue
        if "name" in fl and not value_matches(img["Name"], fl["name"]):
            continue
        images.append({k: v for k, v in img.items() if k != "standin"})
    out({"Images": images})


def deregister_image(args):
    op = "DeregisterImage"
    _, flags = parse_args(args, BOOLS)
    inject("deregister-image", op)
    ami = one(flags, "image-id", "")
    p = path("aws", "images", ami + ".json")
    if not os.path.exists(p):
        fail("InvalidAMIID.NotFound", op, "The image id '[%s]' does not exist" % ami)
    hidden(p, read_json(p), "InvalidAMIID.NotFound", op, "image id '[%s]'" % ami)
    os.remove(p)
    out({"Return": True})


# -------------------------------------------------------------- instances ----


def inst_dir(iid):
    return path("aws", "instances", iid)


def by_token(token):
    """The instance an earlier run-instances with this client token made:
    "If you repeat the request with the same client token, the same
    response is returned" (EC2, Ensuring idempotency)."""
    d = path("aws", "instances")
    for iid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        p = os.path.join(d, iid, "instance.json")
        if os.path.exists(p) and token and read_json(p).get("ClientToken") == token:
            return read_json(p)
    return None


def run_instances(args):
    op = "RunInstances"
    _, flags = parse_args(args, BOOLS)
    inject("run-instances", op)
    token = one(flags, "client-token", "")
    if len(token) > 64:
        fail("InvalidParameterValue", op, "Client token is longer than 64 characters")
    ami = one(flags, "image-id", "")
    earlier = by_token(token)
    if earlier is not None:
        if earlier["ImageId"] != ami:
            fail("IdempotentParameterMismatch", op, "The client token %s was used with "
                 "different parameters" % token)
        out({"ReservationId": new_id("r-"), "OwnerId": "123456789012", "Groups": [],
             "Instances": [{k: v for k, v in earlier.items() if k != "standin"}]})
        return
    subnet = one(flags, "subnet-id")
    if subnet is None and "no-default-vpc" in faults():
        fail("VPCIdNotSpecified", op, "No default VPC for this user. GroupName is only "
             "supported for EC2-Classic and default VPC.")
    p = path("aws", "images", ami + ".json")
    if not os.path.exists(p):
        fail("InvalidAMIID.NotFound", op, "The image id '[%s]' does not exist" % ami)
    hidden(p, read_json(p), "InvalidAMIID.NotFound", op, "image id '[%s]'" % ami)
    img = read_json(p)
    sid = [m for m in img["BlockDeviceMappings"]
           if m.get("DeviceName") == img["RootDeviceName"]][0]["Ebs"]["SnapshotId"]
    raw = path("aws", "snapshots", sid + ".raw")
    # uefi-preferred boots UEFI on instance types that support it (all the
    # Nitro types cloudimg uses).
    firmware = "bios" if img["BootMode"] == "legacy-bios" else "uefi"
    iid = new_id("i-")
    d = inst_dir(iid)
    os.makedirs(d, exist_ok=True)
    tags = []
    for spec in flags.get("tag-specifications", []):
        try:
            for s in json.loads(spec):
                if s.get("ResourceType") == "instance":
                    tags += s.get("Tags", [])
        except (ValueError, AttributeError):
            pass
    inst = {"InstanceId": iid, "ImageId": ami,
            "InstanceType": one(flags, "instance-type", "m1.small"),
            "State": {"Code": 0, "Name": "pending"}, "LaunchTime": now_iso(),
            "BootMode": img["BootMode"], "Tags": tags, "ClientToken": token,
            "SubnetId": subnet or "subnet-0default0",
            "SecurityGroups": [{"GroupId": g} for g in flags.get("security-group-ids", [])],
            "standin": {"pid": None, "firmware": firmware, "disk": "nvme",
                        "hidden": fault_count("notfound-after-create", "run-instances") or 0}}
    # Recorded before QEMU starts, so terminate always finds it.
    write_json(os.path.join(d, "instance.json"), inst)
    inst["standin"]["pid"] = start_qemu(d, raw, firmware, "nvme")
    # The answer says pending; describes from now on say running.
    write_json(os.path.join(d, "instance.json"),
               dict(inst, State={"Code": 16, "Name": "running"}))
    if transient_due("run-instances", "lost-response"):
        fail("RequestLimitExceeded", op, "Request limit exceeded.")
    out({"ReservationId": new_id("r-"), "OwnerId": "123456789012", "Groups": [],
         "Instances": [{k: v for k, v in inst.items() if k != "standin"}]})


def describe_instances(args):
    op = "DescribeInstances"
    _, flags = parse_args(args, BOOLS)
    ids = flags.get("instance-ids", [])
    fl = filters(flags)
    found = []
    for iid in ids:
        p = os.path.join(inst_dir(iid), "instance.json")
        if not os.path.exists(p):
            fail("InvalidInstanceID.NotFound", op, "The instance ID '%s' does not exist" % iid)
        hidden(p, read_json(p), "InvalidInstanceID.NotFound", op, "instance ID '%s'" % iid)
        settle_termination(iid)
    d = path("aws", "instances")
    for iid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        inst = read_json(os.path.join(d, iid, "instance.json"))
        if ids and iid not in ids:
            continue
        tag_name = [t["Value"] for t in inst.get("Tags", []) if t.get("Key") == "Name"]
        if "tag:Name" in fl and not any(value_matches(t, fl["tag:Name"]) for t in tag_name):
            continue
        if ("instance-state-name" in fl
                and not value_matches(inst["State"]["Name"], fl["instance-state-name"])):
            continue
        found.append({k: v for k, v in inst.items() if k != "standin"})
    out({"Reservations": [{"Instances": found}] if found else []})


def nitro(instance_type):
    """The hypervisor of an instance type, as describe-instance-types
    reports it: the Xen generations (t1, t2, m1-m4, c1, c3, c4, r3, r4,
    i2, i3 but i3.metal, ...) are `xen`, later ones `nitro` (EC2 User
    Guide, "Instances built on the AWS Nitro System"; list abridged)."""
    family = instance_type.split(".")[0]
    xen = {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "d2",
           "g3", "p2", "p3", "x1", "x1e", "h1", "f1"}
    if family == "i3":
        return instance_type.endswith(".metal")
    return family not in xen


def describe_instance_types(args):
    _, flags = parse_args(args, BOOLS)
    types = []
    for t in flags.get("instance-types", []):
        types.append({"InstanceType": t, "CurrentGeneration": True,
                      "Hypervisor": "nitro" if nitro(t) else "xen",
                      "SupportedBootModes": ["legacy-bios", "uefi"] if nitro(t)
                      else ["legacy-bios"]})
    out({"InstanceTypes": types})


def get_console_output(args):
    op = "GetConsoleOutput"
    _, flags = parse_args(args, BOOLS)
    inject("get-console-output", op)
    iid = one(flags, "instance-id", "")
    d = inst_dir(iid)
    p = os.path.join(d, "instance.json")
    if not os.path.exists(p):
        fail("InvalidInstanceID.NotFound", op, "The instance ID '%s' does not exist" % iid)
    inst = read_json(p)
    hidden(p, inst, "InvalidInstanceID.NotFound", op, "instance ID '%s'" % iid)
    if "latest" in flags and not nitro(inst["InstanceType"]):
        fail("UnsupportedOperation", op, "The instance type %s does not support the latest "
             "console output. Retry without the latest option." % inst["InstanceType"])
    data = read_serial(d)
    # The API returns base64; the CLI decodes it for the user.
    text = base64.b64decode(base64.b64encode(data)).decode("utf-8", "replace")
    result = {"InstanceId": iid, "Timestamp": now_iso()}
    if text:
        result["Output"] = text
    if one(flags, "output") == "text":
        print("%s\t%s" % (iid, text))
    else:
        out(result)


def end_instance(iid):
    """Stop its QEMU and keep only the record, `terminated`: EC2 keeps a
    terminated instance visible to describe-instances for a while."""
    d = inst_dir(iid)
    p = os.path.join(d, "instance.json")
    inst = read_json(p)
    stop_qemu(d, inst.get("standin", {}).get("pid"))
    for n in os.listdir(d):
        if n != "instance.json":
            q = os.path.join(d, n)
            shutil.rmtree(q, ignore_errors=True) if os.path.isdir(q) else os.remove(q)
    inst["State"] = {"Code": 48, "Name": "terminated"}
    inst["standin"].pop("running_after_terminate", None)
    write_json(p, inst)


def settle_termination(iid):
    """Fault `still-running-after-terminate:N`: a terminated instance goes
    on running for N more describes, then ends."""
    p = os.path.join(inst_dir(iid), "instance.json")
    inst = read_json(p)
    n = inst["standin"].get("running_after_terminate")
    if n is None:
        return
    if n > 0:
        inst["standin"]["running_after_terminate"] = n - 1
        write_json(p, inst)
    else:
        end_instance(iid)


def terminate_instances(args):
    op = "TerminateInstances"
    _, flags = parse_args(args, BOOLS)
    inject("terminate-instances", op)
    res = []
    for iid in flags.get("instance-ids", []):
        d = inst_dir(iid)
        p = os.path.join(d, "instance.json")
        if not os.path.exists(p):
            fail("InvalidInstanceID.NotFound", op, "The instance ID '%s' does not exist" % iid)
        inst = read_json(p)
        hidden(p, inst, "InvalidInstanceID.NotFound", op, "instance ID '%s'" % iid)
        # Fault `notfound-after-terminate[:N]`: NotFound, and the instance
        # goes on running (AWS: "this does not mean that the instance is
        # or will be terminated").
        if due("notfound-after-terminate"):
            fail("InvalidInstanceID.NotFound", op, "The instance ID '%s' does not exist" % iid)
        prev = inst["State"]["Name"]
        if prev != "terminated":
            n = fault_count("still-running-after-terminate")
            if n and "running_after_terminate" not in inst["standin"]:
                inst["standin"]["running_after_terminate"] = n
                write_json(p, inst)
            elif not n:
                end_instance(iid)
        res.append({"InstanceId": iid, "CurrentState": {"Code": 32, "Name": "shutting-down"},
                    "PreviousState": {"Code": 16, "Name": prev}})
    out({"TerminatingInstances": res})


def create_tags(args):
    """`aws ec2 create-tags --resources ID --tags JSON`: tags on a
    snapshot or an AMI."""
    op = "CreateTags"
    _, flags = parse_args(args, BOOLS)
    try:
        tags = json.loads(one(flags, "tags", "[]"))
    except ValueError:
        raise CliError("\nError parsing parameter '--tags': Invalid JSON\n", 252)
    for rid in flags.get("resources", []):
        kind = "snapshots" if rid.startswith("snap-") else "images"
        p = path("aws", kind, rid + ".json")
        if not os.path.exists(p):
            code = "InvalidSnapshot.NotFound" if kind == "snapshots" else "InvalidAMIID.NotFound"
            fail(code, op, "The resource '%s' does not exist" % rid)
        rec = read_json(p)
        rec["Tags"] = [t for t in rec.get("Tags", []) if t["Key"] not in
                       {n["Key"] for n in tags}] + tags
        write_json(p, rec)


def sts_get_caller_identity(args):
    if "not-logged-in" in faults():
        raise CliError("\nUnable to locate credentials. You can configure credentials by "
                       "running \"aws configure\".\n", 253)
    out({"UserId": "AIDASTANDINUSER000000", "Account": "123456789012",
         "Arn": "arn:aws:iam::123456789012:user/standin"})


# ------------------------------------------------------------------- main ----


VERSION = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12"


def aws(argv):
    if argv == ["--version"]:
        print(VERSION)
        return None
    pos = [a for a in argv if not a.startswith("-")]
    if len(pos) < 2:
        raise CliError("usage: aws [options] <command> <subcommand> [parameters]\n", 252)
    svc, cmd = pos[0], pos[1]
    rest = argv[argv.index(cmd) + 1:]
    table = {
        ("s3", "cp"): s3_cp, ("s3", "rm"): s3_rm,
        ("ec2", "import-snapshot"): import_snapshot,
        ("ec2", "describe-import-snapshot-tasks"): describe_import_snapshot_tasks,
        ("ec2", "cancel-import-task"): cancel_import_task,
        ("ec2", "delete-snapshot"): delete_snapshot,
        ("ec2", "register-image"): register_image,
        ("ec2", "describe-images"): describe_images,
        ("ec2", "deregister-image"): deregister_image,
        ("ec2", "run-instances"): run_instances,
        ("ec2", "describe-instances"): describe_instances,
        ("ec2", "get-console-output"): get_console_output,
        ("ec2", "terminate-instances"): terminate_instances,
        ("ec2", "describe-snapshots"): describe_snapshots,
        ("ec2", "create-tags"): create_tags,
        ("ec2", "describe-instance-types"): describe_instance_types,
        ("sts", "get-caller-identity"): sts_get_caller_identity,
    }
    fn = table.get((svc, cmd))
    if fn is None:
        raise CliError("\naws: error: argument operation: Invalid choice: %s %s (not in the "
                       "stand-in)\n" % (svc, cmd), 252)
    return fn(rest)
