//! `cloudimg cloud` as a user runs it: the binary, driving the real `aws`
//! against the local AWS emulator (standin/api: moto and our EC2
//! endpoint, which boots the imported disk in QEMU), and, for Azure
//! compute (no emulator exists), the stand-in standin/bin/az first on
//! PATH. The flows themselves are tested in depth in crates/cloud/tests;
//! this proves the command line drives them.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::calls::Calls;
use common::real::{ready_aws, venv_bin, AwsEmu};
use common::seed::{aws_json, import_snapshot, register};
use common::{killed, ok, require_tool, require_validator, validate};

fn standin_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../standin/bin")
        .canonicalize()
        .unwrap()
}

fn cloudimg(args: &[&str], cwd: &Path, state: &Path) -> Output {
    let path = format!(
        "{}:{}",
        standin_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .current_dir(cwd)
        .env("PATH", path)
        .env("CLOUDIMG_STANDIN_STATE", state)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running cloudimg")
}

/// Run the built `cloudimg` in `cwd` with `env` added (e.g. an
/// emulator's [`AwsEmu::env`]).
fn cloudimg_env(args: &[&str], cwd: &Path, env: &[(OsString, OsString)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().cloned())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running cloudimg")
}

/// The real `aws` behind a wrapper that logs each call.
fn aws_calls(emu: &AwsEmu) -> Calls {
    Calls::new(emu.dir(), &[("aws", Some(venv_bin().join("aws")))])
}

#[test]
fn aws_vmdk_run_boots_keeps_evidence_and_leaves_nothing() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let mb = emu.aws(&["s3", "mb", "s3://capos-images"]);
    assert!(mb.status.success(), "{mb:?}");
    let calls = aws_calls(&emu);
    let env = calls.wrap(emu.env());
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg_env(&["image", "build", "-o", "img.raw"], d, &env));
    ok(cloudimg_env(
        &["package", "img.raw", "--aws", "-o", "cloud"],
        d,
        &env,
    ));

    let plan = ok(cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "capos-images",
            "--format",
            "vmdk",
            "--boot-mode",
            "uefi",
            "--artifact",
            "cloud/capos-aws.vmdk",
            "--name",
            "capos-test",
            "--plan",
        ],
        d,
        &env,
    ));
    assert!(
        plan.contains("aws s3 cp cloud/capos-aws.vmdk s3://capos-images/capos-test.vmdk"),
        "{plan}"
    );
    assert!(plan.contains("\"Format\":\"VMDK\""), "{plan}");
    assert!(plan.contains("--boot-mode uefi"), "{plan}");
    assert_eq!(calls.lines(), Vec::<String>::new(), "--plan runs nothing");

    ok(cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "capos-images",
            "--format",
            "vmdk",
            "--boot-mode",
            "uefi",
            "--artifact",
            "cloud/capos-aws.vmdk",
            "--name",
            "capos-test",
            "--evidence",
            "ev",
            "--timeout",
            "120",
            "--poll",
            "1",
        ],
        d,
        &env,
    ));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true, "{summary}");
    // Asked of the emulator: nothing is left (instance, AMI, snapshot,
    // import task, object, QEMU).
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let serial = std::fs::read_to_string(d.join("ev/serial.log")).unwrap();
    assert!(
        serial.contains("capos kernel starting") && serial.contains("firmware=uefi"),
        "{serial}"
    );
    for f in ["resources.json", "commands.jsonl", "artifact.json"] {
        assert!(d.join("ev").join(f).exists(), "{f} kept as evidence");
    }
    // Teardown left nothing: a second teardown from the journal has nothing to do.
    ok(cloudimg_env(
        &["cloud", "teardown", "--journal", "ev/resources.json"],
        d,
        &env,
    ));
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/resources.json")).unwrap()).unwrap();
    let text = journal.to_string();
    assert!(text.contains("deleted"), "{text}");
    for state in [
        "\"creating\"",
        "\"created\"",
        "delete-failed",
        "delete_failed",
    ] {
        assert!(!text.contains(state), "{state} left in {text}");
    }
}

/// A fixed VHD of `size` bytes written by cloudimg's own VHD writer.
fn fixed_vhd(path: &Path, size: u64) {
    let disk = cloudimg_disk::MemDisk::new(vec![0; size as usize]);
    let f = std::fs::File::create(path).unwrap();
    let opts = cloudimg_disk::formats::WriteOptions {
        mtime: 1_700_000_000,
        seed: [1; 32],
    };
    cloudimg_disk::formats::vhd::write_fixed(&disk, &f, &opts).unwrap();
}

