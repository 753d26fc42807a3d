//! QCOW2 version 3 writer.
//!
//! Layout, allocated in one forward pass (positioned writes, so the image
//! is never held in memory):
//!
//! - cluster 0: the header (112 bytes, as qemu 7.2 writes it) and qemu's
//!   feature name table extension;
//! - the L1 table, right after it;
//! - for each 512 MiB region (one L1 entry) that holds non-zero data: its
//!   L2 table, allocated when the region's first non-zero cluster is met
//!   (as `qemu-img convert` does), then the region's data clusters;
//! - the refcount table and refcount blocks last, once the number of
//!   clusters is known (compressed sizes are only known after compressing).
//!
//! Clusters that read as zeros are left unallocated. With compression,
//! each cluster is raw-deflated with a 4 KiB window, as qemu's
//! `qcow2_compress` (level: see [`LEVEL`]), and kept only when it is smaller than a
//! cluster (qemu gives deflate `cluster_size - 1` bytes of room). The
//! compressed bytes are packed back to back as qemu's `qcow2_alloc_bytes`
//! packs them: a compressed cluster may run into the next host cluster
//! when that one is the next to be allocated. Refcounts are what
//! `qemu-img check` recomputes: 1 for every metadata and data cluster,
//! and for a host cluster holding compressed data, the number of
//! compressed clusters whose sectors touch it.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::codec::deflate;
use crate::disk::{ExtentKind, VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::formats::WriteOptions;

use super::wire::*;

const CLUSTER: u64 = 1 << WRITE_CLUSTER_BITS;
const L2_ENTRIES: u64 = CLUSTER / 8;
/// Virtual bytes per L1 entry (512 MiB).
const REGION: u64 = CLUSTER * L2_ENTRIES;
/// Refcount entries per refcount block (16-bit refcounts).
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << WRITE_REFCOUNT_ORDER);
/// Deflate level. qemu uses zlib's default, 6. The zlib-rs backend (a port
/// of zlib-ng) uses a faster "medium" strategy at level 6 that came out
/// about 3% larger than qemu-img's output on 100 MB of /usr/lib; level 9
/// (lazy matching, as zlib's level 6) came out 0.4% smaller, at about 1.5
/// times the time of level 6.
const LEVEL: u32 = 9;
/// Clusters encoded per batch and worker thread.
const BATCH_PER_JOB: usize = 16;

/// A cluster after encoding.
enum Encoded {
    Zero,
    Raw(Vec<u8>),
    Compressed(Vec<u8>),
}

/// The header cloudimg writes (the offsets are filled in at the end).
pub fn header(size: u64, l1_size: u32, rt_offset: u64, rt_clusters: u32) -> QcowHeader {
    QcowHeader {
        magic: MAGIC,
        version: 3,
        backing_file_offset: 0,
        backing_file_size: 0,
        cluster_bits: WRITE_CLUSTER_BITS,
        size,
        crypt_method: 0,
        l1_size,
        l1_table_offset: CLUSTER,
        refcount_table_offset: rt_offset,
        refcount_table_clusters: rt_clusters,
        nb_snapshots: 0,
        snapshots_offset: 0,
        incompatible_features: 0,
        compatible_features: 0,
        autoclear_features: 0,
        refcount_order: WRITE_REFCOUNT_ORDER,
        header_length: V3_HEADER_LENGTH,
        compression_type: COMPRESSION_ZLIB,
    }
}

/// Host cluster allocation and refcounts.
struct Alloc {
    /// Refcount of every host cluster so far (index = cluster number).
    refcounts: Vec<u16>,
    /// Next free byte for compressed data (0: none yet).
    free_byte: u64,
}

impl Alloc {
    fn cluster(&mut self, refcount: u16) -> u64 {
        self.refcounts.push(refcount);
        (self.refcounts.len() as u64 - 1) * CLUSTER
    }

