//! `cloudimg package IMAGE`: write and verify the cloud shapes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cloudimg_disk::package::{self, Event, PackageRequest, Shape};

/// Package a raw disk image into the GCP and AWS shapes.
///
/// Writes disk.raw.tar.gz (GCP), NAME-aws.raw, NAME-aws.vhd and
/// NAME-aws.vmdk (AWS) and manifest.json into the output directory. Every
/// artifact is decoded back and checked before it gets its final name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The raw disk image to package (never modified).
    pub image: PathBuf,
    /// Only the GCP shape (disk.raw.tar.gz). With --aws: both.
    #[arg(long)]
    pub gcp: bool,
    /// Only the AWS shapes (raw, VHD, VMDK). With --gcp: both.
    #[arg(long)]
    pub aws: bool,
    /// Output directory (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = "target/cloud-image")]
    pub out_dir: PathBuf,
    /// Prefix of the AWS file names.
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
    if args.name.is_empty() || args.name.contains('/') {
        anyhow::bail!("--name {:?} must be a non-empty file name prefix without '/'", args.name);
    }
    let shapes: Vec<Shape> = Shape::ALL
        .into_iter()
        .filter(|s| match (args.gcp, args.aws) {
            (false, false) | (true, true) => true,
            (true, false) => s.provider() == package::Provider::Gcp,
            (false, true) => s.provider() == package::Provider::Aws,
        })
        .collect();
    let req = PackageRequest {
        input: args.image.clone(),
        out_dir: args.out_dir.clone(),
        name: args.name.clone(),
        shapes,
        mtime: super::source_date_epoch()?,
        jobs: match args.jobs {
            Some(0) => anyhow::bail!("--jobs must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
    };
    // Progress only on a terminal; failures are always reported below.
    let show = !args.quiet && super::stderr_is_tty();
    let mut on_event = |ev: Event| {
        if !show {
            return;
        }
        match ev {
            Event::Started { size, data } => {
                eprintln!("packaging {} ({size} bytes, {data} of data)", req.input.display())
            }
            Event::Writing(shape) => eprintln!("writing {}", shape.file_name(&req.name)),
            Event::Verifying(shape) => eprintln!("verifying {}", shape.file_name(&req.name)),
            Event::Done(a) => eprintln!("ok {} ({} bytes, {:.2} s)", a.file, a.size, a.seconds),
            Event::Failed(shape, e) => eprintln!("FAILED {}: {e}", shape.file_name(&req.name)),
        }
    };
    let outcome = package::package(&req, &mut on_event)?;

    for f in &outcome.input_findings {
        eprintln!("cloudimg: warning: {}: {f}", args.image.display());
    }
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
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{:<22} {:<8} {:>14} {:>8}  SHA-256", "FILE", "PROVIDER", "BYTES", "SECONDS")?;
        for a in &outcome.manifest.artifacts {
            let provider = serde_json::to_value(a.provider)?;
            writeln!(
                out,
                "{:<22} {:<8} {:>14} {:>8.2}  {}",
                a.file,
                provider.as_str().unwrap_or(""),
                a.size,
                a.seconds,
                a.sha256
            )?;
        }
        writeln!(out, "manifest: {}", outcome.manifest_path.display())?;
    }
    if outcome.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for (shape, e) in &outcome.failures {
            eprintln!("cloudimg: error: {}: {e}", shape.file_name(&req.name));
        }
        Ok(ExitCode::from(2))
    }
}
