//! Running `package`: one thread hashes the input and the grown disk in
//! step while each shape is written on its own thread, read back and
//! decoded; once the digests are known, each report is checked and the
//! artifact renamed.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::manifest::Artifact;
use super::plan::{Plan, Shape};
use super::{Event, Input, PackageRequest};
use crate::disk::{PatchedDisk, VirtualDisk};
use crate::error::{Error, IoContext, Result};
use crate::formats::{Output, WriteOptions};
use crate::io::direct::{self, Direct};
use crate::io::sha256x2::{self, Lane};
use crate::io::{sha256_file, DiskDigest, OutputFile, RawFile, ReadBack, Sha256Hex};
use crate::trace;
use crate::verify::{check_report, verify_file_with, Report, VerifyOptions};

/// A disk that counts the bytes read through it.
struct Counted<'a> {
    inner: &'a dyn VirtualDisk,
    counter: Option<&'a AtomicU64>,
}

impl VirtualDisk for Counted<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)?;
        if let Some(c) = self.counter {
            c.fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
    fn extents(&self) -> std::io::Result<Vec<crate::disk::Extent>> {
        self.inner.extents()
    }
    fn as_raw_file(&self) -> Option<&RawFile> {
        self.inner.as_raw_file()
    }
}

/// Spawn a scoped thread with a name (shown by `top -H`, `ps -L` and
/// profilers; Linux keeps 15 bytes).
fn spawn_named<'scope, 'env, T, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: F,
) -> std::thread::ScopedJoinHandle<'scope, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, f)
        .expect("starting a thread")
}

/// Write one shape of `disk` (the disk that shape holds) to a temporary
/// file beside its target.
fn write_shape(
    shape: Shape,
    disk: &dyn VirtualDisk,
    target: &Path,
    opts: &WriteOptions,
    req: &PackageRequest,
    counter: Option<&AtomicU64>,
) -> Result<OutputFile> {
    let with_target = |e: Error| e.with_path(target);
    let out = OutputFile::create(target)
        .ctx("creating")
        .map_err(with_target)?;
    let disk = &Counted {
        inner: disk,
        counter,
    };
    // The plain copies of the disk go to the device directly where the
    // filesystem allows it and cannot share extents (io::direct).
    let direct = (shape.is_plain_copy() && !direct::copies_without_data(out.file()))
        .then(|| Direct::reopen(out.file(), true))
        .flatten();
    let write = shape
        .format()
        .spec()
        .write
        .expect("every shape's format has a writer");
    let file_name = shape_file_name(target);
    let output = Output {
        file: out.file(),
        file_name: &file_name,
        image_name: &req.name,
        scratch_dir: &req.out_dir,
        direct: direct.as_ref(),
        jobs: req.jobs.max(1),
        compress: shape == Shape::Qcow2 && req.qcow2_compressed,
    };
    write(disk, &output, opts).map_err(with_target)?;
    out.file().sync_all().ctx("flushing").map_err(with_target)?;
    corrupt_for_tests(out.file(), target);
    Ok(out)
}

/// Stands for the expected disk's SHA-256 while the digest is still being
/// computed: a comparing [`DiskDigest`] returns it when the content matched
/// in full (and never otherwise), and [`commit_verified`] replaces it.
const PENDING_SHA: Sha256Hex = Sha256Hex([0xA5; 32]);

/// A written artifact, read back and decoded.
struct Decoded {
    out: OutputFile,
    report: Report,
    /// SHA-256 of the file, for the shapes whose file is not the disk
    /// (and its footer) itself.
    file_sha: Option<Sha256Hex>,
}