    fn next_cluster(&self) -> u64 {
        self.refcounts.len() as u64 * CLUSTER
    }

    /// Room for `len` compressed bytes (`len < CLUSTER`), as qemu's
    /// `qcow2_alloc_bytes`: in the current cluster when it fits, running
    /// on into the next cluster when that is the next one allocated,
    /// else at the start of a new cluster. Counts the reference.
    fn bytes(&mut self, len: u64) -> Result<u64> {
        let mut at = self.free_byte;
        let free_in_cluster = if at % CLUSTER == 0 {
            0
        } else {
            CLUSTER - at % CLUSTER
        };
        if free_in_cluster < len {
            let contiguous = at != 0 && at.next_multiple_of(CLUSTER) == self.next_cluster();
            let new = self.cluster(0);
            if !contiguous {
                at = new;
            }
        }
        self.free_byte = at + len;
        let first = at / CLUSTER;
        let last = (at + len)
            .next_multiple_of(COMPRESSED_SECTOR)
            .div_ceil(CLUSTER);
        for c in first..last {
            let r = &mut self.refcounts[c as usize];
            *r = r.checked_add(1).ok_or_else(|| {
                Error::invalid_input("a host cluster holds more than 65535 compressed clusters")
            })?;
        }
        Ok(at)
    }
}

/// Write `disk` as a QCOW2 version 3 image into `out` (which should be
/// empty). See the module documentation for the layout. With `compress`,
/// clusters are deflated on up to `jobs` threads; the bytes written do
/// not depend on `jobs`. The disk size must be a non-zero multiple of 512.
pub fn write(
    disk: &dyn VirtualDisk,
    out: &File,
    _opts: &WriteOptions,
    compress: bool,
    jobs: usize,
) -> Result<()> {
    let size = disk.size();
    if size == 0 || size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "a QCOW2 image needs a disk size that is a non-zero multiple of 512 bytes, not {size}"
        )));
    }
    let l1_size = size.div_ceil(REGION);
    if l1_size * 8 > MAX_L1_BYTES {
        return Err(Error::invalid_input(format!(
            "a {size}-byte disk needs an L1 table larger than the {MAX_L1_BYTES} bytes qemu allows"
        )));
    }
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER);
    let mut alloc = Alloc {
        refcounts: Vec::new(),
        free_byte: 0,
    };
    alloc.cluster(1); // header
    for _ in 0..l1_clusters {
        alloc.cluster(1);
    }
    let mut l1 = vec![0u64; l1_size as usize];
    write_data(disk, out, &mut alloc, &mut l1, compress, jobs)?;
    let (rt_offset, rt) = write_refcounts(out, &mut alloc)?;

    let l1_bytes: Vec<u8> = l1.iter().flat_map(|e| e.to_be_bytes()).collect();
    out.write_all_at(&l1_bytes, CLUSTER)
        .ctx("writing the L1 table")?;
    let mut head = header(size, l1_size as u32, rt_offset, rt as u32).to_bytes();
    head.extend_from_slice(&feature_name_table());
    head.extend_from_slice(&[0; 8]); // end of header extensions
    head.resize(CLUSTER as usize, 0);
    out.write_all_at(&head, 0).ctx("writing the QCOW2 header")?;
    // In case `out` was longer.
    out.set_len(alloc.next_cluster())
        .ctx("setting the file size")?;
    Ok(())
}

/// The L2 table of the region being written: its L1 index, its host
/// offset and its entries.
struct L2Table {
    region: u64,
    at: u64,
    entries: Vec<u64>,
}

impl L2Table {
    /// Write the table and point its L1 entry at it.
    fn flush(self, out: &File, l1: &mut [u64]) -> Result<()> {
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.to_be_bytes()).collect();
        out.write_all_at(&bytes, self.at)
            .ctx("writing an L2 table")?;
        l1[self.region as usize] = self.at | OFLAG_COPIED;
        Ok(())
    }
}

