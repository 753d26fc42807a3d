//! Stream-optimized VMDK writer ("true stream" layout, GD at the end).
//!
//! ```text
//! sector 0        header (gdOffset = GD_AT_END)
//! sectors 1..21   embedded descriptor (20 sectors, NUL-padded)
//! sector 21..     grain records: lba u64, size u32, zlib stream, pad to 512
//!                 after the grains of each 512-grain range that has any:
//!                 GT marker (1 sector) + grain table (4 sectors)
//!                 GD marker + grain directory
//!                 FOOTER marker + header copy with the real gdOffset
//!                 end-of-stream marker (a zero sector)
//! ```
//!
//! When the capacity is not a whole number of grains, the last grain
//! holds only the bytes left (it inflates to less than 64 KiB), as open-vmdk
//! (`lastGrainSize`) and qemu (`vmdk_write_extent`) write it; qemu reads a
//! grain up to its inflated length and open-vmdk asks for at least the bytes
//! left, so both read it. All-zero grains are not written (GT entry 0),
//! whether they come from zero extents (never read) or from data that
//! turns out to be zeros.
//!
//! Grains are independent zlib streams, so they are compressed by a small
//! pool of workers and written in order: the bytes do not depend on the
//! number of workers. Grain tables whose grains are all unallocated are
//! not written (their GD entry is 0): VMware allocates grain tables of
//! stream-optimized extents on demand, and qemu and open-vmdk read a zero
//! GD entry as "every grain of this table is unallocated".

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::ops::Range;
use std::sync::{mpsc, Mutex};

use libdeflater::{CompressionLvl, Compressor};

use super::descriptor::{self, DescriptorIds};
use super::wire::{
    self, Marker, SparseExtentHeader, GD_AT_END, GRAIN_RECORD_HEADER_BYTES, MARKER_FOOTER,
    MARKER_GD, MARKER_GT, SECTOR_BYTES,
};
use crate::codec::deflate;
use crate::disk::{ExtentKind, VirtualDisk};
use crate::error::{Error, Result};
use crate::formats::WriteOptions;

/// libdeflate level for grains. qemu-img deflates each grain with zlib's
/// default level 6 (`compress()`); libdeflate at level 4 makes grains no
/// larger than that (measured on text-like data: 0.370 of the input
/// against zlib's 0.371) in half the time. Its streams start with `78 5E`.
pub const COMPRESSION_LEVEL: i32 = 4;

/// A grain compressor at [`COMPRESSION_LEVEL`].
pub(crate) fn grain_compressor() -> Compressor {
    Compressor::new(CompressionLvl::new(COMPRESSION_LEVEL).expect("level 4 is valid"))
}

/// Grains handed to the workers ahead of the one being written, per
/// worker: bounds memory to about `jobs * 4` compressed grains.
const GRAINS_IN_FLIGHT_PER_JOB: usize = 4;

/// Largest number of workers used by default.
const DEFAULT_JOBS_MAX: usize = 8;

/// The default number of compression workers: the available parallelism,
/// at most 8. The output does not depend on it.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(DEFAULT_JOBS_MAX)
}

/// Write `disk` as a stream-optimized VMDK to `out` with
/// [`default_jobs`] compression workers; `file_name` goes in the
/// descriptor's extent line.
pub fn write_stream_optimized<W: Write>(
    disk: &dyn VirtualDisk,
    out: W,
    file_name: &str,
    opts: &WriteOptions,
) -> Result<W> {
    write_stream_optimized_jobs(disk, out, file_name, opts, default_jobs())
}

