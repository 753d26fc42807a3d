//! Reading a QCOW2 image (version 2 or 3) as a [`VirtualDisk`]: the
//! active L1 table is loaded on open (its size bounded first), L2 tables
//! are read on demand (the last one is cached), compressed clusters are
//! inflated one at a time.
//!
//! Refused on open: backing files, encryption, external data files,
//! extended L2 entries, compression other than zlib, unknown incompatible
//! features, images marked corrupt, and what block/qcow2.c qcow2_do_open
//! refuses (refcount order above 6, no refcount table, refcount, snapshot
//! or L1 tables too large or at an unaligned offset, the compression type
//! bit with zlib, the raw-external-data bit without a data file). Refused
//! on read, as qemu's read path does: zero-flagged L2 entries in a
//! version 2 image, L2 entries pointing at unaligned offsets. The dirty bit (lazy refcounts not
//! written back) is accepted: guest data is reached through L1/L2 only and
//! is unaffected; [`verify()`](super::verify()) reports it.

use std::fs::File;
use std::io;
use std::sync::Mutex;

use flate2::{Decompress, FlushDecompress, Status};

use crate::disk::{eof_error, Extent, ExtentKind, VirtualDisk};
use crate::error::{Error, IoContext, Result};
use crate::formats::read_up_to;

use super::wire::*;

/// What one virtual cluster maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Unallocated or "reads as zero".
    Zero,
    /// A whole host cluster at this offset.
    Data(u64),
    /// Deflated bytes at this host offset and length (to the end of the
    /// last 512-byte sector).
    Compressed(u64, u64),
}

/// An open QCOW2 image.
#[derive(Debug)]
pub struct Qcow2Disk {
    file: File,
    file_len: u64,
    /// The header.
    pub header: QcowHeader,
    l1: Vec<u64>,
    /// The last L2 table read: its offset and entries.
    cache: Mutex<Option<(u64, Vec<u64>)>>,
}

/// Which otherwise refused header flags to accept (the verifier reads
/// images marked corrupt to report on them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allow {
    pub corrupt: bool,
}

/// Read and parse the header at the start of `file`, checking the magic.
pub fn read_header(file: &File) -> Result<(QcowHeader, u64)> {
    let len = file.metadata().ctx("reading metadata")?.len();
    let mut b = [0u8; 512];
    let n = read_up_to(file, &mut b, 0)?;
    if n < 4 || b[..4] != MAGIC {
        return Err(Error::invalid_format(
            "not a QCOW2 image: no \"QFI\\xfb\" magic at the start",
        ));
    }
    if n < V2_HEADER_SIZE {
        return Err(Error::invalid_format(format!(
            "file of {len} bytes is too short for a QCOW2 header"
        )));
    }
    let h = QcowHeader::parse(&b[..n]).expect("at least 72 bytes");
    if h.version == 3 && (n as u64) < V3_MIN_HEADER_SIZE as u64 {
        return Err(Error::invalid_format(format!(
            "file of {len} bytes is too short for a QCOW2 version 3 header"
        )));
    }
    Ok((h, len))
}

/// The header checks `open` makes, in order; the first failure is returned.
pub(crate) fn check_header(file: &File, h: &QcowHeader, len: u64, allow: Allow) -> Result<()> {
    check_geometry(h)?;
    check_features(file, h, allow)?;
    check_tables(h)?;
    check_l1(h, len)?;
    check_extensions(file, h)?;
    check_snapshots(file, h)?;
    // What check_l1 leaves to qemu's check: an empty L1 table's offset.
    validate_table(
        h,
        "L1 table",
        h.l1_table_offset,
        h.l1_size as u64,
        8,
        MAX_L1_BYTES,
        (off::L1_SIZE, off::L1_TABLE_OFFSET),
    )
}