fn azure_plan(d: &Path, artifact: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "cloud",
        "azure",
        "--resource-group",
        "capos-rg",
        "--location",
        "westeurope",
        "--storage-account",
        "caposimages",
        "--container",
        "vhds",
        "--name",
        "capos-test",
        "--artifact",
        artifact,
        "--plan",
    ];
    args.extend_from_slice(extra);
    cloudimg(&args, d, &d.join("state"))
}

/// Exit 2 and exactly this one line on stderr.
fn fails_with(out: Output, line: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err, format!("cloudimg: error: {line}\n"));
    assert!(out.stdout.is_empty());
}

#[test]
fn azure_plan_uefi_is_generation_v2_and_runs_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixed_vhd(&d.join("capos-azure.vhd"), 32 << 20);
    let plan = ok(azure_plan(d, "capos-azure.vhd", &[]));
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(
        lines[0],
        "# checked capos-azure.vhd: fixed VHD, virtual size 33554432 bytes (32 MiB), creator \"qem2\"; Hyper-V generation V2 (uefi)"
    );
    for l in [
        "az storage blob upload --account-name caposimages --container-name vhds --name capos-test.vhd --file capos-azure.vhd --type page --overwrite --auth-mode login --output json",
        "az disk create --resource-group capos-rg --name capos-test-osdisk --location westeurope --source https://caposimages.blob.core.windows.net/vhds/capos-test.vhd --source-storage-account-id '<storage account id>' --os-type Linux --hyper-v-generation V2 --output json",
        "az vm create --resource-group capos-rg --name capos-test --location westeurope --attach-os-disk capos-test-osdisk --os-type Linux --size Standard_B1s --nics capos-test-nic --boot-diagnostics-storage caposimages --output json",
        "az vm boot-diagnostics get-boot-log-uris --resource-group capos-rg --name capos-test --output json",
        "az storage blob download --blob-url '<serialConsoleLogBlobUri>' --file '<evidence/boot-log.download>' --auth-mode login --output none",
        "az vm delete --resource-group capos-rg --name capos-test --yes",
        "az disk delete --resource-group capos-rg --name capos-test-osdisk --yes",
        "az storage blob delete --account-name caposimages --container-name vhds --name capos-test.vhd --auth-mode login",
    ] {
        assert!(lines.contains(&l), "{l} missing from\n{plan}");
    }
    // The specialized-disk route: no image, no admin credentials.
    assert!(
        !plan.contains("--image") && !plan.contains("--admin"),
        "{plan}"
    );
    // Teardown is the last step, the blob deleted last.
    assert!(lines.last().unwrap().starts_with("az storage blob delete"));
    assert!(!d.join("state").exists(), "--plan runs nothing");
}

#[test]
fn azure_plan_bios_is_generation_v1_and_json_parses() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fixed_vhd(&d.join("capos-azure.vhd"), 20 << 20);
    let out = ok(azure_plan(
        d,
        "capos-azure.vhd",
        &["--boot-mode", "bios", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "cloudimg.cloud-plan/1");
    assert_eq!(v["provider"], "azure");
    assert_eq!(v["generation"], "V1");
    assert_eq!(v["boot_mode"], "V1");
    assert_eq!(v["firmware"], "bios");
    assert_eq!(v["vhd"]["virtual_size_bytes"], 20 << 20);
    assert_eq!(v["vhd"]["file_size_bytes"], (20 << 20) + 512);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "verify",
            "preflight (version, identity, location, storage account id)",
            "upload (page blob)",
            "import (managed disk from the blob)",
            "network",
            "boot (OS disk attached)",
            "read serial (repeated; \"Please enable boot diagnostics.\" means not yet)",
            "teardown"
        ]
    );
    let import = &v["steps"][3]["commands"][0];
    assert_eq!(import["program"], "az");
    let args: Vec<&str> = import["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let g = args
        .iter()
        .position(|&a| a == "--hyper-v-generation")
        .unwrap();
    assert_eq!(args[g + 1], "V1");
    let kinds: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "azure-blob",
            "azure-disk",
            "azure-vnet",
            "azure-nic",
            "azure-vm"
        ]
    );
}

