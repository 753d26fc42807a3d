//! `cloudimg package IMAGE`: write and verify the cloud shapes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudimg_disk::package::{self, Event, PackageRequest, Progress, Shape};

/// Package a disk image into cloud shapes.
///
/// The input may be raw, VHD, VMDK, QCOW2, VHDX, a GCP disk.raw.tar.gz or
/// an OVA (told from its content). Without shape options, writes the GCP
/// and AWS shapes: disk.raw.tar.gz (GCP), NAME-aws.raw, NAME-aws.vhd and
/// NAME-aws.vmdk (AWS). --azure, --qcow2, --vhdx and --ova add
/// NAME-azure.vhd, NAME.qcow2, NAME.vhdx and NAME.ova; --all makes every
/// shape. manifest.json lists what was made. Every artifact is decoded
/// back and checked before it gets its final name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The disk image to package (never modified), in any format read.
    pub image: PathBuf,
    /// The GCP shape (disk.raw.tar.gz: grown to a whole GiB).
    #[arg(long)]
    pub gcp: bool,
    /// The AWS shapes (raw, fixed VHD, stream-optimized VMDK).
    #[arg(long)]
    pub aws: bool,
    /// The Azure shape (fixed VHD of the disk grown to a whole MiB).
    #[arg(long)]
    pub azure: bool,
    /// A QCOW2 v3 (OpenStack, Oracle OCI, Proxmox, libvirt).
    #[arg(long)]
    pub qcow2: bool,
    /// A dynamic VHDX (Hyper-V).
    #[arg(long)]
    pub vhdx: bool,
    /// An OVA (vSphere): OVF descriptor, stream-optimized VMDK, manifest.
    #[arg(long)]
    pub ova: bool,
    /// Every shape.
    #[arg(long)]
    pub all: bool,
    /// Deflate the QCOW2's clusters, as `qemu-img convert -c` does.
    #[arg(long)]
    pub compress_qcow2: bool,
    /// Output directory (created if missing).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "DIR",
        default_value = "target/cloud-image"
    )]
    pub out_dir: PathBuf,
    /// Prefix of the file names (NAME-aws.vhd, NAME.qcow2, ...).
    #[arg(long, default_value = "capos")]
    pub name: String,
    /// Threads for each compressing writer (default: all cores). The
    /// output bytes do not depend on it.
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print the manifest as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress messages on stderr (they are only shown on a terminal).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let progress = Arc::new(Progress::default());
    let req = PackageRequest {
        progress: Some(Arc::clone(&progress)),
        ..request(&args)?
    };
    // A live status line only on a terminal; otherwise one summary line.
    let show = !args.quiet && super::stderr_is_tty();
    let phases: Arc<Mutex<Vec<(Shape, &'static str)>>> = Arc::new(Mutex::new(
        req.shapes.iter().map(|&s| (s, "waiting")).collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = show.then(|| {
        spawn_ticker(
            Arc::clone(&phases),
            Arc::clone(&stop),
            Arc::clone(&progress),
            req.name.clone(),
            started,
        )
    });
    // Notes are shown after the status display, with the warnings.
    let mut notes: Vec<(Shape, String)> = Vec::new();
    let mut on_event = |ev: Event| {
        let set = |shape: Shape, phase: &'static str| {
            if let Ok(mut p) = phases.lock() {
                if let Some(e) = p.iter_mut().find(|(s, _)| *s == shape) {
                    e.1 = phase;
                }
            }
        };
        match ev {
            Event::Started { .. } => {}
            Event::Writing(shape) => set(shape, "writing"),
            Event::Verifying(shape) => set(shape, "verifying"),
            Event::Decoded(shape) => set(shape, "decoded"),
            Event::Done(a) => set(a.shape, "ok"),
            Event::Failed(shape, _) => set(shape, "FAILED"),
            Event::Note(shape, note) => notes.push((shape, note)),
        }
    };
    let outcome = package::package(&req, &mut on_event);
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let outcome = outcome?;
    if !args.quiet {
        let data = progress.data_total.load(Ordering::Relaxed);
        eprintln!(
            "cloudimg: packaged {} artifact(s) from {} ({} bytes of data) in {:.2} s",
            outcome.manifest.artifacts.len() - outcome.kept.len(),
            args.image.display(),
            data,
            started.elapsed().as_secs_f64()
        );
    }
    print_notes(&args, &req, &outcome, &notes);
    print_outcome(&args, &req, &outcome)?;
    Ok(exit_code(&req, &outcome))
}

