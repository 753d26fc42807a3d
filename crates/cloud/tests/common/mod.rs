//! Helpers shared by the cloud tests; the general ones come from
//! `cloudimg-testkit`.
#![allow(dead_code, unused_imports)]

pub use cloudimg_testkit::*;

pub mod calls;
pub mod killed;
pub mod real;
pub mod seed;

// ------------------------------------------------------------ cloud ----

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cloudimg_cloud::{AwsFormat, AwsTarget, AzureTarget, BootMode, GcpTarget, RunOptions, Target};
use cloudimg_disk::vocab::Firmware;

/// Everything the flow tests need: qemu, qemu-img, OVMF, GRUB, python3, tar.
pub fn ready() -> bool {
    real::tools_ready()
}

/// The 256 MiB demo image packaged into every shape, built once per test
/// binary under target/tmp: (directory, with manifest.json).
pub fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "cloud".into());
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cloud-{name}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let opts = cloudimg_image::ImageOptions {
            source_date_epoch: 1_700_000_000,
            seed: 1,
            ..cloudimg_image::ImageOptions::new()
        };
        let img = cloudimg_image::build_image(&opts, &d.join("demo.raw"))
            .unwrap()
            .path;
        let req = cloudimg_disk::package::PackageRequest {
            input: img,
            out_dir: d.join("cloud"),
            name: "capos".into(),
            shapes: cloudimg_disk::package::Shape::ALL.to_vec(),
            mtime: 1_700_000_000,
            jobs: 2,
            qcow2_compressed: false,
            progress: None,
        };
        let out = cloudimg_disk::package::package(&req, &mut |_| {}).unwrap();
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        // The Azure VHD: the 256 MiB image (a whole MiB) as a fixed VHD,
        // unless `package` made one already.
        let vhd = d.join("cloud/capos-azure.vhd");
        if !vhd.exists() {
            azure_vhd(&d.join("demo.raw"), &vhd);
        }
        d.join("cloud")
    })
}

/// Write `raw` (a whole number of MiB) as a fixed VHD with cloudimg's
/// own writer.
pub fn azure_vhd(raw: &Path, out: &Path) {
    let disk = cloudimg_disk::io::RawFile::open(raw).unwrap();
    use cloudimg_disk::VirtualDisk;
    assert_eq!(disk.size() % (1 << 20), 0, "not a whole MiB");
    let f = std::fs::File::create(out).unwrap();
    let opts = cloudimg_disk::formats::WriteOptions {
        mtime: 1_700_000_000,
        seed: [1; 32],
    };
    cloudimg_disk::formats::vhd::write_fixed(&disk, &f, &opts).unwrap();
}

/// The az stand-in's bin directory.
pub fn standin_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../standin/bin")
        .canonicalize()
        .unwrap()
}

/// The az stand-in's cloud (Azure compute has no emulator): a state
/// directory with storage account `caposimages`, container `vhds` and
/// resource group `capos-rg`.
pub struct StandIn {
    pub dir: tempfile::TempDir,
    pub faults: String,
}

impl StandIn {
    pub fn new(faults: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("standin-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        std::fs::create_dir_all(dir.path().join("blob/caposimages/vhds")).unwrap();
        std::fs::create_dir_all(dir.path().join("azure/capos-rg")).unwrap();
        StandIn {
            dir,
            faults: faults.to_string(),
        }
    }

    pub fn state(&self) -> &Path {
        self.dir.path()
    }

    /// PATH with the stand-in first, the state dir, the faults.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let mut paths = vec![standin_bin()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        vec![
            ("PATH".into(), std::env::join_paths(paths).unwrap()),
            ("CLOUDIMG_STANDIN_STATE".into(), self.state().into()),
            ("CLOUDIMG_STANDIN_FAULTS".into(), self.faults.clone().into()),
        ]
    }

    /// Every resource the stand-in still holds, and every QEMU still
    /// running from its state directory.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = self.state();
        for sub in [
            "blob/caposimages/vhds",
            "azure/capos-rg/disks",
            "azure/capos-rg/vnets",
            "azure/capos-rg/nics",
            "azure/capos-rg/vms",
        ] {
            walk(&s.join(sub), &mut out);
        }
        out.extend(qemus_in(s).into_iter().map(|p| format!("qemu pid {p}")));
        out
    }
}

fn walk(d: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
                out.push(p.display().to_string());
            } else {
                out.push(p.display().to_string());
            }
        }
    }
}

/// Pids of live processes whose working directory is inside `dir`.
pub fn qemus_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if cwd.starts_with(&dir) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Fast polling, short backoff, progress to the test's stderr.
pub fn options(artifact: PathBuf, evidence: PathBuf, standin: &StandIn) -> RunOptions {
    let log: cloudimg_cloud::Log = Arc::new(|s: &str| eprintln!("{s}"));
    let mut o = RunOptions::new(artifact, evidence, log);
    o.env = standin.env();
    o.poll_interval = Duration::from_millis(200);
    o.boot_timeout = Duration::from_secs(90);
    o.backoff = Duration::from_millis(50);
    o.command_timeout = Duration::from_secs(120);
    o.settle = Duration::from_secs(20);
    o
}