#[test]
fn azure_plan_refuses_what_azure_refuses() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fails_with(
        azure_plan(d, "missing.vhd", &[]),
        "missing.vhd: does not exist (run `cloudimg package --azure` first)",
    );
    fixed_vhd(&d.join("odd.vhd"), (32 << 20) - 512);
    fails_with(
        azure_plan(d, "odd.vhd", &[]),
        "odd.vhd: virtual size 33553920 bytes is not a whole number of MiB, which Azure requires",
    );
    fixed_vhd(&d.join("small.vhd"), 10 << 20);
    fails_with(
        azure_plan(d, "small.vhd", &[]),
        "small.vhd: virtual size 10485760 bytes is less than Azure's minimum of 20 MiB",
    );
    std::fs::write(d.join("raw.img"), vec![0u8; 32 << 20]).unwrap();
    fails_with(
        azure_plan(d, "raw.img", &[]),
        "raw.img: is a raw file, expected a fixed VHD (cloudimg package --azure)",
    );
    // A footer with one byte changed (its creator application): the
    // verifier's finding, with its offset.
    fixed_vhd(&d.join("bad.vhd"), 32 << 20);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("bad.vhd"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"X", (32 << 20) + 28).unwrap();
    let out = azure_plan(d, "bad.vhd", &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.starts_with(
            "cloudimg: error: bad.vhd: failed verification: at byte 33554496: footer checksum mismatch (expected "
        )
            && err.lines().count() == 1,
        "{err}"
    );
    // Names are checked before the file.
    fails_with(
        cloudimg(
            &[
                "cloud",
                "azure",
                "--resource-group",
                "g",
                "--storage-account",
                "Bad_Account",
                "--container",
                "vhds",
                "--artifact",
                "odd.vhd",
                "--plan",
            ],
            d,
            &d.join("state"),
        ),
        "Azure storage account \"Bad_Account\" is invalid: use 3-24 lowercase letters and digits",
    );
}

#[test]
fn azure_plan_refuses_a_dynamic_vhd() {
    if !require_tool("qemu-img") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::File::create(d.join("a.raw"))
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    common::run(
        Command::new("qemu-img")
            .args([
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                "subformat=dynamic",
                "a.raw",
                "dyn.vhd",
            ])
            .current_dir(d),
    );
    fails_with(
        azure_plan(d, "dyn.vhd", &[]),
        "dyn.vhd: is a vhd-dynamic file, expected a fixed VHD (cloudimg package --azure)",
    );
}

// ------------------------------------------------------- azure full run ----

/// A built demo image as a fixed VHD (until `package --azure` lands: the
/// 256 MiB image is a whole MiB, written with cloudimg's VHD writer), and
/// a stand-in state with the resource group and the container.
fn azure_setup(d: &Path) -> PathBuf {
    let state = d.join("state");
    std::fs::create_dir_all(state.join("blob/caposimages/vhds")).unwrap();
    std::fs::create_dir_all(state.join("azure/capos-rg")).unwrap();
    ok(cloudimg(&["image", "build", "-o", "img.raw"], d, &state));
    std::fs::create_dir_all(d.join("cloud")).unwrap();
    let raw = cloudimg_disk::io::RawFile::open(d.join("img.raw")).unwrap();
    let f = std::fs::File::create(d.join("cloud/capos-azure.vhd")).unwrap();
    let opts = cloudimg_disk::formats::WriteOptions {
        mtime: 1_700_000_000,
        seed: [1; 32],
    };
    cloudimg_disk::formats::vhd::write_fixed(&raw, &f, &opts).unwrap();
    state
}

fn azure_run_args<'a>(boot: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "cloud",
        "azure",
        "--resource-group",
        "capos-rg",
        "--storage-account",
        "caposimages",
        "--container",
        "vhds",
        "--boot-mode",
        boot,
        "--artifact",
        "cloud/capos-azure.vhd",
        "--name",
        "capos-cli",
        "--poll",
        "1",
    ];
    a.extend_from_slice(extra);
    a
}

/// Whatever the stand-in still holds for the run.
fn azure_leftovers(state: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for sub in [
        "blob/caposimages/vhds",
        "azure/capos-rg/disks",
        "azure/capos-rg/vnets",
        "azure/capos-rg/nics",
        "azure/capos-rg/vms",
    ] {
        if let Ok(rd) = std::fs::read_dir(state.join(sub)) {
            left.extend(rd.flatten().map(|e| e.path().display().to_string()));
        }
    }
    left
}

