//! `cloudimg boot ARTIFACT`: boot an image under QEMU and wait for a
//! landmark on the serial console.
//!
//! The CLI's Ctrl-C handler calls [`cloudimg_boot::cleanup`] to kill
//! running QEMU children and remove temporary files. stdout carries the
//! result (summary lines, or the `cloudimg.boot/1` document with
//! `--json`); stderr carries logs, the live console (`--console`) and the
//! countdown (on a terminal only).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};

use cloudimg_boot::{
    Accel, BootOptions, BootRecord, BootWatcher, DiskInterface, Firmware, FirmwarePaths,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FirmwareArg {
    Uefi,
    Bios,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiskArg {
    Virtio,
    Nvme,
    Scsi,
    Ide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccelArg {
    Tcg,
    Kvm,
}

/// The schema name and version of `boot --json` (docs/schema/boot.schema.json).
const SCHEMA: &str = "cloudimg.boot/1";

/// Guest memory bounds, in MiB: below 16 no firmware starts; the top is
/// 1 TiB, far above what a boot test needs.
const MEMORY_MIB_MIN: u32 = 16;
const MEMORY_MIB_MAX: u32 = 1 << 20;

/// `cloudimg boot ...`
#[derive(Debug, ClapArgs)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The image: raw, VHD, VMDK, QCOW2, VHDX, OVA or GCP tarball (never
    /// modified: QEMU runs it as a snapshot).
    artifact: PathBuf,
    /// Which firmware to boot with (both: BIOS, then UEFI).
    #[arg(long, value_enum, default_value = "both")]
    firmware: FirmwareArg,
    /// How the disk is attached.
    #[arg(long, value_enum, default_value = "virtio")]
    disk: DiskArg,
    /// The serial console line that means success.
    #[arg(long, default_value = "capos kernel starting")]
    expect: String,
    /// End the boot at once as failed when the serial output contains
    /// TEXT (repeatable), e.g. --fail-on panic.
    #[arg(long, value_name = "TEXT")]
    fail_on: Vec<String>,
    /// Seconds to wait for the landmark, per firmware (a countdown is
    /// shown when stderr is a terminal).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Directory for the serial logs, firmware logs and JSON records.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Stream the guest's serial output to stderr as it comes (escape
    /// sequences removed); it is still recorded.
    #[arg(long)]
    console: bool,
    /// Print the result as JSON (schema cloudimg.boot/1) on stdout.
    #[arg(long)]
    json: bool,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(i64::from(MEMORY_MIB_MIN)..=i64::from(MEMORY_MIB_MAX)))]
    memory: u32,
    /// The QEMU program to run.
    #[arg(long, value_name = "PATH", default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// OVMF code and variable store template for UEFI (default: found
    /// where Debian, Fedora or Arch installs it). Without VARS, the file
    /// named like CODE with VARS for CODE. VARS is copied, never written.
    /// Neither path may hold a comma.
    #[arg(long, value_name = "CODE[,VARS]")]
    ovmf: Option<String>,
    /// A BIOS image for BIOS boots (default: QEMU's own, SeaBIOS).
    #[arg(long, value_name = "PATH")]
    bios: Option<PathBuf>,
    /// QEMU accelerator (KVM fails with OVMF on some hosts).
    #[arg(long, value_enum, default_value = "tcg")]
    accel: AccelArg,
}

/// Examples and exit codes, after the options in `--help`.
const AFTER_HELP: &str = "\
Examples:
  cloudimg boot capos.raw
  cloudimg boot cloud/capos-aws.vmdk --firmware uefi --disk nvme --log ev
  cloudimg boot capos.raw --firmware bios --console --fail-on panic
  cloudimg boot capos.qcow2 --expect 'login:' --timeout 300 --memory 1024
  cloudimg boot capos.raw --json --ovmf /fw/OVMF_CODE.fd,/fw/OVMF_VARS.fd
  cloudimg boot capos.raw --qemu /opt/qemu/bin/qemu-system-x86_64
  cloudimg boot capos.raw --firmware bios --bios ./bios.bin --accel kvm

