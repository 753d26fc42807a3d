"""The `az` stand-in (see standin.py).

State (under CLOUDIMG_STANDIN_STATE):
    blob/<account>/<container>/<blob>     uploaded blobs (a container exists
                                          when its directory does)
    blob/<account>/<container>/<blob>.meta.json   blob type, size
    azure/<resource group>/               a resource group exists when its
                                          directory does
        disks/<name>.json|.raw            managed disks (raw = the VHD's data)
        vnets/<name>.json
        nics/<name>.json
        vms/<name>/                       vm.json, serial.log, OVMF vars

The rules `az disk create --source <blob URL>` applies are Azure's
documented rules for uploaded VHDs, checked here in Python from the bytes
(not with cloudimg's code): fixed VHD only (the `conectix` footer in the
last 512 bytes, disk type 2, valid checksum), a virtual size that is a
whole number of MiB, a blob of exactly virtual size + 512 bytes, a page
blob (size a multiple of 512), 20 MiB + 512 .. 32 TiB + 512 bytes. The
wording of the rejections is [U] (not confirmed from a primary source),
except the virtual-size one, which follows Microsoft's prepare-a-VHD page
as remembered.

VMs boot the attached disk in QEMU (TCG): Hyper-V generation V2 under
OVMF, V1 under SeaBIOS; Azure presents the OS disk as SCSI, here
virtio-scsi. `get-boot-log` prints the serial log as text.
"""

import json
import os
import shutil
import sys

from standin import (CliError, due, faults, fault_ops, new_id, now_iso, one, parse_args, path,
                     read_json, read_serial, start_qemu, stop_qemu, transient_due, write_json)

MIB = 1 << 20
TIB = 1 << 40
MIN_UPLOAD = 20 * MIB + 512
MAX_UPLOAD = 32 * TIB + 512
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
BOOLS = {"yes", "y", "overwrite", "no-wait", "only-show-errors", "generate-ssh-keys"}


def fail(code, message, status=1):
    """The shape `az` prints for an ARM error (exit 1; 3 for a missing
    resource) [U]."""
    raise CliError("ERROR: (%s) %s\nCode: %s\nMessage: %s\n" % (code, message, code, message),
                   status)


def not_found(kind, rg, name):
    fail("ResourceNotFound", "The Resource '%s/%s' under resource group '%s' was not found. For "
         "more details please go to https://aka.ms/ARMResourceNotFoundFix" % (kind, name, rg), 3)


def storage_fail(message, code):
    """The shape of a data-plane (blob) error [U]."""
    raise CliError("%s\nRequestId:%s\nTime:%s\nErrorCode:%s\n" % (message, new_id(""), now_iso(),
                                                                    code), 1)


def inject(op, action, scope):
    if transient_due(op):
        fail("TooManyRequests", "The request is being throttled as the limit has been reached for "
             "operation type - Write. Please retry later.")
    if op in fault_ops("quota"):
        fail("QuotaExceeded", "Operation could not be completed as it results in exceeding "
             "approved standardBSFamily Cores quota. Additional details - Deployment Model: "
             "Resource Manager, Location: eastus, Current Limit: 0, Current Usage: 0, "
             "Additional Required: 1, (Minimum) New Limit Required: 1.")
    if op in fault_ops("permission"):
        fail("AuthorizationFailed", "The client 'user@example.com' with object id "
             "'00000000-0000-0000-0000-000000000001' does not have authorization to perform "
             "action '%s' over scope '%s' or the scope is invalid. If access was recently "
             "granted, please refresh your credentials." % (action, scope))


def out(value):
    print(json.dumps(value, indent=2))


def group_dir(flags):
    rg = one(flags, "resource-group") or one(flags, "g")
    if not rg:
        raise CliError("ERROR: the following arguments are required: --resource-group/-g\n", 2)
    d = path("azure", rg)
    if not os.path.isdir(d):
        fail("ResourceGroupNotFound", "Resource group '%s' could not be found." % rg, 3)
    return rg, d


