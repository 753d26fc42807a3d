//! Run QEMU, watch the serial log, decide pass or fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudimg_disk::formats::table::QemuDrive;
use cloudimg_disk::formats::{self, Format};

use crate::error::{Error, Result};
use crate::record::BootRecord;

/// Which firmware boots the disk: OVMF (UEFI) or SeaBIOS (QEMU's default
/// BIOS). The disk crate's type, shared by every crate.
pub use cloudimg_disk::Firmware;

/// How the disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskInterface {
    /// virtio-blk-pci.
    Virtio,
    /// An NVMe controller with one namespace.
    Nvme,
    /// virtio-scsi-pci with a scsi-hd.
    Scsi,
    /// An IDE/AHCI disk.
    Ide,
}

impl DiskInterface {
    /// `virtio`, `nvme`, `scsi` or `ide`.
    pub fn name(self) -> &'static str {
        match self {
            DiskInterface::Virtio => "virtio",
            DiskInterface::Nvme => "nvme",
            DiskInterface::Scsi => "scsi",
            DiskInterface::Ide => "ide",
        }
    }
}

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation (works everywhere; the default).
    Tcg,
    /// KVM (needs /dev/kvm).
    Kvm,
}

impl Accel {
    /// `tcg` or `kvm`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Firmware files.
#[derive(Debug, Clone)]
pub struct FirmwarePaths {
    /// OVMF code, attached read-only.
    pub ovmf_code: PathBuf,
    /// OVMF variable store template, copied for each boot.
    pub ovmf_vars: PathBuf,
    /// The BIOS image (None: QEMU's default, SeaBIOS).
    pub bios: Option<PathBuf>,
}

impl Default for FirmwarePaths {
    fn default() -> Self {
        FirmwarePaths {
            ovmf_code: PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd"),
            ovmf_vars: PathBuf::from("/usr/share/OVMF/OVMF_VARS_4M.fd"),
            bios: None,
        }
    }
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The firmware.
    pub firmware: Firmware,
    /// The disk interface.
    pub disk: DiskInterface,
    /// The line to wait for on the serial console.
    pub expect: String,
    /// How long to wait.
    pub timeout: Duration,
    /// Where to keep the serial log and the JSON record.
    pub log_dir: Option<PathBuf>,
    /// The accelerator.
    pub accel: Accel,
    /// The QEMU program.
    pub qemu: PathBuf,
    /// Firmware files.
    pub firmware_paths: FirmwarePaths,
    /// Guest memory in MiB.
    pub memory_mib: u32,
}

impl BootOptions {
    /// UEFI, virtio, `capos kernel starting`, 60 s, TCG.
    pub fn new(firmware: Firmware) -> Self {
        BootOptions {
            firmware,
            disk: DiskInterface::Virtio,
            expect: "capos kernel starting".into(),
            timeout: Duration::from_secs(60),
            log_dir: None,
            accel: Accel::Tcg,
            qemu: PathBuf::from("qemu-system-x86_64"),
            firmware_paths: FirmwarePaths::default(),
            memory_mib: 256,
        }
    }
}

/// Children and temporary directories alive now, for [`cleanup`].
static CHILDREN: Mutex<Vec<Arc<Mutex<Child>>>> = Mutex::new(Vec::new());
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Kill every running QEMU started by this process and remove every
/// temporary directory of a boot in progress. For the CLI's Ctrl-C
/// handler; returns how many QEMU processes were killed.
pub fn cleanup() -> usize {
    let children = std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|e| e.into_inner()));
    let mut killed = 0;
    for c in children {
        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
        if c.kill().is_ok() {
            killed += 1;
        }
        let _ = c.wait();
    }
    let dirs = std::mem::take(&mut *TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = fs::remove_dir_all(d);
    }
    killed
}

/// A running QEMU, killed and unregistered on drop.
struct Running(Arc<Mutex<Child>>);

impl Running {
    fn register(child: Child) -> Self {
        let c = Arc::new(Mutex::new(child));
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        Running(c)
    }
    fn try_wait(&self) -> Option<std::process::ExitStatus> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_wait()
            .ok()
            .flatten()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        {
            let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let _ = c.kill();
            let _ = c.wait();
        }
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| !Arc::ptr_eq(c, &self.0));
    }
}

