//! The VHDX log (spec 2.3): finding the active sequence of entries and
//! replaying it in memory over the file ([`Overlay`]), as qemu's
//! `vhdx_log.c` does on open, but without ever writing the file.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use super::reader::fatal;
use super::wire::*;
use crate::error::{Error, Result};
use crate::layout::Guid;
use crate::verify::Finding;

/// Largest log accepted for replay (qemu and Hyper-V write 1 MiB logs);
/// the whole log is read into memory.
pub const MAX_LOG_LENGTH: u64 = 64 << 20;

/// One write the log makes to the file, applied in order over its bytes.
#[derive(Debug, Clone)]
enum LogWrite {
    /// 4 KiB of data at a file offset.
    Data(u64, Box<[u8]>),
    /// A zeroed range (offset, length).
    Zero(u64, u64),
}

/// The file as seen after the log's writes: the bytes on disk with the
/// replayed writes laid over them, and zeros past the end of the file up
/// to the length the log says the file has.
#[derive(Debug)]
pub struct Overlay {
    file: File,
    file_len: u64,
    len: u64,
    writes: Vec<LogWrite>,
}

impl Overlay {
    pub(super) fn new(file: File, file_len: u64) -> Overlay {
        Overlay {
            file,
            file_len,
            len: file_len,
            writes: Vec::new(),
        }
    }

    /// Length of the file after replay.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the log changed anything.
    pub fn is_replayed(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Read `buf.len()` bytes at `offset` of the replayed file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at file offset {offset} runs past the end of the {}-byte file",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        let phys = end.min(self.file_len).saturating_sub(offset) as usize;
        if phys > 0 {
            crate::io::read_exact_at(&self.file, &mut buf[..phys], offset)?;
        }
        buf[phys..].fill(0);
        for w in &self.writes {
            let (wo, wl) = match w {
                LogWrite::Data(o, d) => (*o, d.len() as u64),
                LogWrite::Zero(o, l) => (*o, *l),
            };
            let (from, to) = (offset.max(wo), end.min(wo.saturating_add(wl)));
            if from >= to {
                continue;
            }
            let dst = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match w {
                LogWrite::Data(_, d) => {
                    dst.copy_from_slice(&d[(from - wo) as usize..(to - wo) as usize])
                }
                LogWrite::Zero(..) => dst.fill(0),
            }
        }
        Ok(())
    }

    /// Lay the writes of log entry `e` over the file, growing it to the
    /// length the entry says the file has and to the end of each write.
    fn apply(&mut self, e: LogEntry) {
        self.len = self.len.max(e.last_file_offset);
        for w in e.writes {
            let end = match &w {
                LogWrite::Data(o, d) => o.saturating_add(d.len() as u64),
                LogWrite::Zero(o, l) => o.saturating_add(*l),
            };
            self.len = self.len.max(end);
            self.writes.push(w);
        }
    }

    pub(super) fn read_vec(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.read_at(&mut b, offset)
            .map_err(|e| Error::io(format!("reading the {what}"), e).at(offset))?;
        Ok(b)
    }
}

/// A validated log entry.
#[derive(Debug)]
struct LogEntry {
    /// Position in the log.
    pos: u64,
    length: u64,
    tail: u64,
    sequence: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
    writes: Vec<LogWrite>,
}

