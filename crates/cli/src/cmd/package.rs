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
/// shape. manifest.json lists what was made (with the SOURCE_DATE_EPOCH
/// used and cloudimg's version) and SHA256SUMS their digests, for
/// `sha256sum -c`. Every artifact is decoded back and checked before it
/// gets its final name.
///
/// On a terminal a status line per shape is redrawn in place; off one, a
/// progress line is printed every 10 s; -q prints neither.
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
    /// Print what was made as JSON (`cloudimg.package/1`) on stdout
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let progress = Arc::new(Progress::default());
    let req = PackageRequest {
        progress: Some(Arc::clone(&progress)),
        ..request(&args)?
    };
    log::debug!(
        "package {} into {}: shapes {:?}, {} thread(s) per writer, SOURCE_DATE_EPOCH {}",
        req.input.display(),
        req.out_dir.display(),
        req.shapes,
        req.jobs,
        req.mtime
    );
    // A live status display on a terminal; off one, a progress line at a
    // steady interval; neither under -q.
    let chatty = super::chatty();
    let show = chatty && super::stderr_is_tty();
    let phases: Arc<Mutex<Vec<(Shape, &'static str)>>> = Arc::new(Mutex::new(
        req.shapes.iter().map(|&s| (s, "waiting")).collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = chatty.then(|| {
        spawn_ticker(
            Ticker {
                phases: Arc::clone(&phases),
                stop: Arc::clone(&stop),
                progress: Arc::clone(&progress),
                name: req.name.clone(),
                started,
            },
            show,
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
    if chatty {
        let data = progress.data_total.load(Ordering::Relaxed);
        log::info!(
            "packaged {} artifact(s) from {} ({} bytes of data) in {:.2} s",
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

/// What the progress thread reads.
struct Ticker {
    phases: Arc<Mutex<Vec<(Shape, &'static str)>>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    name: String,
    started: std::time::Instant,
}

/// How often a progress line is printed off a terminal:
/// `CLOUDIMG_PROGRESS_SECONDS` (a number of seconds, for tests), else
/// [`PROGRESS_INTERVAL`].
fn progress_interval() -> Duration {
    std::env::var("CLOUDIMG_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= super::MAX_SECONDS as f64)
        .map_or(PROGRESS_INTERVAL, Duration::from_secs_f64)
}

/// The interval of the progress lines off a terminal (a log that shows
/// the run is alive without flooding it).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// The progress display until `stop`: on a terminal (`live`) the status
/// lines redrawn five times a second; off one, a progress line every
/// [`progress_interval`].
fn spawn_ticker(t: Ticker, live: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || if live { redraw(&t) } else { log_lines(&t) })
}

/// The live status display on stderr, redrawn five times a second until
/// `stop`.
fn redraw(t: &Ticker) {
    // One line per shape, redrawn in place: back to the first
    // line (`ESC [ n F`), each line cleared (`ESC [ K`) and
    // rewritten; at the end the block is erased (`ESC [ J`).
    let mut drawn = 0;
    while !t.stop.load(Ordering::Relaxed) {
        let lines = status_lines(
            &t.phases,
            &t.progress,
            &t.name,
            t.started.elapsed().as_secs_f64(),
        );
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
}

/// Off a terminal: one progress line per interval until `stop` (checked
/// five times a second, so the run's end is not delayed).
fn log_lines(t: &Ticker) {
    let every = progress_interval();
    let mut next = every;
    while !t.stop.load(Ordering::Relaxed) {
        let elapsed = t.started.elapsed();
        if elapsed >= next {
            log::info!("{}", progress_line(t, elapsed.as_secs_f64()));
            next = elapsed + every;
        }
        std::thread::sleep(every.min(Duration::from_millis(200)));
    }
}

/// `package: 3/8 shapes done; writing capos.qcow2 512/1024 MiB (50%), ...;
/// 12 s`: the shapes done, and each shape being written with the input
/// data its writer has read of the total.
fn progress_line(t: &Ticker, elapsed: f64) -> String {
    const MIB: u64 = 1024 * 1024;
    let total = t.progress.data_total.load(Ordering::Relaxed);
    let phases = t.phases.lock().map(|p| p.clone()).unwrap_or_default();
    let done = phases.iter().filter(|(_, p)| *p == "ok").count();
    let mut parts = vec![format!("package: {done}/{} shapes done", phases.len())];
    for (shape, phase) in &phases {
        let file = shape.file_name(&t.name);
        match *phase {
            "writing" if total > 0 => {
                let read = t.progress.read(*shape).min(total);
                parts.push(format!(
                    "writing {file} {}/{} MiB ({:.0}%)",
                    read / MIB,
                    total / MIB,
                    read as f64 * 100.0 / total as f64
                ));
            }
            "verifying" | "writing" => parts.push(format!("{phase} {file}")),
            _ => {}
        }
    }
    parts.push(format!("{elapsed:.0} s"));
    parts.join("; ")
}

/// Earlier artifacts kept or dropped, the input's own GPT problems and
/// the shapes' notes, on stderr.
fn print_notes(
    args: &Args,
    req: &PackageRequest,
    outcome: &package::Outcome,
    notes: &[(Shape, String)],
) {
    if !outcome.kept.is_empty() {
        log::info!(
            "the manifest also lists {} artifact(s) of the same image from an earlier run: {}",
            outcome.kept.len(),
            outcome.kept.join(", ")
        );
    }
    for note in &outcome.dropped {
        log::warn!(target: "note", "{note}");
    }
    for f in &outcome.input_findings {
        log::warn!("{}: {f}", args.image.display());
    }
    for (shape, note) in notes {
        log::warn!(target: "note", "{}: {note}", shape.file_name(&req.name));
    }
}

/// The manifest on stdout: as JSON (with failures and notes), or a table.
fn print_outcome(
    args: &Args,
    req: &PackageRequest,
    outcome: &package::Outcome,
) -> anyhow::Result<()> {
    if args.json {
        return super::print_json("package", &document(req, outcome)?);
    }
    let mut out = std::io::stdout().lock();
    if let Some(manifest_path) = &outcome.manifest_path {
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
        if let Some(dir) = manifest_path.parent() {
            writeln!(
                out,
                "checksums: {}",
                dir.join(package::SHA256SUMS).display()
            )?;
        }
    }
    Ok(())
}

/// The `cloudimg.package/1` document: the manifest's keys (its own
/// `schema` left out), where it and `SHA256SUMS` were written, and the
/// failures, input findings and earlier entries kept or dropped.
fn document(req: &PackageRequest, outcome: &package::Outcome) -> anyhow::Result<serde_json::Value> {
    let failures: Vec<_> = outcome
        .failures
        .iter()
        .map(|(s, e)| {
            serde_json::json!({
                "file": s.file_name(&req.name),
                "shape": s,
                "provider": s.provider(),
                "format": s.format(),
                "error": e.to_string(),
            })
        })
        .collect();
    let mut v = serde_json::to_value(&outcome.manifest)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("schema");
    }
    let sums = outcome
        .manifest_path
        .as_ref()
        .and_then(|p| p.parent())
        .map(|d| d.join(package::SHA256SUMS));
    v["manifest_path"] = serde_json::json!(outcome.manifest_path);
    v["sha256sums_path"] = serde_json::json!(sums);
    v["failures"] = serde_json::json!(failures);
    v["input_findings"] = serde_json::to_value(&outcome.input_findings)?;
    v["kept"] = serde_json::json!(outcome.kept);
    v["dropped"] = serde_json::json!(outcome.dropped);
    Ok(v)
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
            log::error!("{msg}");
        } else {
            log::error!("{file}: {msg}");
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