/// Read a written artifact back and decode it in full, comparing its
/// content with `expected`, the disk it must hold; its GPT is checked only
/// for a disk cloudimg made (`own_disk`: the others are proven identical
/// to the input, whose GPT is checked once, as the input).
fn decode_written(
    shape: Shape,
    out: OutputFile,
    expected: &dyn VirtualDisk,
    own_disk: bool,
) -> Result<Decoded> {
    let target = out.target().to_path_buf();
    let with_target = |e: Error| e.with_path(&target);
    let digest = DiskDigest::comparing(expected, PENDING_SHA)
        .ctx("listing the expected disk's extents")
        .map_err(with_target)?;
    // The file's own SHA-256 (for the shapes whose file is not the disk
    // and a footer) is computed beside the decoding, not after it.
    let needs_file_sha = !shape.is_plain_copy();
    let (report, file_sha) = std::thread::scope(|s| {
        let file_sha =
            needs_file_sha.then(|| spawn_named(s, "sha256-file", || sha256_file(out.temp_path())));
        let from = if shape.is_plain_copy() {
            ReadBack::Device
        } else {
            ReadBack::PageCache
        };
        let opts = VerifyOptions {
            digest,
            from,
            check_disk: own_disk,
        };
        let report = verify_file_with(out.file(), shape.format(), opts);
        let file_sha = file_sha.map(|h| h.join().expect("hash threads do not panic"));
        (report, file_sha)
    });
    let report = report.map_err(|e| {
        Error::new(e.kind(), format!("verification failed: {}", e.message())).with_path(&target)
    })?;
    let file_sha = file_sha.transpose().ctx("reading").map_err(with_target)?;
    Ok(Decoded {
        out,
        report,
        file_sha,
    })
}

/// Check a decoded artifact's report against its disk, whose SHA-256 is
/// now known, and give the artifact its final name.
fn commit_verified(
    shape: Shape,
    d: Decoded,
    plan: &Plan<'_>,
    digests: &Digests,
) -> Result<Artifact> {
    let expected_disk = plan.disk(shape);
    let expected_sha = digests.disk(shape);
    let file_sha = digests.file(shape);
    let own_disk = plan.own_disk(shape);
    let growth = plan.growth(shape);
    let Decoded {
        out,
        mut report,
        file_sha: read_sha,
    } = d;
    let target = out.target().to_path_buf();
    let with_target = |e: Error| e.with_path(&target);
    if report.virtual_sha256 == Some(PENDING_SHA) {
        report.virtual_sha256 = Some(expected_sha);
    }
    // Most shapes carry the input unchanged: once the decoded disk is
    // proven identical to the input, problems inside that disk (its GPT)
    // are the input's, reported once as warnings, not conversion defects.
    // A grown disk is made by cloudimg (`own_disk`): its GPT must be sound.
    check_report(
        &report,
        shape.format(),
        expected_disk.size(),
        expected_sha,
        own_disk,
    )
    .map_err(with_target)?;
    let size = out
        .file()
        .metadata()
        .ctx("reading metadata")
        .map_err(with_target)?
        .len();
    let sha256 = match file_sha.or(read_sha) {
        Some(s) => s,
        None => sha256_file(out.temp_path())
            .ctx("reading")
            .map_err(with_target)?,
    };
    out.commit().ctx("renaming").map_err(with_target)?;
    Ok(Artifact {
        file: shape_file_name(&target),
        provider: shape.provider(),
        shape,
        format: Some(shape.format().name().to_string()),
        size,
        sha256,
        virtual_size: expected_disk.size(),
        virtual_sha256: expected_sha,
        source_date_epoch: None,
        growth,
    })
}

/// Test hook: with `CLOUDIMG_TEST_CORRUPT_AFTER_WRITE=<file name>` set,
/// flip one byte in the middle of that artifact after it is written and
/// before it is verified, so tests can prove that a bad conversion is
/// caught and removed. Does nothing otherwise.
fn corrupt_for_tests(file: &File, target: &Path) {
    use std::os::unix::fs::FileExt;
    let Some(victim) = std::env::var_os("CLOUDIMG_TEST_CORRUPT_AFTER_WRITE") else {
        return;
    };
    if target.file_name() != Some(victim.as_os_str()) {
        return;
    }
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return;
    };
    let at = len / 2;
    let mut b = [0u8; 1];
    if file.read_exact_at(&mut b, at).is_ok() {
        let _ = file.write_all_at(&[b[0] ^ 0xff], at);
        log::debug!("test hook: flipped byte {at} of {}", target.display());
    }
}

