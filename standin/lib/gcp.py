"""The `gcloud` and `gsutil` stand-ins (see standin.py)."""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile

from standin import (CliError, faults, fault_ops, gcp_check_tarball, new_id, now_iso,
                     one, parse_args, path, read_json, read_serial, start_qemu, stop_qemu,
                     transient_due, write_json)

BOOLS = {"quiet", "async", "q", "no-address"}
API = "https://www.googleapis.com/compute/v1"


def fail(cmd, lines):
    """gcloud's error shape: `ERROR: (gcloud.X) Could not fetch resource:`
    followed by ` - reason` lines; exit status 1."""
    text = "ERROR: (gcloud.%s) Could not fetch resource:\n" % cmd
    text += "".join(" - %s\n" % l for l in lines)
    raise CliError(text, 1)


def inject(cmd, op, project, what):
    if transient_due(op):
        fail(cmd, ["Internal error. Please try again or contact Google Support. (Code: '503')"])
    if op in fault_ops("quota"):
        fail(cmd, ["Quota 'CPUS' exceeded.  Limit: 0.0 in region us-central1."])
    if op in fault_ops("permission"):
        fail(cmd, ["Required '%s' permission for '%s'" % (what, project)])


def split_gs(uri):
    if not uri.startswith("gs://"):
        raise CliError("ERROR: (gcloud.storage) Invalid URL: %s\n" % uri, 1)
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def obj_path(uri):
    bucket, key = split_gs(uri)
    return path("gcs", bucket), path("gcs", bucket, key)


# --------------------------------------------------------------- storage ----


def storage_cp(args, tool):
    pos, _ = parse_args(args, BOOLS)
    if len(pos) != 2:
        raise CliError("ERROR: (gcloud.storage.cp) expected SOURCE DESTINATION\n", 2)
    src, dst = pos
    if transient_due("storage-cp"):
        raise CliError("ERROR: (gcloud.storage.cp) HTTPError 503: Service Unavailable\n", 1)
    if "storage-cp" in fault_ops("permission"):
        raise CliError("ERROR: (gcloud.storage.cp) HTTPError 403: caller does not have "
                       "storage.objects.create access to the Google Cloud Storage object.\n", 1)
    bdir, target = obj_path(dst)
    if not os.path.isdir(bdir):
        raise CliError("ERROR: (gcloud.storage.cp) HTTPError 404: The destination bucket "
                       "%s does not exist or the write to the destination must be restarted\n"
                       % dst.split("/")[2], 1)
    if not os.path.isfile(src):
        raise CliError("ERROR: (gcloud.storage.cp) The following URLs matched no objects or "
                       "files:\n-%s\n" % src, 1)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".uploading"
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)
    sys.stderr.write("Copying file://%s to %s\n  Completed files 1/1\n" % (src, dst))


def expand_wildcards(uri):
    """`gcloud storage rm` and `gsutil rm` expand wildcards in object
    names (`*`, `?`, `[chars]`; cloud.google.com/storage/docs/wildcards),
    here with fnmatch over the bucket's objects."""
    bucket, key = split_gs(uri)
    if not any(c in key for c in "*?["):
        return [uri]
    bdir = path("gcs", bucket)
    names = []
    for root, _, files in os.walk(bdir):
        for f in files:
            names.append(os.path.relpath(os.path.join(root, f), bdir))
    return ["gs://%s/%s" % (bucket, n) for n in sorted(names) if fnmatch.fnmatchcase(n, key)] or [uri]


def storage_rm(args, tool):
    pos, _ = parse_args(args, BOOLS)
    for uri in [u for p in pos for u in expand_wildcards(p)]:
        _, target = obj_path(uri)
        if not os.path.isfile(target):
            if tool == "gsutil":
                raise CliError("CommandException: No URLs matched: %s\n" % uri, 1)
            raise CliError("ERROR: (gcloud.storage.rm) The following URLs matched no objects "
                           "or files:\n%s\n" % uri, 1)
        os.remove(target)
        sys.stderr.write("Removing %s...\n" % uri)


# ---------------------------------------------------------------- images ----


