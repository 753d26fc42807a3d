//! `package`: turn a raw disk image into the cloud shapes, verify each one
//! by decoding it back from disk, and describe them in a manifest.
//!
//! Every artifact is written under a temporary name in the output
//! directory ([`OutputFile`](crate::io::OutputFile)) and renamed only once
//! its verification has passed; a failure removes it. The input is only
//! ever opened read-only.
//!
//! `plan` holds the shapes, the checks made before any work and the
//! grown disks; `run` the threads that write, hash and verify;
//! `manifest` what `manifest.json` records and how it is merged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::disk::{ExtentKind, VirtualDisk, ZeroScanned};
use crate::error::{Error, ErrorKind, Result};
use crate::formats::WriteOptions;
use crate::layout;
use crate::trace;
use crate::verify::Finding;

mod manifest;
mod plan;
mod run;

pub use crate::vocab::{azure_size, gcp_size};
pub use manifest::{sums_line, Artifact, Manifest, Source, MANIFEST_SCHEMA, SHA256SUMS};
pub use plan::Shape;

/// Which cloud a shape is for (one type for every crate).
pub use crate::vocab::Provider;

/// What to package.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    /// The input image, in any format cloudimg reads.
    pub input: PathBuf,
    /// The output directory (created if missing).
    pub out_dir: PathBuf,
    /// Prefix of the AWS file names (`capos` → `capos-aws.vhd`).
    pub name: String,
    /// Shapes to write.
    pub shapes: Vec<Shape>,
    /// Timestamp for formats that carry one (`SOURCE_DATE_EPOCH`, else 0).
    pub mtime: u64,
    /// Threads for each compressing writer (at least 1).
    pub jobs: usize,
    /// Deflate the QCOW2's clusters (as `qemu-img convert -c`).
    pub qcow2_compressed: bool,
    /// Counters the caller can poll to show progress.
    pub progress: Option<Arc<Progress>>,
}

/// Bytes of input data read so far by each shape's writer, for a progress
/// display. Raw copies made in the kernel are not counted while they run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of data (not holes) in the input, once known.
    pub data_total: AtomicU64,
    read: [AtomicU64; 8],
}

impl Progress {
    /// Bytes read so far by the writer of `shape`.
    pub fn read(&self, shape: Shape) -> u64 {
        self.read[shape.index()].load(Ordering::Relaxed)
    }
}

/// Progress events, for the command line to show. They are sent from the
/// worker threads and delivered on the calling thread.
#[derive(Debug, Clone)]
pub enum Event {
    /// Work starts: the input's size and the shapes being made.
    Started {
        /// Bytes of the input.
        size: u64,
        /// Bytes of data (not holes) in the input.
        data: u64,
    },
    /// Writing a shape to a temporary file.
    Writing(Shape),
    /// Decoding a written shape back.
    Verifying(Shape),
    /// A shape is decoded back in full and its content matched its disk;
    /// its findings are judged, and it gets its name, once the disks'
    /// SHA-256 are known.
    Decoded(Shape),
    /// A shape is written, verified and has its final name.
    Done(Artifact),
    /// A shape could not be made; the others go on.
    Failed(Shape, String),
    /// Something the operator should know about a shape, in one line
    /// (e.g. its disk was grown past the first whole GiB to keep the
    /// backup GPT off data the GPT does not own). Sent while planning.
    Note(Shape, String),
}

/// The outcome of [`package`]: the manifest of what was made, and the
/// shapes that could not be made, with why.
#[derive(Debug)]
pub struct Outcome {
    /// Written and verified artifacts (also written as `manifest.json`).
    pub manifest: Manifest,
    /// Path of `manifest.json`; none when every shape failed (nothing
    /// was made, and no manifest written).
    pub manifest_path: Option<PathBuf>,
    /// Shapes refused or failed.
    pub failures: Vec<(Shape, Error)>,
    /// Problems in the input's own partition table (offsets in the input).
    pub input_findings: Vec<Finding>,
    /// Artifacts of the same source listed by the directory's previous
    /// manifest and kept in this one (their files still match it).
    pub kept: Vec<String>,
    /// Entries of the previous manifest left out of this one, each with
    /// why (another source, file gone or changed), one line each.
    pub dropped: Vec<String>,
}

/// The input as the writers see it: its disk, zero blocks as holes.
type Input = ZeroScanned<Box<dyn VirtualDisk>>;

/// Package `req.input` into `req.shapes`, calling `on_event` (on this
/// thread) as work progresses. Fails before any work for unusable input
/// or output; a shape that cannot be made (e.g. GCP for an image with a
/// corrupt GPT) is reported in [`Outcome::failures`] while the others are
/// still made.
///
/// The work runs in parallel: the input's SHA-256 and the grown disk's
/// are computed on their own threads while the shapes are written (the
/// compressed ones on pools of `req.jobs` threads); then every artifact is
/// read back and decoded, and its content compared byte for byte with the
/// disk it must hold (the input, or the grown disk for GCP). Equal content
/// has equal SHA-256, so the manifest's digests are never guessed: they
/// are the hashes of disks proven identical to the decoded artifacts.
///
/// The GCP and Azure disks are grown to the first whole GiB or MiB whose
/// backup GPT overwrites no data the GPT does not own
/// ([`layout::gpt::grow_to_multiple`]); a size passed over is reported as
/// an [`Event::Note`] and as the artifact's [`Artifact::growth`]. Each
/// grown disk is checked to change the input only inside GPT structures
/// before it is written.
pub fn package(req: &PackageRequest, on_event: &mut dyn FnMut(Event)) -> Result<Outcome> {
    trace::begin();
    let input = &req.input;
    let read_err = |e: std::io::Error| Error::io("reading", e).with_path(input);
    let jobs = req.jobs.max(1);
    // Zero blocks inside data extents are treated as holes from here on.
    let checked = plan::preflight(req)?;
    let identity = run::Identity::of(&req.input)?;
    let _lock = plan::lock_out_dir(&req.out_dir)?;
    let disk: Input = ZeroScanned::scan(checked, jobs).map_err(read_err)?;
    let extents = disk.extents().map_err(read_err)?;
    let data: u64 = extents
        .iter()
        .filter(|e| e.kind == ExtentKind::Data)
        .map(|e| e.len)
        .sum();
    if let Some(p) = &req.progress {
        p.data_total.store(data, Ordering::Relaxed);
    }
    on_event(Event::Started {
        size: disk.size(),
        data,
    });

    let seed = plan::identity_seed(&disk, &extents, &req.name).map_err(read_err)?;
    let opts = WriteOptions {
        mtime: req.mtime,
        seed,
    };
    let input_findings = layout::gpt::verify(&disk);
    let mut failures: Vec<(Shape, Error)> = Vec::new();
    let plan = plan::Plan::new(req, &disk, on_event, &mut failures);
    trace::phase(|| "input scanned, shapes planned".into());
    let (results, source_sha) = run::run(req, &identity, &plan, &opts, on_event)?;

    let mut artifacts = Vec::new();
    for (shape, r) in results {
        match r {
            Ok(a) => artifacts.push(a),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => failures.push((shape, e)),
        }
    }
    let source = Source {
        file: input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: disk.size(),
        sha256: source_sha,
    };
    let recorded = manifest::record(req, source, artifacts, !failures.is_empty())?;
    trace::phase(|| "manifest written".into());
    Ok(Outcome {
        manifest: recorded.manifest,
        manifest_path: recorded.path,
        failures,
        input_findings,
        kept: recorded.kept,
        dropped: recorded.dropped,
    })
}
