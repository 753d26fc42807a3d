//! The EFI system partition: a FAT32 file system built in memory with the
//! `fatfs` crate (with its `alloc` feature, which writes a long-name entry
//! beside every short name, so that names such as `limine-bios.sys` are
//! found by loaders that look them up by their long name), deterministically (fixed volume id and label, file
//! times from SOURCE_DATE_EPOCH), holding only the chunks that were
//! written so that a large ESP costs only its used clusters.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::error::{Error, Result};

/// Granularity of the in-memory sparse volume.
pub const CHUNK_SIZE: u64 = 4096;

/// An in-memory volume of fixed length that stores only written chunks;
/// unwritten bytes read as zeros.
#[derive(Debug, Clone)]
pub struct SparseVolume {
    len: u64,
    pos: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl SparseVolume {
    /// A zero-filled volume of `len` bytes.
    pub fn new(len: u64) -> Self {
        SparseVolume {
            len,
            pos: 0,
            chunks: BTreeMap::new(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the volume has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks that hold non-zero bytes, as (offset, bytes), in order.
    /// The last chunk may be shorter than [`CHUNK_SIZE`].
    pub fn data_chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.chunks
            .iter()
            .filter(|(_, c)| c.iter().any(|b| *b != 0))
            .map(|(i, c)| {
                let off = i * CHUNK_SIZE;
                let n = (self.len - off).min(CHUNK_SIZE) as usize;
                (off, &c[..n])
            })
    }

    /// Every byte, holes as zeros (for tests and small volumes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; usize::try_from(self.len).unwrap_or(0)];
        for (off, c) in self.data_chunks() {
            v[off as usize..off as usize + c.len()].copy_from_slice(c);
        }
        v
    }
}

impl Read for SparseVolume {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let idx = self.pos / CHUNK_SIZE;
        let within = (self.pos % CHUNK_SIZE) as usize;
        let n = buf
            .len()
            .min(CHUNK_SIZE as usize - within)
            .min((self.len - self.pos) as usize);
        match self.chunks.get(&idx) {
            Some(c) => buf[..n].copy_from_slice(&c[within..within + n]),
            None => buf[..n].fill(0),
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseVolume {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the volume",
            ));
        }
        let idx = self.pos / CHUNK_SIZE;
        let within = (self.pos % CHUNK_SIZE) as usize;
        let n = buf
            .len()
            .min(CHUNK_SIZE as usize - within)
            .min((self.len - self.pos) as usize);
        let data = &buf[..n];
        if let Some(c) = self.chunks.get_mut(&idx) {
            c[within..within + n].copy_from_slice(data);
        } else if data.iter().any(|b| *b != 0) {
            let mut c = vec![0u8; CHUNK_SIZE as usize].into_boxed_slice();
            c[within..within + n].copy_from_slice(data);
            self.chunks.insert(idx, c);
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseVolume {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the volume",
            )),
        }
    }
}

/// A fixed time for every FAT timestamp.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// The FAT (DOS) date and time of a Unix time, UTC, clamped to the range
/// FAT can hold (1980-01-01 .. 2107-12-31).
pub fn dos_date_time(unix_seconds: i64) -> fatfs::DateTime {
    const MIN: i64 = 315_532_800; // 1980-01-01T00:00:00Z
    const MAX: i64 = 4_354_819_199; // 2107-12-31T23:59:59Z
    let t = unix_seconds.clamp(MIN, MAX);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    fatfs::DateTime {
        date: fatfs::Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: fatfs::Time {
            hour: (secs / 3600) as u16,
            min: (secs / 60 % 60) as u16,
            sec: (secs % 60) as u16,
            millis: 0,
        },
    }
}

