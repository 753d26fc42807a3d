//! Run QEMU, watch the serial log, decide pass or fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::drive::{artifact_drive, qemu_args, BootFiles};
use crate::error::{Error, Result};
use crate::record::BootRecord;
use crate::serial::{BootWatcher, FailOnMatch, GrowingLog, SerialWatch, LOG_BYTES_MAX};

pub use crate::firmware::FirmwarePaths;
pub use crate::serial::log_tail;

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
    /// Texts that end the boot at once as failed when the serial output
    /// contains them (e.g. `panic`), even in the second after the
    /// landmark.
    pub fail_on: Vec<String>,
    /// Told about the boot as it runs (live console, countdown).
    pub watcher: Option<Arc<dyn BootWatcher>>,
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
            fail_on: Vec::new(),
            watcher: None,
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

/// How a wait for the landmark ended.
struct Waited {
    /// Seconds from QEMU's start to the landmark, when it was reached.
    seconds: Option<f64>,
    /// Why the boot failed.
    failure: Option<String>,
}

/// The reason a boot failed on a `--fail-on` text.
fn fail_on_failure(m: &FailOnMatch) -> String {
    format!(
        "serial output matched --fail-on {:?}: {}",
        m.pattern, m.line
    )
}

/// Why QEMU exited before the landmark, with its stderr.
fn exit_failure(status: ExitStatus, stderr: &str, opts: &BootOptions, start: Instant) -> String {
    if stderr.is_empty() {
        format!(
            "QEMU exited ({status}) after {:.1} s without printing {:?}",
            start.elapsed().as_secs_f64(),
            opts.expect
        )
    } else {
        format!(
            "QEMU exited ({status}) without printing {:?}: {stderr}",
            opts.expect
        )
    }
}

/// Watch the serial log until the landmark appears, a `--fail-on` text
/// appears, QEMU exits or the timeout passes. `Err` when QEMU exited
/// because a firmware file is missing.
fn wait_for_landmark(
    running: &Running,
    watch: &mut SerialWatch<'_>,
    debugcon: &Path,
    stderr_path: &Path,
    opts: &BootOptions,
    start: Instant,
) -> Result<Waited> {
    let watcher = opts.watcher.as_deref();
    loop {
        let exited = running.try_wait();
        watch.poll();
        if let Some(m) = watch.failed() {
            return Ok(Waited {
                seconds: None,
                failure: Some(fail_on_failure(m)),
            });
        }
        if watch.reached() {
            return Ok(Waited {
                seconds: Some(start.elapsed().as_secs_f64()),
                failure: None,
            });
        }
        if let Some(flood) = flooded(watch, debugcon) {
            return Ok(Waited {
                seconds: None,
                failure: Some(flood),
            });
        }
        if let Some(status) = exited {
            let err = fs::read(stderr_path).unwrap_or_default();
            let err = String::from_utf8_lossy(&err);
            if let Some(e) = crate::firmware::missing_from_qemu_stderr(&err) {
                return Err(e);
            }
            return Ok(Waited {
                seconds: None,
                failure: Some(exit_failure(status, err.trim(), opts, start)),
            });
        }
        let left = opts.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(Waited {
                seconds: None,
                failure: Some(format!(
                    "timed out after {} s waiting for {:?}",
                    opts.timeout.as_secs_f64(),
                    opts.expect
                )),
            });
        }
        if let Some(w) = watcher {
            w.waiting(left);
        }
        std::thread::sleep(POLL);
    }
}

/// Why a boot whose serial or firmware log passed [`LOG_BYTES_MAX`] is
/// stopped, if one did.
fn flooded(watch: &SerialWatch<'_>, debugcon: &Path) -> Option<String> {
    let mib = LOG_BYTES_MAX >> 20;
    if watch.full() {
        return Some(format!(
            "the serial console printed more than {mib} MiB without the landmark"
        ));
    }
    let fw = fs::metadata(debugcon).map_or(0, |m| m.len());
    (fw > LOG_BYTES_MAX).then(|| format!("the firmware printed more than {mib} MiB"))
}

/// How often the serial log is read while waiting.
const POLL: Duration = Duration::from_millis(50);

/// How long a kernel that reached the landmark is given to finish its
/// lines (and power off) before QEMU is stopped; a `--fail-on` text in
/// that time still fails the boot.
const GRACE: Duration = Duration::from_secs(1);

/// After the landmark: let the guest finish its lines (streamed to the
/// watcher), until it exits, a `--fail-on` text appears or [`GRACE`]
/// passes.
fn grace_period(running: &Running, watch: &mut SerialWatch<'_>) {
    let grace = Instant::now();
    while running.try_wait().is_none() && grace.elapsed() < GRACE && watch.failed().is_none() {
        std::thread::sleep(Duration::from_millis(20));
        watch.poll();
    }
}