/// Write the data clusters of `disk` and their L2 tables, in one forward
/// pass (see the module documentation), and fill `l1`.
fn write_data(
    disk: &dyn VirtualDisk,
    out: &File,
    alloc: &mut Alloc,
    l1: &mut [u64],
    compress: bool,
    jobs: usize,
) -> Result<()> {
    let mut l2: Option<L2Table> = None;
    let ranges = data_clusters(disk)?;
    let jobs = jobs.max(1);
    let mut batch: Vec<u64> = Vec::with_capacity(jobs * BATCH_PER_JOB);
    let mut clusters = ranges.iter().flat_map(|r| r.clone()).peekable();
    while clusters.peek().is_some() {
        batch.clear();
        batch.extend(clusters.by_ref().take(jobs * BATCH_PER_JOB));
        let encoded = encode_batch(disk, &batch, compress, jobs)
            .map_err(|e| Error::io("reading the disk", e))?;
        for (&c, enc) in batch.iter().zip(encoded) {
            if matches!(enc, Encoded::Zero) {
                continue;
            }
            let region = c / L2_ENTRIES;
            if l2.as_ref().is_none_or(|t| t.region != region) {
                if let Some(t) = l2.take() {
                    t.flush(out, l1)?;
                }
                let at = alloc.cluster(1);
                l2 = Some(L2Table {
                    region,
                    at,
                    entries: vec![0; L2_ENTRIES as usize],
                });
            }
            let entry = match enc {
                Encoded::Zero => continue,
                Encoded::Raw(data) => {
                    let at = alloc.cluster(1);
                    out.write_all_at(&data, at).ctx("writing a data cluster")?;
                    at | OFLAG_COPIED
                }
                Encoded::Compressed(data) => {
                    let at = alloc.bytes(data.len() as u64)?;
                    out.write_all_at(&data, at)
                        .ctx("writing a compressed cluster")?;
                    compressed_entry(at, data.len() as u64, WRITE_CLUSTER_BITS)
                }
            };
            let t = l2.as_mut().expect("an L2 table was just set up");
            t.entries[(c % L2_ENTRIES) as usize] = entry;
        }
    }
    if let Some(t) = l2.take() {
        t.flush(out, l1)?;
    }
    Ok(())
}

/// Allocate and write the refcount table and blocks after every other
/// cluster: enough blocks for every cluster, their own and the table's
/// included. Returns the table's offset and its size in clusters.
fn write_refcounts(out: &File, alloc: &mut Alloc) -> Result<(u64, u64)> {
    let (rt, rb) = refcount_layout(alloc.refcounts.len() as u64);
    let rt_offset = alloc.next_cluster();
    for _ in 0..rt + rb {
        alloc.cluster(1);
    }
    let rb_first = rt_offset + rt * CLUSTER;
    let mut table = vec![0u8; (rt * CLUSTER) as usize];
    for b in 0..rb {
        let at = rb_first + b * CLUSTER;
        table[b as usize * 8..b as usize * 8 + 8].copy_from_slice(&at.to_be_bytes());
    }
    out.write_all_at(&table, rt_offset)
        .ctx("writing the refcount table")?;
    let mut block = vec![0u8; CLUSTER as usize];
    for b in 0..rb {
        block.fill(0);
        let first = (b * REFCOUNTS_PER_BLOCK) as usize;
        let counts = alloc
            .refcounts
            .iter()
            .skip(first)
            .take(REFCOUNTS_PER_BLOCK as usize);
        for (k, r) in counts.enumerate() {
            block[k * 2..k * 2 + 2].copy_from_slice(&r.to_be_bytes());
        }
        out.write_all_at(&block, rb_first + b * CLUSTER)
            .ctx("writing a refcount block")?;
    }
    Ok((rt_offset, rt))
}