With --log DIR, each boot leaves boot-FIRMWARE-DISK.serial.log, .firmware.log
(the firmware's debug port) and .json in DIR.

Exit codes: 0 every boot reached the landmark; 1 a boot did not (timeout,
QEMU exited, or a --fail-on text matched); 2 error (bad input, missing QEMU
or firmware); 130/143 interrupted.";

/// Run `cloudimg boot`. Exit code 0 when every boot passed, 1 when one
/// failed.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let firmwares: &[Firmware] = match args.firmware {
        FirmwareArg::Uefi => &[Firmware::Uefi],
        FirmwareArg::Bios => &[Firmware::Bios],
        FirmwareArg::Both => &[Firmware::Bios, Firmware::Uefi],
    };
    if !(args.timeout > 0.0 && args.timeout <= super::MAX_SECONDS as f64) {
        anyhow::bail!(
            "--timeout must be a positive number of seconds, at most {} (a week)",
            super::MAX_SECONDS
        );
    }
    if let Some(p) = args.fail_on.iter().find(|p| p.is_empty()) {
        anyhow::bail!("--fail-on {p:?}: the text must not be empty");
    }
    let firmware_paths = firmware_paths(&args)?;
    // Every firmware's files before the first boot: a run of two boots
    // does not fail half way.
    for &fw in firmwares {
        firmware_paths.check(fw)?;
    }
    // A file cloudimg does not read (compressed, VDI, ...) is refused in
    // one line before any firmware is tried.
    let format = cloudimg_disk::formats::detect(&args.artifact)?;
    let terminal = Arc::new(Terminal::new(&args));
    let mut records = Vec::new();
    for &fw in firmwares {
        let opts = boot_options(&args, fw, &firmware_paths, &terminal);
        let record = cloudimg_boot::boot(&args.artifact, &opts);
        // A signal kills QEMU: that boot's failure is not worth reporting.
        crate::signals::settle();
        let record = record
            .with_context(|| format!("booting {} with {}", args.artifact.display(), fw.id()))?;
        if !args.json {
            super::outln!("{}", record.summary())?;
        }
        if !record.passed {
            show_tails(&record, args.console);
        }
        if let (false, Some(p)) = (args.json, &record.record_path) {
            super::outln!("evidence: {}", p.display())?;
        }
        records.push(record);
    }
    let all_passed = records.iter().all(|r| r.passed);
    if args.json {
        print_json(&args, format.name(), all_passed, &records)?;
    }
    if let Some(dir) = &args.log {
        crate::report::write_report_logged(dir);
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The options of one boot.
fn boot_options(
    args: &Args,
    fw: Firmware,
    firmware_paths: &FirmwarePaths,
    terminal: &Arc<Terminal>,
) -> BootOptions {
    let mut opts = BootOptions::new(fw);
    opts.disk = match args.disk {
        DiskArg::Virtio => DiskInterface::Virtio,
        DiskArg::Nvme => DiskInterface::Nvme,
        DiskArg::Scsi => DiskInterface::Scsi,
        DiskArg::Ide => DiskInterface::Ide,
    };
    opts.accel = match args.accel {
        AccelArg::Tcg => Accel::Tcg,
        AccelArg::Kvm => Accel::Kvm,
    };
    opts.expect = args.expect.clone();
    opts.fail_on = args.fail_on.clone();
    opts.timeout = Duration::from_secs_f64(args.timeout);
    opts.log_dir = args.log.clone();
    opts.memory_mib = args.memory;
    opts.qemu = args.qemu.clone();
    opts.firmware_paths = firmware_paths.clone();
    if terminal.console || terminal.countdown {
        opts.watcher = Some(terminal.clone() as Arc<dyn BootWatcher>);
    }
    opts
}

/// The firmware files from `--ovmf` and `--bios`, or the defaults.
fn firmware_paths(args: &Args) -> anyhow::Result<FirmwarePaths> {
    let mut paths = FirmwarePaths::default();
    if let Some(ovmf) = &args.ovmf {
        let (code, vars) = match ovmf.split_once(',') {
            Some((code, vars)) => (PathBuf::from(code), PathBuf::from(vars)),
            None => {
                let code = PathBuf::from(ovmf);
                let vars = FirmwarePaths::ovmf_vars_beside(&code).with_context(|| {
                    format!(
                        "--ovmf {ovmf}: no VARS given and the file name has no CODE to \
                         name it by; give --ovmf CODE,VARS"
                    )
                })?;
                (code, vars)
            }
        };
        paths.ovmf_code = code;
        paths.ovmf_vars = vars;
    }
    paths.bios = args.bios.clone();
    Ok(paths)
}

/// A failed boot's last serial lines on stderr (unless `--console`
/// showed them already), or the firmware's when the guest printed none.
fn show_tails(record: &BootRecord, console: bool) {
    let mut err = std::io::stderr().lock();
    if !record.serial_tail.is_empty() {
        if !console {
            let _ = writeln!(err, "serial console (last lines):\n{}", record.serial_tail);
        }
    } else if !record.firmware_tail.is_empty() {
        let _ = writeln!(
            err,
            "serial console empty; firmware log (last lines):\n{}",
            record.firmware_tail
        );
    }
}

/// The `cloudimg.boot/1` document (docs/schema/boot.schema.json).
#[derive(serde::Serialize)]
struct BootDocument<'a> {
    schema: &'static str,
    /// The artifact as given.
    artifact: &'a std::path::Path,
    /// Its format, as `cloudimg inspect` names it.
    format: &'a str,
    /// Whether every boot reached the landmark.
    passed: bool,
    /// One record per firmware, in the order booted.
    boots: &'a [BootRecord],
}