/// Version, cluster size and header length.
fn check_geometry(h: &QcowHeader) -> Result<()> {
    if h.version != 2 && h.version != 3 {
        return Err(Error::unsupported(format!(
            "QCOW2 version {} is not supported (only 2 and 3)",
            h.version
        ))
        .at(off::VERSION));
    }
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&h.cluster_bits) {
        return Err(Error::corrupt(format!(
            "cluster_bits {} is outside {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS}",
            h.cluster_bits
        ))
        .at(off::CLUSTER_BITS));
    }
    // qemu counts the disk in whole sectors (block/qcow2.c qcow2_do_open:
    // total_sectors = size / 512) and would drop the tail: refused.
    if h.size % 512 != 0 {
        return Err(Error::corrupt(format!(
            "virtual size {} is not a multiple of 512 bytes (qemu reads only its whole sectors)",
            h.size
        ))
        .at(off::SIZE));
    }
    let cs = h.cluster_size();
    if h.version == 3 && (h.header_length < V3_MIN_HEADER_SIZE || h.header_length as u64 > cs) {
        return Err(Error::corrupt(format!(
            "header length {} is outside {V3_MIN_HEADER_SIZE}..={cs}",
            h.header_length
        ))
        .at(off::HEADER_LENGTH));
    }
    Ok(())
}

/// What cloudimg does not read: a backing file, encryption, an image
/// marked corrupt (unless `allow`ed), external data, extended L2 entries,
/// unknown incompatible features, compression other than zlib.
fn check_features(file: &File, h: &QcowHeader, allow: Allow) -> Result<()> {
    if h.backing_file_offset != 0 {
        let mut name = vec![0u8; h.backing_file_size.min(MAX_BACKING_NAME) as usize];
        let n = read_up_to(file, &mut name, h.backing_file_offset)?;
        return Err(Error::unsupported(format!(
            "QCOW2 images with a backing file are not supported (backing file {:?})",
            String::from_utf8_lossy(&name[..n])
        ))
        .at(off::BACKING_FILE_OFFSET));
    }
    if h.crypt_method != 0 {
        return Err(Error::unsupported(format!(
            "encrypted QCOW2 images are not supported (crypt_method {})",
            h.crypt_method
        ))
        .at(off::CRYPT_METHOD));
    }
    let f = h.incompatible_features;
    if f & INCOMPAT_CORRUPT != 0 && !allow.corrupt {
        return Err(Error::unsupported(
            "QCOW2 image is marked corrupt (incompatible feature bit 1); run qemu-img check -r all",
        )
        .at(off::INCOMPATIBLE));
    }
    if f & INCOMPAT_DATA_FILE != 0 {
        return Err(Error::unsupported(
            "QCOW2 images with an external data file are not supported",
        )
        .at(off::INCOMPATIBLE));
    }
    if f & INCOMPAT_EXTL2 != 0 {
        return Err(Error::unsupported(
            "QCOW2 images with extended L2 entries (subclusters) are not supported",
        )
        .at(off::INCOMPATIBLE));
    }
    if f & !INCOMPAT_KNOWN != 0 {
        return Err(Error::unsupported(format!(
            "QCOW2 image uses unknown incompatible features {:#x}",
            f & !INCOMPAT_KNOWN
        ))
        .at(off::INCOMPATIBLE));
    }
    if h.compression_type != COMPRESSION_ZLIB {
        let name = if h.compression_type == COMPRESSION_ZSTD {
            "zstd".to_string()
        } else {
            format!("type {}", h.compression_type)
        };
        return Err(Error::unsupported(format!(
            "QCOW2 compression {name} is not supported (only zlib)"
        ))
        .at(off::COMPRESSION_TYPE));
    }
    // block/qcow2.c validate_compression_type: with zlib (also when the
    // header is too short to hold the field) the bit must be clear.
    if f & INCOMPAT_COMPRESSION != 0 {
        return Err(Error::corrupt(
            "compression type feature bit is set but the compression type is zlib \
             (qemu: \"Compression type incompatible feature bit must not be set\")",
        )
        .at(off::INCOMPATIBLE));
    }
    // block/qcow2.c qcow2_do_open: the raw-external-data autoclear bit
    // without an external data file ("data-file-raw requires a data file").
    if h.autoclear_features & AUTOCLEAR_DATA_FILE_RAW != 0 {
        return Err(Error::corrupt(
            "autoclear feature bit 1 (raw external data) is set but the image has no external data file",
        )
        .at(off::AUTOCLEAR));
    }
    Ok(())
}

