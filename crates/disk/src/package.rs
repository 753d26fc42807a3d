//! `package`: turn a raw disk image into the cloud shapes, verify each one
//! by decoding it back from disk, and describe them in a manifest.
//!
//! Every artifact is written under a temporary name in the output
//! directory ([`OutputFile`]) and renamed only once its verification has
//! passed; a failure removes it. The input is only ever opened read-only.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::disk::{ExtentKind, PatchedDisk, VirtualDisk, ZeroScanned, GIB, MIB, SECTOR_SIZE};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::formats::{self, Format, Output, WriteOptions};
use crate::io::direct::{self, Direct};
use crate::io::sha256x2::{self, Lane};
use crate::io::{sha256_file, DiskDigest, OutputFile, RawFile, ReadBack, Sha256Hex};
use crate::layout;
use crate::layout::gpt::Growth;
use crate::trace;
use crate::verify::{check_report, verify_file_with, Finding, Report, VerifyOptions};
use crate::vocab::AZURE_SIZE_UNIT;

/// Which cloud a shape is for (one type for every crate).
pub use crate::vocab::Provider;

/// One output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// `disk.raw.tar.gz`: gzip'd oldgnu tar of the disk grown to whole GiB.
    GcpTarGz,
    /// `<name>-aws.raw`: the image as is.
    AwsRaw,
    /// `<name>-aws.vhd`: fixed VHD.
    AwsVhd,
    /// `<name>-aws.vmdk`: stream-optimized VMDK.
    AwsVmdk,
    /// `<name>-azure.vhd`: fixed VHD of the disk grown to a whole MiB.
    AzureVhd,
    /// `<name>.qcow2`: QCOW2 v3, sparse.
    Qcow2,
    /// `<name>.vhdx`: dynamic VHDX.
    Vhdx,
    /// `<name>.ova`: OVF descriptor, stream-optimized VMDK, manifest.
    Ova,
}

impl Shape {
    /// Every shape, in the order they are written.
    pub const ALL: [Shape; 8] = [
        Shape::AwsRaw,
        Shape::AwsVhd,
        Shape::AwsVmdk,
        Shape::GcpTarGz,
        Shape::AzureVhd,
        Shape::Qcow2,
        Shape::Vhdx,
        Shape::Ova,
    ];

    /// The shapes made when none are asked for: GCP's and AWS's.
    pub const DEFAULT: [Shape; 4] = [
        Shape::AwsRaw,
        Shape::AwsVhd,
        Shape::AwsVmdk,
        Shape::GcpTarGz,
    ];

    fn index(self) -> usize {
        match self {
            Shape::AwsRaw => 0,
            Shape::AwsVhd => 1,
            Shape::AwsVmdk => 2,
            Shape::GcpTarGz => 3,
            Shape::AzureVhd => 4,
            Shape::Qcow2 => 5,
            Shape::Vhdx => 6,
            Shape::Ova => 7,
        }
    }

    /// Whether the shape is a plain copy of its disk (raw, fixed VHD): its
    /// file's SHA-256 follows from the disk's, and it is written and read
    /// back with direct I/O where possible ([`crate::io::direct`]); the
    /// other shapes go through the page cache.
    fn is_plain_copy(self) -> bool {
        matches!(self, Shape::AwsRaw | Shape::AwsVhd | Shape::AzureVhd)
    }

