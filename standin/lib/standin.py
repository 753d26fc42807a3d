"""The library behind the `az` stand-in (standin/bin/az, azure.py) and the
local API endpoints (standin/api): the providers' import rules, the QEMU
boot of an imported disk, state and fault helpers.

Azure compute has no emulator, so `az` is the one CLI still stood in for
(the real `aws`, `gcloud` and `gsutil` run against standin/api). The
stand-in accepts az's argument syntax for the subset cloudimg uses,
answers with the JSON shapes Azure documents, and keeps its state in the
directory named by CLOUDIMG_STANDIN_STATE:

    blob/<account>/<container>/   page blobs (see azure.py)
    azure/<group>/                disks, vnets, NICs, VMs (see azure.py)
    calls.log                     one line per invocation

Import applies the documented rules with tools independent of cloudimg
(Python gzip/tarfile, GNU tar, qemu-img; `gcp_check_tarball` and
`aws_check_disk` serve the API endpoints); instances boot the imported
disk in QEMU (TCG) in the background, serial to a file.

Faults of the az stand-in (CLOUDIMG_STANDIN_FAULTS, or the file
<state>/faults; comma separated):
    import-fail            disk create refuses the VHD
    no-landmark            VMs boot with the serial going nowhere
    transient=OP[:N]       OP fails with a transient error N times (1)
    lost-response=vm-create[:N]
                           the VM is made, then the answer is a transient
                           error
    quota=OP               OP fails with Azure's quota error
    permission=OP          OP fails with Azure's permission error
    not-logged-in          az account show says the CLI is not logged in
    no-boot-log-yet[=N]    get-boot-log-uris: "Please enable boot
                           diagnostics." N times
OP: blob-upload, disk-create, vnet-create, nic-create, vm-create,
get-boot-log, vm-delete, nic-delete, vnet-delete, disk-delete,
blob-delete. The API endpoints have their own faults (standin/api/faults.py).
"""

import base64
import datetime
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

GIB = 1 << 30
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