/// The serial and firmware logs of a boot.
struct Logs<'a> {
    serial: &'a [u8],
    firmware: &'a [u8],
}

/// Keep the serial log, the firmware log and the record (as JSON) in
/// `dir`, and say where in `record`. Both logs are written even when
/// empty.
fn save_evidence(
    record: &mut BootRecord,
    logs: &Logs<'_>,
    dir: &Path,
    opts: &BootOptions,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let stem = format!("boot-{}-{}", opts.firmware.id(), opts.disk.name());
    let log_path = dir.join(format!("{stem}.serial.log"));
    write_evidence(&log_path, logs.serial)?;
    let fw_path = dir.join(format!("{stem}.firmware.log"));
    write_evidence(&fw_path, logs.firmware)?;
    let json_path = dir.join(format!("{stem}.json"));
    record.serial_log = Some(log_path);
    record.firmware_log = Some(fw_path);
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

/// Start QEMU with `args`, its stderr to `stderr_path`.
fn spawn(opts: &BootOptions, args: &[String], stderr_path: &Path) -> Result<Running> {
    let stderr =
        fs::File::create(stderr_path).map_err(|e| Error::io("creating the QEMU stderr file", e))?;
    let child = Command::new(&opts.qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: opts.qemu.display().to_string(),
            source,
        })?;
    Ok(Running::register(child))
}

/// Boot `artifact` once and report what happened. `Err` only when the
/// boot could not be tried (missing QEMU or firmware, unreadable
/// artifact); a boot that fails is `Ok` with `passed: false`.
pub fn boot(artifact: &Path, opts: &BootOptions) -> Result<BootRecord> {
    let tmp = TempDir::new()?;
    let (drive, format, qemu_format) = artifact_drive(artifact, tmp.path())?;
    let sha = cloudimg_disk::io::sha256_file(artifact)
        .map_err(|e| Error::io(format!("hashing {}", artifact.display()), e))?;
    let vars = crate::firmware::prepare(opts, tmp.path())?;
    let serial = tmp.path().join("serial.log");
    let debugcon = tmp.path().join("firmware.log");
    let files = BootFiles {
        drive: &drive,
        format: qemu_format,
        serial: &serial,
        debugcon: &debugcon,
        vars: vars.as_deref(),
    };
    let args = qemu_args(opts, &files);
    let stderr_path = tmp.path().join("qemu.stderr");
    let mut command = vec![opts.qemu.display().to_string()];
    command.extend(args.iter().cloned());
    log::debug!("running {}", command.join(" "));

    let start = Instant::now();
    let running = spawn(opts, &args, &stderr_path)?;
    let mut watch = SerialWatch::new(
        &serial,
        &opts.expect,
        &opts.fail_on,
        opts.watcher.as_deref(),
    );
    let waited = wait_for_landmark(&running, &mut watch, &debugcon, &stderr_path, opts, start);
    if matches!(&waited, Ok(w) if w.seconds.is_some()) {
        grace_period(&running, &mut watch);
    }
    drop(running);
    if let Some(w) = &opts.watcher {
        w.done();
    }
    let mut waited = waited?;
    // The last lines QEMU wrote; a `--fail-on` text in them (or in the
    // grace period) fails a boot that reached the landmark.
    watch.poll();
    if let (Some(_), Some(m)) = (waited.seconds, watch.failed()) {
        waited = Waited {
            seconds: None,
            failure: Some(fail_on_failure(m)),
        };
    }
    let mut firmware_log = GrowingLog::new(&debugcon);
    firmware_log.read_more();
    let firmware_log = firmware_log.bytes();

    let mut record = BootRecord {
        artifact: artifact.to_path_buf(),
        artifact_sha256: sha.to_string(),
        artifact_format: format.name().to_string(),
        firmware: opts.firmware.id().into(),
        disk_interface: opts.disk.name().into(),
        accel: opts.accel.name().into(),
        landmark: opts.expect.clone(),
        passed: waited.seconds.is_some(),
        seconds_to_landmark: waited.seconds,
        timeout_seconds: opts.timeout.as_secs_f64(),
        failure: waited.failure,
        serial_tail: log_tail(watch.bytes(), 20),
        serial_log: None,
        record_path: None,
        qemu_command: command,
        memory_bytes: u64::from(opts.memory_mib) << 20,
        fail_on: opts.fail_on.clone(),
        fail_on_match: watch.failed().cloned(),
        firmware_log: None,
        firmware_tail: log_tail(firmware_log, 20),
    };
    if let Some(dir) = &opts.log_dir {
        let logs = Logs {
            serial: watch.bytes(),
            firmware: firmware_log,
        };
        save_evidence(&mut record, &logs, dir, opts)?;
    }
    Ok(record)
}
