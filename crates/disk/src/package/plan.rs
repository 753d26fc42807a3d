//! Planning `package`: the shapes (names, formats, providers), the checks
//! made before any work ([`preflight`]), the identity seed, and the grown
//! disks (GCP whole GiB, Azure whole MiB) with the note a size passed over
//! gets.

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Event, Input, PackageRequest, Provider};
use crate::disk::{ExtentKind, PatchedDisk, VirtualDisk, GIB, MIB, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::formats::{self, Format};
use crate::io::OutputFile;
use crate::layout;
use crate::layout::gpt::Growth;
use crate::vocab::{AZURE_SIZE_UNIT, GCP_SIZE_UNIT};

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

    pub(super) fn index(self) -> usize {
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
    pub(super) fn is_plain_copy(self) -> bool {
        matches!(self, Shape::AwsRaw | Shape::AwsVhd | Shape::AzureVhd)
    }

    /// The name of the thread that writes and verifies the shape.
    pub(super) fn thread_name(self) -> &'static str {
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

/// Longest artifact file name: its temporary name (`.NAME.PID.N.partial`)
/// must stay within the 255 bytes most filesystems allow.
const MAX_FILE_NAME: usize = 200;

/// One `package` at a time per output directory: an exclusive `flock` on
/// the directory itself (no lock file is left behind), held as long as the
/// returned handle lives. A second run into the same directory is refused
/// at once, before it writes anything; two runs could otherwise both exit
/// 0 with artifacts of one under the other's manifest.
pub(super) fn lock_out_dir(out: &std::path::Path) -> Result<fs::File> {
    use rustix::fs::{flock, FlockOperation};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(out)
        .ctx("opening the output directory")
        .map_err(|e| e.with_path(out))?;
    match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(dir),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::invalid_input(
            "another cloudimg package is writing to this directory; wait for it to finish or choose another output directory",
        )
        .with_path(out)),
        Err(e) => Err(Error::io("locking the output directory", e.into()).with_path(out)),
    }
}

/// Checks made before any work: the input is a readable, non-empty
/// regular file holding a disk (in any format cloudimg reads) whose size
/// is a multiple of 512, and the output directory is a writable directory
/// that does not hold the input under an output name.
pub(super) fn preflight(req: &PackageRequest) -> Result<Box<dyn VirtualDisk>> {
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
    let disk = formats::open::open_file_disk(file, meta.len(), format, input)
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

/// A seed for identifiers (VHD UUID, VMDK CID) derived from the input
/// without reading all of it (the identifiers are written before its
/// SHA-256 is known): its size, its extent map, its first and last MiB
/// (partition tables, boot code, disk GUID) and the name prefix. The same
/// input always gives the same seed.
pub(super) fn identity_seed(
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

/// The disks the shapes hold, planned before any writing: the grown ones
/// (GCP, Azure) and the shapes that will be made (those whose disk could
/// be planned).
pub(super) struct Plan<'d> {
    /// The input.
    pub input: &'d Input,
    /// The GCP disk: the input grown to a whole GiB.
    pub gcp: Option<PatchedDisk<&'d Input>>,
    /// Its growth, when a size was passed over.
    pub gcp_growth: Option<Growth>,
    /// The Azure disk: the input grown to a whole MiB (or the input, a
    /// whole MiB already).
    pub azure: Option<PatchedDisk<&'d Input>>,
    /// Its growth, when a size was passed over.
    pub azure_growth: Option<Growth>,
    /// Whether the Azure disk is byte for byte the input.
    pub azure_is_input: bool,
    /// The shapes to make, in the order asked.
    pub shapes: Vec<Shape>,
}

impl<'d> Plan<'d> {
    /// Plan the grown disks of `req.shapes`; refusing one fails that shape
    /// only (an [`Event::Failed`] and an entry in `failures`). Each is
    /// grown to the first whole GiB (GCP) or MiB (Azure) whose backup GPT
    /// overwrites nothing the GPT does not own (gpt::plan_growth); a size
    /// passed over is said in an [`Event::Note`] and the manifest.
    pub fn new(
        req: &PackageRequest,
        input: &'d Input,
        on_event: &mut dyn FnMut(Event),
        failures: &mut Vec<(Shape, Error)>,
    ) -> Self {
        let mut grow = |shape: Shape, unit: u64| {
            if !req.shapes.contains(&shape) {
                return None;
            }
            grown_disk(req, input, shape, unit, on_event)
                .map_err(|e| failures.push((shape, e)))
                .ok()
        };
        let (gcp, gcp_growth) = grow(Shape::GcpTarGz, GCP_SIZE_UNIT).unzip();
        let (azure, azure_growth) = grow(Shape::AzureVhd, AZURE_SIZE_UNIT).unzip();
        let azure_is_input = azure
            .as_ref()
            .is_some_and(|a| a.patches().is_empty() && a.size() == input.size());
        let shapes = req
            .shapes
            .iter()
            .copied()
            .filter(|s| match s {
                Shape::GcpTarGz => gcp.is_some(),
                Shape::AzureVhd => azure.is_some(),
                _ => true,
            })
            .collect();
        Plan {
            input,
            gcp,
            gcp_growth: gcp_growth.flatten(),
            azure,
            azure_growth: azure_growth.flatten(),
            azure_is_input,
            shapes,
        }
    }

    /// The disk `shape` holds.
    pub fn disk(&self, shape: Shape) -> &dyn VirtualDisk {
        match shape {
            Shape::GcpTarGz => self
                .gcp
                .as_ref()
                .expect("the GCP shape is only made with its disk"),
            Shape::AzureVhd => self
                .azure
                .as_ref()
                .expect("the Azure shape is only made with its disk"),
            _ => self.input,
        }
    }

    /// Whether `shape`'s disk is cloudimg's work (a grown disk), whose GPT
    /// must be sound; the others carry the input as it is.
    pub fn own_disk(&self, shape: Shape) -> bool {
        shape == Shape::GcpTarGz || (shape == Shape::AzureVhd && !self.azure_is_input)
    }

    /// How `shape`'s disk was grown, when a size was passed over.
    pub fn growth(&self, shape: Shape) -> Option<Growth> {
        match shape {
            Shape::GcpTarGz => self.gcp_growth.clone(),
            Shape::AzureVhd => self.azure_growth.clone(),
            _ => None,
        }
    }
}

/// The disk of `shape` (GCP or Azure) grown to a multiple of `unit`, and
/// its growth when a size was passed over; Azure's is the input itself
/// when it is a whole MiB already. A refusal is sent as an
/// [`Event::Failed`] and returned.
fn grown_disk<'d>(
    req: &PackageRequest,
    input: &'d Input,
    shape: Shape,
    unit: u64,
    on_event: &mut dyn FnMut(Event),
) -> Result<(PatchedDisk<&'d Input>, Option<Growth>)> {
    if shape == Shape::AzureVhd && input.size() % unit == 0 {
        return Ok((PatchedDisk::new(input, input.size()), None));
    }
    let grown = layout::gpt::grow_to_multiple(input, unit).and_then(|g| {
        check_grown(&g.disk)?;
        Ok(g)
    });
    match grown {
        Ok(g) => {
            if let Some(note) = growth_note(&g.growth, unit, input) {
                on_event(Event::Note(shape, note));
            }
            let growth = (!g.growth.skipped.is_empty()).then_some(g.growth);
            Ok((g.disk, growth))
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
            .with_path(&req.input);
            on_event(Event::Failed(shape, e.to_string()));
            Err(e)
        }
    }
}
