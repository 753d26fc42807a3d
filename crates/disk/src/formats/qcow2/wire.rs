//! QCOW2 on-disk structures and constants (qemu docs/interop/qcow2.txt).
//! Every field is big-endian.

/// `QFI\xfb` at offset 0.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Bytes of a version 2 header (fields up to `snapshots_offset`).
pub const V2_HEADER_SIZE: usize = 72;
/// Smallest version 3 header (up to `header_length`).
pub const V3_MIN_HEADER_SIZE: u32 = 104;
/// The header length qemu 7.2 writes: 104 plus the compression type byte,
/// padded to a multiple of 8.
pub const V3_HEADER_LENGTH: u32 = 112;

/// Cluster sizes qemu accepts: 512 bytes to 2 MiB.
pub const MIN_CLUSTER_BITS: u32 = 9;
/// See [`MIN_CLUSTER_BITS`].
pub const MAX_CLUSTER_BITS: u32 = 21;
/// The cluster size cloudimg writes, 64 KiB (qemu's default).
pub const WRITE_CLUSTER_BITS: u32 = 16;
/// 16-bit refcounts (qemu's default), as written.
pub const WRITE_REFCOUNT_ORDER: u32 = 4;

/// Largest active L1 table qemu opens (`QCOW_MAX_L1_SIZE`, 32 MiB).
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest refcount table qemu opens (`QCOW_MAX_REFTABLE_SIZE`, 8 MiB,
/// block/qcow2.h).
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Largest refcount order (64-bit refcounts; block/qcow2.c qcow2_do_open).
pub const MAX_REFCOUNT_ORDER: u32 = 6;
/// Bytes of a snapshot table entry's fixed part (`QCowSnapshotHeader`,
/// block/qcow2.h), the unit qcow2_do_open validates the table in.
pub const SNAPSHOT_HEADER_SIZE: u64 = 40;
/// Most snapshots qemu opens (`QCOW_MAX_SNAPSHOTS`, block/qcow2.h).
pub const MAX_SNAPSHOTS: u64 = 65536;
/// Most extra data per snapshot table entry qemu opens
/// (`QCOW_MAX_SNAPSHOT_EXTRA_DATA`, block/qcow2.h).
pub const MAX_SNAPSHOT_EXTRA_DATA: u64 = 1024;
/// Largest snapshot table qemu opens (`QCOW_MAX_SNAPSHOTS_SIZE`, 1 KiB per
/// snapshot, block/qcow2.h).
pub const MAX_SNAPSHOTS_TABLE_BYTES: u64 = 1024 * MAX_SNAPSHOTS;
/// Backing format names qemu reads are shorter than this
/// (`sizeof(bs->backing_format)`, include/block/block_int-common.h) [U:
/// 16 in qemu 7.2, not re-read at the source].
pub const MAX_BACKING_FORMAT: usize = 16;
/// Bytes of the bitmaps header extension (`Qcow2BitmapHeaderExt`).
pub const BITMAPS_EXT_SIZE: usize = 24;
/// Most bitmaps qemu opens (`QCOW2_MAX_BITMAPS`, block/qcow2.h).
pub const MAX_BITMAPS: u32 = 65535;
/// Largest bitmap directory (`QCOW2_MAX_BITMAP_DIRECTORY_SIZE`).
pub const MAX_BITMAP_DIRECTORY_BYTES: u64 = 1024 * 65535;
/// Largest backing file name (qemu: 1023 bytes).
pub const MAX_BACKING_NAME: u32 = 1023;

/// Incompatible feature bits (header offset 72).
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// The image was marked corrupt by qemu.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Guest data lives in an external file.
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// The compression type field is not zlib.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// L2 entries are 16 bytes with subcluster bitmaps.
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Every incompatible bit known to qemu 7.2.
pub const INCOMPAT_KNOWN: u64 = 0x1f;
/// Autoclear bit 0: persistent dirty bitmaps extension is valid.
pub const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Autoclear bit 1: the external data file is valid as a raw image
/// (`QCOW2_AUTOCLEAR_DATA_FILE_RAW`).
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

/// Compression type 0: zlib (raw deflate, 4 KiB window).
pub const COMPRESSION_ZLIB: u8 = 0;
/// Compression type 1: zstd.
pub const COMPRESSION_ZSTD: u8 = 1;
/// qemu's deflate window for compressed clusters (`deflateInit2(..., -12, ...)`).
pub const DEFLATE_WINDOW_BITS: u8 = 12;

/// L1 and standard L2 entries: host offset in bits 9–55.
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Bit 63 of L1/L2 entries: the refcount is exactly 1 ("copied").
pub const OFLAG_COPIED: u64 = 1 << 63;
/// Bit 62 of an L2 entry: compressed cluster.
pub const OFLAG_COMPRESSED: u64 = 1 << 62;
/// Bit 0 of a standard L2 entry: the cluster reads as zeros (v3).
pub const OFLAG_ZERO: u64 = 1;
/// Bits of an L1 entry that must be zero (1–8, 56–62).
pub const L1_RESERVED: u64 = 0x7f00_0000_0000_01fe | 1;
/// Bits of a standard L2 entry that must be zero (1–8, 56–61).
pub const L2_STANDARD_RESERVED: u64 = 0x3f00_0000_0000_01fe;
/// Refcount table entries: refcount block offset in bits 9–63.
pub const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
/// Sector unit of compressed cluster descriptors.
pub const COMPRESSED_SECTOR: u64 = 512;

/// Header extension types.
pub const EXT_END: u32 = 0;
/// Backing file format name.
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Feature name table.
pub const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
/// Persistent bitmaps.
pub const EXT_BITMAPS: u32 = 0x2385_2875;
/// Full disk encryption header.
pub const EXT_CRYPTO: u32 = 0x0537_be77;
/// External data file name.
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Field offsets in the header.
pub mod off {
    /// Version (u32).
    pub const VERSION: u64 = 4;
    /// Backing file name offset (u64).
    pub const BACKING_FILE_OFFSET: u64 = 8;
    /// Cluster bits (u32).
    pub const CLUSTER_BITS: u64 = 20;
    /// Virtual size (u64).
    pub const SIZE: u64 = 24;
    /// Encryption method (u32).
    pub const CRYPT_METHOD: u64 = 32;
    /// L1 entries (u32).
    pub const L1_SIZE: u64 = 36;
    /// L1 table offset (u64).
    pub const L1_TABLE_OFFSET: u64 = 40;
    /// Refcount table offset (u64).
    pub const REFCOUNT_TABLE_OFFSET: u64 = 48;
    /// Refcount table clusters (u32).
    pub const REFCOUNT_TABLE_CLUSTERS: u64 = 56;
    /// Snapshot count (u32).
    pub const NB_SNAPSHOTS: u64 = 60;
    /// Snapshot table offset (u64).
    pub const SNAPSHOTS_OFFSET: u64 = 64;
    /// Incompatible features (u64).
    pub const INCOMPATIBLE: u64 = 72;
    /// Autoclear features (u64).
    pub const AUTOCLEAR: u64 = 88;
    /// Refcount order (u32).
    pub const REFCOUNT_ORDER: u64 = 96;
    /// Header length (u32).
    pub const HEADER_LENGTH: u64 = 100;
    /// Compression type (u8).
    pub const COMPRESSION_TYPE: u64 = 104;
}

/// A QCOW2 header (version 2 or 3). Version 2 images get the version 3
/// defaults for the fields they lack (no features, 16-bit refcounts,
/// header length 72, zlib).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcowHeader {
    /// Must be [`MAGIC`].
    pub magic: [u8; 4],
    /// 2 or 3.
    pub version: u32,
    /// Offset of the backing file name, 0 for none.
    pub backing_file_offset: u64,
    /// Length of the backing file name.
    pub backing_file_size: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// Offset of the active L1 table.
    pub l1_table_offset: u64,
    /// Offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots.
    pub nb_snapshots: u32,
    /// Offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits.
    pub incompatible_features: u64,
    /// Compatible feature bits.
    pub compatible_features: u64,
    /// Auto-clear feature bits.
    pub autoclear_features: u64,
    /// log2 of the refcount width in bits.
    pub refcount_order: u32,
    /// Length of the header structure.
    pub header_length: u32,
    /// Compression type (0 zlib, 1 zstd).
    pub compression_type: u8,
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

impl QcowHeader {
    /// Parse from the start of the file: `b` holds at least
    /// [`V2_HEADER_SIZE`] bytes; version 3 fields missing from a short `b`
    /// read as 0 (the caller checks `header_length` against the file).
    pub fn parse(b: &[u8]) -> Option<QcowHeader> {
        if b.len() < V2_HEADER_SIZE {
            return None;
        }
        let version = be32(b, 4);
        let mut h = QcowHeader {
            magic: b[0..4].try_into().expect("4 bytes"),
            version,
            backing_file_offset: be64(b, 8),
            backing_file_size: be32(b, 16),
            cluster_bits: be32(b, 20),
            size: be64(b, 24),
            crypt_method: be32(b, 32),
            l1_size: be32(b, 36),
            l1_table_offset: be64(b, 40),
            refcount_table_offset: be64(b, 48),
            refcount_table_clusters: be32(b, 56),
            nb_snapshots: be32(b, 60),
            snapshots_offset: be64(b, 64),
            incompatible_features: 0,
            compatible_features: 0,
            autoclear_features: 0,
            refcount_order: WRITE_REFCOUNT_ORDER,
            header_length: V2_HEADER_SIZE as u32,
            compression_type: COMPRESSION_ZLIB,
        };
        if version >= 3 && b.len() >= V3_MIN_HEADER_SIZE as usize {
            h.incompatible_features = be64(b, 72);
            h.compatible_features = be64(b, 80);
            h.autoclear_features = be64(b, 88);
            h.refcount_order = be32(b, 96);
            h.header_length = be32(b, 100);
            if h.header_length > V3_MIN_HEADER_SIZE && b.len() > 104 {
                h.compression_type = b[104];
            }
        }
        Some(h)
    }

    /// The version 3 header bytes (`header_length` of them, at least 105).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.header_length as usize);
        b.extend_from_slice(&self.magic);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.backing_file_offset.to_be_bytes());
        b.extend_from_slice(&self.backing_file_size.to_be_bytes());
        b.extend_from_slice(&self.cluster_bits.to_be_bytes());
        b.extend_from_slice(&self.size.to_be_bytes());
        b.extend_from_slice(&self.crypt_method.to_be_bytes());
        b.extend_from_slice(&self.l1_size.to_be_bytes());
        b.extend_from_slice(&self.l1_table_offset.to_be_bytes());
        b.extend_from_slice(&self.refcount_table_offset.to_be_bytes());
        b.extend_from_slice(&self.refcount_table_clusters.to_be_bytes());
        b.extend_from_slice(&self.nb_snapshots.to_be_bytes());
        b.extend_from_slice(&self.snapshots_offset.to_be_bytes());
        b.extend_from_slice(&self.incompatible_features.to_be_bytes());
        b.extend_from_slice(&self.compatible_features.to_be_bytes());
        b.extend_from_slice(&self.autoclear_features.to_be_bytes());
        b.extend_from_slice(&self.refcount_order.to_be_bytes());
        b.extend_from_slice(&self.header_length.to_be_bytes());
        b.push(self.compression_type);
        b.resize((self.header_length as usize).max(105), 0);
        b
    }

    /// Cluster size in bytes (`cluster_bits` must have been checked).
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// log2 of the L2 entries per table (8-byte entries).
    pub fn l2_bits(&self) -> u32 {
        self.cluster_bits - 3
    }

    /// Virtual bytes mapped by one L1 entry.
    pub fn l1_entry_bytes(&self) -> u64 {
        1u64 << (self.cluster_bits + self.l2_bits())
    }

    /// L1 entries needed to map the virtual size.
    pub fn l1_needed(&self) -> u64 {
        self.size.div_ceil(self.l1_entry_bytes())
    }
}

