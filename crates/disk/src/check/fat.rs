//! A minimal read-only FAT12/16/32 reader with long file names, bounded
//! everywhere (cluster chains by the volume's cluster count, directories
//! by [`MAX_DIR_ENTRIES`](super::MAX_DIR_ENTRIES), reads by the caller's limit). Layout:
//! Microsoft "FAT: General Overview of On-Disk Format" (fatgen103): BPB
//! fields, FAT type by cluster count (< 4085 FAT12, < 65525 FAT16),
//! 32-byte directory entries, LFN entries (attribute 0x0F) with the
//! short-name checksum.

use crate::disk::VirtualDisk;

/// A directory entry that was found.
#[derive(Debug, Clone)]
pub struct Entry {
    pub first_cluster: u32,
    pub size: u64,
    pub dir: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

/// An opened FAT volume inside a disk.
pub struct Fat<'a> {
    disk: &'a dyn VirtualDisk,
    base: u64,
    kind: Kind,
    cluster_bytes: u64,
    fat_offset: u64,
    root_dir_offset: u64,
    root_entries: u64,
    root_cluster: u32,
    data_offset: u64,
    clusters: u32,
}

fn le16(b: &[u8], o: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[o], b[o + 1]]))
}
fn le32(b: &[u8], o: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]))
}