/// Validate the log entry at `pos` of the in-memory log (spec 2.3.1;
/// qemu `vhdx_validate_log_entry`, `vhdx_log_desc_is_valid`).
fn log_entry_at(log: &[u8], pos: u64, guid: &Guid) -> Option<LogEntry> {
    let l = log.len() as u64;
    let ring = |p: u64, n: u64| -> Vec<u8> {
        let mut v = Vec::with_capacity(n as usize);
        let mut p = p % l;
        let mut left = n;
        while left > 0 {
            let k = left.min(l - p);
            v.extend_from_slice(&log[p as usize..(p + k) as usize]);
            left -= k;
            p = (p + k) % l;
        }
        v
    };
    let hdr = ring(pos, LOG_ENTRY_HEADER_SIZE as u64);
    if hdr[0..4] != LOG_ENTRY_SIGNATURE {
        return None;
    }
    let length = le32(&hdr, 8) as u64;
    let sequence = le64(&hdr, 16);
    let count = le32(&hdr, 24) as u64;
    if length == 0 || length % LOG_SECTOR_SIZE != 0 || length > l || sequence == 0 {
        return None;
    }
    if Guid::from_bytes(&hdr[32..48]) != *guid {
        return None;
    }
    let desc_sectors = (count + 2).div_ceil(128);
    if desc_sectors * LOG_SECTOR_SIZE > length {
        return None;
    }
    let entry = ring(pos, length);
    if checksum(&entry, 4) != le32(&entry, 4) {
        return None;
    }
    let mut writes = Vec::new();
    let mut data_at = desc_sectors * LOG_SECTOR_SIZE;
    for d in 0..count as usize {
        let o = LOG_ENTRY_HEADER_SIZE + LOG_DESCRIPTOR_SIZE * d;
        let desc = &entry[o..o + LOG_DESCRIPTOR_SIZE];
        let file_offset = le64(desc, 16);
        if le64(desc, 24) != sequence || file_offset % LOG_SECTOR_SIZE != 0 {
            return None;
        }
        if desc[0..4] == LOG_ZERO_DESC_SIGNATURE {
            let n = le64(desc, 8);
            if n % LOG_SECTOR_SIZE != 0 {
                return None;
            }
            writes.push(LogWrite::Zero(file_offset, n));
        } else if desc[0..4] == LOG_DATA_DESC_SIGNATURE {
            if data_at + LOG_SECTOR_SIZE > length {
                return None;
            }
            let s = &entry[data_at as usize..(data_at + LOG_SECTOR_SIZE) as usize];
            let seq = ((le32(s, 4) as u64) << 32) | le32(s, 4092) as u64;
            if s[0..4] != LOG_DATA_SIGNATURE || seq != sequence {
                return None;
            }
            // The sector's first 8 and last 4 bytes live in the descriptor.
            let mut data = vec![0u8; LOG_SECTOR_SIZE as usize];
            data[..8].copy_from_slice(&desc[8..16]);
            data[8..4092].copy_from_slice(&s[8..4092]);
            data[4092..].copy_from_slice(&desc[4..8]);
            writes.push(LogWrite::Data(file_offset, data.into_boxed_slice()));
            data_at += LOG_SECTOR_SIZE;
        } else {
            return None;
        }
    }
    Some(LogEntry {
        pos,
        length,
        tail: le32(&hdr, 12) as u64,
        sequence,
        flushed_file_offset: le64(&hdr, 48),
        last_file_offset: le64(&hdr, 56),
        writes,
    })
}

/// Find the active log sequence and lay its writes over the file, in
/// memory. Returns the number of entries replayed.
///
/// The active sequence (spec 2.3.3) is the chain of valid entries, each
/// following the previous one in the ring with the next sequence number,
/// that ends with the highest sequence number; it is replayed from the
/// entry its head's tail field names (from its start when the tail is not
/// in the chain), oldest first.
pub(super) fn replay_log(
    overlay: &mut Overlay,
    h: &VhdxHeader,
    ho: u64,
    findings: &mut Vec<Finding>,
) -> Result<usize> {
    let (lo, ll) = (h.log_offset, h.log_length as u64);
    check_log_bounds(
        overlay,
        lo,
        ll,
        ho + header_off::LOG_OFFSET as u64,
        findings,
    )?;
    let log = overlay.read_vec(lo, ll as usize, "log")?;
    let mut cache: HashMap<u64, Option<LogEntry>> = HashMap::new();
    let Some((chain, best_seq)) = active_chain(&log, &h.log_guid, &mut cache) else {
        // A log GUID without valid entries: nothing to replay.
        return Ok(0);
    };
    let head = cache[chain.last().expect("a chain has entries")]
        .as_ref()
        .expect("chain entries are valid");
    let from = chain.iter().position(|&p| p == head.tail).unwrap_or(0);
    if head.flushed_file_offset > overlay.file_len {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log says the file was flushed up to {} bytes, but it has only {} (truncated?)",
                head.flushed_file_offset, overlay.file_len
            ))
            .at(lo + head.pos + 48),
        ));
    }
    let mut n = 0;
    for p in &chain[from..] {
        let e = cache
            .get_mut(p)
            .and_then(Option::take)
            .expect("chain entries are valid");
        overlay.apply(e);
        n += 1;
    }
    findings.push(Finding::at(
        lo + chain[from],
        format!(
            "the log (GUID {}) was never replayed into the file: its active entries (sequence {} to {}) were applied in memory",
            h.log_guid,
            best_seq - (n as u64 - 1),
            best_seq
        ),
    ));
    Ok(n)
}

