//! `inspect`: what a file is, cheaply — format, sizes, header facts and
//! the partition table of the disk it holds — without decoding it in full
//! (that is `verify`'s job).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::formats::table::Inspected;
use crate::formats::{self, Format};
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
    // The format table's inspection: header facts and the disk (or its
    // start); without one, the disk the format opens to.
    let len = meta.len();
    let inspected = match format.spec().inspect {
        Some(inspect) => inspect(file, len, path),
        None => (format.spec().open)(file, len, path).map(|d| Inspected {
            disk: Some(d),
            ..Inspected::default()
        }),
    }
    .map_err(|e| e.with_path(path))?;
    ins.details = inspected.details;
    ins.virtual_size = inspected.virtual_size;
    let disk = inspected.disk;
    if let Some(disk) = disk {
        ins.virtual_size = Some(disk.size());
        match layout::read_table(&*disk) {
            Ok(t) => ins.partition_table = Some(t),
            Err(e) => ins.partition_table_error = Some(e.message().to_string()),
        }
    }
    Ok(ins)
}