/// The `cloudimg.boot/1` document on stdout.
fn print_json(
    args: &Args,
    format: &str,
    passed: bool,
    records: &[BootRecord],
) -> anyhow::Result<()> {
    let doc = BootDocument {
        schema: SCHEMA,
        artifact: &args.artifact,
        format,
        passed,
        boots: records,
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}

/// The terminal side of a boot: the live console and the countdown, both
/// on stderr. The countdown line is erased before console text and drawn
/// again only at the start of a line, so the two never mix.
#[derive(Debug)]
struct Terminal {
    console: bool,
    countdown: bool,
    expect: String,
    state: Mutex<TerminalState>,
}

#[derive(Debug)]
struct TerminalState {
    /// Seconds shown on the countdown line, when it is on screen.
    shown: Option<u64>,
    /// Whether the console's last text ended a line.
    at_line_start: bool,
}

/// Erase the current terminal line (ECMA-48: CR, then EL "erase in line").
const ERASE_LINE: &str = "\r\x1b[K";

impl Terminal {
    fn new(args: &Args) -> Self {
        Terminal {
            console: args.console,
            countdown: super::stderr_is_tty(),
            expect: args.expect.clone(),
            state: Mutex::new(TerminalState {
                shown: None,
                at_line_start: true,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TerminalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BootWatcher for Terminal {
    fn serial(&self, text: &str) {
        if !self.console {
            return;
        }
        let mut st = self.lock();
        let mut err = std::io::stderr().lock();
        if st.shown.take().is_some() {
            let _ = write!(err, "{ERASE_LINE}");
        }
        let _ = write!(err, "{text}");
        let _ = err.flush();
        st.at_line_start = text.ends_with('\n');
    }

    fn waiting(&self, left: Duration) {
        if !self.countdown {
            return;
        }
        let mut st = self.lock();
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        if !st.at_line_start || st.shown == Some(secs) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{ERASE_LINE}waiting for {:?}: {secs} s left",
            self.expect
        );
        let _ = err.flush();
        st.shown = Some(secs);
    }

    fn done(&self) {
        let mut st = self.lock();
        if st.shown.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "{ERASE_LINE}");
        }
        if !st.at_line_start {
            let _ = writeln!(std::io::stderr().lock());
            st.at_line_start = true;
        }
    }
}