def image_paths(name):
    return path("gcp", "images", name + ".json"), path("gcp", "images", name + ".raw")


def images_create(args):
    cmd = "compute.images.create"
    pos, flags = parse_args(args, BOOLS)
    if len(pos) != 1:
        raise CliError("ERROR: (gcloud.%s) argument IMAGE_NAME: Must be specified.\n" % cmd, 2)
    name = pos[0]
    project = one(flags, "project", "standin-project")
    inject(cmd, "images-create", "projects/%s/global/images/%s" % (project, name),
           "compute.images.create")
    source = one(flags, "source-uri")
    if not source:
        raise CliError("ERROR: (gcloud.%s) Exactly one of (--source-disk | --source-image | "
                       "--source-uri | ...) must be specified.\n" % cmd, 2)
    meta_p, raw_p = image_paths(name)
    if os.path.exists(meta_p):
        fail(cmd, ["The resource 'projects/%s/global/images/%s' already exists" % (project, name)])
    _, obj = obj_path(source)
    if not os.path.isfile(obj):
        fail(cmd, ["Invalid value for field 'resource.rawDisk.source': '%s'. The provided "
                   "source does not exist or is not accessible." % source])
    if "import-fail" in faults():
        fail(cmd, ["The tar archive is not a valid image."])
    problem = gcp_check_tarball(obj)
    if problem:
        fail(cmd, [problem])
    features = []
    for v in flags.get("guest-os-features", []):
        features += [f for f in str(v).split(",") if f]
    # Extract with GNU tar (keeps the disk sparse).
    tmpdir = tempfile.mkdtemp(dir=os.path.dirname(meta_p) if os.path.isdir(os.path.dirname(meta_p)) else None)
    os.makedirs(os.path.dirname(meta_p), exist_ok=True)
    try:
        r = subprocess.run(["tar", "-xzSf", obj, "-C", tmpdir, "disk.raw"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(cmd, ["The tar archive is not a valid image."])
        os.replace(os.path.join(tmpdir, "disk.raw"), raw_p)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    size_gb = os.path.getsize(raw_p) >> 30
    image = {
        "kind": "compute#image",
        "id": str(int(new_id("")[:12], 16)),
        "creationTimestamp": now_iso(),
        "name": name,
        "sourceType": "RAW",
        "rawDisk": {"source": source, "containerType": "TAR"},
        "status": "READY",
        "archiveSizeBytes": str(os.path.getsize(obj)),
        "diskSizeGb": str(size_gb),
        "guestOsFeatures": [{"type": f} for f in features],
        "selfLink": "%s/projects/%s/global/images/%s" % (API, project, name),
    }
    if one(flags, "family"):
        image["family"] = one(flags, "family")
    labels = {}
    for v in flags.get("labels", []):
        for kv in str(v).split(","):
            k, _, val = kv.partition("=")
            labels[k] = val
    if labels:
        image["labels"] = labels
    write_json(meta_p, image)
    sys.stderr.write("Created [%s].\n" % image["selfLink"])
    print_format(flags, [image], "NAME  PROJECT  STATUS\n%s  %s  READY" % (name, project))


def images_delete(args):
    cmd = "compute.images.delete"
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    inject(cmd, "images-delete", "projects/%s/global/images/%s" % (project, pos[0]),
           "compute.images.delete")
    for name in pos:
        meta_p, raw_p = image_paths(name)
        if not os.path.exists(meta_p):
            fail(cmd, ["The resource 'projects/%s/global/images/%s' was not found" % (project, name)])
        os.remove(meta_p)
        if os.path.exists(raw_p):
            os.remove(raw_p)
        sys.stderr.write("Deleted [%s/projects/%s/global/images/%s].\n" % (API, project, name))


def images_describe(args):
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    meta_p, _ = image_paths(pos[0])
    if not os.path.exists(meta_p):
        fail("compute.images.describe",
             ["The resource 'projects/%s/global/images/%s' was not found" % (project, pos[0])])
    print(json.dumps(read_json(meta_p), indent=2))


# ------------------------------------------------------------- instances ----


def inst_dir(name):
    return path("gcp", "instances", name)


def instances_create(args):
    cmd = "compute.instances.create"
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    zone = one(flags, "zone", "us-central1-a")
    if len(pos) != 1:
        raise CliError("ERROR: (gcloud.%s) argument INSTANCE_NAMES: Must be specified.\n" % cmd, 2)
    name = pos[0]
    inject(cmd, "instances-create", "projects/%s/zones/%s/instances/%s" % (project, zone, name),
           "compute.instances.create")
    d = inst_dir(name)
    if os.path.exists(os.path.join(d, "instance.json")):
        fail(cmd, ["The resource 'projects/%s/zones/%s/instances/%s' already exists"
                   % (project, zone, name)])
    image = one(flags, "image")
    meta_p, raw_p = image_paths(image or "")
    if not image or not os.path.exists(meta_p):
        fail(cmd, ["The resource 'projects/%s/global/images/%s' was not found" % (project, image)])
    meta = read_json(meta_p)
    uefi = any(f["type"] == "UEFI_COMPATIBLE" for f in meta.get("guestOsFeatures", []))
    # Without --no-address the instance asks for an external IP (an
    # ephemeral one on ONE_TO_ONE_NAT); fault `no-external-ip`: an
    # organization policy forbids that [U wording].
    external = "no-address" not in flags
    if external and "no-external-ip" in faults():
        fail(cmd, ["Constraint constraints/compute.vmExternalIpAccess violated for project %s. "
                   "Add instance projects/%s/zones/%s/instances/%s to the constraint to use "
                   "external IP with it." % (project, project, zone, name)])
    nic = {"network": "%s/projects/%s/global/networks/%s"
           % (API, project, one(flags, "network", "default"))}
    if one(flags, "subnet"):
        nic["subnetwork"] = "%s/projects/%s/regions/%s/subnetworks/%s" % (
            API, project, zone.rsplit("-", 1)[0], one(flags, "subnet"))
    if external:
        nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "external-nat"}]
    os.makedirs(d, exist_ok=True)
    inst = {
        "kind": "compute#instance",
        "id": str(int(new_id("")[:12], 16)),
        "creationTimestamp": now_iso(),
        "name": name,
        "zone": "%s/projects/%s/zones/%s" % (API, project, zone),
        "machineType": "%s/projects/%s/zones/%s/machineTypes/%s"
        % (API, project, zone, one(flags, "machine-type", "n1-standard-1")),
        "status": "RUNNING",
        "networkInterfaces": [nic],
        "disks": [{"boot": True, "source": image, "interface": "SCSI",
                   "guestOsFeatures": meta.get("guestOsFeatures", [])}],
        "selfLink": "%s/projects/%s/zones/%s/instances/%s" % (API, project, zone, name),
        "standin": {"pid": None, "firmware": "uefi" if uefi else "bios", "disk": "virtio-scsi"},
    }
    # Recorded before QEMU starts, so a delete always finds it.
    write_json(os.path.join(d, "instance.json"), inst)
    inst["standin"]["pid"] = start_qemu(d, raw_p, "uefi" if uefi else "bios", "scsi")
    write_json(os.path.join(d, "instance.json"), inst)
    sys.stderr.write("Created [%s].\n" % inst["selfLink"])
    print_format(flags, [inst], "NAME  ZONE  STATUS\n%s  %s  RUNNING" % (name, zone))