/// The refcount and snapshot tables as block/qcow2.c qcow2_do_open checks
/// them before reading anything: refcount order at most 6 ("Reference
/// count entry width too large"), a refcount table of at least one
/// cluster ("Image does not contain a reference count table"), and both
/// tables through `qcow2_validate_table` (size limit, then an offset that
/// is cluster-aligned and whose end fits in a signed 64-bit offset). The
/// L1 table, which qcow2_do_open checks next, is checked by `check_l1`.
fn check_tables(h: &QcowHeader) -> Result<()> {
    if h.refcount_order > MAX_REFCOUNT_ORDER {
        return Err(Error::corrupt(format!(
            "refcount order {} is above {MAX_REFCOUNT_ORDER} (refcounts wider than 64 bits)",
            h.refcount_order
        ))
        .at(off::REFCOUNT_ORDER));
    }
    if h.refcount_table_clusters == 0 {
        return Err(
            Error::corrupt("the image has no refcount table (0 clusters)")
                .at(off::REFCOUNT_TABLE_CLUSTERS),
        );
    }
    let cs = h.cluster_size();
    validate_table(
        h,
        "refcount table",
        h.refcount_table_offset,
        h.refcount_table_clusters as u64,
        cs,
        MAX_REFTABLE_BYTES,
        (off::REFCOUNT_TABLE_CLUSTERS, off::REFCOUNT_TABLE_OFFSET),
    )?;
    validate_table(
        h,
        "snapshot table",
        h.snapshots_offset,
        h.nb_snapshots as u64,
        SNAPSHOT_HEADER_SIZE,
        SNAPSHOT_HEADER_SIZE * MAX_SNAPSHOTS,
        (off::NB_SNAPSHOTS, off::SNAPSHOTS_OFFSET),
    )
}

/// The header extensions as block/qcow2.c qcow2_read_extensions walks
/// them, from the end of the header to the end of the first cluster
/// (bytes past the end of the file read as zeros, as qemu reads them):
/// refused are an extension running past that end ("Header extension too
/// large"), a backing format name of 16 bytes or more, an encryption
/// header in an image without LUKS encryption, and a bitmaps extension of
/// the wrong length or, when the autoclear bit says the bitmaps are valid,
/// with a reserved field set, no or more than 65535 bitmaps, an unaligned
/// directory or a directory above 64 MiB.
fn check_extensions(file: &File, h: &QcowHeader) -> Result<()> {
    let end = h.cluster_size() as usize;
    // 8 bytes more: an extension header starting just before the end is
    // read (from the file, as qemu reads it) before being refused.
    let mut buf = vec![0u8; end + 8];
    read_up_to(file, &mut buf, 0)?;
    let mut at = h.header_length as usize;
    while at < end {
        let magic = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let n = u32::from_be_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let ext_at = at as u64;
        at += 8;
        if at > end || n > end - at {
            return Err(Error::corrupt(format!(
                "header extension {magic:#x} of {n} bytes runs past the end of the first cluster ({end} bytes)"
            ))
            .at(ext_at));
        }
        let data = &buf[at..at + n];
        let bad = |what: String| {
            Err(Error::corrupt(format!("header extension {magic:#x}: {what}")).at(ext_at))
        };
        match magic {
            EXT_END => return Ok(()),
            EXT_BACKING_FORMAT if n >= MAX_BACKING_FORMAT => {
                return bad(format!("backing format name of {n} bytes is too long"))
            }
            EXT_CRYPTO => {
                return bad("encryption header in an image that is not LUKS-encrypted".into())
            }
            EXT_BITMAPS if n != BITMAPS_EXT_SIZE => {
                return bad(format!(
                    "bitmaps extension of {n} bytes, not {BITMAPS_EXT_SIZE}"
                ))
            }
            EXT_BITMAPS if h.autoclear_features & AUTOCLEAR_BITMAPS != 0 => {
                let nb = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes"));
                let reserved = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes"));
                let dir_size = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
                let dir_at = u64::from_be_bytes(data[16..24].try_into().expect("8 bytes"));
                if reserved != 0 {
                    return bad("bitmaps extension reserved field is not zero".into());
                }
                if nb == 0 || nb > MAX_BITMAPS {
                    return bad(format!("{nb} bitmaps, not 1 to {MAX_BITMAPS}"));
                }
                if dir_at % h.cluster_size() != 0 {
                    return bad(format!(
                        "bitmap directory offset {dir_at:#x} is not cluster-aligned"
                    ));
                }
                if dir_size > MAX_BITMAP_DIRECTORY_BYTES {
                    return bad(format!(
                        "bitmap directory of {dir_size} bytes is larger than the {MAX_BITMAP_DIRECTORY_BYTES} qemu allows"
                    ));
                }
            }
            _ => {}
        }
        at += n.div_ceil(8) * 8;
    }
    Ok(())
}