def arm_id(rg, kind, name):
    return "%s/resourceGroups/%s/providers/%s/%s" % (SUB, rg, kind, name)


def name_of(flags):
    n = one(flags, "name") or one(flags, "n")
    if not n:
        raise CliError("ERROR: the following arguments are required: --name/-n\n", 2)
    return n


# ------------------------------------------------------------------ blobs ----


def blob_paths(account, container, name):
    target = path("blob", account, container, name)
    return path("blob", account, container), target, target + ".meta.json"


def blob_upload(args):
    _, flags = parse_args(args, BOOLS)
    account, container = one(flags, "account-name"), one(flags, "container-name")
    name, src = one(flags, "name"), one(flags, "file")
    btype = one(flags, "type", "block")
    if transient_due("blob-upload"):
        storage_fail("The server is busy.", "ServerBusy")
    if "blob-upload" in fault_ops("permission"):
        raise CliError("You do not have the required permissions needed to perform this "
                       "operation.\nDepending on your operation, you may need to be assigned one "
                       "of the following roles:\n    \"Storage Blob Data Owner\"\n    \"Storage "
                       "Blob Data Contributor\"\n", 1)
    cdir, target, meta = blob_paths(account, container, name)
    if not os.path.isdir(path("blob", account)):
        raise CliError("ERROR: The storage account '%s' was not found.\n" % account, 1)
    if not os.path.isdir(cdir):
        storage_fail("The specified container does not exist.", "ContainerNotFound")
    if not os.path.isfile(src):
        raise CliError("ERROR: [Errno 2] No such file or directory: '%s'\n" % src, 1)
    size = os.path.getsize(src)
    if btype == "page" and size % 512 != 0:
        storage_fail("The page blob size must be aligned to a 512-byte boundary.",
                     "InvalidHeaderValue")
    if os.path.exists(target) and "overwrite" not in flags:
        storage_fail("The specified blob already exists.", "BlobAlreadyExists")
    shutil.copyfile(src, target + ".uploading")
    os.replace(target + ".uploading", target)
    write_json(meta, {"type": btype, "size": size, "lastModified": now_iso()})
    out({"etag": "\"0x%s\"" % new_id("")[:15].upper(), "lastModified": now_iso(),
         "client_request_id": new_id(""), "request_server_encrypted": True})


def blob_delete(args):
    _, flags = parse_args(args, BOOLS)
    inject("blob-delete", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
           one(flags, "account-name", ""))
    _, target, meta = blob_paths(one(flags, "account-name"), one(flags, "container-name"),
                                 one(flags, "name"))
    if not os.path.isfile(target):
        storage_fail("The specified blob does not exist.", "BlobNotFound")
    os.remove(target)
    if os.path.exists(meta):
        os.remove(meta)


def blob_list(args):
    _, flags = parse_args(args, BOOLS)
    cdir, _, _ = blob_paths(one(flags, "account-name"), one(flags, "container-name"), "x")
    res = []
    for n in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        if n.endswith(".meta.json") or n.endswith(".uploading"):
            continue
        m = read_json(os.path.join(cdir, n + ".meta.json"))
        res.append({"name": n, "properties": {"blobType": m["type"].capitalize() + "Blob",
                                              "contentLength": m["size"]}})
    out(res)


def parse_blob_url(url):
    """https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB -> parts."""
    pre = "https://"
    if not url or not url.startswith(pre):
        return None
    host, _, rest = url[len(pre):].partition("/")
    account, dot, suffix = host.partition(".")
    container, _, blob = rest.partition("/")
    if suffix != "blob.core.windows.net" or not container or not blob:
        return None
    return account, container, blob


# ------------------------------------------------------------ VHD rules ----