def load_instance(cmd, name, project, zone):
    d = inst_dir(name)
    p = os.path.join(d, "instance.json")
    if not os.path.exists(p):
        fail(cmd, ["The resource 'projects/%s/zones/%s/instances/%s' was not found"
                   % (project, zone, name)])
    return d, read_json(p)


def instances_describe(args):
    cmd = "compute.instances.describe"
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    zone = one(flags, "zone", "us-central1-a")
    _, inst = load_instance(cmd, pos[0], project, zone)
    print(json.dumps({k: v for k, v in inst.items() if k != "standin"}, indent=2))


def instances_serial(args):
    cmd = "compute.instances.get-serial-port-output"
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    zone = one(flags, "zone", "us-central1-a")
    inject(cmd, "get-serial-port-output", project, "compute.instances.getSerialPortOutput")
    d, _ = load_instance(cmd, pos[0], project, zone)
    data = read_serial(d)
    start = int(one(flags, "start", "0"))
    start = max(0, min(start, len(data)))
    contents = data[start:].decode("utf-8", "replace")
    fmt = one(flags, "format")
    if fmt == "json":
        print(json.dumps({
            "kind": "compute#serialPortOutput",
            "contents": contents,
            "start": str(start),
            "next": str(len(data)),
            "selfLink": "%s/projects/%s/zones/%s/instances/%s/serialPort"
            % (API, project, zone, pos[0]),
        }, indent=2))
    else:
        sys.stdout.write(contents)
        sys.stderr.write("\nSpecify --start=%d in the next get-serial-port-output invocation to "
                         "get only the new output starting from here.\n" % len(data))