/// Clusters of refcount table and of refcount blocks needed after `used`
/// clusters, so that the blocks cover every cluster, their own and the
/// table's included.
fn refcount_layout(used: u64) -> (u64, u64) {
    let (mut rt, mut rb) = (1u64, 1u64);
    loop {
        let total = used + rt + rb;
        let rb2 = total.div_ceil(REFCOUNTS_PER_BLOCK);
        let rt2 = (rb2 * 8).div_ceil(CLUSTER);
        if (rt2, rb2) == (rt, rb) {
            return (rt, rb);
        }
        (rt, rb) = (rt2, rb2);
    }
}

/// Merged ranges of cluster indices that touch a data extent; clusters
/// made only of zero extents are never read.
fn data_clusters(disk: &dyn VirtualDisk) -> Result<Vec<Range<u64>>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let extents = disk
        .extents()
        .map_err(|e| Error::io("listing the disk's extents", e))?;
    for e in extents
        .iter()
        .filter(|e| e.kind == ExtentKind::Data && e.len > 0)
    {
        let r = e.offset / CLUSTER..(e.end() - 1) / CLUSTER + 1;
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// Read and encode `clusters` (in order) on up to `jobs` threads.
fn encode_batch(
    disk: &dyn VirtualDisk,
    clusters: &[u64],
    compress: bool,
    jobs: usize,
) -> io::Result<Vec<Encoded>> {
    let threads = jobs.min(clusters.len()).max(1);
    if threads == 1 {
        let mut enc = Encoder::new();
        return clusters
            .iter()
            .map(|&c| enc.encode(disk, c, compress))
            .collect();
    }
    let per = clusters.len().div_ceil(threads);
    let parts: Vec<io::Result<Vec<Encoded>>> = std::thread::scope(|s| {
        let handles: Vec<_> = clusters
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    let mut enc = Encoder::new();
                    part.iter()
                        .map(|&c| enc.encode(disk, c, compress))
                        .collect::<io::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("encoder threads do not panic"))
            .collect()
    });
    let mut out = Vec::with_capacity(clusters.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

struct Encoder {
    zlib: Compress,
    buf: Vec<u8>,
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            zlib: Compress::new_with_window_bits(
                Compression::new(LEVEL),
                false,
                DEFLATE_WINDOW_BITS,
            ),
            buf: vec![0; CLUSTER as usize - 1],
        }
    }

    fn encode(&mut self, disk: &dyn VirtualDisk, c: u64, compress: bool) -> io::Result<Encoded> {
        let start = c * CLUSTER;
        let len = (disk.size() - start).min(CLUSTER) as usize;
        let mut data = vec![0u8; CLUSTER as usize];
        disk.read_at(&mut data[..len], start)?;
        if is_zero(&data) {
            return Ok(Encoded::Zero);
        }
        if compress && !deflate::looks_incompressible(&data) {
            if let Some(n) = self.deflate(&data) {
                return Ok(Encoded::Compressed(self.buf[..n].to_vec()));
            }
        }
        Ok(Encoded::Raw(data))
    }

    /// Deflate a cluster into at most `CLUSTER - 1` bytes, or None when it
    /// does not fit (qemu then stores the cluster uncompressed).
    fn deflate(&mut self, data: &[u8]) -> Option<usize> {
        self.zlib.reset();
        match self
            .zlib
            .compress(data, &mut self.buf, FlushCompress::Finish)
        {
            Ok(Status::StreamEnd) => Some(self.zlib.total_out() as usize),
            _ => None,
        }
    }
}