    /// The name of the thread that writes and verifies the shape.
    fn thread_name(self) -> &'static str {
        match self {
            Shape::GcpTarGz => "gcp-tar-gz",
            Shape::AwsRaw => "aws-raw",
            Shape::AwsVhd => "aws-vhd",
            Shape::AwsVmdk => "aws-vmdk",
            Shape::AzureVhd => "azure-vhd",
            Shape::Qcow2 => "qcow2",
            Shape::Vhdx => "vhdx",
            Shape::Ova => "ova",
        }
    }

    /// The provider's name, for messages.
    pub fn provider_name(self) -> &'static str {
        match self.provider() {
            Provider::Gcp => "GCP",
            Provider::Aws => "AWS",
            Provider::Azure => "Azure",
            Provider::Openstack => "QCOW2",
            Provider::Hyperv => "VHDX",
            Provider::Vsphere => "OVA",
        }
    }

    /// The provider the shape is for.
    pub fn provider(self) -> Provider {
        match self {
            Shape::GcpTarGz => Provider::Gcp,
            Shape::AwsRaw | Shape::AwsVhd | Shape::AwsVmdk => Provider::Aws,
            Shape::AzureVhd => Provider::Azure,
            Shape::Qcow2 => Provider::Openstack,
            Shape::Vhdx => Provider::Hyperv,
            Shape::Ova => Provider::Vsphere,
        }
    }

    /// The output file name for image name prefix `name`.
    pub fn file_name(self, name: &str) -> String {
        match self {
            Shape::GcpTarGz => "disk.raw.tar.gz".to_string(),
            Shape::AwsRaw => format!("{name}-aws.raw"),
            Shape::AwsVhd => format!("{name}-aws.vhd"),
            Shape::AwsVmdk => format!("{name}-aws.vmdk"),
            Shape::AzureVhd => format!("{name}-azure.vhd"),
            Shape::Qcow2 => format!("{name}.qcow2"),
            Shape::Vhdx => format!("{name}.vhdx"),
            Shape::Ova => format!("{name}.ova"),
        }
    }

    /// The format the verifier must detect from the written file.
    pub fn format(self) -> Format {
        match self {
            Shape::GcpTarGz => Format::Gzip,
            Shape::AwsRaw => Format::Raw,
            Shape::AwsVhd => Format::VhdFixed,
            Shape::AwsVmdk => Format::Vmdk,
            Shape::AzureVhd => Format::VhdFixed,
            Shape::Qcow2 => Format::Qcow2,
            Shape::Vhdx => Format::Vhdx,
            Shape::Ova => Format::Ova,
        }
    }

    /// A short description for humans and the manifest.
    pub fn description(self) -> &'static str {
        match self {
            Shape::GcpTarGz => "gzip'd GNU oldgnu tar of disk.raw grown to whole GiB",
            Shape::AwsRaw => "raw",
            Shape::AwsVhd => "fixed VHD",
            Shape::AwsVmdk => "stream-optimized VMDK",
            Shape::AzureVhd => "fixed VHD of the disk grown to a whole MiB",
            Shape::Qcow2 => "QCOW2 v3, sparse",
            Shape::Vhdx => "dynamic VHDX",
            Shape::Ova => "OVA: OVF descriptor, stream-optimized VMDK, SHA-256 manifest",
        }
    }
}

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

/// The source image as recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    /// File name of the input.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes.
    pub sha256: Sha256Hex,
}

/// One verified artifact as recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// File name in the output directory.
    pub file: String,
    /// Provider it is for.
    pub provider: Provider,
    /// Its shape.
    pub shape: Shape,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file.
    pub sha256: Sha256Hex,
    /// Size of the virtual disk it decodes to.
    pub virtual_size: u64,
    /// SHA-256 of the virtual disk it decodes to.
    pub virtual_sha256: Sha256Hex,
    /// For a grown disk (GCP, Azure) whose first candidate size was passed
    /// over: `{"from": bytes, "to": bytes, "skipped": [{"size": bytes,
    /// "foreign_lbas": [[first, last], ...]}]}`, the input's size, the
    /// size chosen, and each smaller whole GiB (GCP) or MiB (Azure) not
    /// used because a backup GPT there would have overwritten those LBAs
    /// (inclusive ranges), which held data the GPT does not own (Limine's
    /// BIOS stage 2, say). Absent when the disk was grown to the first
    /// whole GiB or MiB, or not grown; manifests without it read as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The tool that wrote it.
    pub generator: String,
    /// The input image.
    pub source: Source,
    /// The artifacts, in the order they were written.
    pub artifacts: Vec<Artifact>,
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

/// Longest artifact file name: its temporary name (`.NAME.PID.N.partial`)
/// must stay within the 255 bytes most filesystems allow.
const MAX_FILE_NAME: usize = 200;