def instances_delete(args):
    cmd = "compute.instances.delete"
    pos, flags = parse_args(args, BOOLS)
    project = one(flags, "project", "standin-project")
    zone = one(flags, "zone", "us-central1-a")
    inject(cmd, "instances-delete", "projects/%s/zones/%s/instances/%s" % (project, zone, pos[0]),
           "compute.instances.delete")
    for name in pos:
        d, inst = load_instance(cmd, name, project, zone)
        stop_qemu(d, inst.get("standin", {}).get("pid"))
        shutil.rmtree(d, ignore_errors=True)
        sys.stderr.write("Deleted [%s].\n" % inst["selfLink"])


def print_format(flags, value, table):
    if one(flags, "format") == "json":
        print(json.dumps(value, indent=2))
    else:
        print(table)


# ------------------------------------------------------------------ main ----


def config_get_value(key):
    """`gcloud config get-value KEY`: the value on stdout, `(unset)` on
    stderr when unset (as the Google Cloud SDK 528 prints). The stand-in's
    configuration is <state>/gcloud-config.json; the account is
    `operator@example.com` unless the fault `not-logged-in` is set."""
    p = path("gcloud-config.json")
    conf = read_json(p) if os.path.exists(p) else {}
    conf.setdefault("account", "operator@example.com")
    if "not-logged-in" in faults():
        conf["account"] = ""
    value = conf.get(key, "")
    if value:
        print(value)
    else:
        sys.stderr.write("(unset)\n")


def gcloud(argv):
    if argv[:1] == ["version"]:
        print(json.dumps({"Google Cloud SDK": "528.0.0", "core": "2025.06.20",
                          "gsutil": "5.34"}, indent=2))
        return None
    if argv[:2] == ["config", "get-value"] and len(argv) == 3:
        return config_get_value(argv[2])
    words = [a for a in argv if not a.startswith("-")]
    key = tuple(words[:3])
    rest_from = {
        ("storage", "cp"): 2, ("storage", "rm"): 2,
    }
    if tuple(words[:2]) in rest_from:
        i = argv.index(words[1]) + 1
        return (storage_cp if words[1] == "cp" else storage_rm)(argv[i:], "gcloud")
    table = {
        ("compute", "images", "create"): images_create,
        ("compute", "images", "delete"): images_delete,
        ("compute", "images", "describe"): images_describe,
        ("compute", "instances", "create"): instances_create,
        ("compute", "instances", "delete"): instances_delete,
        ("compute", "instances", "describe"): instances_describe,
        ("compute", "instances", "get-serial-port-output"): instances_serial,
    }
    fn = table.get(key)
    if fn is None:
        raise CliError("ERROR: (gcloud) Invalid choice: '%s' (not in the stand-in).\n"
                       % " ".join(words[:3]), 2)
    i = argv.index(key[2]) + 1
    return fn(argv[i:])


def gsutil(argv):
    pos = [a for a in argv if not a.startswith("-")]
    if not pos:
        raise CliError("CommandException: no command given\n", 1)
    i = argv.index(pos[0]) + 1
    if pos[0] == "cp":
        return storage_cp(argv[i:], "gsutil")
    if pos[0] == "rm":
        return storage_rm(argv[i:], "gsutil")
    raise CliError("CommandException: Invalid command \"%s\".\n" % pos[0], 1)