/// The snapshot table as block/qcow2-snapshot.c qcow2_do_read_snapshots
/// reads it on open (entries 8-byte aligned; bytes past the end of the
/// file read as zeros): refused are an entry with more than 1024 bytes of
/// extra data ("Too much extra metadata in snapshot table entry") and a
/// table larger than 64 MiB ("Snapshot table is too big"). Reads at most
/// that much, one small header at a time.
fn check_snapshots(file: &File, h: &QcowHeader) -> Result<()> {
    let start = h.snapshots_offset;
    let mut at = start;
    for i in 0..h.nb_snapshots {
        at = at.next_multiple_of(8);
        let mut b = [0u8; SNAPSHOT_HEADER_SIZE as usize];
        read_up_to(file, &mut b, at)?;
        let id_len = u16::from_be_bytes([b[12], b[13]]) as u64;
        let name_len = u16::from_be_bytes([b[14], b[15]]) as u64;
        let extra = u32::from_be_bytes(b[36..40].try_into().expect("4 bytes")) as u64;
        if extra > MAX_SNAPSHOT_EXTRA_DATA {
            return Err(Error::corrupt(format!(
                "snapshot table entry {i} has {extra} bytes of extra data, more than the {MAX_SNAPSHOT_EXTRA_DATA} qemu accepts"
            ))
            .at(at + 36));
        }
        at += SNAPSHOT_HEADER_SIZE + extra + id_len + name_len;
        if at - start > MAX_SNAPSHOTS_TABLE_BYTES {
            return Err(Error::corrupt(format!(
                "snapshot table of {} entries is larger than the {MAX_SNAPSHOTS_TABLE_BYTES} bytes qemu allows",
                h.nb_snapshots
            ))
            .at(off::SNAPSHOTS_OFFSET));
        }
    }
    Ok(())
}

