//! The serial console (and the firmware's debug port) as QEMU writes them
//! to files: read as they grow, watched for the landmark and the
//! `--fail-on` texts, streamed cleaned to a [`BootWatcher`], and cut to a
//! printable tail for the record.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Told about a boot while it runs: the CLI's `--console` and countdown.
/// Every method has a default that does nothing.
pub trait BootWatcher: Send + Sync + std::fmt::Debug {
    /// New serial output, cleaned for a terminal by [`ConsoleFilter`] (a
    /// hostile guest's escape sequences never reach it).
    fn serial(&self, _text: &str) {}
    /// Still waiting for the landmark, with `left` of the timeout to go;
    /// called at every poll (about 20 times a second).
    fn waiting(&self, _left: Duration) {}
    /// The wait is over (landmark, failure, exit or timeout).
    fn done(&self) {}
}

/// A `--fail-on` text found in the serial output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailOnMatch {
    /// The text that matched.
    pub pattern: String,
    /// The serial line it is in, cleaned as in [`log_tail`].
    pub line: String,
}

/// Where a terminal escape sequence is in a stream being cleaned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain text.
    #[default]
    Text,
    /// After ESC.
    Esc,
    /// In a CSI sequence (ESC `[` params final-byte).
    Csi,
    /// After ESC and a character-set designator (`(`, `)`, ...): one more byte.
    Designate,
    /// In a string sequence (OSC, DCS, ...), ended by BEL or ESC `\`.
    Str,
    /// ESC inside a string sequence.
    StrEsc,
}

/// Cleans a byte stream for a terminal, chunk by chunk: escape sequences
/// (CSI, OSC and the like, as in ECMA-48) and control characters other
/// than newline and tab are dropped, C1 controls and invalid UTF-8
/// removed or replaced. A sequence split between chunks is handled.
#[derive(Debug, Default)]
pub struct ConsoleFilter {
    state: Escape,
    utf8: Vec<u8>,
}

/// ESC, which starts every escape sequence.
const ESC: u8 = 0x1b;
/// BEL, which ends an OSC string.
const BEL: u8 = 0x07;

impl ConsoleFilter {
    /// The printable text in the next chunk of the stream.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        for &b in bytes {
            self.state = match self.state {
                Escape::Text => {
                    self.text_byte(b, &mut out);
                    if b == ESC {
                        Escape::Esc
                    } else {
                        Escape::Text
                    }
                }
                Escape::Esc => match b {
                    b'[' => Escape::Csi,
                    b']' | b'P' | b'X' | b'^' | b'_' => Escape::Str,
                    b'(' | b')' | b'*' | b'+' | b'#' | b'%' => Escape::Designate,
                    _ => Escape::Text,
                },
                Escape::Csi if (0x40..=0x7e).contains(&b) => Escape::Text,
                Escape::Csi => Escape::Csi,
                Escape::Designate => Escape::Text,
                Escape::Str if b == BEL => Escape::Text,
                Escape::Str if b == ESC => Escape::StrEsc,
                Escape::Str => Escape::Str,
                Escape::StrEsc if b == b'\\' => Escape::Text,
                Escape::StrEsc => Escape::Str,
            };
        }
        out
    }

    /// One byte of plain text: kept, dropped, or part of a UTF-8 sequence.
    fn text_byte(&mut self, b: u8, out: &mut String) {
        if b < 0x80 {
            if !self.utf8.is_empty() {
                self.utf8.clear();
                out.push(char::REPLACEMENT_CHARACTER);
            }
            if b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) {
                out.push(char::from(b));
            }
            return;
        }
        self.utf8.push(b);
        match std::str::from_utf8(&self.utf8) {
            Ok(s) => {
                let c = s.chars().next().expect("a valid non-empty UTF-8 sequence");
                if !c.is_control() {
                    out.push(c);
                }
                self.utf8.clear();
            }
            Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                out.push(char::REPLACEMENT_CHARACTER);
                self.utf8.clear();
            }
            Err(_) => {}
        }
    }
}