/// Whether every byte is zero.
fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.all(|w| u64::from_ne_bytes(w.try_into().expect("chunks of 8 bytes")) == 0)
        && words.remainder().iter().all(|&x| x == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use crate::formats::qcow2::reader::Qcow2Disk;

    const OPTS: WriteOptions = WriteOptions {
        mtime: 0,
        seed: [0; 32],
    };

    fn write_mem(bytes: Vec<u8>, compress: bool) -> (tempfile::NamedTempFile, Vec<u8>) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        write(&MemDisk::new(bytes), tmp.as_file(), &OPTS, compress, 1).unwrap();
        let out = std::fs::read(tmp.path()).unwrap();
        (tmp, out)
    }

    #[test]
    fn all_zero_disk_has_only_metadata() {
        let (_t, out) = write_mem(vec![0; 3 << 20], true);
        // Header, L1, refcount table, one refcount block.
        assert_eq!(out.len() as u64, 4 * CLUSTER);
        let rb = &out[3 * CLUSTER as usize..];
        assert_eq!(&rb[..10], &[0, 1, 0, 1, 0, 1, 0, 1, 0, 0]);
        assert!(out[CLUSTER as usize..2 * CLUSTER as usize]
            .iter()
            .all(|&b| b == 0));
    }

    #[test]
    fn compressed_bytes_pack_like_qemu() {
        let mut a = Alloc {
            refcounts: vec![1, 1],
            free_byte: 0,
        };
        // First allocation starts a new cluster.
        assert_eq!(a.bytes(1000).unwrap(), 2 * CLUSTER);
        assert_eq!(a.bytes(60000).unwrap(), 2 * CLUSTER + 1000);
        // Does not fit; the next cluster is the next free one: run on.
        assert_eq!(a.bytes(10000).unwrap(), 2 * CLUSTER + 61000);
        assert_eq!(a.refcounts, vec![1, 1, 3, 1]);
        // A metadata cluster is allocated; the partly used cluster 3
        // still has room, as qemu's free byte offset remembers.
        a.cluster(1);
        assert_eq!(a.bytes(60000).unwrap(), 3 * CLUSTER + 5464);
        assert_eq!(a.bytes(72).unwrap(), 3 * CLUSTER + 65464);
        assert_eq!(a.refcounts, vec![1, 1, 3, 3, 1]);
        // Cluster 3 is full and cluster 4 is taken: a fresh cluster.
        assert_eq!(a.bytes(1).unwrap(), 5 * CLUSTER);
        assert_eq!(a.refcounts, vec![1, 1, 3, 3, 1, 1]);
    }

    #[test]
    fn round_trips_through_the_reader() {
        let mut bytes = vec![0u8; (2 << 20) + 512];
        for (i, b) in bytes.iter_mut().enumerate().skip(70_000).take(200_000) {
            *b = (i % 251) as u8;
        }
        let n = bytes.len();
        bytes[n - 1] = 9;
        for compress in [false, true] {
            let (t, _) = write_mem(bytes.clone(), compress);
            let d = Qcow2Disk::open(File::open(t.path()).unwrap()).unwrap();
            let mut back = vec![0u8; bytes.len()];
            d.read_at(&mut back, 0).unwrap();
            assert!(back == bytes, "compress {compress}");
        }
    }

    #[test]
    fn refcount_blocks_cover_themselves() {
        assert_eq!(refcount_layout(3), (1, 1));
        assert_eq!(refcount_layout(32766), (1, 1));
        assert_eq!(refcount_layout(32767), (1, 2));
        assert_eq!(refcount_layout(65533), (1, 2));
        assert_eq!(refcount_layout(65534), (1, 3));
        // One table cluster lists 8192 blocks (16 TiB of file).
        assert_eq!(refcount_layout(8192 * 32768 - 8193), (1, 8192));
        assert_eq!(refcount_layout(8192 * 32768 - 8192), (2, 8193));
    }

    #[test]
    fn refuses_sizes_qemu_cannot_represent() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let e = write(&MemDisk::new(vec![0; 1000]), tmp.as_file(), &OPTS, false, 1).unwrap_err();
        assert_eq!(
            e.message(),
            "a QCOW2 image needs a disk size that is a non-zero multiple of 512 bytes, not 1000"
        );
    }
}
