//! Partition tables: the (protective) MBR and GPT.
//!
//! [`read_table`] tells which table a disk carries and decodes it;
//! [`gpt::verify`] checks a GPT in depth, [`gpt::grow`] moves its backup to
//! a new disk end exactly as `sgdisk -e` does (but never over data the GPT
//! does not own), [`gpt::plan_growth`] chooses a whole GiB or MiB whose
//! backup GPT lands clear of such data, and [`gpt::create`] builds a new
//! one.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::disk::VirtualDisk;
use crate::error::{Error, Result};

pub mod gpt;
pub mod mbr;

/// A GUID as stored on disk (UEFI spec, appendix A): the first three
/// fields little-endian, the last eight bytes as they are. Displayed in the
/// canonical upper-case `8-4-4-4-12` form, as `sgdisk` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID (an unused partition entry's type).
    pub const ZERO: Guid = Guid([0; 16]);

    /// The GUID whose on-disk bytes are `b`.
    pub fn from_bytes(b: &[u8]) -> Guid {
        let mut g = [0u8; 16];
        g.copy_from_slice(&b[..16]);
        Guid(g)
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// A GUID with RFC 4122 version-4 and variant bits set from 16 bytes
    /// of (pseudo-random or hashed) input, laid out like one made by
    /// `uuidgen` and stored mixed-endian.
    pub fn v4_from(bytes: [u8; 16]) -> Guid {
        // Canonical (big-endian) order first, then store mixed-endian.
        let mut c = bytes;
        c[6] = (c[6] & 0x0f) | 0x40;
        c[8] = (c[8] & 0x3f) | 0x80;
        Guid::from_canonical(c)
    }

    /// The GUID whose canonical (text-order, big-endian) bytes are `c`.
    pub fn from_canonical(c: [u8; 16]) -> Guid {
        let mut g = c;
        g[0..4].reverse();
        g[4..6].reverse();
        g[6..8].reverse();
        Guid(g)
    }

    /// The canonical (text-order) bytes.
    pub fn canonical(&self) -> [u8; 16] {
        let mut c = self.0;
        c[0..4].reverse();
        c[4..6].reverse();
        c[6..8].reverse();
        c
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.canonical();
        let h = hex::encode_upper(c);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Guid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Guid> {
        let bad =
            || Error::invalid_input(format!("{s:?} is not a GUID (want 8-4-4-4-12 hex digits)"));
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != 5 || parts.iter().map(|p| p.len()).ne([8, 4, 4, 4, 12]) {
            return Err(bad());
        }
        let mut c = [0u8; 16];
        hex::decode_to_slice(parts.concat(), &mut c).map_err(|_| bad())?;
        Ok(Guid::from_canonical(c))
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The partition table a disk carries.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PartitionTable {
    /// No MBR signature and no GPT.
    None,
    /// A classic MBR without GPT.
    Mbr(mbr::Mbr),
    /// A GPT (with its protective or hybrid MBR).
    Gpt(gpt::GptLayout),
}

/// Decode the partition table of `disk`.
///
/// A GPT is taken from the primary header when it is sound (header and
/// array CRCs), else from the backup at the last LBA. A protective MBR with
/// no readable GPT behind it is an error; so is a disk whose size is not a
/// multiple of 512 bytes and that carries a GPT.
pub fn read_table(disk: &dyn VirtualDisk) -> Result<PartitionTable> {
    gpt::read_table(disk)
}