/// [`write_stream_optimized`] with `jobs` compression workers (0 or 1:
/// compress on the calling thread). The bytes written are the same for
/// any `jobs`.
pub fn write_stream_optimized_jobs<W: Write>(
    disk: &dyn VirtualDisk,
    out: W,
    file_name: &str,
    opts: &WriteOptions,
    jobs: usize,
) -> Result<W> {
    let size = disk.size();
    if size == 0 {
        return Err(Error::invalid_input("cannot write an empty disk as a VMDK"));
    }
    if size % SECTOR_BYTES != 0 {
        return Err(Error::invalid_input(format!(
            "disk size {size} is not a multiple of {SECTOR_BYTES} bytes"
        )));
    }
    if file_name.is_empty() || file_name.contains(['"', '\n', '\r', '\0']) {
        return Err(Error::invalid_input(format!(
            "VMDK extent file name {file_name:?} must be non-empty without quotes or line breaks"
        )));
    }
    let capacity = size / SECTOR_BYTES;
    let header = SparseExtentHeader::stream_optimized(capacity, GD_AT_END);
    if capacity > wire::MAX_CAPACITY_SECTORS {
        return Err(Error::invalid_input(format!(
            "disk of {size} bytes is too large for a VMDK"
        )));
    }
    let ids = DescriptorIds::from_seed(&opts.seed);
    let text = descriptor::render(file_name, capacity, &ids);
    let desc_bytes = (header.descriptor_size * SECTOR_BYTES) as usize;
    if text.len() > desc_bytes {
        return Err(Error::invalid_input(format!(
            "VMDK descriptor of {} bytes does not fit in {desc_bytes} bytes (file name too long?)",
            text.len()
        )));
    }

    let mut w = StreamOut { out, sector: 0 };
    w.write(&header.to_bytes())?;
    let mut desc = text.into_bytes();
    desc.resize(desc_bytes, 0);
    w.write(&desc)?;
    debug_assert_eq!(w.sector, header.overhead);

    let grains = data_grains(disk, header.grain_bytes())?;
    let mut tables = Tables::new(&header);
    for_each_grain_record(disk, &header, &grains, jobs, |grain, record| {
        if let Some(record) = record {
            tables.place(&mut w, grain)?;
            w.write(&record)?;
        }
        Ok(())
    })?;
    tables.flush_gt(&mut w)?;

    // Grain directory, footer, end of stream.
    w.write(&Marker::metadata(MARKER_GD, header.gd_sectors()))?;
    let gd_offset = w.sector;
    tables.write_gd(&mut w)?;
    w.write(&Marker::metadata(MARKER_FOOTER, 1))?;
    w.write(&SparseExtentHeader::stream_optimized(capacity, gd_offset).to_bytes())?;
    w.write(&Marker::metadata(wire::MARKER_EOS, 0))?;
    let mut out = w.out;
    out.flush().map_err(|e| Error::io("writing the VMDK", e))?;
    Ok(out)
}

/// The output stream and its position in sectors.
struct StreamOut<W> {
    out: W,
    sector: u64,
}

impl<W: Write> StreamOut<W> {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        debug_assert_eq!(b.len() as u64 % SECTOR_BYTES, 0, "writes are whole sectors");
        self.out
            .write_all(b)
            .map_err(|e| Error::io("writing the VMDK", e))?;
        self.sector += b.len() as u64 / SECTOR_BYTES;
        Ok(())
    }

    /// The current sector as a GT/GD entry (those are u32 sectors).
    fn entry(&self) -> Result<u32> {
        u32::try_from(self.sector).map_err(|_| {
            Error::invalid_input(
                "the VMDK grows past 2 TiB, beyond what 32-bit grain table entries can address",
            )
        })
    }
}

/// The grain table being filled and the grain directory entries so far.
struct Tables {
    grains_per_gt: u64,
    gt_sectors: u64,
    gd_entries: u64,
    /// Index of the grain table being filled, and its entries.
    current: Option<(u64, Vec<u32>)>,
    /// (GT index, sector) of the tables written, in order.
    gd: Vec<(u64, u32)>,
}

impl Tables {
    fn new(h: &SparseExtentHeader) -> Self {
        Tables {
            grains_per_gt: u64::from(h.num_gtes_per_gt),
            gt_sectors: h.gt_sectors(),
            gd_entries: h.gd_entries(),
            current: None,
            gd: Vec::new(),
        }
    }

    /// Record that the record of `grain` starts at the current sector,
    /// writing the previous grain table first if `grain` is past it.
    fn place<W: Write>(&mut self, w: &mut StreamOut<W>, grain: u64) -> Result<()> {
        let gt = grain / self.grains_per_gt;
        if self.current.as_ref().is_some_and(|(i, _)| *i != gt) {
            self.flush_gt(w)?;
        }
        let n = self.grains_per_gt as usize;
        let (_, entries) = self.current.get_or_insert_with(|| (gt, vec![0; n]));
        entries[(grain % self.grains_per_gt) as usize] = w.entry()?;
        Ok(())
    }

    fn flush_gt<W: Write>(&mut self, w: &mut StreamOut<W>) -> Result<()> {
        if let Some((gt, entries)) = self.current.take() {
            w.write(&Marker::metadata(MARKER_GT, self.gt_sectors))?;
            self.gd.push((gt, w.entry()?));
            w.write(&wire::table_bytes(&entries))?;
        }
        Ok(())
    }

    /// The grain directory, one sector at a time (it can be large for a
    /// large, mostly empty disk).
    fn write_gd<W: Write>(&self, w: &mut StreamOut<W>) -> Result<()> {
        const PER_SECTOR: u64 = SECTOR_BYTES / 4;
        let mut written = self.gd.iter().peekable();
        let mut first = 0;
        while first < self.gd_entries {
            let mut sector = [0u8; SECTOR_BYTES as usize];
            while let Some(&&(gt, at)) = written.peek() {
                if gt >= first + PER_SECTOR {
                    break;
                }
                let i = ((gt - first) * 4) as usize;
                sector[i..i + 4].copy_from_slice(&at.to_le_bytes());
                written.next();
            }
            w.write(&sector)?;
            first += PER_SECTOR;
        }
        Ok(())
    }
}