/// Where a compressed cluster's bytes are, decoded from its L2 entry as
/// qemu does (`qcow2_parse_compressed_l2_entry`): the host byte offset,
/// and the length up to the end of its last 512-byte sector.
pub fn compressed_range(entry: u64, cluster_bits: u32) -> (u64, u64) {
    let shift = 62 - (cluster_bits - 8);
    let offset = entry & ((1u64 << shift) - 1);
    let sectors = ((entry >> shift) & ((1u64 << (cluster_bits - 8)) - 1)) + 1;
    (
        offset,
        sectors * COMPRESSED_SECTOR - (offset % COMPRESSED_SECTOR),
    )
}

/// The L2 entry of a compressed cluster of `len` bytes at host byte
/// `offset` (the inverse of [`compressed_range`]): bit 62, the number of
/// 512-byte sectors after the first one it touches, the offset.
pub fn compressed_entry(offset: u64, len: u64, cluster_bits: u32) -> u64 {
    let shift = 62 - (cluster_bits - 8);
    let extra = (offset + len - 1) / COMPRESSED_SECTOR - offset / COMPRESSED_SECTOR;
    OFLAG_COMPRESSED | (extra << shift) | offset
}

/// The feature name table header extension qemu 7.2 writes in every new
/// image (type, length, then 48-byte entries: type, bit, name).
pub fn feature_name_table() -> Vec<u8> {
    const NAMES: [(u8, u8, &str); 8] = [
        (0, 0, "dirty bit"),
        (0, 1, "corrupt bit"),
        (0, 2, "external data file"),
        (0, 3, "compression type"),
        (0, 4, "extended L2 entries"),
        (1, 0, "lazy refcounts"),
        (2, 0, "bitmaps"),
        (2, 1, "raw external data"),
    ];
    let mut b = Vec::with_capacity(8 + NAMES.len() * 48);
    b.extend_from_slice(&EXT_FEATURE_NAMES.to_be_bytes());
    b.extend_from_slice(&((NAMES.len() * 48) as u32).to_be_bytes());
    for (kind, bit, name) in NAMES {
        let mut e = [0u8; 48];
        e[0] = kind;
        e[1] = bit;
        e[2..2 + name.len()].copy_from_slice(name.as_bytes());
        b.extend_from_slice(&e);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_entry_round_trips() {
        for cb in MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS {
            for (off, len) in [(0x50000u64, 100u64), (0x50000 + 511, 2), (0x123_4567, 511)] {
                let e = compressed_entry(off, len, cb);
                let (o, l) = compressed_range(e, cb);
                assert_eq!(o, off);
                assert!(o + l >= off + len && (o + l) % 512 == 0, "cb {cb}");
            }
        }
    }

    #[test]
    fn header_round_trips() {
        let h = QcowHeader {
            magic: MAGIC,
            version: 3,
            backing_file_offset: 0,
            backing_file_size: 0,
            cluster_bits: 16,
            size: 10 << 20,
            crypt_method: 0,
            l1_size: 1,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x10000,
            refcount_table_clusters: 1,
            nb_snapshots: 0,
            snapshots_offset: 0,
            incompatible_features: 0,
            compatible_features: 0,
            autoclear_features: 0,
            refcount_order: 4,
            header_length: V3_HEADER_LENGTH,
            compression_type: 0,
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), 112);
        assert_eq!(QcowHeader::parse(&b), Some(h));
        assert_eq!(feature_name_table().len(), 8 + 0x180);
    }
}