impl<'a> Fat<'a> {
    /// Open the volume of `len` bytes at byte `base` of `disk`.
    pub fn open(disk: &'a dyn VirtualDisk, base: u64, len: u64) -> Result<Self, String> {
        if base.checked_add(len).is_none_or(|e| e > disk.size()) || len < 512 {
            return Err(format!(
                "the partition ({len} bytes at byte {base}) does not lie inside the disk"
            ));
        }
        let mut b = [0u8; 512];
        disk.read_at(&mut b, base)
            .map_err(|e| format!("reading its boot sector: {e}"))?;
        let bps = le16(&b, 11);
        let spc = u64::from(b[13]);
        let reserved = le16(&b, 14);
        let nfats = u64::from(b[16]);
        let root_entries = le16(&b, 17);
        let total = match le16(&b, 19) {
            0 => le32(&b, 32),
            n => n,
        };
        let fat_sectors = match le16(&b, 22) {
            0 => le32(&b, 36),
            n => n,
        };
        if b[510..512] != [0x55, 0xAA] {
            return Err("no FAT file system: no 55 AA boot sector signature".into());
        }
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(format!("no FAT file system: {bps} bytes per sector"));
        }
        if spc == 0 || !spc.is_power_of_two() {
            return Err(format!("no FAT file system: {spc} sectors per cluster"));
        }
        if reserved == 0 || nfats == 0 || fat_sectors == 0 || total == 0 {
            return Err(format!(
                "no FAT file system: reserved sectors {reserved}, FATs {nfats}, FAT size {fat_sectors}, total sectors {total}"
            ));
        }
        if total * bps > len {
            return Err(format!(
                "the FAT file system claims {} bytes, more than its {len}-byte partition",
                total * bps
            ));
        }
        let root_dir_sectors = (root_entries * 32).div_ceil(bps);
        let meta = reserved + nfats * fat_sectors + root_dir_sectors;
        if meta >= total {
            return Err("no FAT file system: no room for data after its FATs".into());
        }
        let clusters = (total - meta) / spc;
        let kind = if clusters < 4085 {
            Kind::Fat12
        } else if clusters < 65525 {
            Kind::Fat16
        } else {
            Kind::Fat32
        };
        let fat_bytes_needed = match kind {
            Kind::Fat12 => (clusters + 2) * 3 / 2 + 1,
            Kind::Fat16 => (clusters + 2) * 2,
            Kind::Fat32 => (clusters + 2) * 4,
        };
        if fat_sectors * bps < fat_bytes_needed {
            return Err(format!(
                "the FAT ({} bytes) is too small for {clusters} clusters",
                fat_sectors * bps
            ));
        }
        if kind == Kind::Fat32 && root_entries != 0 {
            return Err("FAT32 volume with a fixed root directory".into());
        }
        Ok(Fat {
            disk,
            base,
            kind,
            cluster_bytes: spc * bps,
            fat_offset: reserved * bps,
            root_dir_offset: (reserved + nfats * fat_sectors) * bps,
            root_entries,
            root_cluster: le32(&b, 44) as u32,
            data_offset: meta * bps,
            clusters: clusters as u32,
        })
    }

    /// "FAT12", "FAT16" or "FAT32".
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Fat12 => "FAT12",
            Kind::Fat16 => "FAT16",
            Kind::Fat32 => "FAT32",
        }
    }

    fn read_raw(&self, buf: &mut [u8], off: u64) -> Result<(), String> {
        self.disk
            .read_at(buf, self.base + off)
            .map_err(|e| format!("reading byte {} of the disk: {e}", self.base + off))
    }

    /// The cluster after `n`, or None at the end of the chain.
    fn next(&self, n: u32) -> Result<Option<u32>, String> {
        let (off, width) = match self.kind {
            Kind::Fat12 => (u64::from(n) * 3 / 2, 2),
            Kind::Fat16 => (u64::from(n) * 2, 2),
            Kind::Fat32 => (u64::from(n) * 4, 4),
        };
        let mut b = [0u8; 4];
        self.read_raw(&mut b[..width], self.fat_offset + off)?;
        let v = u32::from_le_bytes(b);
        let (v, end, bad) = match self.kind {
            Kind::Fat12 => {
                let v = if n % 2 == 1 { v >> 4 } else { v & 0xFFF };
                (v, 0xFF8, 0xFF7)
            }
            Kind::Fat16 => (v, 0xFFF8, 0xFFF7),
            Kind::Fat32 => (v & 0x0FFF_FFFF, 0x0FFF_FFF8, 0x0FFF_FFF7),
        };
        if v >= end {
            Ok(None)
        } else if v == bad {
            Err(format!("cluster {n} is followed by a bad-cluster mark"))
        } else if v < 2 || v >= self.clusters + 2 {
            Err(format!("cluster {n} is followed by invalid cluster {v}"))
        } else {
            Ok(Some(v))
        }
    }

    /// The clusters of a chain starting at `first`, at most `max`.
    fn chain(&self, first: u32, max: u64) -> Result<Vec<u32>, String> {
        let mut v = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut c = Some(first);
        while let Some(n) = c {
            if n < 2 || n >= self.clusters + 2 {
                return Err(format!("a cluster chain reaches invalid cluster {n}"));
            }
            if v.len() as u64 >= max.min(u64::from(self.clusters)) {
                break;
            }
            if !seen.insert(n) {
                return Err(format!("a cluster chain loops back to cluster {n}"));
            }
            v.push(n);
            c = self.next(n)?;
        }
        Ok(v)
    }

    fn cluster_offset(&self, n: u32) -> u64 {
        self.data_offset + u64::from(n - 2) * self.cluster_bytes
    }

    /// The raw 32-byte entries of a directory (bounded).
    fn dir_bytes(&self, first_cluster: Option<u32>) -> Result<Vec<u8>, String> {
        let max = super::MAX_DIR_ENTRIES as u64 * 32;
        match first_cluster {
            None => {
                let mut v = vec![0u8; (self.root_entries * 32).min(max) as usize];
                self.read_raw(&mut v, self.root_dir_offset)?;
                Ok(v)
            }
            Some(c) => {
                let mut v = Vec::new();
                for n in self.chain(c, max.div_ceil(self.cluster_bytes))? {
                    let at = v.len();
                    v.resize(at + self.cluster_bytes as usize, 0);
                    self.read_raw(&mut v[at..], self.cluster_offset(n))?;
                }
                Ok(v)
            }
        }
    }

    /// Find `name` (case-insensitively, long or 8.3 name) in a directory.
    fn find(&self, dir: Option<u32>, name: &str) -> Result<Option<Entry>, String> {
        let bytes = self.dir_bytes(dir)?;
        let mut lfn: Vec<(u8, u8, [u16; 13])> = Vec::new();
        for e in bytes.chunks_exact(32) {
            match e[0] {
                0 => break,
                0xE5 => {
                    lfn.clear();
                    continue;
                }
                _ => {}
            }
            if e[11] & 0x3F == 0x0F {
                let mut units = [0u16; 13];
                for (i, o) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                    .into_iter()
                    .enumerate()
                {
                    units[i] = u16::from_le_bytes([e[o], e[o + 1]]);
                }
                if e[0] & 0x40 != 0 {
                    lfn.clear();
                }
                lfn.push((e[0] & 0x1F, e[13], units));
                continue;
            }
            let long = std::mem::take(&mut lfn);
            if e[11] & 0x08 != 0 {
                continue; // volume label
            }
            let short = short_name(&e[..11]);
            let sum = e[..11]
                .iter()
                .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b));
            let long_name = if !long.is_empty()
                && long.iter().all(|(_, c, _)| *c == sum)
                && long
                    .iter()
                    .rev()
                    .map(|(o, _, _)| *o)
                    .eq(1..=long.len() as u8)
            {
                let units: Vec<u16> = long
                    .iter()
                    .rev()
                    .flat_map(|(_, _, u)| u.iter().copied())
                    .take_while(|&u| u != 0)
                    .collect();
                Some(String::from_utf16_lossy(&units))
            } else {
                None
            };
            let matches = short.eq_ignore_ascii_case(name)
                || long_name.is_some_and(|l| l.to_lowercase() == name.to_lowercase());
            if matches {
                let hi = if self.kind == Kind::Fat32 {
                    le16(e, 20)
                } else {
                    0
                };
                return Ok(Some(Entry {
                    first_cluster: ((hi << 16) | le16(e, 26)) as u32,
                    size: le32(e, 28),
                    dir: e[11] & 0x10 != 0,
                }));
            }
        }
        Ok(None)
    }

    fn root(&self) -> Option<u32> {
        match self.kind {
            Kind::Fat32 => Some(self.root_cluster),
            _ => None,
        }
    }

    /// Look up an absolute path.
    pub fn lookup(&self, path: &str) -> Result<Entry, String> {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some((last, dirs)) = names.split_last() else {
            return Err("empty path".into());
        };
        let mut dir = self.root();
        for d in dirs {
            let e = self
                .find(dir, d)?
                .ok_or_else(|| format!("no directory {d}"))?;
            if !e.dir {
                return Err(format!("{d} is not a directory"));
            }
            // ".." to the root is cluster 0.
            dir = (e.first_cluster != 0)
                .then_some(e.first_cluster)
                .or(self.root());
        }
        let e = self.find(dir, last)?.ok_or_else(|| format!("no {last}"))?;
        if e.dir {
            return Err(format!("{last} is a directory"));
        }
        Ok(e)
    }

    /// A file's bytes, at most `max`.
    pub fn read(&self, e: &Entry, max: u64) -> Result<Vec<u8>, String> {
        let want = e.size.min(max);
        if want == 0 {
            return Ok(Vec::new());
        }
        let n = want.div_ceil(self.cluster_bytes);
        let chain = self.chain(e.first_cluster, n)?;
        if (chain.len() as u64) < n {
            return Err(format!(
                "its cluster chain ends after {} clusters, short of its {} bytes",
                chain.len(),
                e.size
            ));
        }
        let mut v = vec![0u8; want as usize];
        for (i, c) in chain.iter().enumerate() {
            let at = i as u64 * self.cluster_bytes;
            let len = (want - at).min(self.cluster_bytes) as usize;
            let off = self.cluster_offset(*c);
            self.read_raw(&mut v[at as usize..at as usize + len], off)?;
        }
        Ok(v)
    }
}

fn short_name(n: &[u8]) -> String {
    let mut base: Vec<u8> = n[..8].to_vec();
    if base[0] == 0x05 {
        base[0] = 0xE5;
    }
    let base = String::from_utf8_lossy(&base).trim_end().to_string();
    let ext = String::from_utf8_lossy(&n[8..11]).trim_end().to_string();
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}