/// The request the arguments make: the shapes asked for (GCP and AWS by
/// default), `SOURCE_DATE_EPOCH`, the threads.
fn request(args: &Args) -> anyhow::Result<PackageRequest> {
    if args.name.is_empty() || args.name.contains('/') {
        anyhow::bail!(
            "--name {:?} must be a non-empty file name prefix without '/'",
            args.name
        );
    }
    use package::Provider;
    let wanted = [
        (args.gcp, Provider::Gcp),
        (args.aws, Provider::Aws),
        (args.azure, Provider::Azure),
        (args.qcow2, Provider::Openstack),
        (args.vhdx, Provider::Hyperv),
        (args.ova, Provider::Vsphere),
    ];
    let shapes: Vec<Shape> = if args.all {
        Shape::ALL.to_vec()
    } else if wanted.iter().any(|(on, _)| *on) {
        Shape::ALL
            .into_iter()
            .filter(|s| wanted.iter().any(|(on, p)| *on && s.provider() == *p))
            .collect()
    } else {
        Shape::DEFAULT.to_vec()
    };
    Ok(PackageRequest {
        input: args.image.clone(),
        out_dir: args.out_dir.clone(),
        name: args.name.clone(),
        shapes,
        mtime: super::source_date_epoch()?,
        jobs: match args.jobs {
            Some(n) if n == 0 || n > super::MAX_JOBS => {
                anyhow::bail!("--jobs must be from 1 to {}", super::MAX_JOBS)
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        qcow2_compressed: args.compress_qcow2,
        progress: None,
    })
}

/// The live status display on stderr, redrawn five times a second until
/// `stop`.
fn spawn_ticker(
    phases: Arc<Mutex<Vec<(Shape, &'static str)>>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    name: String,
    started: std::time::Instant,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // One line per shape, redrawn in place: back to the first
        // line (`ESC [ n F`), each line cleared (`ESC [ K`) and
        // rewritten; at the end the block is erased (`ESC [ J`).
        let mut drawn = 0;
        while !stop.load(Ordering::Relaxed) {
            let lines = status_lines(&phases, &progress, &name, started.elapsed().as_secs_f64());
            let mut frame = String::new();
            if drawn > 0 {
                frame.push_str(&format!("\x1b[{drawn}F"));
            }
            // A line wider than the terminal would wrap and throw the
            // redraw off: cut each to the width.
            let columns = super::stderr_columns().saturating_sub(1).max(1);
            for l in &lines {
                let l: String = l.chars().take(columns).collect();
                frame.push_str(&format!("\x1b[K{l}\n"));
            }
            eprint!("{frame}");
            drawn = lines.len();
            std::thread::sleep(Duration::from_millis(200));
        }
        if drawn > 0 {
            eprint!("\x1b[{drawn}F\x1b[J");
        }
    })
}

/// Earlier artifacts kept or dropped, the input's own GPT problems and
/// the shapes' notes, on stderr.
fn print_notes(
    args: &Args,
    req: &PackageRequest,
    outcome: &package::Outcome,
    notes: &[(Shape, String)],
) {
    if !args.quiet && !outcome.kept.is_empty() {
        eprintln!(
            "cloudimg: the manifest also lists {} artifact(s) of the same image from an earlier run: {}",
            outcome.kept.len(),
            outcome.kept.join(", ")
        );
    }
    for note in &outcome.dropped {
        eprintln!("cloudimg: note: {note}");
    }
    for f in &outcome.input_findings {
        eprintln!("cloudimg: warning: {}: {f}", args.image.display());
    }
    for (shape, note) in notes {
        eprintln!("cloudimg: note: {}: {note}", shape.file_name(&req.name));
    }
}

/// The manifest on stdout: as JSON (with failures and notes), or a table.
fn print_outcome(
    args: &Args,
    req: &PackageRequest,
    outcome: &package::Outcome,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let failures: Vec<_> = outcome
            .failures
            .iter()
            .map(|(s, e)| serde_json::json!({"file": s.file_name(&req.name), "error": e.to_string()}))
            .collect();
        let mut v = serde_json::to_value(&outcome.manifest)?;
        v["manifest"] = serde_json::json!(outcome.manifest_path);
        v["failures"] = serde_json::json!(failures);
        v["input_findings"] = serde_json::to_value(&outcome.input_findings)?;
        v["kept"] = serde_json::json!(outcome.kept);
        v["dropped"] = serde_json::json!(outcome.dropped);
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else if let Some(manifest_path) = &outcome.manifest_path {
        writeln!(
            out,
            "{:<22} {:<8} {:>14}  SHA-256",
            "FILE", "PROVIDER", "BYTES"
        )?;
        for a in &outcome.manifest.artifacts {
            let provider = serde_json::to_value(a.provider)?;
            writeln!(
                out,
                "{:<22} {:<8} {:>14}  {}",
                a.file,
                provider.as_str().unwrap_or(""),
                a.size,
                a.sha256
            )?;
        }
        writeln!(out, "manifest: {}", manifest_path.display())?;
    }
    Ok(())
}

/// 0 when every shape was made; else each failure on stderr, and 2.
fn exit_code(req: &PackageRequest, outcome: &package::Outcome) -> ExitCode {
    if outcome.failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    for (shape, e) in &outcome.failures {
        // Name the shape's file once: an error about the file itself
        // starts with its path already.
        let file = shape.file_name(&req.name);
        let msg = e.to_string();
        if msg.starts_with(&format!("{}: ", req.out_dir.join(&file).display())) {
            eprintln!("cloudimg: error: {msg}");
        } else {
            eprintln!("cloudimg: error: {file}: {msg}");
        }
    }
    ExitCode::from(2)
}

/// The status display: a line per shape with its phase; for a shape being
/// written, the input data its writer has read so far (of the input's
/// total), its rate and the time it has left at that rate.
fn status_lines(
    phases: &Mutex<Vec<(Shape, &'static str)>>,
    progress: &Progress,
    name: &str,
    elapsed: f64,
) -> Vec<String> {
    const MIB: f64 = 1024.0 * 1024.0;
    let total = progress.data_total.load(Ordering::Relaxed);
    let phases = phases.lock().map(|p| p.clone()).unwrap_or_default();
    let width = phases
        .iter()
        .map(|(s, _)| s.file_name(name).len())
        .max()
        .unwrap_or(0);
    phases
        .iter()
        .map(|(shape, phase)| {
            let file = shape.file_name(name);
            let line = if *phase == "writing" && total > 0 {
                let read = progress.read(*shape).min(total);
                let done = read as f64 / total as f64;
                let rate = read as f64 / elapsed.max(0.001);
                let eta = if done > 0.0 && done < 1.0 {
                    format!("  ETA {:.0} s", elapsed * (1.0 - done) / done)
                } else {
                    String::new()
                };
                format!(
                    "{file:<width$}  writing  {:>3.0}%  {:.0}/{:.0} MiB  {:.0} MB/s{eta}",
                    done * 100.0,
                    read as f64 / MIB,
                    total as f64 / MIB,
                    rate / 1e6
                )
            } else {
                format!("{file:<width$}  {phase}")
            };
            line
        })
        .collect()
}