/// block/qcow2.c qcow2_validate_table: `entries` of `entry_len` bytes at
/// `offset` are refused when larger than `max_bytes` ("... too large"),
/// or when `offset` is not cluster-aligned or the table's end passes
/// i64::MAX ("... offset invalid"). `at` is where the count and the
/// offset fields are in the header.
fn validate_table(
    h: &QcowHeader,
    name: &str,
    offset: u64,
    entries: u64,
    entry_len: u64,
    max_bytes: u64,
    at: (u64, u64),
) -> Result<()> {
    if entries > max_bytes / entry_len {
        return Err(Error::corrupt(format!(
            "{name} of {entries} entries of {entry_len} bytes is larger than the {max_bytes} bytes qemu allows"
        ))
        .at(at.0));
    }
    let end_ok = (i64::MAX as u64)
        .checked_sub(entries * entry_len)
        .is_some_and(|room| offset <= room);
    if !end_ok || offset % h.cluster_size() != 0 {
        return Err(Error::corrupt(format!(
            "{name} offset {offset:#x} is not a cluster-aligned offset (cluster size {})",
            h.cluster_size()
        ))
        .at(at.1));
    }
    Ok(())
}

/// The L1 table: no larger than qemu allows, mapping the whole virtual
/// size, cluster-aligned inside the `len`-byte file.
fn check_l1(h: &QcowHeader, len: u64) -> Result<()> {
    let cs = h.cluster_size();
    let l1_bytes = h.l1_size as u64 * 8;
    if l1_bytes > MAX_L1_BYTES {
        return Err(Error::corrupt(format!(
            "L1 table of {} entries is larger than the {MAX_L1_BYTES} bytes qemu allows",
            h.l1_size
        ))
        .at(off::L1_SIZE));
    }
    if (h.l1_size as u64) < h.l1_needed() {
        return Err(Error::corrupt(format!(
            "L1 table of {} entries maps {} bytes, less than the virtual size {}",
            h.l1_size,
            h.l1_size as u64 * h.l1_entry_bytes(),
            h.size
        ))
        .at(off::L1_SIZE));
    }
    if h.l1_size > 0 {
        if h.l1_table_offset % cs != 0 {
            return Err(Error::corrupt(format!(
                "L1 table offset {:#x} is not a multiple of the cluster size {cs}",
                h.l1_table_offset
            ))
            .at(off::L1_TABLE_OFFSET));
        }
        if h.l1_table_offset
            .checked_add(l1_bytes)
            .is_none_or(|e| e > len)
        {
            return Err(Error::corrupt(format!(
                "L1 table of {} entries at offset {:#x} runs past the end of the {len}-byte file",
                h.l1_size, h.l1_table_offset
            ))
            .at(off::L1_TABLE_OFFSET));
        }
    }
    Ok(())
}

/// Raw-inflate a compressed cluster into `out`, which must be filled
/// exactly (as qemu's `qcow2_decompress`: the stream may end there or have
/// more to give, but may not end short). Returns whether the stream has
/// more to give past the cluster, or a one-line reason.
pub fn inflate_cluster(
    z: &mut Decompress,
    input: &[u8],
    out: &mut [u8],
) -> std::result::Result<bool, String> {
    z.reset(false);
    let res = z.decompress(input, out, FlushDecompress::Finish);
    let produced = z.total_out() as usize;
    match res {
        Ok(Status::StreamEnd) if produced == out.len() => Ok(false),
        Ok(_) if produced == out.len() => {
            let consumed = z.total_in() as usize;
            let mut more = [0u8; 1];
            let _ = z.decompress(&input[consumed..], &mut more, FlushDecompress::Finish);
            Ok(z.total_out() as usize > produced)
        }
        Ok(Status::StreamEnd) => Err(format!(
            "compressed cluster inflates to {produced} bytes, not the cluster size {}",
            out.len()
        )),
        Ok(_) => Err(format!(
            "compressed cluster data ends after inflating {produced} of {} bytes",
            out.len()
        )),
        Err(e) => Err(format!(
            "compressed cluster is not valid deflate data ({e}) after {produced} bytes"
        )),
    }
}

/// Decode a standard or compressed L2 entry.
pub fn l2_mapping(entry: u64, cluster_bits: u32) -> Mapping {
    if entry & OFLAG_COMPRESSED != 0 {
        let (o, l) = compressed_range(entry, cluster_bits);
        return Mapping::Compressed(o, l);
    }
    let host = entry & OFFSET_MASK;
    if entry & OFLAG_ZERO != 0 || host == 0 {
        Mapping::Zero
    } else {
        Mapping::Data(host)
    }
}