/// Refuse a log that must be replayed (`ll` bytes at file offset `lo`,
/// as the header field at `at` says) but cannot be: misaligned, larger
/// than [`MAX_LOG_LENGTH`], or past the end of the file.
fn check_log_bounds(
    overlay: &Overlay,
    lo: u64,
    ll: u64,
    at: u64,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    if lo < HEADER_SECTION_END || lo % MIB != 0 || ll % MIB != 0 {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log ({ll} bytes at offset {lo}) must be replayed but is not 1 MiB-aligned after the header section"
            ))
            .at(at),
        ));
    }
    if ll > MAX_LOG_LENGTH {
        return Err(fatal(
            findings,
            Error::unsupported(format!(
                "the log of {ll} bytes must be replayed but is larger than the {MAX_LOG_LENGTH} bytes supported"
            ))
            .at(at),
        ));
    }
    if lo.saturating_add(ll) > overlay.file_len {
        return Err(fatal(
            findings,
            Error::corrupt(format!(
                "the log ({ll} bytes at offset {lo}) must be replayed but runs past the end of the {}-byte file",
                overlay.file_len
            ))
            .at(at),
        ));
    }
    Ok(())
}

/// The active sequence of the in-memory `log`: the positions of its
/// entries, oldest first, and the highest sequence number; `None` when no
/// entry is valid. Every entry validated is left in `cache` by position.
fn active_chain(
    log: &[u8],
    guid: &Guid,
    cache: &mut HashMap<u64, Option<LogEntry>>,
) -> Option<(Vec<u64>, u64)> {
    let ll = log.len() as u64;
    let mut best: Option<Vec<u64>> = None;
    let mut best_seq = 0;
    let mut in_chain = vec![false; (ll / LOG_SECTOR_SIZE) as usize];
    for start in (0..ll).step_by(LOG_SECTOR_SIZE as usize) {
        if in_chain[(start / LOG_SECTOR_SIZE) as usize] {
            continue;
        }
        let mut chain = Vec::new();
        let mut pos = start;
        let mut covered = 0;
        let mut prev_seq = None;
        loop {
            let e = cache
                .entry(pos)
                .or_insert_with(|| log_entry_at(log, pos, guid));
            let Some(e) = e else { break };
            if prev_seq.is_some_and(|s: u64| e.sequence != s.wrapping_add(1)) {
                break;
            }
            covered += e.length;
            if covered > ll {
                break;
            }
            prev_seq = Some(e.sequence);
            chain.push(pos);
            pos = (pos + e.length) % ll;
        }
        if let (Some(seq), false) = (prev_seq, chain.is_empty()) {
            for &p in &chain[1..] {
                in_chain[(p / LOG_SECTOR_SIZE) as usize] = true;
            }
            if best.is_none() || seq > best_seq {
                best_seq = seq;
                best = Some(chain);
            }
        }
    }
    best.map(|chain| (chain, best_seq))
}