/// A temporary directory registered for [`cleanup`].
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> Result<Self> {
        let t = tempfile::Builder::new()
            .prefix("cloudimg-boot.")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        TEMP_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t.path().to_path_buf());
        Ok(TempDir(t))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let p = self.0.path().to_path_buf();
        TEMP_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| *d != p);
    }
}

/// The file QEMU should open for `artifact` and its `format=` name, as
/// the format table says ([`QemuDrive`]): the artifact itself, or the
/// member a container holds (a GCP tarball's sparse `disk.raw`, an OVA's
/// VMDK) extracted into `scratch`.
pub fn artifact_drive(artifact: &Path, scratch: &Path) -> Result<(PathBuf, Format, &'static str)> {
    let bad = |message: String| Error::Artifact {
        path: artifact.to_path_buf(),
        message,
    };
    let format = formats::detect(artifact).map_err(|e| bad(e.message().to_string()))?;
    match format.spec().qemu {
        QemuDrive::File(driver) => {
            refuse_what_cloudimg_refuses(artifact, driver).map_err(bad)?;
            Ok((artifact.to_path_buf(), format, driver))
        }
        QemuDrive::Extracted {
            driver,
            file_name,
            what,
            extract,
        } => {
            let out = scratch.join(file_name);
            let input = std::fs::File::open(artifact).map_err(|e| bad(format!("opening: {e}")))?;
            let output = std::fs::File::create(&out)
                .map_err(|e| bad(format!("creating {}: {e}", out.display())))?;
            extract(&input, &output)
                .map_err(|e| bad(format!("extracting {what}: {}", e.message())))?;
            refuse_what_cloudimg_refuses(&out, driver).map_err(|m| bad(format!("{what}: {m}")))?;
            Ok((out, format, driver))
        }
        QemuDrive::None => Err(bad(format!("a {format} cannot be booted directly"))),
    }
}

/// QEMU opens what a file names: a QCOW2's backing file, a VMDK's
/// extents. Before QEMU sees a file in any format but raw, cloudimg opens
/// it itself, and a file cloudimg refuses (a backing file, an external or
/// several extents, a header cloudimg does not read as qemu does) is not
/// booted: QEMU then never opens anything but the one file given.
fn refuse_what_cloudimg_refuses(drive: &Path, driver: &str) -> std::result::Result<(), String> {
    if driver == "raw" {
        return Ok(());
    }
    cloudimg_disk::formats::open::open_disk(drive)
        .map(drop)
        .map_err(|e| e.message().to_string())
}

/// A path as a QEMU option value: commas doubled (QEMU's escape).
fn qemu_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The QEMU arguments (without the program) for one boot.
fn qemu_args(
    opts: &BootOptions,
    drive: &Path,
    format: &str,
    serial: &Path,
    vars: Option<&Path>,
) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    // IDE means the legacy PIIX controller of the `pc` machine (q35's
    // controller is AHCI); everything else runs on q35.
    let machine = if opts.disk == DiskInterface::Ide {
        "pc"
    } else {
        "q35"
    };
    push(&[
        "-machine",
        machine,
        "-accel",
        opts.accel.name(),
        "-m",
        &opts.memory_mib.to_string(),
    ]);
    push(&[
        "-display",
        "none",
        "-no-reboot",
        "-nodefaults",
        "-nic",
        "none",
        "-monitor",
        "none",
    ]);
    push(&["-serial", &format!("file:{}", serial.display())]);
    match (opts.firmware, vars) {
        (Firmware::Uefi, Some(vars)) => {
            let code = &opts.firmware_paths.ovmf_code;
            push(&[
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    qemu_path(code)
                ),
            ]);
            push(&[
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", qemu_path(vars)),
            ]);
        }
        _ => {
            if let Some(bios) = &opts.firmware_paths.bios {
                push(&["-bios", &bios.display().to_string()]);
            }
        }
    }
    push(&[
        "-drive",
        &format!(
            "file={},format={format},if=none,id=disk0,snapshot=on",
            qemu_path(drive)
        ),
    ]);
    match opts.disk {
        DiskInterface::Virtio => push(&["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]),
        DiskInterface::Nvme => push(&["-device", "nvme,serial=cloudimg0,drive=disk0,bootindex=0"]),
        DiskInterface::Scsi => {
            push(&["-device", "virtio-scsi-pci,id=scsi0"]);
            push(&["-device", "scsi-hd,bus=scsi0.0,drive=disk0,bootindex=0"]);
        }
        DiskInterface::Ide => push(&["-device", "ide-hd,bus=ide.0,drive=disk0,bootindex=0"]),
    }
    a
}

/// Printable last `lines` lines of a serial log: escape sequences and
/// control characters other than newlines removed.
pub fn log_tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; others: ESC + one or two chars.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                } else if matches!(chars.next(), Some('(' | ')' | '#' | '%')) {
                    // Character-set designation: ESC ( B and the like.
                    chars.next();
                }
            }
            '\n' | '\t' => clean.push(c),
            c if c.is_control() => {}
            c => clean.push(c),
        }
    }
    let all: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A copy of OVMF's variable store in `dir`, for a UEFI boot (QEMU