/// What to put in the ESP.
#[derive(Debug, Clone)]
pub struct EspSpec {
    /// Size in bytes (a multiple of 512).
    pub size: u64,
    /// FAT volume id (serial number).
    pub volume_id: u32,
    /// Volume label, at most 11 ASCII characters.
    pub label: String,
    /// Time of every file and directory (Unix seconds).
    pub mtime: i64,
    /// The partition's first LBA, recorded in the BPB's hidden-sectors
    /// field as `mkfs.fat --offset` does.
    pub hidden_sectors: u32,
    /// Files as (absolute path with `/` separators, bytes), written in
    /// this order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Bytes per cluster for a FAT32 volume of `size` bytes: the largest of
/// 4 KiB, 2 KiB, 1 KiB, 512 that leaves at least 65 525 + margin
/// clusters, as FAT32 requires.
fn cluster_size_for(size: u64) -> Result<u32> {
    const MIN_CLUSTERS: u64 = 65_525 + 1024;
    [4096u32, 2048, 1024, 512]
        .into_iter()
        .find(|c| size / u64::from(*c) >= MIN_CLUSTERS + size / u64::from(*c) / 64)
        .ok_or_else(|| {
            Error::InvalidLayout(format!(
                "an ESP of {size} bytes is too small for FAT32 (at least 34 MiB is needed)"
            ))
        })
}

/// Format and fill a FAT32 ESP.
pub fn build_esp(spec: &EspSpec) -> Result<SparseVolume> {
    if spec.size % 512 != 0 {
        return Err(Error::InvalidLayout(format!(
            "ESP size {} is not a multiple of 512",
            spec.size
        )));
    }
    let total_sectors = u32::try_from(spec.size / 512).map_err(|_| {
        Error::InvalidLayout(format!(
            "an ESP of {} bytes is too large for FAT32",
            spec.size
        ))
    })?;
    let cluster = cluster_size_for(spec.size)?;
    let label = spec.label.as_bytes();
    if label.len() > 11 || !label.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(Error::InvalidLayout(format!(
            "volume label {:?} is not 1-11 ASCII characters",
            spec.label
        )));
    }
    let mut label11 = [b' '; 11];
    label11[..label.len()].copy_from_slice(label);

    let esp_err = |what: &str, e: io::Error| Error::Esp(format!("{what}: {e}"));
    let mut vol = SparseVolume::new(spec.size);
    fatfs::format_volume(
        &mut vol,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(cluster)
            .total_sectors(total_sectors)
            .volume_id(spec.volume_id)
            .volume_label(label11),
    )
    .map_err(|e| esp_err("formatting", e))?;
    vol.seek(SeekFrom::Start(0))
        .map_err(|e| esp_err("rewinding", e))?;
    // fatfs wants a 'static provider; one small leak per image built.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(dos_date_time(spec.mtime))));
    {
        let fs = fatfs::FileSystem::new(&mut vol, fatfs::FsOptions::new().time_provider(time))
            .map_err(|e| esp_err("opening the new file system", e))?;
        // Count the free clusters now so that the FSInfo sector carries a
        // correct count (fatfs keeps it up to date from here on).
        fs.stats()
            .map_err(|e| esp_err("counting free clusters", e))?;
        for (path, bytes) in &spec.files {
            let rel = path.trim_start_matches('/');
            let mut dir = fs.root_dir();
            let mut comps: Vec<&str> = rel.split('/').collect();
            let name = comps
                .pop()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::Esp(format!("bad path {path:?}")))?;
            for c in comps {
                dir = match dir.open_dir(c) {
                    Ok(d) => d,
                    Err(_) => dir
                        .create_dir(c)
                        .map_err(|e| esp_err(&format!("creating directory {c} for {path}"), e))?,
                };
            }
            let mut f = dir
                .create_file(name)
                .map_err(|e| esp_err(&format!("creating {path}"), e))?;
            f.truncate()
                .map_err(|e| esp_err(&format!("truncating {path}"), e))?;
            f.write_all(bytes)
                .map_err(|e| esp_err(&format!("writing {path}"), e))?;
            f.flush()
                .map_err(|e| esp_err(&format!("flushing {path}"), e))?;
        }
        fs.unmount().map_err(|e| esp_err("unmounting", e))?;
    }
    tidy_directories(&mut vol)?;
    set_hidden_sectors(&mut vol, spec.hidden_sectors)?;
    Ok(vol)
}

