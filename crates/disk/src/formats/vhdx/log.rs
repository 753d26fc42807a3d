//! The VHDX log (spec 2.3): finding the active sequence of entries and
//! replaying it in memory over the file ([`Overlay`]), as qemu's
//! `vhdx_log.c` does on open, but without ever writing the file.

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
    /// The tail field: where the oldest entry still active starts.
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
    let hdr = ring(log, pos, LOG_ENTRY_HEADER_SIZE as u64);
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
    let entry = ring(log, pos, length);
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
/// that ends with the highest sequence number, found by one pass over the
/// log ([`search`], after qemu's `vhdx_log_search`); it is replayed from
/// the entry its head's tail field names (from its start when the tail is
/// not in the chain), oldest first. (qemu replays the whole chain, and
/// only when it may write the file: it refuses to open a file with an
/// active log read-only, as `qemu-img convert` opens it.)
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
    let found = search(&log, &h.log_guid)
        .map_err(|(pos, m)| fatal(findings, Error::corrupt(m).at(lo + pos)))?;
    let Some(chain) = found.active else {
        // A log GUID without a valid entry: nothing to replay.
        return Ok(0);
    };
    let mut entries = Vec::with_capacity(chain.positions.len());
    for &pos in &chain.positions {
        let e = log_entry_at(&log, pos, &h.log_guid).ok_or_else(|| {
            fatal(
                findings,
                Error::corrupt(
                    "a log entry of the active sequence has data sectors that do not match its descriptors",
                )
                .at(lo + pos),
            )
        })?;
        entries.push(e);
    }
    let head = entries.last().expect("a chain has entries");
    let from = chain
        .positions
        .iter()
        .position(|&p| p == head.tail)
        .unwrap_or(0);
    let (first, last) = (entries[from].sequence, head.sequence);
    for (e, &pos) in entries[from..].iter().zip(&chain.positions[from..]) {
        // qemu vhdx_log_flush: a flushed file offset past the end of the
        // file means a truncated file.
        if e.flushed_file_offset > overlay.file_len {
            return Err(fatal(
                findings,
                Error::corrupt(format!(
                    "the log says the file was flushed up to {} bytes, but it has only {} (truncated?)",
                    e.flushed_file_offset, overlay.file_len
                ))
                .at(lo + pos + 48),
            ));
        }
    }
    let n = entries.len() - from;
    for e in entries.into_iter().skip(from) {
        overlay.apply(e);
    }
    findings.push(Finding::at(
        lo + chain.positions[from],
        format!(
            "the log (GUID {}) was never replayed into the file: its active entries (sequence {first} to {last}) were applied in memory",
            h.log_guid
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

/// A chain of log entries the search found: their positions in the log,
/// oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    /// Position of each entry in the log.
    pub positions: Vec<u64>,
    /// Sequence number of its last entry.
    pub last_sequence: u64,
}

/// What [`search`] found, and the work it did.
#[derive(Debug)]
pub(crate) struct Search {
    /// The active sequence, if any.
    pub active: Option<Chain>,
    /// Log sectors read (each read once per visit), for tests of the
    /// search's cost.
    pub sectors_read: u64,
}

/// How one probe of qemu's `vhdx_validate_log_entry` ended.
struct Probe {
    /// The entry's sequence number when it is valid.
    valid: Option<u64>,
    /// Bytes the read position moved: one sector past an invalid header,
    /// or every sector the entry's checksum covered.
    advance: u64,
}

/// Find the active sequence of the in-memory `log` in one pass, as
/// qemu's `vhdx_log_search` scans it (block/vhdx-log.c): from position 0,
/// probe the entry at the read position; a header that is not valid (or
/// not numbered one more than the chain's last entry) moves it one
/// sector, an entry with a valid header moves it past every sector its
/// checksum covers, valid or not. A valid entry starts a chain that goes
/// on while the next entry is valid and numbered one more; the chain whose
/// last entry has the highest sequence number wins (the first found on a
/// tie). The search ends when the read position wraps past the end of the
/// log. Cost: every sector is read at most twice (once by the scan, once
/// more by a chain that wraps around), so time is linear in the log
/// length, whatever the entries claim.
///
/// Where the spec's chain rule and qemu's differ, the spec's is kept:
/// qemu accepts any sequence number for a chain's second entry and picks
/// the chain with the highest *first* sequence number; both only matter
/// for a log qemu refuses to open read-only anyway.
///
/// An entry whose header is valid but one of whose descriptors is not
/// makes qemu refuse the file (`vhdx_log_read_desc` returns -EINVAL
/// through the search): so does this, with the entry's position and what
/// is wrong.
pub(crate) fn search(log: &[u8], guid: &Guid) -> std::result::Result<Search, (u64, String)> {
    let ll = log.len() as u64;
    let mut out = Search {
        active: None,
        sectors_read: 0,
    };
    let mut abs = 0u64;
    while abs < ll {
        let tail = abs;
        let p = probe(log, abs % ll, 0, guid, &mut out.sectors_read)?;
        abs += p.advance;
        let Some(mut last_sequence) = p.valid else {
            continue;
        };
        let mut positions = vec![tail % ll];
        // A chain that went round the whole log stops there.
        while abs - tail < ll {
            let at = abs % ll;
            let p = probe(log, at, last_sequence, guid, &mut out.sectors_read)?;
            abs += p.advance;
            let Some(s) = p.valid else { break };
            positions.push(at);
            last_sequence = s;
        }
        if out
            .active
            .as_ref()
            .is_none_or(|a| last_sequence > a.last_sequence)
        {
            out.active = Some(Chain {
                positions,
                last_sequence,
            });
        }
    }
    Ok(out)
}

/// qemu's `vhdx_validate_log_entry` on the entry at `pos` of `log`, after
/// an entry numbered `prev` (0: any number, for a chain's first entry): header checks
/// (`vhdx_log_hdr_is_valid`), descriptor checks (`vhdx_log_desc_is_valid`,
/// whose failure refuses the file), then the checksum over the descriptor
/// sectors and the rest of the entry.
fn probe(
    log: &[u8],
    pos: u64,
    prev: u64,
    guid: &Guid,
    sectors_read: &mut u64,
) -> std::result::Result<Probe, (u64, String)> {
    let ll = log.len() as u64;
    let invalid = Probe {
        valid: None,
        advance: LOG_SECTOR_SIZE,
    };
    let hdr = &log[pos as usize..pos as usize + LOG_ENTRY_HEADER_SIZE];
    let length = le32(hdr, 8) as u64;
    let sequence = le64(hdr, 16);
    let count = le32(hdr, 24) as u64;
    if hdr[0..4] != LOG_ENTRY_SIGNATURE
        || length > ll
        || length % LOG_SECTOR_SIZE != 0
        || sequence == 0
        || Guid::from_bytes(&hdr[32..48]) != *guid
        || count * LOG_DESCRIPTOR_SIZE as u64 > length
        || (prev > 0 && sequence != prev.wrapping_add(1))
    {
        return Ok(invalid);
    }
    let desc_sectors = (count + 2).div_ceil(128);
    let desc = ring(log, pos, desc_sectors * LOG_SECTOR_SIZE);
    *sectors_read += desc_sectors;
    for d in 0..count as usize {
        let o = LOG_ENTRY_HEADER_SIZE + LOG_DESCRIPTOR_SIZE * d;
        if let Some(m) = descriptor_problem(&desc[o..o + LOG_DESCRIPTOR_SIZE], sequence) {
            return Err((
                pos,
                format!("log entry (sequence {sequence}), descriptor {d}: {m}"),
            ));
        }
    }
    let sectors = desc_sectors.max(length / LOG_SECTOR_SIZE);
    let entry = ring(log, pos, sectors * LOG_SECTOR_SIZE);
    *sectors_read += sectors - desc_sectors;
    let valid = (checksum(&entry, 4) == le32(hdr, 4)).then_some(sequence);
    Ok(Probe {
        valid,
        advance: sectors * LOG_SECTOR_SIZE,
    })
}

/// What is wrong with a log descriptor of the entry numbered `sequence`,
/// by qemu's `vhdx_log_desc_is_valid`.
fn descriptor_problem(desc: &[u8], sequence: u64) -> Option<String> {
    let (seq, file_offset) = (le64(desc, 24), le64(desc, 16));
    if seq != sequence {
        Some(format!("sequence number {seq}, expected {sequence}"))
    } else if file_offset % LOG_SECTOR_SIZE != 0 {
        Some(format!("file offset {file_offset} is not 4 KiB-aligned"))
    } else if desc[0..4] == LOG_ZERO_DESC_SIGNATURE {
        let n = le64(desc, 8);
        (n % LOG_SECTOR_SIZE != 0).then(|| format!("zero length {n} is not a multiple of 4 KiB"))
    } else if desc[0..4] == LOG_DATA_DESC_SIGNATURE {
        None
    } else {
        Some(format!(
            "signature {:?} is neither \"desc\" nor \"zero\"",
            String::from_utf8_lossy(&desc[0..4])
        ))
    }
}

/// `n` bytes of the circular `log` from position `p`.
fn ring(log: &[u8], p: u64, n: u64) -> Vec<u8> {
    let l = log.len() as u64;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: Guid = Guid([0x42; 16]);

    /// A log entry header at `b[0..64]`: `length` bytes, sequence `seq`,
    /// `count` descriptors, the log GUID, and the checksum of the entry's
    /// `length` bytes of `b` when `sound` (a fixed wrong-looking value
    /// otherwise, without the cost of computing one).
    fn put_entry(b: &mut [u8], length: u32, seq: u64, count: u32, sound: bool) {
        b[0..4].copy_from_slice(&LOG_ENTRY_SIGNATURE);
        b[8..12].copy_from_slice(&length.to_le_bytes());
        b[16..24].copy_from_slice(&seq.to_le_bytes());
        b[24..28].copy_from_slice(&count.to_le_bytes());
        b[32..48].copy_from_slice(&GUID.0);
        let crc = if sound {
            checksum(&b[..length as usize], 4)
        } else {
            0xdead_beef
        };
        b[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn a_log_full_of_near_valid_entries_is_searched_in_one_pass() {
        // Issue 13: every sector starts an entry whose header is valid and
        // which claims the whole log, with a wrong checksum. A search that
        // tries each sector as a start checksums the whole log at each of
        // them (8 MiB: 2048 × 8 MiB; it took 60 s); qemu's scan skips past
        // an entry whose checksum it computed.
        let ll = 8usize << 20;
        let sectors = (ll / 4096) as u64;
        let log = near_valid_log(ll);
        let r = search(&log, &GUID).unwrap();
        assert!(r.active.is_none());
        assert!(
            r.sectors_read <= 2 * sectors,
            "{} sectors read for a log of {sectors}",
            r.sectors_read
        );
    }

    /// A log of `ll` bytes whose every sector starts an entry with a
    /// valid header claiming the rest of the log (every other one: the
    /// whole log), each with a wrong checksum.
    fn near_valid_log(ll: usize) -> Vec<u8> {
        let mut log = vec![0u8; ll];
        for s in (0..ll).step_by(4096).rev() {
            let len = (ll - s) as u32;
            put_entry(&mut log[s..], len.max(4096), 1, 0, false);
        }
        for s in (4096..ll).step_by(8192) {
            log[s + 8..s + 12].copy_from_slice(&(ll as u32).to_le_bytes());
        }
        log
    }

    #[test]
    fn the_log_search_is_linear_in_the_log_length() {
        // Work counted in sectors checksummed, at N and 4N.
        let work = |ll: usize| search(&near_valid_log(ll), &GUID).unwrap().sectors_read;
        let (n, n4) = (work(1 << 20), work(4 << 20));
        assert!(n4 <= 4 * n, "{n4} sectors read for 4 MiB, {n} for 1 MiB");
    }

    #[test]
    fn the_search_finds_the_chain_with_the_highest_sequence() {
        let mut log = vec![0u8; 1 << 20];
        // Chain 5, 6 at sectors 0 and 1; a lone 3 at sector 10; a broken
        // entry at sector 20.
        put_entry(&mut log[0..], 4096, 5, 0, true);
        put_entry(&mut log[4096..], 4096, 6, 0, true);
        put_entry(&mut log[40960..], 4096, 3, 0, true);
        put_entry(&mut log[81920..], 4096, 9, 0, false);
        let r = search(&log, &GUID).unwrap();
        assert_eq!(
            r.active,
            Some(Chain {
                positions: vec![0, 4096],
                last_sequence: 6
            })
        );
        assert!(r.sectors_read <= 256 + 4, "{}", r.sectors_read);
    }

    #[test]
    fn an_entry_with_a_bad_descriptor_is_refused_as_qemu_does() {
        let mut log = vec![0u8; 1 << 20];
        // One descriptor whose signature is neither "desc" nor "zero".
        log[64..68].copy_from_slice(b"junk");
        log[64 + 24..64 + 32].copy_from_slice(&7u64.to_le_bytes());
        put_entry(&mut log[8192..], 4096, 7, 0, true);
        put_entry(&mut log[0..], 4096, 7, 1, true);
        let (pos, m) = search(&log, &GUID).unwrap_err();
        assert_eq!(pos, 0);
        assert_eq!(
            m,
            "log entry (sequence 7), descriptor 0: signature \"junk\" is neither \"desc\" nor \"zero\""
        );
    }
}