/// writes to it); `None` for BIOS.
fn uefi_vars(opts: &BootOptions, dir: &Path) -> Result<Option<PathBuf>> {
    Ok(match opts.firmware {
        Firmware::Uefi => {
            let fw = &opts.firmware_paths;
            for p in [&fw.ovmf_code, &fw.ovmf_vars] {
                if !p.is_file() {
                    return Err(Error::Firmware {
                        path: p.clone(),
                        hint: "install the ovmf package",
                    });
                }
            }
            let vars = dir.join("OVMF_VARS.fd");
            fs::copy(&fw.ovmf_vars, &vars)
                .map_err(|e| Error::io(format!("copying {}", fw.ovmf_vars.display()), e))?;
            Some(vars)
        }
        Firmware::Bios => None,
    })
}

/// Watch the serial log until the landmark appears (seconds since
/// `start`), QEMU exits or the timeout passes (why it failed).
fn wait_for_landmark(
    running: &Running,
    serial: &Path,
    stderr_path: &Path,
    opts: &BootOptions,
    start: Instant,
) -> (Option<f64>, Option<String>) {
    let landmark = opts.expect.as_bytes();
    let mut seconds = None;
    let mut failure = None;
    loop {
        let exited = running.try_wait();
        let log = fs::read(serial).unwrap_or_default();
        if contains(&log, landmark) {
            seconds = Some(start.elapsed().as_secs_f64());
            break;
        }
        if let Some(status) = exited {
            let err = fs::read(stderr_path).unwrap_or_default();
            let err = String::from_utf8_lossy(&err);
            let err = err.trim();
            failure = Some(if err.is_empty() {
                format!(
                    "QEMU exited ({status}) after {:.1} s without printing {:?}",
                    start.elapsed().as_secs_f64(),
                    opts.expect
                )
            } else {
                format!(
                    "QEMU exited ({status}) without printing {:?}: {err}",
                    opts.expect
                )
            });
            break;
        }
        if start.elapsed() >= opts.timeout {
            failure = Some(format!(
                "timed out after {} s waiting for {:?}",
                opts.timeout.as_secs_f64(),
                opts.expect
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (seconds, failure)
}

/// Keep the serial log and the record (as JSON) in `dir`, and say where
/// in `record`.
fn save_evidence(
    record: &mut BootRecord,
    log: &[u8],
    dir: &Path,
    opts: &BootOptions,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let stem = format!("boot-{}-{}", opts.firmware.id(), opts.disk.name());
    let log_path = dir.join(format!("{stem}.serial.log"));
    write_evidence(&log_path, log)?;
    let json_path = dir.join(format!("{stem}.json"));
    record.serial_log = Some(log_path);
    record.record_path = Some(json_path.clone());
    let json = serde_json::to_string_pretty(&*record).expect("a BootRecord serializes");
    write_evidence(&json_path, (json + "\n").as_bytes())
}

/// Write one evidence file: a new owner-only file under a temporary name
/// (created exclusively, never through a symlink), renamed over `path`. A
/// symlink planted at `path` is replaced, never followed.
fn write_evidence(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let out = cloudimg_disk::io::OutputFile::create(path).map_err(io)?;
    out.file().write_all(bytes).map_err(io)?;
    out.commit().map(drop).map_err(io)
}

/// Boot `artifact` once and report what happened. `Err` only when the
/// boot could not be tried (missing QEMU or firmware, unreadable
/// artifact); a boot that fails is `Ok` with `passed: false`.
pub fn boot(artifact: &Path, opts: &BootOptions) -> Result<BootRecord> {
    let tmp = TempDir::new()?;
    let (drive, format, qemu_format) = artifact_drive(artifact, tmp.path())?;
    let sha = cloudimg_disk::io::sha256_file(artifact)
        .map_err(|e| Error::io(format!("hashing {}", artifact.display()), e))?;
    let vars = uefi_vars(opts, tmp.path())?;
    let serial = tmp.path().join("serial.log");
    let args = qemu_args(opts, &drive, qemu_format, &serial, vars.as_deref());
    let stderr_path = tmp.path().join("qemu.stderr");
    let stderr = fs::File::create(&stderr_path)
        .map_err(|e| Error::io("creating the QEMU stderr file", e))?;
    let mut command = vec![opts.qemu.display().to_string()];
    command.extend(args.iter().cloned());
    log::info!("running {}", command.join(" "));

    let start = Instant::now();
    let child = Command::new(&opts.qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: opts.qemu.display().to_string(),
            source,
        })?;
    let running = Running::register(child);

    let (seconds, failure) = wait_for_landmark(&running, &serial, &stderr_path, opts, start);
    // Give a kernel that powers off after the landmark a moment to finish
    // its lines, then stop QEMU in any case.
    if seconds.is_some() {
        let grace = Instant::now();
        while running.try_wait().is_none() && grace.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(running);
    let log = fs::read(&serial).unwrap_or_default();
    let tail = log_tail(&log, 20);

    let mut record = BootRecord {
        artifact: artifact.to_path_buf(),
        artifact_sha256: sha.to_string(),
        artifact_format: format.name().to_string(),
        firmware: opts.firmware.id().into(),
        disk_interface: opts.disk.name().into(),
        accel: opts.accel.name().into(),
        landmark: opts.expect.clone(),
        passed: seconds.is_some(),
        seconds_to_landmark: seconds,
        timeout_seconds: opts.timeout.as_secs_f64(),
        failure,
        serial_tail: tail,
        serial_log: None,
        record_path: None,
        qemu_command: command,
    };
    if let Some(dir) = &opts.log_dir {
        save_evidence(&mut record, &log, dir, opts)?;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_strips_escapes_and_keeps_last_lines() {
        let log = b"\x1b[2J\x1b[0;0Hone\r\n\ntwo\x1b(B\r\nthree\r\n";
        assert_eq!(log_tail(log, 2), "two\nthree");
        assert_eq!(log_tail(b"", 5), "");
    }

    #[test]
    fn qemu_args_attach_the_disk_read_only() {
        let o = BootOptions {
            disk: DiskInterface::Nvme,
            ..BootOptions::new(Firmware::Uefi)
        };
        let a = qemu_args(
            &o,
            Path::new("/d.raw"),
            "raw",
            Path::new("/s.log"),
            Some(Path::new("/v.fd")),
        );
        let s = a.join(" ");
        assert!(
            s.contains("-drive file=/d.raw,format=raw,if=none,id=disk0,snapshot=on"),
            "{s}"
        );
        assert!(
            s.contains("-device nvme,serial=cloudimg0,drive=disk0"),
            "{s}"
        );
        assert!(
            s.contains(
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
            ),
            "{s}"
        );
        assert!(s.contains("-serial file:/s.log -"), "{s}");
        let a = qemu_args(&o, Path::new("/a,b.raw"), "raw", Path::new("/s.log"), None);
        assert!(
            a.contains(&"file=/a,,b.raw,format=raw,if=none,id=disk0,snapshot=on".to_string()),
            "{a:?}"
        );
    }
}