#[test]
fn azure_run_boots_uefi_and_bios_with_json_summaries() {
    if !(require_tool("qemu-system-x86_64") && require_tool("python3")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let state = azure_setup(d);
    for (boot, gen, firmware) in [("uefi", "V2", "uefi"), ("bios", "V1", "bios")] {
        let ev = format!("ev-{boot}");
        let out = ok(cloudimg(
            &azure_run_args(boot, &["--evidence", &ev, "--json", "--timeout", "120"]),
            d,
            &state,
        ));
        let s: serde_json::Value = serde_json::from_str(&out).unwrap();
        if require_validator() {
            validate("cloud-run", &s, "cloud azure --json");
        }
        assert_eq!(s["passed"], true, "{s}");
        assert_eq!(s["provider"], "azure");
        assert_eq!(s["boot_mode"], gen);
        assert_eq!(s["teardown"]["deleted"].as_array().unwrap().len(), 5, "{s}");
        assert_eq!(
            s,
            serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(d.join(&ev).join("summary.json")).unwrap()
            )
            .unwrap()
        );
        let serial = std::fs::read_to_string(d.join(&ev).join("serial.log")).unwrap();
        assert!(
            serial.contains("capos kernel starting")
                && serial.contains(&format!("firmware={firmware}")),
            "{serial}"
        );
        assert_eq!(azure_leftovers(&state), Vec::<String>::new(), "{boot}");
    }
    // Text output: the PASS line.
    let out = ok(cloudimg(
        &azure_run_args("bios", &["--evidence", "ev-text", "--timeout", "120"]),
        d,
        &state,
    ));
    assert!(
        out.starts_with("PASS azure: capos-cli reached \"capos kernel starting\" after "),
        "{out}"
    );
    assert!(out.contains("boot mode V1"), "{out}");
}