/// Merged ranges of grain indices that touch a data extent; grains made
/// only of zero extents are never read.
fn data_grains(disk: &dyn VirtualDisk, grain_bytes: u64) -> Result<Vec<Range<u64>>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let extents = disk
        .extents()
        .map_err(|e| Error::io("listing the disk's extents", e))?;
    for e in extents
        .iter()
        .filter(|e| e.kind == ExtentKind::Data && e.len > 0)
    {
        let r = e.offset / grain_bytes..(e.end() - 1) / grain_bytes + 1;
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// Compresses grains into complete grain records.
struct GrainEncoder {
    zlib: Compressor,
    buf: Vec<u8>,
}

impl GrainEncoder {
    fn new(grain_bytes: u64) -> Self {
        GrainEncoder {
            zlib: grain_compressor(),
            buf: vec![0; grain_bytes as usize],
        }
    }

    /// Read grain `grain` of `disk` and return its record (marker, zlib
    /// stream, padding to 512), or None if it reads as zeros.
    fn encode(
        &mut self,
        disk: &dyn VirtualDisk,
        h: &SparseExtentHeader,
        grain: u64,
    ) -> io::Result<Option<Vec<u8>>> {
        let start = grain * h.grain_bytes();
        let len = (disk.size() - start).min(h.grain_bytes()) as usize;
        let data = &mut self.buf[..len];
        disk.read_at(data, start)?;
        if is_zero(data) {
            return Ok(None);
        }
        Ok(Some(encode_record(
            &mut self.zlib,
            grain * h.grain_size,
            data,
        )))
    }
}

/// Whether every byte is zero.
pub(crate) fn is_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.all(|w| u64::from_ne_bytes(w.try_into().expect("chunks of 8 bytes")) == 0)
        && words.remainder().iter().all(|&x| x == 0)
}

/// A grain record for `data` at virtual sector `lba`: `lba u64`, `size
/// u32`, the zlib stream, zero padding to a whole sector. Data that looks
/// incompressible (random, already compressed) is stored rather than
/// deflated: the same size as zlib's own fallback, a fraction of the time.
pub(crate) fn encode_record(zlib: &mut Compressor, lba: u64, data: &[u8]) -> Vec<u8> {
    let mut rec =
        Vec::with_capacity(GRAIN_RECORD_HEADER_BYTES + data.len() + data.len() / 8 + 1024);
    rec.extend_from_slice(&lba.to_le_bytes());
    rec.extend_from_slice(&[0; 4]);
    if deflate::looks_incompressible(data) {
        deflate::zlib_stored(data, &mut rec);
    } else {
        let at = rec.len();
        rec.resize(at + zlib.zlib_compress_bound(data.len()), 0);
        let n = zlib
            .zlib_compress(data, &mut rec[at..])
            .expect("the output buffer has the compress bound");
        rec.truncate(at + n);
    }
    let size = (rec.len() - GRAIN_RECORD_HEADER_BYTES) as u32;
    rec[8..12].copy_from_slice(&size.to_le_bytes());
    rec.resize(
        (rec.len() as u64).div_ceil(SECTOR_BYTES) as usize * SECTOR_BYTES as usize,
        0,
    );
    rec
}