/// Checks made before any work: the input is a readable, non-empty
/// regular file holding a disk (in any format cloudimg reads) whose size
/// is a multiple of 512, and the output directory is a writable directory
/// that does not hold the input under an output name.
fn preflight(req: &PackageRequest) -> Result<Box<dyn VirtualDisk>> {
    let input = &req.input;
    // The name prefix, before any work: it must make file names the
    // filesystem takes (with the temporary names' decoration) and, for an
    // OVA, names its descriptor and manifest can hold unescaped.
    if let Some(long) = req
        .shapes
        .iter()
        .map(|s| s.file_name(&req.name))
        .find(|f| f.len() > MAX_FILE_NAME)
    {
        return Err(Error::invalid_input(format!(
            "--name {:?} is too long: {long:?} is {} bytes, over {MAX_FILE_NAME}",
            req.name,
            long.len()
        )));
    }
    if req.shapes.contains(&Shape::Ova) {
        formats::ova::check_name(&req.name)
            .map_err(|m| Error::invalid_input(format!("--name cannot name the OVA: {m}")))?;
    }
    let meta = fs::metadata(input)
        .ctx("opening")
        .map_err(|e| e.with_path(input))?;
    if meta.is_dir() {
        return Err(Error::invalid_input("is a directory, not a disk image").with_path(input));
    }
    if !meta.is_file() {
        return Err(Error::invalid_input("is not a regular file").with_path(input));
    }
    let (file, meta, format) = formats::open_detect(input)?;
    if format == Format::Raw && meta.len() % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "size {} is not a multiple of 512 bytes",
            meta.len()
        ))
        .with_path(input));
    }
    let near = file
        .try_clone()
        .ctx("opening")
        .map_err(|e| e.with_path(input))?;
    let disk = formats::open::open_file_disk(file, meta.len(), format, input)
        .and_then(|d| formats::open::decoded_once(d, format, &near, input))
        .map_err(|e| e.with_path(input))?;
    if disk.size() == 0 || disk.size() % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "holds a disk of {} bytes, not a non-zero multiple of 512",
            disk.size()
        ))
        .with_path(input));
    }
    let mut probe = [0u8; 512];
    disk.read_at(&mut probe, 0)
        .ctx("reading")
        .map_err(|e| e.with_path(input))?;

    let out = &req.out_dir;
    match fs::metadata(out) {
        Ok(m) if !m.is_dir() => {
            return Err(
                Error::invalid_input("output path exists and is not a directory").with_path(out),
            )
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(out)
            .ctx("creating the output directory")
            .map_err(|e| e.with_path(out))?,
    }
    for shape in &req.shapes {
        let target = out.join(shape.file_name(&req.name));
        if let Ok(m) = fs::metadata(&target) {
            if m.dev() == meta.dev() && m.ino() == meta.ino() {
                return Err(Error::invalid_input(format!(
                    "output {} is the input image itself; choose another output directory or --name",
                    target.display()
                ))
                .with_path(input));
            }
            if m.is_dir() {
                return Err(
                    Error::invalid_input("output path is an existing directory").with_path(&target)
                );
            }
        }
    }
    // Writable? Create (and drop, which removes) a temporary file.
    OutputFile::create(out.join("manifest.json"))
        .ctx("writing to the output directory")
        .map_err(|e| e.with_path(out))?;
    Ok(disk)
}

/// The smallest size GCP accepts: the next whole GiB (an exact multiple
/// stays). [`package`] grows to a larger whole GiB when a backup GPT at
/// this one would overwrite data ([`layout::gpt::plan_growth`]).
pub fn gcp_size(size: u64) -> u64 {
    size.div_ceil(GIB) * GIB
}

/// The smallest size Azure accepts: the next whole MiB (an exact multiple
/// stays, and the input is then used as it is). [`package`] grows to a
/// larger whole MiB when a backup GPT at this one would overwrite data
/// ([`layout::gpt::plan_growth`]).
pub fn azure_size(size: u64) -> u64 {
    size.div_ceil(AZURE_SIZE_UNIT) * AZURE_SIZE_UNIT
}

/// Self-check of a grown disk, before any of it is written: its patches
/// change nothing of the input outside the GPT (see
/// [`layout::gpt::changes_outside_gpt`]; only the patched sectors are
/// read). The artifact is later proven identical to this disk, so it is
/// proven to hold the input unchanged outside the GPT.
fn check_grown(grown: &PatchedDisk<&Input>) -> Result<()> {
    let changed = layout::gpt::changes_outside_gpt(grown)?;
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::corrupt(format!(
        "the grown disk would change {} of the input outside its GPT",
        layout::gpt::lba_ranges_text(&changed)
    )))
}