/// Decode an L2 entry as [`l2_mapping`], refusing what qemu's read path
/// refuses (block/qcow2-cluster.c qcow2_get_host_offset, which signals
/// corruption and fails the read with -EIO): a "reads as zero" entry in a
/// version 2 image ("Zero cluster entry found in pre-v3 image"), and a
/// standard entry, zero-flagged or not, whose host offset is not
/// cluster-aligned ("Cluster allocation offset ... unaligned"). `l2` and
/// `idx` locate the entry for the message.
fn checked_mapping(h: &QcowHeader, entry: u64, l2: u64, idx: u64) -> io::Result<Mapping> {
    let m = l2_mapping(entry, h.cluster_bits);
    if matches!(m, Mapping::Compressed(..)) {
        return Ok(m);
    }
    let at = l2 + idx * 8;
    if entry & OFLAG_ZERO != 0 && h.version < 3 {
        return Err(invalid(format!(
            "L2 entry {idx} of the table at {l2:#x} (byte {at}) has the zero flag, which a version 2 image cannot have"
        )));
    }
    let host = entry & OFFSET_MASK;
    if host % h.cluster_size() != 0 {
        return Err(invalid(format!(
            "L2 entry {idx} of the table at {l2:#x} (byte {at}) points at {host:#x}, which is not cluster-aligned"
        )));
    }
    Ok(m)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Qcow2Disk {
    /// Open and check the header, load the L1 table.
    pub fn open(file: File) -> Result<Qcow2Disk> {
        Self::open_allowing(file, Allow::default())
    }

    pub(crate) fn open_allowing(file: File, allow: Allow) -> Result<Qcow2Disk> {
        let (header, file_len) = read_header(&file)?;
        check_header(&file, &header, file_len, allow)?;
        let mut raw = vec![0u8; header.l1_size as usize * 8];
        crate::io::read_exact_at(&file, &mut raw, header.l1_table_offset)
            .ctx("reading the L1 table")?;
        let l1 = raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(Qcow2Disk {
            file,
            file_len,
            header,
            l1,
            cache: Mutex::new(None),
        })
    }

    /// The active L1 table.
    pub fn l1(&self) -> &[u64] {
        &self.l1
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        self.header.cluster_size()
    }

    /// The offset of the L2 table for L1 index `i`, or None when
    /// unallocated; an error when it is unaligned or outside the file.
    pub fn l2_offset(&self, i: u64) -> io::Result<Option<u64>> {
        let e = self.l1.get(i as usize).copied().unwrap_or(0);
        let o = e & OFFSET_MASK;
        if o == 0 {
            return Ok(None);
        }
        let cs = self.cluster_size();
        if o % cs != 0 || o + cs > self.file_len {
            return Err(invalid(format!(
                "L1 entry {i} points at {o:#x}, which is not a cluster inside the {}-byte file",
                self.file_len
            )));
        }
        Ok(Some(o))
    }

    /// Read the L2 table at `offset`.
    pub fn read_l2(&self, offset: u64) -> io::Result<Vec<u64>> {
        let mut raw = vec![0u8; self.cluster_size() as usize];
        crate::io::read_exact_at(&self.file, &mut raw, offset)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    /// The mapping of virtual cluster `c`.
    pub fn mapping(&self, c: u64) -> io::Result<Mapping> {
        let l2_bits = self.header.l2_bits();
        let Some(l2) = self.l2_offset(c >> l2_bits)? else {
            return Ok(Mapping::Zero);
        };
        let idx = (c & ((1 << l2_bits) - 1)) as usize;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = match &*cache {
            Some((o, t)) if *o == l2 => t[idx],
            _ => {
                let t = self.read_l2(l2)?;
                let e = t[idx];
                *cache = Some((l2, t));
                e
            }
        };
        checked_mapping(&self.header, entry, l2, idx as u64)
    }

    /// Read the compressed bytes at `offset`, `len` long (clipped to the
    /// file, as qemu reads past its end as zeros), and inflate them into
    /// `out` (one cluster).
    pub fn read_compressed(
        &self,
        z: &mut Decompress,
        offset: u64,
        len: u64,
        out: &mut [u8],
    ) -> io::Result<()> {
        if offset >= self.file_len {
            return Err(invalid(format!(
                "compressed cluster at {offset:#x} lies past the end of the {}-byte file",
                self.file_len
            )));
        }
        let n = len.min(self.file_len - offset) as usize;
        let mut input = vec![0u8; n];
        crate::io::read_exact_at(&self.file, &mut input, offset)?;
        inflate_cluster(z, &input, out)
            .map(|_| ())
            .map_err(|m| invalid(format!("{m} (at byte {offset})")))
    }
}

impl VirtualDisk for Qcow2Disk {
    fn size(&self) -> u64 {
        self.header.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let size = self.size();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= size)
            .ok_or_else(|| eof_error(offset, buf.len(), size))?;
        let cs = self.cluster_size();
        let mut z: Option<Decompress> = None;
        let mut cluster: Vec<u8> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let c = pos / cs;
            let within = pos % cs;
            let n = (cs - within).min(end - pos) as usize;
            let out = &mut buf[(pos - offset) as usize..(pos - offset) as usize + n];
            match self.mapping(c)? {
                Mapping::Zero => out.fill(0),
                Mapping::Data(host) if host % cs != 0 => {
                    return Err(invalid(format!(
                        "cluster {c} maps to file offset {host:#x}, which is not cluster-aligned"
                    )))
                }
                Mapping::Data(host) => crate::io::read_exact_at(&self.file, out, host + within)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cluster {c} at file offset {host:#x}: {e}"),
                        )
                    })?,
                Mapping::Compressed(o, l) => {
                    let z = z.get_or_insert_with(|| Decompress::new(false));
                    cluster.resize(cs as usize, 0);
                    self.read_compressed(z, o, l, &mut cluster)?;
                    out.copy_from_slice(&cluster[within as usize..within as usize + n]);
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn extents(&self) -> io::Result<Vec<Extent>> {
        let size = self.size();
        let cs = self.cluster_size();
        let region = self.header.l1_entry_bytes();
        let mut out = Vec::new();
        for i in 0..self.header.l1_needed() {
            let start = i * region;
            let rend = (start + region).min(size);
            let Some(l2) = self.l2_offset(i)? else {
                push_merged(&mut out, start, rend - start, ExtentKind::Zero);
                continue;
            };
            let table = self.read_l2(l2)?;
            let mut pos = start;
            for (j, &e) in table.iter().enumerate() {
                if pos >= rend {
                    break;
                }
                let len = cs.min(rend - pos);
                let kind = match checked_mapping(&self.header, e, l2, j as u64)? {
                    Mapping::Zero => ExtentKind::Zero,
                    _ => ExtentKind::Data,
                };
                push_merged(&mut out, pos, len, kind);
                pos += len;
            }
        }
        Ok(out)
    }
}

/// Append an extent, merging it with the last one when they are of the
/// same kind (keeps the map small for large images).
fn push_merged(out: &mut Vec<Extent>, offset: u64, len: u64, kind: ExtentKind) {
    match out.last_mut() {
        Some(last) if last.kind == kind && last.end() == offset => last.len += len,
        _ => out.push(Extent { offset, len, kind }),
    }
}

/// Open a QCOW2 image for random-access reading.
pub fn open(file: File) -> Result<Box<dyn VirtualDisk>> {
    Ok(Box::new(Qcow2Disk::open(file)?))
}