/// Call `sink(grain, record)` for every grain in `grains`, in order;
/// `record` is None for a grain that reads as zeros. With `jobs > 1` the
/// grains are read and compressed by `jobs` worker threads.
fn for_each_grain_record<F>(
    disk: &dyn VirtualDisk,
    h: &SparseExtentHeader,
    grains: &[Range<u64>],
    jobs: usize,
    mut sink: F,
) -> Result<()>
where
    F: FnMut(u64, Option<Vec<u8>>) -> Result<()>,
{
    let reading = |e: io::Error| Error::io("reading the disk", e);
    let all = grains.iter().flat_map(|r| r.clone());
    if jobs <= 1 {
        let mut enc = GrainEncoder::new(h.grain_bytes());
        for g in all {
            let rec = enc.encode(disk, h, g).map_err(reading)?;
            sink(g, rec)?;
        }
        return Ok(());
    }

    type Done = (u64, io::Result<Option<Vec<u8>>>);
    type Pending = BTreeMap<u64, io::Result<Option<Vec<u8>>>>;
    let window = jobs * GRAINS_IN_FLIGHT_PER_JOB;
    let (job_tx, job_rx) = mpsc::sync_channel::<u64>(window);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| -> Result<()> {
        // Owned by this closure, so that returning early (an error) drops
        // the job queue and the workers stop.
        let job_tx = job_tx;
        let done_rx = done_rx;
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            let spawned = std::thread::Builder::new()
                .name("vmdk".into())
                .spawn_scoped(scope, move || {
                    let mut enc = GrainEncoder::new(h.grain_bytes());
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(g) = job else { return };
                        if done_tx.send((g, enc.encode(disk, h, g))).is_err() {
                            return;
                        }
                    }
                });
            spawned.map_err(|e| Error::io("starting a compression thread", e))?;
        }
        drop(done_tx);

        // Results arrive in any order; write them in grain order.
        let mut pending: Pending = BTreeMap::new();
        let mut order = VecDeque::with_capacity(window);
        let mut drain = |pending: &mut Pending, order: &mut VecDeque<u64>| -> Result<()> {
            while let Some(&next) = order.front() {
                let Some(res) = pending.remove(&next) else {
                    break;
                };
                order.pop_front();
                sink(next, res.map_err(reading)?)?;
            }
            Ok(())
        };
        let recv = |pending: &mut Pending| -> Result<()> {
            let (g, res) = done_rx.recv().map_err(|_| {
                Error::new(
                    crate::error::ErrorKind::Io,
                    "a compression worker stopped unexpectedly",
                )
            })?;
            pending.insert(g, res);
            Ok(())
        };
        for g in all {
            while order.len() >= window {
                recv(&mut pending)?;
                drain(&mut pending, &mut order)?;
            }
            order.push_back(g);
            job_tx.send(g).map_err(|_| {
                Error::new(
                    crate::error::ErrorKind::Io,
                    "the compression workers stopped unexpectedly",
                )
            })?;
        }
        drop(job_tx);
        while !order.is_empty() {
            recv(&mut pending)?;
            drain(&mut pending, &mut order)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    fn opts() -> WriteOptions {
        WriteOptions {
            mtime: 0,
            seed: [3; 32],
        }
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 13]));
        let mut b = [0u8; 13];
        b[12] = 1;
        assert!(!is_zero(&b));
        b[12] = 0;
        b[3] = 1;
        assert!(!is_zero(&b));
    }

    #[test]
    fn record_is_zlib_and_padded() {
        let mut z = grain_compressor();
        let rec = encode_record(&mut z, 256, &[0xAB; 65536]);
        assert_eq!(rec.len() % 512, 0);
        assert_eq!(u64::from_le_bytes(rec[..8].try_into().unwrap()), 256);
        assert_eq!(&rec[12..14], &[0x78, 0x5E]);
    }

    #[test]
    fn rejects_bad_sizes_and_names() {
        let e = write_stream_optimized(&MemDisk::new(vec![1; 1000]), Vec::new(), "d.vmdk", &opts())
            .unwrap_err();
        assert_eq!(e.message(), "disk size 1000 is not a multiple of 512 bytes");
        let e = write_stream_optimized(&MemDisk::new(vec![]), Vec::new(), "d.vmdk", &opts())
            .unwrap_err();
        assert_eq!(e.message(), "cannot write an empty disk as a VMDK");
        let e = write_stream_optimized(&MemDisk::new(vec![0; 512]), Vec::new(), "a\"b", &opts())
            .unwrap_err();
        assert_eq!(
            e.message(),
            "VMDK extent file name \"a\\\"b\" must be non-empty without quotes or line breaks"
        );
    }

    #[test]
    fn all_zero_disk_has_only_metadata() {
        let out = write_stream_optimized(
            &MemDisk::new(vec![0; 1 << 20]),
            Vec::new(),
            "z.vmdk",
            &opts(),
        )
        .unwrap();
        // header + descriptor + GD marker + GD + footer marker + footer + EOS
        assert_eq!(out.len(), 512 * (21 + 1 + 1 + 1 + 1 + 1));
    }

    #[test]
    fn same_bytes_for_any_job_count() {
        let mut b = vec![0u8; 3 << 20];
        for (i, x) in b.iter_mut().enumerate() {
            if (i / 70_000) % 3 != 1 {
                *x = (i * 7 % 251) as u8;
            }
        }
        let d = MemDisk::new(b);
        let one = write_stream_optimized_jobs(&d, Vec::new(), "d.vmdk", &opts(), 1).unwrap();
        for jobs in [2, 3, 8] {
            let n = write_stream_optimized_jobs(&d, Vec::new(), "d.vmdk", &opts(), jobs).unwrap();
            assert!(n == one, "jobs={jobs} changed the output");
        }
    }
}