/// A size for messages in the unit a disk is grown by: `2 GiB`, `301 MiB`
/// (else bytes).
fn size_text(bytes: u64, unit: u64) -> String {
    match unit {
        GIB if bytes % GIB == 0 => format!("{} GiB", bytes / GIB),
        MIB if bytes % MIB == 0 => format!("{} MiB", bytes / MIB),
        _ => format!("{bytes} bytes"),
    }
}

/// The one-line note for a disk grown past its first candidate size, or
/// `None` when it was not: `grown to 2 GiB, not 1 GiB: a backup GPT at
/// 1 GiB would cover LBAs 2097140-2097151, which hold data the GPT does
/// not own (Limine's BIOS stage 2, as its MBR says)`. The data is named
/// Limine's stage 2 only when LBA 0 holds Limine's boot code and its
/// stage 2 location field points into the LBAs.
fn growth_note(growth: &Growth, unit: u64, disk: &dyn VirtualDisk) -> Option<String> {
    if growth.skipped.is_empty() {
        return None;
    }
    let not: Vec<String> = growth
        .skipped
        .iter()
        .map(|s| size_text(s.size, unit))
        .collect();
    let covers: Vec<String> = growth
        .skipped
        .iter()
        .map(|s| {
            format!(
                "at {} would cover {}",
                size_text(s.size, unit),
                layout::gpt::lba_ranges_text(&s.foreign_lbas)
            )
        })
        .collect();
    let foreign: Vec<_> = growth
        .skipped
        .iter()
        .flat_map(|s| s.foreign_lbas.iter().copied())
        .collect();
    let stage2 = crate::check::limine::read_mbr(disk).is_some_and(|m| m.stage2_in_lbas(&foreign));
    let one = growth.skipped.len() == 1 && layout::gpt::is_one_lba(&growth.skipped[0].foreign_lbas);
    let hold = if one { "holds" } else { "hold" };
    let whose = if stage2 {
        " (Limine's BIOS stage 2, as its MBR says)"
    } else {
        ""
    };
    let what = format!("which {hold} data the GPT does not own{whose}");
    Some(format!(
        "grown to {}, not {}: a backup GPT {}, {what}",
        size_text(growth.to, unit),
        not.join(" or "),
        covers.join(", and ")
    ))
}

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
    let disk: Input = ZeroScanned::scan(preflight(req)?, jobs).map_err(read_err)?;
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

    let seed = identity_seed(&disk, &extents, &req.name).map_err(read_err)?;
    let opts = WriteOptions {
        mtime: req.mtime,
        seed,
    };
    let input_findings = layout::gpt::verify(&disk);

    // The grown disks are planned up front; refusing one fails that shape
    // only. Azure's is the input itself when it is a whole MiB already.
    // Each is grown to the first whole GiB (GCP) or MiB (Azure) whose
    // backup GPT overwrites nothing the GPT does not own (gpt::plan_growth);
    // a size passed over is said in a note and the manifest.
    let mut failures: Vec<(Shape, Error)> = Vec::new();
    let mut plan_grown =
        |shape: Shape, unit: u64| -> Option<(PatchedDisk<&Input>, Option<Growth>)> {
            if !req.shapes.contains(&shape) {
                return None;
            }
            if shape == Shape::AzureVhd && disk.size() % unit == 0 {
                return Some((PatchedDisk::new(&disk, disk.size()), None));
            }
            let grown = layout::gpt::grow_to_multiple(&disk, unit).and_then(|g| {
                check_grown(&g.disk)?;
                Ok(g)
            });
            match grown {
                Ok(g) => {
                    if let Some(note) = growth_note(&g.growth, unit, &disk) {
                        on_event(Event::Note(shape, note));
                    }
                    let growth = (!g.growth.skipped.is_empty()).then_some(g.growth);
                    Some((g.disk, growth))
                }
                Err(e) => {
                    let e = Error::new(
                        e.kind(),
                        format!(
                            "refusing the {} shape: {}",
                            shape.provider_name(),
                            e.message()
                        ),
                    )
                    .with_path(input);
                    on_event(Event::Failed(shape, e.to_string()));
                    failures.push((shape, e));
                    None
                }
            }
        };
    let (grown, gcp_growth) = plan_grown(Shape::GcpTarGz, GIB).unzip();
    let (azure, azure_growth) = plan_grown(Shape::AzureVhd, AZURE_SIZE_UNIT).unzip();
    let (gcp_growth, azure_growth) = (gcp_growth.flatten(), azure_growth.flatten());
    // Whether the Azure disk is byte for byte the input.
    let azure_is_input = azure
        .as_ref()
        .is_some_and(|a| a.patches().is_empty() && a.size() == disk.size());
    let shapes: Vec<Shape> = req
        .shapes
        .iter()
        .copied()
        .filter(|s| match s {
            Shape::GcpTarGz => grown.is_some(),
            Shape::AzureVhd => azure.is_some(),
            _ => true,
        })
        .collect();
    let vhd_footer = crate::formats::vhd::writer::fixed_footer(disk.size(), &opts).to_bytes();
    let azure_footer = azure
        .as_ref()
        .map(|a| crate::formats::vhd::writer::fixed_footer(a.size(), &opts).to_bytes());
    // The grown disks are cloudimg's work: their GPT must be sound. The
    // others carry the input as it is.
    let own_disk =
        |shape: Shape| shape == Shape::GcpTarGz || (shape == Shape::AzureVhd && !azure_is_input);
    // The disk each shape holds.
    let shape_disk = |shape: Shape| -> &dyn VirtualDisk {
        match shape {
            Shape::GcpTarGz => grown
                .as_ref()
                .expect("the GCP shape is only made with its disk"),
            Shape::AzureVhd => azure
                .as_ref()
                .expect("the Azure shape is only made with its disk"),
            _ => &disk,
        }
    };

    trace::phase(|| "input scanned, shapes planned".into());
    let (tx, rx) = mpsc::channel::<Event>();
    type Results = Vec<(Shape, Result<Artifact>)>;
    let (results, source_sha) = std::thread::scope(|scope| -> Result<(Results, Sha256Hex)> {
        // Phase 1: hash the source (and the VHD file, which is the source
        // and its footer) and the grown disks, while writing every shape.
        // The input and the GCP disk are hashed on one thread, in step.
        let hashes = spawn_named(
            scope,
            "sha256",
            || -> std::io::Result<(Lane, Option<Sha256Hex>)> {
                match grown.as_ref() {
                    Some(g) => {
                        let differs: Vec<_> = g
                            .patches()
                            .iter()
                            .map(|(at, b)| *at..at + b.len() as u64)
                            .collect();
                        let (s, g) = sha256x2::hash_two(&disk, g, Some(&differs))?;
                        trace::phase(|| "input and grown disk hashed".into());
                        Ok((s, Some(Sha256Hex(g.finish()))))
                    }
                    None => {
                        let s = sha256x2::hash_one(&disk)?;
                        trace::phase(|| "input hashed".into());
                        Ok((s, None))
                    }
                }
            },
        );
        let azure_hash = azure
            .as_ref()
            .filter(|_| !azure_is_input)
            .map(|a| spawn_named(scope, "sha256-azure", move || sha256x2::hash_one(a)));
        // Each shape is written, then read back and decoded, comparing
        // its content with its disk, on its own thread: a shape finished
        // early is verified while the others are still being written.
        let workers: Vec<_> = shapes
            .iter()
            .map(|&shape| {
                let tx = tx.clone();
                let (opts, shape_disk, own_disk) = (&opts, &shape_disk, &own_disk);
                let target = req.out_dir.join(shape.file_name(&req.name));
                let counter = req.progress.as_deref().map(|p| &p.read[shape.index()]);
                spawn_named(scope, shape.thread_name(), move || {
                    // The hashes above are the one pass that cannot be
                    // split: let them go first (see io::priority).
                    crate::io::priority::lower_this_thread();
                    let _ = tx.send(Event::Writing(shape));
                    let disk = shape_disk(shape);
                    let r = write_shape(shape, disk, &target, opts, req, counter).and_then(|out| {
                        trace::phase(|| format!("{} written", shape.thread_name()));
                        let _ = tx.send(Event::Verifying(shape));
                        let r = decode_written(shape, out, disk, own_disk(shape));
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
                })
            })
            .collect();
        drop(tx);
        // Deliver events while the workers run.
        for ev in rx.iter() {
            on_event(ev);
        }
        let decoded: Vec<(Shape, Result<Decoded>)> = workers
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
            None => azure_is_input.then(|| source_lane.clone()),
        };
        let with_footer = |lane: &Lane, footer: &[u8]| {
            let mut l = lane.clone();
            l.update(footer);
            Sha256Hex(l.finish())
        };
        let vhd_sha = with_footer(&source_lane, &vhd_footer);
        let azure_shas = azure_lane.map(|l| {
            let footer = azure_footer.expect("the Azure footer is made with its disk");
            (Sha256Hex(l.clone().finish()), with_footer(&l, &footer))
        });
        let source_sha = Sha256Hex(source_lane.finish());

        // Now that the digests are known: check every report and give each
        // artifact its final name.
        let results = decoded
            .into_iter()
            .map(|(shape, d)| {
                let expected_sha = match shape {
                    Shape::GcpTarGz => grown_sha.expect("the grown disk is hashed"),
                    Shape::AzureVhd => azure_shas.expect("the Azure disk is hashed").0,
                    _ => source_sha,
                };
                let file_sha = match shape {
                    Shape::AwsRaw => Some(source_sha),
                    Shape::AwsVhd => Some(vhd_sha),
                    Shape::AzureVhd => azure_shas.map(|s| s.1),
                    _ => None,
                };
                let growth = match shape {
                    Shape::GcpTarGz => gcp_growth.clone(),
                    Shape::AzureVhd => azure_growth.clone(),
                    _ => None,
                };
                let r = d.and_then(|d| {
                    commit_verified(
                        shape,
                        d,
                        shape_disk(shape),
                        expected_sha,
                        file_sha,
                        own_disk(shape),
                        growth,
                    )
                });
                match &r {
                    Ok(a) => on_event(Event::Done(a.clone())),
                    Err(e) => on_event(Event::Failed(shape, e.to_string())),
                }
                (shape, r)
            })
            .collect();
        Ok((results, source_sha))
    })?;

    let mut artifacts = Vec::new();
    for (shape, r) in results {
        match r {
            Ok(a) => artifacts.push(a),
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(e),
            Err(e) => failures.push((shape, e)),
        }
    }
    let manifest = Manifest {
        generator: format!("cloudimg {}", env!("CARGO_PKG_VERSION")),
        source: Source {
            file: input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: disk.size(),
            sha256: source_sha,
        },
        artifacts,
    };
    // A run that made nothing writes no manifest: one listing nothing
    // would replace a previous run's, whose artifacts are still there.
    let mut manifest = manifest;
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let manifest_path = if manifest.artifacts.is_empty() && !failures.is_empty() {
        None
    } else {
        let p = req.out_dir.join("manifest.json");
        (kept, dropped) = merge_previous(&p, &mut manifest);
        write_manifest(&manifest, &p)?;
        Some(p)
    };
    trace::phase(|| "manifest written".into());
    Ok(Outcome {
        manifest,
        manifest_path,
        failures,
        input_findings,
        kept,
        dropped,
    })
}