class CliError(Exception):
    """A failure reported the way the real CLI reports it."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------- state ----


def state_dir():
    d = os.environ.get("CLOUDIMG_STANDIN_STATE")
    if not d:
        sys.stderr.write("stand-in: CLOUDIMG_STANDIN_STATE is not set\n")
        sys.exit(2)
    os.makedirs(d, exist_ok=True)
    return d


def path(*parts):
    return os.path.join(state_dir(), *parts)


def write_json(p, value):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, p)


def read_json(p):
    with open(p) as f:
        return json.load(f)


def new_id(prefix):
    seed = "%s %s %s" % (time.time_ns(), os.getpid(), prefix)
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:17]


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def log_call(argv):
    with open(path("calls.log"), "a") as f:
        f.write(json.dumps(argv) + "\n")


# --------------------------------------------------------------- faults ----


def faults():
    spec = os.environ.get("CLOUDIMG_STANDIN_FAULTS", "")
    p = path("faults")
    if os.path.exists(p):
        with open(p) as f:
            spec += "," + f.read().strip()
    out = {}
    for item in spec.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        k, _, v = item.partition("=")
        out.setdefault(k, []).append(v)
    return out


def fault_ops(kind):
    return [v.split(":")[0] for v in faults().get(kind, [])]


def transient_due(op, kind="transient"):
    """True when OP should fail transiently now (counts down in the state).
    kind `lost-response`: the operation is done, then its answer is lost."""
    for v in faults().get(kind, []):
        name, _, n = v.partition(":")
        if name != op:
            continue
        times = int(n) if n else 1
        counts_p = path("fault-counts.json")
        counts = read_json(counts_p) if os.path.exists(counts_p) else {}
        done = counts.get(kind + ":" + op, 0)
        if done < times:
            counts[kind + ":" + op] = done + 1
            write_json(counts_p, counts)
            return True
    return False


def fault_count(kind, op=None):
    """N of fault `kind=OP[:N]` (op given) or `kind[=N]` (no op), 1 when N
    is left out; None when the fault is not set."""
    for v in faults().get(kind, []):
        if op is None:
            return int(v) if v else 1
        name, _, num = v.partition(":")
        if name == op:
            return int(num) if num else 1
    return None


def due(kind):
    """Whether fault `kind[=N]` fires now: its first N calls do."""
    n = fault_count(kind)
    if not n:
        return False
    counts_p = path("fault-counts.json")
    counts = read_json(counts_p) if os.path.exists(counts_p) else {}
    done = counts.get(kind, 0)
    if done >= n:
        return False
    counts[kind] = done + 1
    write_json(counts_p, counts)
    return True


# -------------------------------------------------------------- parsing ----


def parse_args(args, bools=()):
    """Positional arguments and flags. `--flag=value`, `--flag value`, and
    list flags (`--ids a b`) are accepted; flags in `bools` take no value."""
    pos, flags = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            if eq:
                flags.setdefault(name, []).append(val)
            elif name in bools:
                flags.setdefault(name, []).append(True)
            else:
                vals = []
                while i + 1 < len(args) and not args[i + 1].startswith("--"):
                    i += 1
                    vals.append(args[i])
                if not vals:
                    flags.setdefault(name, []).append(True)
                else:
                    flags.setdefault(name, []).extend(vals)
        else:
            pos.append(a)
        i += 1
    return pos, flags


def one(flags, name, default=None):
    v = flags.get(name)
    if not v:
        return default
    return v[-1]


# ----------------------------------------------------------------- QEMU ----


def start_qemu(inst_dir, disk, firmware, interface):
    """Boot `disk` in the background; returns the QEMU pid."""
    serial = os.path.join(inst_dir, "serial.log")
    open(serial, "wb").close()
    argv = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "256",
            "-display", "none", "-no-reboot", "-nodefaults", "-nic", "none",
            "-monitor", "none"]
    if "no-landmark" in faults():
        argv += ["-serial", "null"]
    else:
        argv += ["-serial", "file:" + serial]
    if firmware == "uefi":
        vars_copy = os.path.join(inst_dir, "OVMF_VARS.fd")
        shutil.copyfile(OVMF_VARS, vars_copy)
        argv += ["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMF_CODE,
                 "-drive", "if=pflash,format=raw,unit=1,file=" + vars_copy]
    argv += ["-drive", "file=%s,format=raw,if=none,id=disk0,snapshot=on" % disk.replace(",", ",,")]
    if interface == "nvme":
        argv += ["-device", "nvme,serial=standin0,drive=disk0,bootindex=0"]
    else:
        argv += ["-device", "virtio-scsi-pci,id=scsi0",
                 "-device", "scsi-hd,bus=scsi0.0,drive=disk0,bootindex=0"]
    err = open(os.path.join(inst_dir, "qemu.stderr"), "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err, start_new_session=True, cwd=inst_dir)
    with open(os.path.join(inst_dir, "qemu.argv"), "w") as f:
        json.dump(argv, f)
    return p.pid


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def stop_qemu(inst_dir, pid=None):
    """Kill every process running in the instance directory (its QEMU,
    even one whose pid was never recorded because the creating command was
    killed), and wait until they are gone."""
    target = os.path.realpath(inst_dir)
    victims = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            continue
        if os.path.realpath(cwd) == target:
            victims.append(int(entry))
    for v in victims:
        try:
            os.kill(v, signal.SIGKILL)
        except OSError:
            pass
    for v in victims:
        for _ in range(200):
            if not pid_alive(v):
                break
            time.sleep(0.01)


def read_serial(inst_dir):
    p = os.path.join(inst_dir, "serial.log")
    if not os.path.exists(p):
        return b""
    with open(p, "rb") as f:
        return f.read()


# ------------------------------------------------------- import checks ----


def gcp_check_tarball(obj):
    """The rules GCP documents for rawDisk.source: a gzip'd tar in GNU
    (oldgnu/gnu) format, no pax records, one member named exactly
    `disk.raw`, whose size is a whole number of GiB. Returns an error
    message, or None."""
    bad = "The tar archive is not a valid image."
    try:
        with gzip.open(obj, "rb") as g:
            head = g.read(512)
    except (OSError, EOFError):
        return bad
    if len(head) < 512:
        return bad
    magic = head[257:265]
    if magic != b"ustar  \x00":
        return bad  # ustar / pax / v7: not GNU format
    try:
        with tarfile.open(obj, "r:gz") as t:
            members = t.getmembers()
    except (tarfile.TarError, OSError, EOFError):
        return bad
    if any(m.pax_headers for m in members):
        return bad
    if len(members) != 1 or members[0].name != "disk.raw":
        return bad
    m = members[0]
    if not (m.isfile() or m.issparse()):
        return bad
    if m.size == 0 or m.size % GIB != 0:
        return "disk.raw must be a multiple of 1 GB (found %d bytes)" % m.size
    return None


def qemu_img_info(p):
    r = subprocess.run(["qemu-img", "info", "--output=json", p],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def vhd_footer_ok(p):
    """Independent VHD footer check: None without a `conectix` cookie (at
    the end: fixed; at the start: dynamic), else whether its one's
    complement checksum is right."""
    with open(p, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if size < 512:
            return None
        f.seek(size - 512)
        foot = bytearray(f.read(512))
        if foot[:8] != b"conectix":
            f.seek(0)
            foot = bytearray(f.read(512))
    if foot[:8] != b"conectix":
        return None
    want = int.from_bytes(foot[64:68], "big")
    foot[64:68] = b"\0\0\0\0"
    return (~sum(foot)) & 0xFFFFFFFF == want


def aws_check_disk(obj, fmt):
    """The rules VM Import documents for ImportSnapshot: the declared
    Format is the file's format and the file is valid. RAW: anything
    qemu-img probes as raw. VHD: a footer with the `conectix` cookie and a
    valid checksum (checked here; qemu-img's probe only looks at the
    start, so it calls a fixed VHD raw), readable by qemu-img as vpc.
    VMDK: qemu-img probes vmdk with create type streamOptimized and
    `qemu-img check` passes. Returns a StatusMessage, or None."""
    mismatch = "ClientError: Disk validation failed [Unsupported specified file format]"
    if fmt not in ("RAW", "VHD", "VMDK"):
        return "ClientError: Unsupported format: %s" % fmt
    info = qemu_img_info(obj)
    if info is None:
        return "ClientError: Disk validation failed [Invalid image file]"
    found = info.get("format")
    if fmt == "RAW":
        return None if found == "raw" else mismatch
    if fmt == "VHD":
        cookie = vhd_footer_ok(obj)
        if cookie is None:
            return mismatch
        if cookie is False:
            return "ClientError: Disk validation failed [Unsupported VHD Footer]"
        r = subprocess.run(["qemu-img", "info", "-f", "vpc", obj], capture_output=True, text=True)
        if r.returncode != 0:
            return "ClientError: Disk validation failed [Invalid VHD]"
        return None
    if found != "vmdk":
        return mismatch
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("create-type") != "streamOptimized":
        return "ClientError: Disk validation failed [Unsupported VMDK File Format]"
    r = subprocess.run(["qemu-img", "check", "-f", "vmdk", obj], capture_output=True, text=True)
    if r.returncode != 0:
        return "ClientError: Uncompressed data has invalid length."
    return None


def convert_to_raw(src, fmt, dst):
    r = subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", "-S", "4k", src, dst],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def main(tool, fn, argv):
    """Run one stand-in invocation: log it, dispatch, report errors the way
    the real CLI does (message on stderr, its exit status)."""
    log_call([tool] + argv)
    try:
        fn(argv)
    except CliError as e:
        sys.stderr.write(e.message)
        return e.code
    return 0