/// Printable last `lines` lines of a serial log: escape sequences and
/// control characters other than newlines removed ([`ConsoleFilter`]),
/// blank lines dropped.
pub fn log_tail(bytes: &[u8], lines: usize) -> String {
    let clean = ConsoleFilter::default().push(bytes);
    let all: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay[from.min(hay.len())..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The line of `log` around byte `at`, cleaned.
fn line_at(log: &[u8], at: usize) -> String {
    let start = log[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let end = log[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(log.len(), |p| p + at);
    log_tail(&log[start..end], 1)
}

/// The most of a serial or firmware log read and kept (16 MiB): a boot
/// prints a few KiB; a guest that floods its console is stopped there
/// rather than filling memory and the disk (issue 13: bounded).
pub const LOG_BYTES_MAX: u64 = 16 << 20;

/// A log file QEMU is writing, read as it grows.
pub(crate) struct GrowingLog {
    path: PathBuf,
    /// Every byte read so far.
    bytes: Vec<u8>,
}

impl GrowingLog {
    pub(crate) fn new(path: &Path) -> Self {
        GrowingLog {
            path: path.to_path_buf(),
            bytes: Vec::new(),
        }
    }

    /// Read what was added since the last call, up to [`LOG_BYTES_MAX`]
    /// in all; how many bytes that was. A file not there yet (QEMU
    /// starting) has added nothing.
    pub(crate) fn read_more(&mut self) -> usize {
        let Ok(mut f) = File::open(&self.path) else {
            return 0;
        };
        let before = self.bytes.len();
        let room = LOG_BYTES_MAX.saturating_sub(before as u64);
        if room > 0 && f.seek(SeekFrom::Start(before as u64)).is_ok() {
            let _ = f.take(room).read_to_end(&mut self.bytes);
        }
        self.bytes.len() - before
    }

    /// Whether the log reached [`LOG_BYTES_MAX`]: the rest is not read.
    pub(crate) fn full(&self) -> bool {
        self.bytes.len() as u64 >= LOG_BYTES_MAX
    }

    /// Every byte read so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The serial console of a running boot, watched for the landmark and the
/// `--fail-on` texts.
pub(crate) struct SerialWatch<'a> {
    log: GrowingLog,
    filter: ConsoleFilter,
    landmark: &'a str,
    fail_on: &'a [String],
    watcher: Option<&'a dyn BootWatcher>,
    landmark_at: Option<usize>,
    fail: Option<FailOnMatch>,
}

impl<'a> SerialWatch<'a> {
    pub(crate) fn new(
        path: &Path,
        landmark: &'a str,
        fail_on: &'a [String],
        watcher: Option<&'a dyn BootWatcher>,
    ) -> Self {
        SerialWatch {
            log: GrowingLog::new(path),
            filter: ConsoleFilter::default(),
            landmark,
            fail_on,
            watcher,
            landmark_at: None,
            fail: None,
        }
    }

    /// Read new output, stream it to the watcher, and look for the
    /// landmark and the `--fail-on` texts in it (a text split between two
    /// reads is found too).
    pub(crate) fn poll(&mut self) {
        let before = self.log.bytes().len();
        if self.log.read_more() == 0 {
            return;
        }
        let bytes = self.log.bytes();
        if let Some(w) = self.watcher {
            let text = self.filter.push(&bytes[before..]);
            if !text.is_empty() {
                w.serial(&text);
            }
        }
        let overlap = |needle: &str| before.saturating_sub(needle.len().saturating_sub(1));
        if self.landmark_at.is_none() {
            self.landmark_at = find(bytes, self.landmark.as_bytes(), overlap(self.landmark));
        }
        if self.fail.is_none() {
            let first = self
                .fail_on
                .iter()
                .filter_map(|p| Some((find(bytes, p.as_bytes(), overlap(p))?, p)))
                .min_by_key(|(at, _)| *at);
            self.fail = first.map(|(at, p)| FailOnMatch {
                pattern: p.clone(),
                line: line_at(bytes, at),
            });
        }
    }

    /// Whether the serial log reached [`LOG_BYTES_MAX`].
    pub(crate) fn full(&self) -> bool {
        self.log.full()
    }

    /// Whether the landmark has been seen, before any `--fail-on` text.
    pub(crate) fn reached(&self) -> bool {
        self.landmark_at.is_some() && self.fail.is_none()
    }

    /// The first `--fail-on` text seen, if any.
    pub(crate) fn failed(&self) -> Option<&FailOnMatch> {
        self.fail.as_ref()
    }

    /// Every byte read so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.log.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_strips_escapes_and_keeps_last_lines() {
        let log = b"\x1b[2J\x1b[0;0Hone\r\n\ntwo\x1b(B\r\nthree\r\n";
        assert_eq!(log_tail(log, 2), "two\nthree");
        assert_eq!(log_tail(b"", 5), "");
    }

    #[test]
    fn filter_drops_sequences_split_across_chunks() {
        let mut f = ConsoleFilter::default();
        let mut out = f.push(b"a\x1b[3");
        out += &f.push(b"1mb\x1b]0;title\x07c\x1b]2;t\x1b");
        out += &f.push(b"\\d\r\n\x07\x1bPq\x1b\\e");
        assert_eq!(out, "abcd\ne");
    }

    #[test]
    fn filter_keeps_utf8_and_drops_c1_controls() {
        let mut f = ConsoleFilter::default();
        let snow = "\u{2603}".as_bytes();
        let mut out = f.push(&snow[..1]);
        out += &f.push(&snow[1..]);
        // U+009B is CSI as a C1 control; 0xff is never UTF-8.
        out += &f.push("x\u{9b}y".as_bytes());
        out += &f.push(b"\xffz\xc3");
        out += &f.push(b"!");
        assert_eq!(out, "\u{2603}xy\u{fffd}z\u{fffd}!");
    }

    #[test]
    fn a_flooded_log_is_read_only_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serial.log");
        let f = File::create(&p).unwrap();
        f.set_len(LOG_BYTES_MAX + 4096).unwrap();
        let mut log = GrowingLog::new(&p);
        assert_eq!(log.read_more() as u64, LOG_BYTES_MAX);
        assert!(log.full());
        f.set_len(LOG_BYTES_MAX * 2).unwrap();
        assert_eq!(log.read_more(), 0);
    }

    #[test]
    fn matches_are_found_across_reads_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serial.log");
        let fail_on = ["panic".to_string(), "oops".to_string()];
        let mut w = SerialWatch::new(&p, "ready", &fail_on, None);
        w.poll();
        std::fs::write(&p, b"boot\r\nkernel pa").unwrap();
        w.poll();
        assert!(w.failed().is_none());
        std::fs::write(&p, b"boot\r\nkernel panic: oops\r\nready\n").unwrap();
        w.poll();
        let m = w.failed().unwrap();
        assert_eq!(m.pattern, "panic");
        assert_eq!(m.line, "kernel panic: oops");
        assert!(!w.reached(), "a fail-on text wins over the landmark");
    }
}