/// Make `m` (this run's manifest) describe the directory: add the entries
/// of the manifest already at `path` that were made from the same source
/// (same SHA-256), that this run did not replace (same file name), and
/// whose file is still there with the recorded size and SHA-256 (hashed
/// again: a file changed since is not listed; decoding it again is left
/// to `verify`). Entries of another source, or whose file is gone or
/// changed, are left out and returned as one-line notes; so is a previous
/// manifest that cannot be read. Returns (kept file names, notes).
fn merge_previous(path: &Path, m: &mut Manifest) -> (Vec<String>, Vec<String>) {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (kept, dropped),
        Err(e) => {
            dropped.push(format!(
                "{}: the previous manifest cannot be read ({}); it is replaced",
                path.display(),
                Error::io("reading", e).message()
            ));
            return (kept, dropped);
        }
    };
    let old: Manifest = match serde_json::from_slice(&text) {
        Ok(old) => old,
        Err(e) => {
            dropped.push(format!(
                "{}: the previous manifest is not one cloudimg reads ({e}); it is replaced",
                path.display()
            ));
            return (kept, dropped);
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let (same, other): (Vec<Artifact>, Vec<Artifact>) = old
        .artifacts
        .into_iter()
        .filter(|a| !m.artifacts.iter().any(|n| n.file == a.file))
        .partition(|_| old.source.sha256 == m.source.sha256);
    if !other.is_empty() {
        let files: Vec<&str> = other.iter().map(|a| a.file.as_str()).collect();
        dropped.push(format!(
            "{}: no longer lists {} artifact(s) made from another image ({}, SHA-256 {}): {}",
            path.display(),
            files.len(),
            old.source.file,
            old.source.sha256,
            files.join(", ")
        ));
    }
    for a in same {
        match previous_file_problem(dir, &a) {
            Some(why) => dropped.push(format!(
                "{}: no longer lists {}: {why}",
                path.display(),
                a.file
            )),
            None => {
                kept.push(a.file.clone());
                m.artifacts.push(a);
            }
        }
    }
    m.artifacts
        .sort_by_key(|a| (a.shape.index(), a.file.clone()));
    (kept, dropped)
}

/// Why the artifact `a` of a previous manifest is no longer in `dir` as
/// recorded: not a plain file name, gone, not a regular file, another size
/// or another SHA-256.
fn previous_file_problem(dir: &Path, a: &Artifact) -> Option<String> {
    if a.file.is_empty() || a.file.contains('/') || a.file == "manifest.json" {
        return Some("not a file name in the directory".into());
    }
    let p = dir.join(&a.file);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(_) => return Some("the file is gone".into()),
    };
    if !meta.is_file() {
        return Some("not a regular file".into());
    }
    if meta.len() != a.size {
        return Some(format!(
            "the file is {} bytes, the manifest said {}",
            meta.len(),
            a.size
        ));
    }
    match sha256_file(&p) {
        Ok(sha) if sha == a.sha256 => None,
        Ok(sha) => Some(format!(
            "the file's SHA-256 is {sha}, the manifest said {}",
            a.sha256
        )),
        Err(e) => Some(format!(
            "the file cannot be hashed ({})",
            Error::io("reading", e).message()
        )),
    }
}