#[test]
fn azure_killed_run_is_cleaned_up_by_cloud_teardown() {
    if !(require_tool("qemu-system-x86_64") && require_tool("python3")) {
        return;
    }
    use std::os::unix::process::CommandExt;
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let state = azure_setup(d);
    let path = format!(
        "{}:{}",
        standin_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudimg"))
        .args(azure_run_args(
            "bios",
            &["--evidence", "ev", "--timeout", "300"],
        ))
        .current_dir(d)
        .env("PATH", &path)
        .env("CLOUDIMG_STANDIN_STATE", &state)
        .env("CLOUDIMG_STANDIN_FAULTS", "no-landmark")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    killed::kill_when(
        &mut child,
        &d.join("ev/resources.json"),
        "azure-vm",
        "created",
        std::time::Duration::from_secs(120),
    );
    // Blob (+ its metadata), disk (+ its data), vnet, NIC, VM.
    assert_eq!(
        azure_leftovers(&state).len(),
        7,
        "{:?}",
        azure_leftovers(&state)
    );
    let out = ok(cloudimg(
        &["cloud", "teardown", "--journal", "ev/resources.json"],
        d,
        &state,
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "deleted Azure VM capos-cli (resource group capos-rg)",
            "deleted Azure NIC capos-cli-nic (resource group capos-rg)",
            "deleted Azure vnet capos-cli-vnet (resource group capos-rg)",
            "deleted Azure disk capos-cli-osdisk (resource group capos-rg)",
            "deleted blob https://caposimages.blob.core.windows.net/vhds/capos-cli.vhd",
        ]
    );
    assert_eq!(azure_leftovers(&state), Vec::<String>::new());
    let calls = std::fs::read_to_string(state.join("calls.log")).unwrap();
    assert!(calls.contains("[\"az\", \"vm\", \"delete\""), "{calls}");
}

#[test]
fn teardown_refuses_a_hostile_journal_in_one_line_and_runs_nothing() {
    if !ready_aws() {
        return;
    }
    // Someone else's AMI in the emulator, made with the real CLI.
    let emu = AwsEmu::start("");
    let snap = import_snapshot(&emu);
    let ami = register(&emu, &snap, "prod-web");
    let held = {
        let mut l = emu.leftovers();
        l.sort();
        l
    };
    let calls = aws_calls(&emu);
    let env = calls.wrap(emu.env());
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let journal = |resource: &str| {
        format!(
            r#"{{"version": 1, "provider": "aws", "run_id": "r1", "resources": [{{"resource": {resource}, "state": "created", "updated_unix": 1}}]}}"#
        )
    };
    for (resource, line) in [
        (
            r#"{"kind": "aws-image", "id": null, "name": "*", "region": null}"#,
            r#"j.json: resources[0].resource.name "*" is not an AMI name (3-128 letters, digits and ()[]./-'@_, not starting with '-')"#,
        ),
        (
            r#"{"kind": "aws-image", "id": "--dry-run", "name": "capos-x", "region": null}"#,
            r#"j.json: resources[0].resource.id "--dry-run" is not an AMI id (ami- then 8 or 17 lowercase hex digits)"#,
        ),
    ] {
        std::fs::write(d.join("j.json"), journal(resource)).unwrap();
        fails_with(
            cloudimg_env(&["cloud", "teardown", "--journal", "j.json"], d, &env),
            line,
        );
        assert_eq!(calls.lines(), Vec::<String>::new(), "no CLI ran");
        let mut now = emu.leftovers();
        now.sort();
        assert_eq!(now, held);
    }
    // The same journal with a valid name tears down only what it names.
    std::fs::write(
        d.join("j.json"),
        journal(r#"{"kind": "aws-image", "id": null, "name": "capos-x", "region": null}"#),
    )
    .unwrap();
    let out = ok(cloudimg_env(
        &["cloud", "teardown", "--journal", "j.json"],
        d,
        &env,
    ));
    assert_eq!(out, "already gone: AMI named capos-x\n");
    assert!(!calls.lines().is_empty(), "the real aws was asked");
    let v = aws_json(&emu, &["ec2", "describe-images", "--image-ids", &ami]);
    assert_eq!(v["Images"][0]["Name"], "prod-web", "{v}");
}

#[test]
fn gcp_and_aws_plans_are_json_documents_and_run_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // Every cloud CLI is a tripwire here.
    let calls = Calls::tripwires(d);
    let env = calls.wrap(vec![]);
    let gcp = ok(cloudimg_env(
        &[
            "cloud",
            "gcp",
            "--bucket",
            "bkt",
            "--name",
            "capos-test",
            "--artifact",
            "x.tar.gz",
            "--network",
            "capos-net",
            "--plan",
            "--json",
        ],
        d,
        &env,
    ));
    let v: serde_json::Value = serde_json::from_str(&gcp).unwrap();
    assert_eq!(v["schema"], "cloudimg.cloud-plan/1");
    assert_eq!(v["provider"], "gcp");
    assert_eq!(v["firmware"], "uefi");
    let lines: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["commands"].as_array().unwrap())
        .map(|c| c["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"gcloud compute instances create capos-test '--project=<gcloud config project>' '--zone=<gcloud config compute/zone>' --image=capos-test --machine-type=e2-small --no-address --network=capos-net --format=json"),
        "{lines:#?}"
    );
    let aws = ok(cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "bkt",
            "--name",
            "capos-test",
            "--artifact",
            "x.raw",
            "--format",
            "raw",
            "--subnet-id",
            "subnet-08fc749671b2d077c",
            "--security-group-id",
            "sg-0b0384b66d7d692f9",
            "--plan",
            "--json",
        ],
        d,
        &env,
    ));
    let v: serde_json::Value = serde_json::from_str(&aws).unwrap();
    assert_eq!(v["schema"], "cloudimg.cloud-plan/1");
    assert_eq!(v["provider"], "aws");
    assert_eq!(v["boot_mode"], "uefi-preferred");
    assert!(aws.contains("'--client-token=<run-id-name>'"), "{aws}");
    assert!(
        aws.contains(
            "--subnet-id=subnet-08fc749671b2d077c --security-group-ids sg-0b0384b66d7d692f9"
        ),
        "{aws}"
    );
    assert_eq!(calls.lines(), Vec::<String>::new(), "--plan runs nothing");
}

