//! `inspect`: what a file is, cheaply — format, sizes, header facts and
//! the partition table of the disk it holds — without decoding it in full
//! (that is `verify`'s job).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::disk::VirtualDisk;
use crate::error::Result;
use crate::formats::{self, Format};
use crate::io::RawFile;
use crate::layout::{self, PartitionTable};

/// What `inspect` found.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The file inspected.
    pub path: PathBuf,
    /// Its format, from its content.
    pub format: Format,
    /// Size of the file.
    pub file_size: u64,
    /// Bytes the file really occupies on disk (holes excluded).
    pub allocated_size: u64,
    /// Size of the virtual disk it holds.
    pub virtual_size: Option<u64>,
    /// Header facts, format-specific.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// The disk's partition table, when it could be read.
    pub partition_table: Option<PartitionTable>,
    /// Why the partition table could not be read, if so.
    pub partition_table_error: Option<String>,
}

/// Inspect the file at `path`.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let (file, meta, format) = formats::open_detect(path)?;
    let mut ins = Inspection {
        path: path.to_path_buf(),
        format,
        file_size: meta.len(),
        allocated_size: meta.blocks() * 512,
        virtual_size: None,
        details: serde_json::Map::new(),
        partition_table: None,
        partition_table_error: None,
    };
    let disk: Option<Box<dyn VirtualDisk>> = match format {
        Format::Raw => Some(Box::new(RawFile::window(file, path, 0, meta.len()))),
        Format::VhdFixed | Format::VhdDynamic => {
            let f = formats::vhd::reader::read_footer(&file).map_err(|e| e.with_path(path))?;
            let ft = &f.footer;
            let d = &mut ins.details;
            d.insert(
                "creator".into(),
                formats::vhd::wire::VhdFooter::fourcc(&ft.creator_app).into(),
            );
            d.insert("disk_type".into(), ft.disk_type.into());
            d.insert("current_size".into(), ft.current_size.into());
            d.insert("original_size".into(), ft.original_size.into());
            d.insert(
                "chs".into(),
                format!("{}/{}/{}", ft.cylinders, ft.heads, ft.sectors_per_track).into(),
            );
            d.insert("timestamp".into(), ft.timestamp.into());
            Some(formats::vhd::open(file).map_err(|e| e.with_path(path))?)
        }
        Format::Vmdk => {
            let r = formats::vmdk::open(file).map_err(|e| e.with_path(path))?;
            let h = r.header();
            let d = &mut ins.details;
            d.insert("version".into(), h.version.into());
            d.insert("flags".into(), format!("{:#x}", h.flags).into());
            d.insert("capacity_sectors".into(), h.capacity.into());
            d.insert("grain_size_sectors".into(), h.grain_size.into());
            d.insert("compress_algorithm".into(), h.compress_algorithm.into());
            d.insert("gd_offset".into(), h.gd_offset.into());
            let allocated = r.allocated_grains();
            d.insert("grains_allocated".into(), allocated.into());
            d.insert("grains_total".into(), r.grain_count().into());
            Some(Box::new(r))
        }
        Format::Gzip => {
            let (facts, head, size) = formats::gcp::peek(&file).map_err(|e| e.with_path(path))?;
            ins.details = facts;
            ins.details.insert(
                "note".into(),
                "only the start of disk.raw is decoded: the backup GPT is not read (verify decodes all)".into(),
            );
            ins.virtual_size = size;
            // Only the start of the disk is decoded: enough for the primary
            // GPT, not for the backup at the end.
            size.map(|s| Box::new(HeadDisk { head, size: s }) as Box<dyn VirtualDisk>)
        }
        Format::Qcow2 | Format::Vhdx | Format::Ova => Some(
            formats::open::open_file_disk(file, meta.len(), format, path)
                .map_err(|e| e.with_path(path))?,
        ),
        Format::Tar | Format::VmdkDescriptor => None,
    };
    if let Some(disk) = disk {
        ins.virtual_size = Some(disk.size());
        match layout::read_table(&*disk) {
            Ok(t) => ins.partition_table = Some(t),
            Err(e) => ins.partition_table_error = Some(e.message().to_string()),
        }
    }
    Ok(ins)
}

/// The first bytes of a disk, known; the rest reads as zeros. Used only to
/// show the primary GPT of a compressed disk (the backup, at the end, is
/// not decoded by `inspect`).
struct HeadDisk {
    head: Vec<u8>,
    size: u64,
}

impl VirtualDisk for HeadDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        buf.fill(0);
        let head = self.head.len() as u64;
        if offset < head {
            let n = (head - offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.head[offset as usize..offset as usize + n]);
        }
        Ok(())
    }
    fn extents(&self) -> std::io::Result<Vec<crate::disk::Extent>> {
        Ok(vec![crate::disk::Extent {
            offset: 0,
            len: self.size,
            kind: crate::disk::ExtentKind::Data,
        }])
    }
}