pub fn gcp_target(name: &str) -> Target {
    Target::Gcp(GcpTarget {
        project: "capos-proj".into(),
        bucket: "bkt".into(),
        zone: "us-central1-a".into(),
        machine_type: "e2-small".into(),
        name: name.into(),
        gsutil: false,
        network: None,
        subnet: None,
        family: None,
        labels: vec![],
        firmware: Firmware::Uefi,
    })
}

pub fn aws_target(name: &str, format: AwsFormat, boot_mode: BootMode) -> Target {
    Target::Aws(AwsTarget {
        bucket: "bkt".into(),
        region: Some("us-east-1".into()),
        format,
        boot_mode,
        instance_type: "t3.micro".into(),
        name: name.into(),
        subnet_id: None,
        security_group_ids: vec![],
        labels: vec![],
    })
}

pub fn azure_target(name: &str, firmware: Firmware) -> Target {
    Target::Azure(AzureTarget {
        resource_group: "capos-rg".into(),
        location: "westeurope".into(),
        storage_account: "caposimages".into(),
        storage_account_id: None,
        labels: vec![],
        container: "vhds".into(),
        vm_size: "Standard_B1s".into(),
        firmware,
        name: name.into(),
    })
}

/// The artifact for a target.
pub fn artifact_for(t: &Target) -> PathBuf {
    let d = artifacts();
    match t {
        Target::Gcp(_) => d.join("disk.raw.tar.gz"),
        Target::Aws(a) => d.join(format!("capos-aws.{}", a.format.ext())),
        Target::Azure(_) => d.join("capos-azure.vhd"),
    }
}

/// One flow run of `target` (named run `real-run`) with options `o`
/// changed by `tweak`, evidence in a new temp dir under `ev`'s name;
/// the summary and that temp dir.
fn run_in(
    target: &Target,
    options: impl FnOnce(&Path) -> RunOptions,
    tweak: impl FnOnce(&mut RunOptions),
) -> (cloudimg_cloud::Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(ev.path());
    tweak(&mut o);
    let s = cloudimg_cloud::flow::run(target, "real-run", &o).expect("evidence can be written");
    (s, ev)
}

/// Flow runs against the AWS emulator with the artifacts built here
/// (kept out of real.rs, which the cli crate's tests include too).
impl real::AwsEmu {
    /// Run options for `target`'s artifact, evidence under `ev`.
    pub fn options(&self, target: &Target, ev: &Path) -> RunOptions {
        self.options_for(artifact_for(target), ev)
    }

    /// One flow run of `target` with [`real::AwsEmu::options`] changed
    /// by `tweak`; the summary and the temp dir holding its evidence.
    pub fn run(
        &self,
        target: &Target,
        tweak: impl FnOnce(&mut RunOptions),
    ) -> (cloudimg_cloud::Summary, tempfile::TempDir) {
        run_in(target, |ev| self.options(target, ev), tweak)
    }
}

/// Flow runs against the GCP emulator with the artifacts built here.
impl real::GcpEmu {
    /// One flow run of `target` with the emulator's options changed by
    /// `tweak`; the summary and the temp dir holding its evidence.
    pub fn run(
        &self,
        target: &Target,
        tweak: impl FnOnce(&mut RunOptions),
    ) -> (cloudimg_cloud::Summary, tempfile::TempDir) {
        run_in(
            target,
            |ev| self.options_for(artifact_for(target), ev),
            tweak,
        )
    }
}

// ------------------------------------------------------------ shared ----

/// A JSON file, parsed (naming the file if it cannot be read).
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// Bytes a CLI printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run `script` with `sh -ec` in `cwd`; it must succeed.
pub fn sh(cwd: &Path, script: &str) {
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
}

/// A failed run with a one-line message of `kind` containing `needle`, a
/// clean teardown, nothing left in the cloud (`leftovers`, asked of the
/// emulator or stand-in), and summary.json saying the same.
pub fn assert_failed_clean(
    s: &cloudimg_cloud::Summary,
    leftovers: Vec<String>,
    kind: cloudimg_cloud::ErrorKind,
    needle: &str,
) {
    assert!(!s.passed, "{s:#?}");
    assert_eq!(s.error_kind, Some(kind), "{s:#?}");
    let msg = s.error.as_deref().unwrap();
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    assert!(!msg.contains('\n'), "{msg:?}");
    let t = s.teardown.as_ref().expect("torn down");
    assert!(t.is_clean(), "{t:?}");
    assert_eq!(leftovers, Vec::<String>::new());
    let sum = read_json(&s.evidence_dir.join("summary.json"));
    assert_eq!(sum["passed"], false);
    assert_eq!(sum["error"], msg);
}