fn read_at(vol: &mut SparseVolume, offset: u64, buf: &mut [u8]) -> Result<()> {
    vol.seek(SeekFrom::Start(offset))
        .and_then(|_| vol.read_exact(buf))
        .map_err(|e| Error::Esp(format!("reading offset {offset}: {e}")))
}

fn write_at(vol: &mut SparseVolume, offset: u64, buf: &[u8]) -> Result<()> {
    vol.seek(SeekFrom::Start(offset))
        .and_then(|_| vol.write_all(buf))
        .map_err(|e| Error::Esp(format!("writing offset {offset}: {e}")))
}

/// Write the hidden-sectors field (BPB offset 28) of the boot sector
/// and its backup (at the sector named by BPB offset 50).
fn set_hidden_sectors(vol: &mut SparseVolume, hidden: u32) -> Result<()> {
    let mut bs = [0u8; 512];
    read_at(vol, 0, &mut bs)?;
    let backup = u64::from(u16::from_le_bytes([bs[50], bs[51]]));
    let bytes_per_sector = u64::from(u16::from_le_bytes([bs[11], bs[12]]));
    write_at(vol, 28, &hidden.to_le_bytes())?;
    if backup != 0 {
        write_at(vol, backup * bytes_per_sector + 28, &hidden.to_le_bytes())?;
    }
    Ok(())
}

/// Geometry of the FAT32 volume, from its boot sector.
struct FatGeometry {
    cluster_bytes: u64,
    fat_offset: u64,
    data_start: u64,
    root_cluster: u64,
}

impl FatGeometry {
    fn read(vol: &mut SparseVolume) -> Result<Self> {
        let mut bs = [0u8; 512];
        read_at(vol, 0, &mut bs)?;
        let le16 = |o: usize| u64::from(u16::from_le_bytes([bs[o], bs[o + 1]]));
        let le32 =
            |o: usize| u64::from(u32::from_le_bytes([bs[o], bs[o + 1], bs[o + 2], bs[o + 3]]));
        let (bytes_per_sector, sectors_per_cluster) = (le16(11), u64::from(bs[13]));
        let (reserved, fats, fat_sectors) = (le16(14), u64::from(bs[16]), le32(36));
        Ok(FatGeometry {
            cluster_bytes: bytes_per_sector * sectors_per_cluster,
            fat_offset: reserved * bytes_per_sector,
            data_start: (reserved + fats * fat_sectors) * bytes_per_sector,
            root_cluster: le32(44),
        })
    }

    fn cluster_offset(&self, c: u64) -> u64 {
        self.data_start + (c - 2) * self.cluster_bytes
    }

    /// The clusters of a chain, in order (FAT32 entries are 28 bits;
    /// 0x0FFFFFF8 and above end a chain).
    fn chain(&self, vol: &mut SparseVolume, first: u64) -> Result<Vec<u64>> {
        let mut chain = vec![first];
        let mut c = first;
        loop {
            let mut e = [0u8; 4];
            read_at(vol, self.fat_offset + c * 4, &mut e)?;
            c = u64::from(u32::from_le_bytes(e) & 0x0FFF_FFFF);
            if !(2..0x0FFF_FFF8).contains(&c) || chain.len() > 1 << 20 {
                return Ok(chain);
            }
            chain.push(c);
        }
    }
}

/// The checksum of a short name that its long-name entries carry (FAT
/// specification, "Checksum generation").
fn short_name_checksum(name: &[u8]) -> u8 {
    name.iter()
        .fold(0u8, |sum, b| sum.rotate_right(1).wrapping_add(*b))
}