fn write_manifest(m: &Manifest, path: &Path) -> Result<()> {
    let out = OutputFile::create(path)
        .ctx("creating")
        .map_err(|e| e.with_path(path))?;
    let mut w = BufWriter::new(out.file());
    serde_json::to_writer_pretty(&mut w, m).map_err(|e| Error::io("writing", e.into()))?;
    w.write_all(b"\n")
        .ctx("writing")
        .map_err(|e| e.with_path(path))?;
    w.flush().ctx("writing").map_err(|e| e.with_path(path))?;
    drop(w);
    out.commit()
        .ctx("renaming")
        .map_err(|e| e.with_path(path))?;
    Ok(())
}

/// A seed for identifiers (VHD UUID, VMDK CID) derived from the input
/// without reading all of it (the identifiers are written before its
/// SHA-256 is known): its size, its extent map, its first and last MiB
/// (partition tables, boot code, disk GUID) and the name prefix. The same
/// input always gives the same seed.
fn identity_seed(
    disk: &Input,
    extents: &[crate::disk::Extent],
    name: &str,
) -> std::io::Result<[u8; 32]> {
    const EDGE: u64 = 1 << 20;
    let mut h = Sha256::new();
    h.update(b"cloudimg seed v2\0");
    h.update(disk.size().to_le_bytes());
    for e in extents {
        h.update(e.offset.to_le_bytes());
        h.update(e.len.to_le_bytes());
        h.update([u8::from(e.kind == ExtentKind::Data)]);
    }
    let size = disk.size();
    let mut buf = vec![0u8; size.min(EDGE) as usize];
    for at in [0, size - size.min(EDGE)] {
        disk.read_at(&mut buf, at)?;
        h.update(&buf);
    }
    h.update(name.as_bytes());
    Ok(h.finalize().into())
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

/// The input as the writers see it: its disk, zero blocks as holes.
type Input = ZeroScanned<Box<dyn VirtualDisk>>;

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
    expected_disk: &dyn VirtualDisk,
    expected_sha: Sha256Hex,
    file_sha: Option<Sha256Hex>,
    own_disk: bool,
    growth: Option<Growth>,
) -> Result<Artifact> {
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
        size,
        sha256,
        virtual_size: expected_disk.size(),
        virtual_sha256: expected_sha,
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
        log::warn!("test hook: flipped byte {at} of {}", target.display());
    }
}

fn shape_file_name(target: &Path) -> String {
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