#[test]
fn not_logged_in_exits_2_says_what_to_run_and_reports_nothing_left_behind() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    // The real CLI without credentials: no credentials file, no keys, a
    // HOME without ~/.aws.
    let mut env: Vec<(OsString, OsString)> = emu
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE")
        .collect();
    env.extend([
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            emu.dir().join("no-such-credentials").into(),
        ),
        ("HOME".into(), emu.dir().into()),
        ("AWS_ACCESS_KEY_ID".into(), "".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "".into()),
    ]);
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg_env(&["image", "build", "-o", "img.raw"], d, &env));
    let out = cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "bkt",
            "--artifact",
            "img.raw",
            "--format",
            "raw",
            "--name",
            "capos-nolog",
            "--evidence",
            "ev",
            "--json",
        ],
        d,
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("aws is not logged in (Unable to locate credentials."),
        "{err}"
    );
    assert!(
        err.contains("run `aws configure`; nothing was created"),
        "{err}"
    );
    assert!(!err.contains("LEFT BEHIND"), "{err}");
    assert!(!d.join("ev/resources.json").exists());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "cloudimg.cloud-run/1");
    assert_eq!(v["passed"], false);
    assert_eq!(v["error_kind"], "permission");
    assert!(v["teardown"].is_null(), "{v}");
    // Asked of the emulator: nothing was created.
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}

#[test]
fn teardown_json_is_a_document_and_publish_excludes_keep() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let env = emu.env();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("x"), "x").unwrap();
    let cp = emu.aws(&[
        "s3",
        "cp",
        d.join("x").to_str().unwrap(),
        "s3://bkt/capos-x.raw",
    ]);
    assert!(cp.status.success(), "{cp:?}");
    std::fs::write(
        d.join("j.json"),
        r#"{"version": 1, "provider": "aws", "run_id": "r1", "resources": [{"resource": {"kind": "s3-object", "uri": "s3://bkt/capos-x.raw", "region": null}, "state": "kept", "updated_unix": 1}]}"#,
    )
    .unwrap();
    // A kept (published) resource is removed by the journal's teardown.
    let out = ok(cloudimg_env(
        &["cloud", "teardown", "--journal", "j.json", "--json"],
        d,
        &env,
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    if require_validator() {
        validate("teardown", &v, "cloud teardown --json");
    }
    assert_eq!(v["schema"], "cloudimg.teardown/1");
    assert_eq!(v["deleted"][0], "object s3://bkt/capos-x.raw");
    assert_eq!(v["failed"].as_array().unwrap().len(), 0);
    assert_eq!(v["clean"], true);
    assert_eq!(emu.leftovers(), Vec::<String>::new());
    // --keep keeps everything; --publish only the image: not both.
    let out = cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "bkt",
            "--keep",
            "--publish",
            "--plan",
        ],
        d,
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[test]
fn aws_publish_prints_the_ami_and_teardown_removes_it_later() {
    if !ready_aws() {
        return;
    }
    let emu = AwsEmu::start("");
    let env = emu.env();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(cloudimg_env(&["image", "build", "-o", "img.raw"], d, &env));
    let out = ok(cloudimg_env(
        &[
            "cloud",
            "aws",
            "--bucket",
            "bkt",
            "--artifact",
            "img.raw",
            "--format",
            "raw",
            "--boot-mode",
            "legacy-bios",
            "--name",
            "capos-pub",
            "--evidence",
            "ev",
            "--publish",
            "--label",
            "os=capos",
            "--poll",
            "1",
            "--timeout",
            "120",
        ],
        d,
        &env,
    ));
    assert!(out.starts_with("PUBLISHED ami-"), "{out}");
    assert!(out.contains("; kept snapshot snap-"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("remove with `cloudimg cloud teardown --journal ev/resources.json`"),
        "{out}"
    );
    let sum: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/summary.json")).unwrap()).unwrap();
    assert_eq!(sum["schema"], "cloudimg.cloud-run/1");
    let ami = sum["published"]["image_id"].as_str().unwrap().to_string();
    // Asked of the emulator: the AMI and its snapshot stay, nothing else
    // (the object, the instance and its QEMU are gone).
    let left = emu.leftovers();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&format!("image {ami}")), "{left:?}");
    assert!(
        left.iter().any(|l| l.starts_with("snapshot snap-")),
        "{left:?}"
    );
    // moto's default account, as `aws sts get-caller-identity` tells it.
    let id: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ev/identity.json")).unwrap()).unwrap();
    assert_eq!(id["account"], "123456789012");
    // Later, the journal removes the published AMI and its snapshot.
    let out = ok(cloudimg_env(
        &[
            "cloud",
            "teardown",
            "--journal",
            "ev/resources.json",
            "--json",
        ],
        d,
        &env,
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["deleted"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(emu.leftovers(), Vec::<String>::new());
}