def vhd_problem(blob, url):
    """Azure's rules for a VHD an OS disk is made from; returns an error
    (code, message) or None, and the virtual size."""
    size = os.path.getsize(blob)
    bad_cookie = ("BadRequest", "The specified cookie value in VHD footer indicates that disk "
                  "'%s' with blob %s is not a supported VHD. Disk is expected to have cookie "
                  "value 'conectix'." % (os.path.basename(blob), url))
    if size < 512:
        return bad_cookie, 0
    with open(blob, "rb") as f:
        f.seek(size - 512)
        foot = bytearray(f.read(512))
    if foot[:8] != b"conectix":
        return bad_cookie, 0
    want = int.from_bytes(foot[64:68], "big")
    foot[64:68] = b"\0\0\0\0"
    if (~sum(foot)) & 0xFFFFFFFF != want:
        return ("BadRequest", "The VHD footer checksum of blob %s is not valid." % url), 0
    dtype = int.from_bytes(foot[60:64], "big")
    if dtype != 2:
        kind = {3: "dynamic", 4: "differencing"}.get(dtype, "type %d" % dtype)
        return ("BadRequest", "The VHD %s is a %s VHD. Only fixed VHDs are supported; convert it "
                "to a fixed VHD before uploading." % (url, kind)), 0
    virtual = int.from_bytes(foot[48:56], "big")
    if not MIN_UPLOAD <= size <= MAX_UPLOAD:
        return ("BadRequest", "The VHD %s is %d bytes; the size of an uploaded VHD must be "
                "between %d and %d bytes." % (url, size, MIN_UPLOAD, MAX_UPLOAD)), 0
    if virtual % MIB != 0:
        return ("BadRequest", "The VHD %s has an unsupported virtual size of %d bytes. The size "
                "must be a whole number (in MBs)." % (url, virtual)), 0
    if virtual + 512 != size:
        return ("BadRequest", "The VHD %s is %d bytes but its footer declares a virtual size of "
                "%d bytes (+ 512)." % (url, size, virtual)), 0
    return None, virtual


def copy_data(blob, dst, virtual):
    """The disk's content: the VHD's first `virtual` bytes, holes kept."""
    chunk = MIB
    zero = bytes(chunk)
    with open(blob, "rb") as src, open(dst + ".tmp", "wb") as d:
        done = 0
        while done < virtual:
            n = min(chunk, virtual - done)
            data = src.read(n)
            if len(data) != n:
                raise CliError("ERROR: short read from %s\n" % blob, 1)
            if data == zero[:n]:
                d.seek(n, 1)
            else:
                d.write(data)
            done += n
        d.truncate(virtual)
    os.replace(dst + ".tmp", dst)


# ------------------------------------------------------------------ disks ----


def disk_paths(gdir, name):
    return os.path.join(gdir, "disks", name + ".json"), os.path.join(gdir, "disks", name + ".raw")


