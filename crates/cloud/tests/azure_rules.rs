//! The az stand-in is honest about imports: it applies Azure's
//! documented VHD rules with tools independent of cloudimg (Python,
//! qemu-img) and fails the way Azure does. (The GCP and AWS rules are
//! applied by the API endpoints: gcp_flow.rs, aws_rules.rs.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{sh, text, StandIn};

fn cli(si: &StandIn, args: &[&str], cwd: &Path) -> Output {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).current_dir(cwd);
    for (k, v) in si.env() {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Upload `file`, import it declared as `format`, poll until the task ends.
fn az(si: &StandIn, cwd: &Path, args: &[&str]) -> Output {
    let mut a = vec!["az"];
    a.extend_from_slice(args);
    cli(si, &a, cwd)
}

/// Upload `file` as a page blob and make an OS disk of it.
fn azure_import(si: &StandIn, cwd: &Path, file: &str, page: bool) -> Output {
    let mut up = vec![
        "storage",
        "blob",
        "upload",
        "--account-name",
        "caposimages",
        "--container-name",
        "vhds",
        "--name",
        "t.vhd",
        "--file",
        file,
        "--overwrite",
    ];
    if page {
        up.extend_from_slice(&["--type", "page"]);
    }
    let out = az(si, cwd, &up);
    assert!(out.status.success(), "{file}: {}", text(&out.stderr));
    az(
        si,
        cwd,
        &[
            "disk",
            "create",
            "--resource-group",
            "capos-rg",
            "--name",
            "d",
            "--source",
            "https://caposimages.blob.core.windows.net/vhds/t.vhd",
            "--os-type",
            "Linux",
            "--hyper-v-generation",
            "V2",
        ],
    )
}

fn bad_request(msg: &str) -> String {
    format!("ERROR: (BadRequest) {msg}\nCode: BadRequest\nMessage: {msg}\n")
}

#[test]
fn azure_rejects_vhds_against_its_rules() {
    if !(common::require_tool("python3") && common::require_tool("qemu-img")) {
        return;
    }
    let si = StandIn::new("");
    let w = tempfile::tempdir().unwrap();
    let d = w.path();
    let url = "https://caposimages.blob.core.windows.net/vhds/t.vhd";
    // Made by qemu-img (not cloudimg): fixed with force_size (Microsoft's
    // recipe), dynamic, CHS-rounded fixed (not a whole MiB), too small.
    sh(d, "head -c 1048576 /dev/urandom > head.bin && truncate -s 24M disk.raw \
        && dd if=head.bin of=disk.raw conv=notrunc 2>/dev/null \
        && qemu-img convert -f raw -O vpc -o subformat=fixed,force_size disk.raw fixed.vhd \
        && qemu-img convert -f raw -O vpc -o subformat=dynamic disk.raw dyn.vhd \
        && qemu-img convert -f raw -O vpc -o subformat=fixed disk.raw chs.vhd \
        && truncate -s 16M small.raw && qemu-img convert -f raw -O vpc -o subformat=fixed,force_size small.raw small.vhd \
        && cp fixed.vhd badsum.vhd && printf x | dd of=badsum.vhd bs=1 seek=$((25165824+28)) conv=notrunc 2>/dev/null \
        && head -c 1000 /dev/zero > odd.bin");
    let chs = std::fs::metadata(d.join("chs.vhd")).unwrap().len() - 512;
    assert_ne!(chs % (1 << 20), 0, "qemu-img rounds to CHS");
    for (file, want) in [
        ("dyn.vhd", bad_request(&format!("The VHD {url} is a dynamic VHD. Only fixed VHDs are supported; convert it to a fixed VHD before uploading."))),
        ("chs.vhd", bad_request(&format!("The VHD {url} has an unsupported virtual size of {chs} bytes. The size must be a whole number (in MBs)."))),
        ("small.vhd", bad_request(&format!("The VHD {url} is 16777728 bytes; the size of an uploaded VHD must be between 20972032 and 35184372089344 bytes."))),
        ("badsum.vhd", bad_request(&format!("The VHD footer checksum of blob {url} is not valid."))),
        ("disk.raw", bad_request(&format!("The specified cookie value in VHD footer indicates that disk 't.vhd' with blob {url} is not a supported VHD. Disk is expected to have cookie value 'conectix'."))),
    ] {
        let out = azure_import(&si, d, file, true);
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert_eq!(text(&out.stderr), want, "{file}");
    }
    // A block blob is not a VHD Azure imports; a page blob must be a
    // whole number of 512-byte pages.
    let out = azure_import(&si, d, "fixed.vhd", false);
    assert_eq!(
        text(&out.stderr),
        bad_request(&format!(
            "The source blob {url} is not a page blob. Upload the VHD with --type page."
        ))
    );
    let up = az(
        &si,
        d,
        &[
            "storage",
            "blob",
            "upload",
            "--account-name",
            "caposimages",
            "--container-name",
            "vhds",
            "--name",
            "o.vhd",
            "--file",
            "odd.bin",
            "--type",
            "page",
        ],
    );
    assert_eq!(up.status.code(), Some(1));
    assert!(
        text(&up.stderr)
            .starts_with("The page blob size must be aligned to a 512-byte boundary.\n"),
        "{}",
        text(&up.stderr)
    );
    assert!(text(&up.stderr).ends_with("ErrorCode:InvalidHeaderValue\n"));

    // The good one: the disk holds exactly the raw disk's bytes.
    let out = azure_import(&si, d, "fixed.vhd", true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hyperVGeneration"], "V2");
    assert_eq!(v["diskSizeBytes"], 24 << 20);
    assert_eq!(v["provisioningState"], "Succeeded");
    let raw = std::fs::read(si.state().join("azure/capos-rg/disks/d.raw")).unwrap();
    assert_eq!(raw, std::fs::read(d.join("disk.raw")).unwrap());

    // A generalized image route is what a guest without the Azure agent
    // cannot take.
    let out = az(
        &si,
        d,
        &[
            "vm",
            "create",
            "--resource-group",
            "capos-rg",
            "--name",
            "v",
            "--image",
            "img",
        ],
    );
    assert!(
        text(&out.stderr).starts_with(
            "ERROR: (OSProvisioningTimedOut) OS Provisioning for VM 'v' did not finish"
        ),
        "{}",
        text(&out.stderr)
    );

    // Listing shows what exists; deletes really remove; deleting again is
    // a not-found (exit 3).
    let listed = |si: &StandIn| -> serde_json::Value {
        let out = az(si, d, &["resource", "list", "--resource-group", "capos-rg"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(listed(&si)[0]["type"], "Microsoft.Compute/disks");
    assert_eq!(listed(&si)[0]["name"], "d");
    let del = [
        "disk",
        "delete",
        "--resource-group",
        "capos-rg",
        "--name",
        "d",
        "--yes",
    ];
    assert!(az(&si, d, &del).status.success());
    assert!(!si.state().join("azure/capos-rg/disks/d.raw").exists());
    assert_eq!(listed(&si), serde_json::json!([]));
    let again = az(&si, d, &del);
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(
        text(&again.stderr),
        "ERROR: (ResourceNotFound) The Resource 'Microsoft.Compute/disks/d' under resource group 'capos-rg' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix\nCode: ResourceNotFound\nMessage: The Resource 'Microsoft.Compute/disks/d' under resource group 'capos-rg' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix\n"
    );
    let bdel = [
        "storage",
        "blob",
        "delete",
        "--account-name",
        "caposimages",
        "--container-name",
        "vhds",
        "--name",
        "t.vhd",
    ];
    assert!(az(&si, d, &bdel).status.success());
    let again = az(&si, d, &bdel);
    assert!(
        text(&again.stderr).ends_with("ErrorCode:BlobNotFound\n"),
        "{}",
        text(&again.stderr)
    );
    let list = az(
        &si,
        d,
        &[
            "storage",
            "blob",
            "list",
            "--account-name",
            "caposimages",
            "--container-name",
            "vhds",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
}