/// What tells a changed input from the one the run began with, without
/// reading it again: its file (device and inode), size, and modification
/// and change times to the nanosecond (any write moves both).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Identity {
    file: (u64, u64),
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    /// The identity of the file at `path` now.
    pub(super) fn of(path: &Path) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)
            .ctx("reading metadata")
            .map_err(|e| e.with_path(path))?;
        Ok(Identity {
            file: (m.dev(), m.ino()),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Test hook: with `CLOUDIMG_TEST_TOUCH_INPUT=1` set, move the input's
/// modification time one second on after every shape is written and
/// before any is committed, as a change during the run would, so tests can
/// prove that nothing is committed then. Does nothing otherwise.
fn touch_input_for_tests(input: &Path) {
    if std::env::var_os("CLOUDIMG_TEST_TOUCH_INPUT").is_none() {
        return;
    }
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(input) else {
        return;
    };
    if let Ok(t) = f.metadata().and_then(|m| m.modified()) {
        let _ = f.set_modified(t + std::time::Duration::from_secs(1));
        log::debug!("test hook: touched {}", input.display());
    }
}

fn shape_file_name(target: &Path) -> String {
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Each shape's artifact, or why it could not be made.
pub(super) type Results = Vec<(Shape, Result<Artifact>)>;

/// What one shape's thread returns: the artifact written and decoded back.
type Written = (Shape, Result<Decoded>);

/// Write and verify every planned shape (see [`super::package`]); return
/// each shape's artifact (or why it failed) and the input's SHA-256.
/// Events from the worker threads are delivered on this thread.
pub(super) fn run(
    req: &PackageRequest,
    identity: &Identity,
    plan: &Plan<'_>,
    opts: &WriteOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<(Results, Sha256Hex)> {
    let read_err = |e: std::io::Error| Error::io("reading", e).with_path(&req.input);
    let (tx, rx) = mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        // Phase 1: hash the source (and the VHD file, which is the source
        // and its footer) and the grown disks, while writing every shape.
        // The input and the GCP disk are hashed on one thread, in step.
        let hashes = spawn_named(scope, "sha256", || {
            hash_input(plan.input, plan.gcp.as_ref())
        });
        let azure_hash = plan
            .azure
            .as_ref()
            .filter(|_| !plan.azure_is_input)
            .map(|a| spawn_named(scope, "sha256-azure", move || sha256x2::hash_one(a)));
        // Each shape is written, then read back and decoded, comparing
        // its content with its disk, on its own thread: a shape finished
        // early is verified while the others are still being written.
        let workers: Vec<_> = plan
            .shapes
            .iter()
            .map(|&shape| {
                let tx = tx.clone();
                spawn_named(scope, shape.thread_name(), move || {
                    write_and_decode(shape, req, plan, opts, &tx)
                })
            })
            .collect();
        drop(tx);
        // Deliver events while the workers run.
        for ev in rx.iter() {
            on_event(ev);
        }
        let decoded: Vec<Written> = workers
            .into_iter()
            .map(|h| h.join().expect("worker threads do not panic"))
            .collect();
        let (source_lane, grown_sha) = hashes
            .join()
            .expect("hash threads do not panic")
            .map_err(read_err)?;
        let azure_lane = match azure_hash {
            Some(h) => Some(
                h.join()
                    .expect("hash threads do not panic")
                    .map_err(read_err)?,
            ),
            None => plan.azure_is_input.then(|| source_lane.clone()),
        };
        let digests = Digests::new(plan, opts, source_lane, grown_sha, azure_lane);
        // The input must be the file it was when the run began: a change
        // while it was read (its digest and every shape come from those
        // reads) commits nothing.
        touch_input_for_tests(&req.input);
        if Identity::of(&req.input)? != *identity {
            return Err(Error::invalid_input(
                "changed while it was being packaged (its size or modification time differ); \
                 nothing was committed: package it again once it is final",
            )
            .with_path(&req.input));
        }
        // Now that the digests are known: check every report and give each
        // artifact its final name.
        let results = decoded
            .into_iter()
            .map(|(shape, d)| {
                let r = d.and_then(|d| commit_verified(shape, d, plan, &digests));
                match &r {
                    Ok(a) => on_event(Event::Done(a.clone())),
                    Err(e) => on_event(Event::Failed(shape, e.to_string())),
                }
                (shape, r)
            })
            .collect();
        Ok((results, digests.source))
    })
}

/// The input's SHA-256 lane and, when there is one, the GCP disk's
/// SHA-256, hashed in one pass (the GCP disk differs from the input only
/// in its patches).
fn hash_input(
    input: &Input,
    gcp: Option<&PatchedDisk<&Input>>,
) -> std::io::Result<(Lane, Option<Sha256Hex>)> {
    match gcp {
        Some(g) => {
            let differs: Vec<_> = g
                .patches()
                .iter()
                .map(|(at, b)| *at..at + b.len() as u64)
                .collect();
            let (s, g) = sha256x2::hash_two(input, g, Some(&differs))?;
            trace::phase(|| "input and grown disk hashed".into());
            Ok((s, Some(Sha256Hex(g.finish()))))
        }
        None => {
            let s = sha256x2::hash_one(input)?;
            trace::phase(|| "input hashed".into());
            Ok((s, None))
        }
    }
}

/// One shape's thread: write it, then read it back and decode it,
/// sending events as it goes.
fn write_and_decode(
    shape: Shape,
    req: &PackageRequest,
    plan: &Plan<'_>,
    opts: &WriteOptions,
    tx: &mpsc::Sender<Event>,
) -> Written {
    // The hashes are the one pass that cannot be split: let them go first
    // (see io::priority).
    crate::io::priority::lower_this_thread();
    let _ = tx.send(Event::Writing(shape));
    let disk = plan.disk(shape);
    let target = req.out_dir.join(shape.file_name(&req.name));
    let counter = req.progress.as_deref().map(|p| &p.read[shape.index()]);
    let r = write_shape(shape, disk, &target, opts, req, counter).and_then(|out| {
        trace::phase(|| format!("{} written", shape.thread_name()));
        let _ = tx.send(Event::Verifying(shape));
        let r = decode_written(shape, out, disk, plan.own_disk(shape));
        trace::phase(|| format!("{} decoded back", shape.thread_name()));
        if r.is_ok() {
            let _ = tx.send(Event::Decoded(shape));
        }
        r
    });
    if let Err(e) = &r {
        let _ = tx.send(Event::Failed(shape, e.to_string()));
    }
    (shape, r)
}

/// The SHA-256 of every disk and of the files that are a disk and its
/// footer, once hashed.
struct Digests {
    /// The input.
    source: Sha256Hex,
    /// The AWS fixed VHD: the input and its footer.
    vhd: Sha256Hex,
    /// The GCP disk.
    gcp: Option<Sha256Hex>,
    /// The Azure disk, and the Azure VHD file (that disk and its footer).
    azure: Option<(Sha256Hex, Sha256Hex)>,
}

impl Digests {
    fn new(
        plan: &Plan<'_>,
        opts: &WriteOptions,
        source: Lane,
        gcp: Option<Sha256Hex>,
        azure: Option<Lane>,
    ) -> Self {
        let footer = |size: u64| crate::formats::vhd::writer::fixed_footer(size, opts).to_bytes();
        let with_footer = |lane: &Lane, footer: &[u8]| {
            let mut l = lane.clone();
            l.update(footer);
            Sha256Hex(l.finish())
        };
        let vhd = with_footer(&source, &footer(plan.input.size()));
        let azure = azure.map(|l| {
            let size = plan
                .azure
                .as_ref()
                .expect("the Azure disk is hashed only when planned")
                .size();
            (
                Sha256Hex(l.clone().finish()),
                with_footer(&l, &footer(size)),
            )
        });
        Digests {
            source: Sha256Hex(source.finish()),
            vhd,
            gcp,
            azure,
        }
    }

    /// The SHA-256 of the disk `shape` holds.
    fn disk(&self, shape: Shape) -> Sha256Hex {
        match shape {
            Shape::GcpTarGz => self.gcp.expect("the grown disk is hashed"),
            Shape::AzureVhd => self.azure.expect("the Azure disk is hashed").0,
            _ => self.source,
        }
    }

    /// The SHA-256 of `shape`'s file, when it follows from its disk's.
    fn file(&self, shape: Shape) -> Option<Sha256Hex> {
        match shape {
            Shape::AwsRaw => Some(self.source),
            Shape::AwsVhd => Some(self.vhd),
            Shape::AzureVhd => self.azure.map(|s| s.1),
            _ => None,
        }
    }
}