def disk_create(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    did = arm_id(rg, "Microsoft.Compute/disks", name)
    inject("disk-create", "Microsoft.Compute/disks/write", did)
    gen = one(flags, "hyper-v-generation", "V1")
    if gen not in ("V1", "V2"):
        raise CliError("ERROR: argument --hyper-v-generation: invalid choice: '%s' (choose from "
                       "'V1', 'V2')\n" % gen, 2)
    os_type = one(flags, "os-type")
    if os_type is not None and os_type.lower() not in ("linux", "windows"):
        raise CliError("ERROR: argument --os-type: invalid choice: '%s' (choose from 'Linux', "
                       "'Windows')\n" % os_type, 2)
    meta_p, raw_p = disk_paths(gdir, name)
    if os.path.exists(meta_p):  # PUT is create-or-update
        out(read_json(meta_p))
        return
    url = one(flags, "source")
    parts = parse_blob_url(url)
    if parts is None:
        fail("InvalidParameter", "The value of parameter 'creationData.sourceUri' is invalid: "
             "'%s' is not a blob URL." % url)
    _, blob, bmeta = blob_paths(*parts)
    if not os.path.isfile(blob):
        fail("InvalidParameter", "Source blob %s does not exist or is not accessible." % url)
    if read_json(bmeta)["type"] != "page":
        fail("BadRequest", "The source blob %s is not a page blob. Upload the VHD with "
             "--type page." % url)
    # Without --source-storage-account-id az takes the account to be in
    # the disk's resource group; the stand-in's accounts live in the group
    # of <state>/blob/<account>/account.json (default: capos-rg).
    acct = account_record(parts[0])
    given = one(flags, "source-storage-account-id")
    if given is None and acct["resourceGroup"] != rg:
        fail("ResourceNotFound", "The Resource 'Microsoft.Storage/storageAccounts/%s' under "
             "resource group '%s' was not found." % (parts[0], rg), 3)
    if given is not None and given.lower() != acct["id"].lower():
        fail("InvalidParameter", "The storage account '%s' does not hold source blob %s."
             % (given, url))
    # az's default location is the resource group's [U]; the stand-in's
    # groups are where their accounts are.
    location = one(flags, "location", acct["location"])
    if location.lower() != acct["location"].lower():
        fail("BadRequest", "The source blob %s is in region %s, the disk in %s: a disk must "
             "be created in the region of its source blob [U wording]."
             % (url, acct["location"], location))
    if "import-fail" in faults():
        problem, virtual = ("BadRequest", "The specified cookie value in VHD footer indicates "
                            "that disk '%s' with blob %s is not a supported VHD. Disk is expected "
                            "to have cookie value 'conectix'." % (parts[2], url)), 0
    else:
        problem, virtual = vhd_problem(blob, url)
    if problem:
        fail(*problem)
    disk = {
        "id": did, "name": name, "type": "Microsoft.Compute/disks",
        "location": location,
        "creationData": {"createOption": "Import", "sourceUri": url,
                         "storageAccountId": acct["id"]},
        "diskSizeBytes": virtual, "diskSizeGB": (virtual + (1 << 30) - 1) >> 30,
        "diskState": "Unattached", "managedBy": None,
        "hyperVGeneration": gen, "osType": os_type.capitalize() if os_type else None,
        "provisioningState": "Creating", "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "timeCreated": now_iso(),
        "tags": dict(str(t).partition("=")[::2] for t in flags.get("tags", [])),
    }
    # Recorded before the data is copied, so that a delete finds a disk
    # whose creation was cut short.
    write_json(meta_p, disk)
    copy_data(blob, raw_p, virtual)
    disk["provisioningState"] = "Succeeded"
    write_json(meta_p, disk)
    out(disk)


def disk_delete(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("disk-delete", "Microsoft.Compute/disks/delete",
           arm_id(rg, "Microsoft.Compute/disks", name))
    meta_p, raw_p = disk_paths(gdir, name)
    if not os.path.exists(meta_p):
        not_found("Microsoft.Compute/disks", rg, name)
    disk = read_json(meta_p)
    if disk.get("managedBy"):
        fail("OperationNotAllowed", "Disk %s is attached to VM %s." % (name, disk["managedBy"]),
             1)
    os.remove(meta_p)
    for p in (raw_p, raw_p + ".tmp"):
        if os.path.exists(p):
            os.remove(p)


# ---------------------------------------------------------------- network ----


def vnet_create(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    vid = arm_id(rg, "Microsoft.Network/virtualNetworks", name)
    inject("vnet-create", "Microsoft.Network/virtualNetworks/write", vid)
    subnet = one(flags, "subnet-name")
    vnet = {"id": vid, "name": name, "location": one(flags, "location", "eastus"),
            "addressSpace": {"addressPrefixes": flags.get("address-prefixes", ["10.0.0.0/16"])},
            "subnets": ([{"id": vid + "/subnets/" + subnet, "name": subnet,
                          "addressPrefix": one(flags, "subnet-prefixes", "10.0.0.0/24")}]
                        if subnet else []),
            "provisioningState": "Succeeded"}
    p = os.path.join(gdir, "vnets", name + ".json")
    if os.path.exists(p):
        vnet = read_json(p)
    write_json(p, vnet)
    out({"newVNet": vnet})


def vnet_delete(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("vnet-delete", "Microsoft.Network/virtualNetworks/delete",
           arm_id(rg, "Microsoft.Network/virtualNetworks", name))
    p = os.path.join(gdir, "vnets", name + ".json")
    if not os.path.exists(p):
        not_found("Microsoft.Network/virtualNetworks", rg, name)
    ndir = os.path.join(gdir, "nics")
    for n in sorted(os.listdir(ndir)) if os.path.isdir(ndir) else []:
        nic = read_json(os.path.join(ndir, n))
        if nic["vnet"] == name:
            fail("InUseSubnetCannotBeDeleted", "Subnet %s is in use by %s/ipConfigurations/"
                 "ipconfig1 and cannot be deleted. In order to delete the subnet, delete all the "
                 "resources within the subnet." % (nic["subnet"], nic["id"]))
    os.remove(p)


def nic_create(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    nid = arm_id(rg, "Microsoft.Network/networkInterfaces", name)
    inject("nic-create", "Microsoft.Network/networkInterfaces/write", nid)
    vnet_name, subnet = one(flags, "vnet-name"), one(flags, "subnet")
    vp = os.path.join(gdir, "vnets", "%s.json" % vnet_name)
    if not os.path.exists(vp):
        not_found("Microsoft.Network/virtualNetworks", rg, vnet_name)
    if subnet not in [s["name"] for s in read_json(vp)["subnets"]]:
        fail("InvalidResourceReference", "Resource %s/subnets/%s referenced by resource %s was "
             "not found." % (read_json(vp)["id"], subnet, nid))
    p = os.path.join(gdir, "nics", name + ".json")
    nic = read_json(p) if os.path.exists(p) else {
        "id": nid, "name": name, "location": one(flags, "location", "eastus"),
        "vnet": vnet_name, "subnet": subnet, "virtualMachine": None,
        "ipConfigurations": [{"name": "ipconfig1", "privateIPAddress": "10.0.0.4",
                              "subnet": {"id": read_json(vp)["id"] + "/subnets/" + subnet}}],
        "provisioningState": "Succeeded"}
    write_json(p, nic)
    out({"NewNIC": nic})


def nic_delete(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("nic-delete", "Microsoft.Network/networkInterfaces/delete",
           arm_id(rg, "Microsoft.Network/networkInterfaces", name))
    p = os.path.join(gdir, "nics", name + ".json")
    if not os.path.exists(p):
        not_found("Microsoft.Network/networkInterfaces", rg, name)
    nic = read_json(p)
    if nic.get("virtualMachine"):
        fail("NicInUse", "Network Interface %s is used by existing resource %s. In order to "
             "delete the network interface, it must be dissociated from the resource. To learn "
             "more, see aka.ms/deletenic." % (nic["id"], nic["virtualMachine"]))
    os.remove(p)


# -------------------------------------------------------------------- VMs ----


def vm_dir(gdir, name):
    return os.path.join(gdir, "vms", name)


def vm_create(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    vid = arm_id(rg, "Microsoft.Compute/virtualMachines", name)
    inject("vm-create", "Microsoft.Compute/virtualMachines/write", vid)
    d = vm_dir(gdir, name)
    if os.path.exists(os.path.join(d, "vm.json")):  # PUT is create-or-update
        out(read_json(os.path.join(d, "vm.json"))["summary"])
        return
    if one(flags, "image"):
        # A generalized image: Azure waits for the guest agent to report
        # provisioning, which a guest without one never does.
        fail("OSProvisioningTimedOut", "OS Provisioning for VM '%s' did not finish in the "
             "allotted time. The VM may still finish provisioning successfully. Please check "
             "provisioning state later. Also, make sure the image has been properly prepared "
             "(generalized)." % name)
    disk_name = one(flags, "attach-os-disk")
    if not disk_name:
        raise CliError("ERROR: usage error: --image IMAGE | --attach-os-disk DISK\n", 2)
    disk_name = disk_name.rsplit("/", 1)[-1]
    meta_p, raw_p = disk_paths(gdir, disk_name)
    if not os.path.exists(meta_p):
        not_found("Microsoft.Compute/disks", rg, disk_name)
    disk = read_json(meta_p)
    if disk.get("managedBy"):
        fail("OperationNotAllowed", "Disk %s is already attached to VM %s." % (disk_name,
                                                                               disk["managedBy"]))
    nic_names = flags.get("nics", [])
    if not nic_names:
        raise CliError("ERROR: the stand-in needs --nics (it creates no network)\n", 2)
    nic_ps = [os.path.join(gdir, "nics", str(n).rsplit("/", 1)[-1] + ".json") for n in nic_names]
    for n, p in zip(nic_names, nic_ps):
        if not os.path.exists(p):
            not_found("Microsoft.Network/networkInterfaces", rg, n)
        if read_json(p).get("virtualMachine"):
            fail("NicInUse", "Network interface %s is in use by %s." % (n, read_json(p)[
                "virtualMachine"]))
    diag = one(flags, "boot-diagnostics-storage")
    if diag and not os.path.isdir(path("blob", diag.split("/")[-1].split(".")[0])):
        fail("StorageAccountNotFound", "The storage account '%s' was not found." % diag, 3)
    firmware = "uefi" if disk["hyperVGeneration"] == "V2" else "bios"
    os.makedirs(d, exist_ok=True)
    summary = {"fqdns": "", "id": vid, "location": one(flags, "location", "eastus"),
               "macAddress": "00-0D-3A-00-00-01", "powerState": "VM running",
               "privateIpAddress": "10.0.0.4", "publicIpAddress": "", "resourceGroup": rg,
               "zones": ""}
    vm = {"summary": summary, "osDisk": disk_name, "nics": nic_ps,
          "size": one(flags, "size", "Standard_DS1_v2"), "bootDiagnostics": diag,
          "hyperVGeneration": disk["hyperVGeneration"],
          "standin": {"pid": None, "firmware": firmware, "disk": "virtio-scsi"}}
    # Recorded (and the disk and NICs marked) before QEMU starts, so a
    # delete always finds it.
    write_json(os.path.join(d, "vm.json"), vm)
    disk.update(managedBy=vid, diskState="Attached")
    write_json(meta_p, disk)
    for p in nic_ps:
        nic = read_json(p)
        nic["virtualMachine"] = vid
        write_json(p, nic)
    vm["standin"]["pid"] = start_qemu(d, raw_p, firmware, "scsi")
    write_json(os.path.join(d, "vm.json"), vm)
    if transient_due("vm-create", "lost-response"):
        fail("TooManyRequests", "The request is being throttled as the limit has been reached "
             "for operation type - Write. Please retry later.")
    out(summary)


def vm_delete(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("vm-delete", "Microsoft.Compute/virtualMachines/delete",
           arm_id(rg, "Microsoft.Compute/virtualMachines", name))
    d = vm_dir(gdir, name)
    p = os.path.join(d, "vm.json")
    if not os.path.exists(p):
        not_found("Microsoft.Compute/virtualMachines", rg, name)
    vm = read_json(p)
    stop_qemu(d, vm.get("standin", {}).get("pid"))
    # An attached OS disk is detached, not deleted (its delete option is
    # Detach); the NICs likewise.
    meta_p, _ = disk_paths(gdir, vm["osDisk"])
    if os.path.exists(meta_p):
        disk = read_json(meta_p)
        disk.update(managedBy=None, diskState="Unattached")
        write_json(meta_p, disk)
    for np in vm["nics"]:
        if os.path.exists(np):
            nic = read_json(np)
            nic["virtualMachine"] = None
            write_json(np, nic)
    shutil.rmtree(d, ignore_errors=True)


def boot_log(args):
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("get-boot-log", "Microsoft.Compute/virtualMachines/read",
           arm_id(rg, "Microsoft.Compute/virtualMachines", name))
    d = vm_dir(gdir, name)
    p = os.path.join(d, "vm.json")
    if not os.path.exists(p):
        not_found("Microsoft.Compute/virtualMachines", rg, name)
    if not read_json(p).get("bootDiagnostics"):
        raise CliError("ERROR: Boot diagnostics is not enabled for VM '%s'\n" % name, 1)
    sys.stdout.write(read_serial(d).decode("utf-8", "replace"))


def boot_log_uris(args):
    """`az vm boot-diagnostics get-boot-log-uris`: SAS URIs of the logs
    (ARM retrieveBootDiagnosticsData). Fault `no-boot-log-yet[=N]`: the
    first N calls answer "Please enable boot diagnostics." as the CLI
    does while the VM has written no log yet."""
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    name = name_of(flags)
    inject("get-boot-log", "Microsoft.Compute/virtualMachines/retrieveBootDiagnosticsData/action",
           arm_id(rg, "Microsoft.Compute/virtualMachines", name))
    p = os.path.join(vm_dir(gdir, name), "vm.json")
    if not os.path.exists(p):
        not_found("Microsoft.Compute/virtualMachines", rg, name)
    if not read_json(p).get("bootDiagnostics") or due("no-boot-log-yet"):
        raise CliError("ERROR: Please enable boot diagnostics.\n", 1)
    base = "https://standinbootdiag.blob.core.windows.net/bootdiagnostics-%s/%s" % (rg, name)
    sas = "?sv=2021-08-06&se=2099-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=standin"
    out({"consoleScreenshotBlobUri": base + ".screenshot.bmp" + sas,
         "serialConsoleLogBlobUri": base + ".serialconsole.log" + sas})


def blob_download(args):
    """`az storage blob download --blob-url URL --file F`: the boot
    diagnostics log of a VM (a SAS URL from get-boot-log-uris)."""
    _, flags = parse_args(args, BOOLS)
    url = one(flags, "blob-url", "")
    dst = one(flags, "file")
    pre = "https://standinbootdiag.blob.core.windows.net/bootdiagnostics-"
    if not url.startswith(pre) or not dst:
        storage_fail("The specified blob does not exist.", "BlobNotFound")
    if "sig=" not in url and one(flags, "auth-mode") != "login":
        storage_fail("Server failed to authenticate the request.", "NoAuthenticationInformation")
    rg, _, rest = url[len(pre):].partition("/")
    name = rest.split(".serialconsole.log")[0]
    d = vm_dir(path("azure", rg), name)
    if not os.path.exists(os.path.join(d, "vm.json")):
        storage_fail("The specified blob does not exist.", "BlobNotFound")
    with open(dst, "wb") as f:
        f.write(read_serial(d))


def account_record(account):
    """The stand-in's storage account: <state>/blob/<account>/account.json
    (resource group `capos-rg` and location `westeurope` by default)."""
    p = path("blob", account, "account.json")
    rec = read_json(p) if os.path.exists(p) else {}
    rg = rec.get("resourceGroup", "capos-rg")
    return {"id": "%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s"
                  % (SUB, rg, account),
            "name": account, "resourceGroup": rg, "location": rec.get("location", "westeurope"),
            "kind": "StorageV2",
            "primaryEndpoints": {"blob": "https://%s.blob.core.windows.net/" % account}}


def storage_account_show(args):
    _, flags = parse_args(args, BOOLS)
    name = name_of(flags)
    if not os.path.isdir(path("blob", name)):
        fail("ResourceNotFound", "The Resource 'Microsoft.Storage/storageAccounts/%s' was not "
             "found." % name, 3)
    out(account_record(name))


def group_show(args):
    _, flags = parse_args(args, BOOLS)
    name = name_of(flags)
    d = path("azure", name)
    if not os.path.isdir(d):
        fail("ResourceGroupNotFound", "Resource group '%s' could not be found." % name, 3)
    p = os.path.join(d, "group.json")
    loc = read_json(p).get("location", "westeurope") if os.path.exists(p) else "westeurope"
    out({"id": "%s/resourceGroups/%s" % (SUB, name), "location": loc, "name": name,
         "properties": {"provisioningState": "Succeeded"}})


def account_show(args):
    """`az account show`; fault `not-logged-in`: the CLI's message."""
    if "not-logged-in" in faults():
        raise CliError("ERROR: Please run 'az login' to setup account.\n", 1)
    out({"environmentName": "AzureCloud", "id": SUB.rsplit("/", 1)[1], "isDefault": True,
         "name": "standin-subscription", "state": "Enabled",
         "tenantId": "00000000-0000-0000-0000-00000000000a",
         "user": {"name": "operator@example.com", "type": "user"}})


def version(args):
    out({"azure-cli": "2.67.0", "azure-cli-core": "2.67.0", "azure-cli-telemetry": "1.1.0",
         "extensions": {}})


def resource_list(args):
    """`az resource list --resource-group RG`: everything the group holds."""
    _, flags = parse_args(args, BOOLS)
    rg, gdir = group_dir(flags)
    res = []
    for sub, kind, ext in (("disks", "Microsoft.Compute/disks", ".json"),
                           ("vnets", "Microsoft.Network/virtualNetworks", ".json"),
                           ("nics", "Microsoft.Network/networkInterfaces", ".json"),
                           ("vms", "Microsoft.Compute/virtualMachines", "")):
        sd = os.path.join(gdir, sub)
        for n in sorted(os.listdir(sd)) if os.path.isdir(sd) else []:
            if ext and not n.endswith(ext):
                continue
            n = n[:-len(ext)] if ext else n
            res.append({"id": arm_id(rg, kind, n), "name": n, "type": kind, "resourceGroup": rg})
    out(res)


# ------------------------------------------------------------------- main ----


def az(argv):
    words = []
    for a in argv:
        if a.startswith("-"):
            break
        words.append(a)
    table = {
        ("storage", "blob", "upload"): blob_upload,
        ("storage", "blob", "delete"): blob_delete,
        ("storage", "blob", "list"): blob_list,
        ("disk", "create"): disk_create,
        ("disk", "delete"): disk_delete,
        ("network", "vnet", "create"): vnet_create,
        ("network", "vnet", "delete"): vnet_delete,
        ("network", "nic", "create"): nic_create,
        ("network", "nic", "delete"): nic_delete,
        ("vm", "create"): vm_create,
        ("vm", "delete"): vm_delete,
        ("vm", "boot-diagnostics", "get-boot-log"): boot_log,
        ("vm", "boot-diagnostics", "get-boot-log-uris"): boot_log_uris,
        ("storage", "blob", "download"): blob_download,
        ("storage", "account", "show"): storage_account_show,
        ("group", "show"): group_show,
        ("account", "show"): account_show,
        ("resource", "list"): resource_list,
    }
    if words == ["version"]:
        return version(argv[1:])
    for n in (3, 2):
        fn = table.get(tuple(words[:n]))
        if fn is not None and len(words) >= n:
            return fn(argv[n:])
    raise CliError("ERROR: '%s' is misspelled or not recognized by the system (not in the "
                   "stand-in).\n" % " ".join(words), 2)