/// Tidy what fatfs 0.3 leaves in every directory it made, as the FAT
/// specification (and fsck.fat) wants it:
/// * with its `alloc` feature it writes long-name entries before the
///   `.` and `..` entries, which must stand alone in a directory's first
///   two slots: they are removed and the rest moved up;
/// * it writes the root's cluster number into the `..` entry of a
///   directory made in the root of a FAT32 volume, where 0 belongs.
fn tidy_directories(vol: &mut SparseVolume) -> Result<()> {
    let geo = FatGeometry::read(vol)?;
    // (first cluster, whether it is the root, whether its parent is)
    let mut todo = vec![(geo.root_cluster, true, false)];
    while let Some((first, is_root, parent_is_root)) = todo.pop() {
        let chain = geo.chain(vol, first)?;
        let mut bytes = vec![0u8; (chain.len() as u64 * geo.cluster_bytes) as usize];
        for (i, c) in chain.iter().enumerate() {
            let at = i * geo.cluster_bytes as usize;
            read_at(
                vol,
                geo.cluster_offset(*c),
                &mut bytes[at..at + geo.cluster_bytes as usize],
            )?;
        }
        let entries: Vec<&[u8]> = bytes.chunks(32).take_while(|e| e[0] != 0).collect();
        let mut kept: Vec<[u8; 32]> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let is_lfn = e[11] == 0x0F;
            let owner = entries[i..].iter().find(|x| x[11] != 0x0F);
            let dot = |x: &[u8]| &x[..11] == b".          " || &x[..11] == b"..         ";
            if is_lfn && owner.is_some_and(|o| dot(o) && e[13] == short_name_checksum(&o[..11])) {
                continue;
            }
            let mut entry = [0u8; 32];
            entry.copy_from_slice(e);
            if !is_lfn && &e[..11] == b"..         " && parent_is_root {
                entry[20..22].fill(0);
                entry[26..28].fill(0);
            }
            let cluster = u64::from(u16::from_le_bytes([e[20], e[21]])) << 16
                | u64::from(u16::from_le_bytes([e[26], e[27]]));
            if !is_lfn && e[11] & 0x10 != 0 && e[0] != 0xE5 && !dot(e) && cluster >= 2 {
                todo.push((cluster, false, is_root));
            }
            kept.push(entry);
        }
        let mut out = vec![0u8; bytes.len()];
        for (i, e) in kept.iter().enumerate() {
            out[i * 32..i * 32 + 32].copy_from_slice(e);
        }
        if out != bytes {
            for (i, c) in chain.iter().enumerate() {
                let at = i * geo.cluster_bytes as usize;
                write_at(
                    vol,
                    geo.cluster_offset(*c),
                    &out[at..at + geo.cluster_bytes as usize],
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_time_of_known_epochs() {
        let t = dos_date_time(1_700_000_000); // 2023-11-14T22:13:20Z
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        let t = dos_date_time(0);
        assert_eq!((t.date.year, t.date.month, t.date.day), (1980, 1, 1));
        let t = dos_date_time(951_782_400); // 2000-02-29
        assert_eq!((t.date.year, t.date.month, t.date.day), (2000, 2, 29));
    }

    #[test]
    fn sparse_volume_reads_back_and_skips_zeros() {
        let mut v = SparseVolume::new(10_000);
        v.seek(SeekFrom::Start(4090)).unwrap();
        v.write_all(&[1; 20]).unwrap();
        v.seek(SeekFrom::Start(8192)).unwrap();
        v.write_all(&[0; 100]).unwrap();
        assert_eq!(v.data_chunks().count(), 2);
        let all = v.to_vec();
        assert_eq!(&all[4090..4110], &[1; 20]);
        assert!(v.write(&[0]).is_ok());
        v.seek(SeekFrom::Start(10_000)).unwrap();
        assert!(v.write(&[1]).is_err());
    }

    #[test]
    fn small_esp_is_refused() {
        let spec = EspSpec {
            size: 16 << 20,
            volume_id: 1,
            label: "ESP".into(),
            mtime: 0,
            hidden_sectors: 0,
            files: vec![],
        };
        assert_eq!(
            build_esp(&spec).unwrap_err().to_string(),
            "invalid layout: an ESP of 16777216 bytes is too small for FAT32 (at least 34 MiB is needed)"
        );
    }
}
