//! GUID partition table (UEFI spec 2.10 §5.3): decode, verify, grow and
//! create.
//!
//! ```text
//! LBA 0        protective MBR (one 0xEE entry: start 1, size min(N-1, 2^32-1))
//! LBA 1        primary header (92 bytes, LE; MyLBA 1, AlternateLBA N-1)
//! LBA 2..      primary partition array (NumberOfPartitionEntries x 128 bytes)
//! FirstUsable  ... partitions ...  LastUsable
//! LastUsable+1 backup partition array (same bytes as the primary array)
//! LBA N-1      backup header (MyLBA N-1, AlternateLBA 1)
//! ```
//!
//! Header CRC: CRC-32 (zlib polynomial) over HeaderSize bytes with the CRC
//! field zeroed; array CRC: over entries x entry-size bytes. [`crc32`] is
//! the one CRC function, used by the reader, the verifier, [`grow`] and
//! [`create`].
//!
//! [`grow`] reproduces `sgdisk -e` (GPT fdisk 1.0.9, `GPTData::
//! MoveSecondHeaderToEnd` and `SaveGPTData`) byte for byte; the rules it
//! follows were read from gdisk's source and confirmed by experiment (see
//! its doc). Oracles: `sgdisk -v`, `sgdisk -e`, util-linux and gpt-rs
//! corpus images.

use serde::{Deserialize, Serialize};

use crate::disk::{PatchedDisk, VirtualDisk, SECTOR_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::layout::mbr::{self, Mbr, MbrKind};
use crate::layout::{Guid, PartitionTable};
use crate::verify::Finding;

/// "EFI PART", the header signature.
pub const HEADER_SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0, the only one defined.
pub const REVISION_1_0: u32 = 0x0001_0000;
/// HeaderSize written by every tool (the header's defined fields).
pub const HEADER_SIZE: u32 = 92;
/// Size of one partition entry written by every tool.
pub const ENTRY_SIZE: u32 = 128;
/// Number of partition entries gdisk and the spec's minimum array give
/// (16 KiB, 32 sectors).
pub const DEFAULT_ENTRIES: u32 = 128;
/// LBA of the primary header.
pub const PRIMARY_HEADER_LBA: u64 = 1;
/// Largest partition array accepted (bytes), to bound allocations from
/// header fields: 4 MiB = 32768 entries of 128 bytes.
pub const MAX_ARRAY_BYTES: u64 = 4 << 20;
/// Length of the name field of an entry, in UTF-16 code units.
pub const NAME_UNITS: usize = 36;

// Header field offsets (UEFI spec table 5-5).
const H_REVISION: usize = 8;
const H_HEADER_SIZE: usize = 12;
const H_HEADER_CRC: usize = 16;
const H_MY_LBA: usize = 24;
const H_ALTERNATE_LBA: usize = 32;
const H_FIRST_USABLE: usize = 40;
const H_LAST_USABLE: usize = 48;
const H_DISK_GUID: usize = 56;
const H_ENTRIES_LBA: usize = 72;
const H_NUM_ENTRIES: usize = 80;
const H_ENTRY_SIZE: usize = 84;
const H_ENTRIES_CRC: usize = 88;

/// The CRC-32 used for GPT headers and arrays (reflected 0xEDB88320,
/// init and final xor 0xFFFFFFFF: zlib's).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A header sector exactly as stored (the 92 defined bytes and the rest of
/// the sector), with typed accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct GptHeaderRaw(pub [u8; 512]);

impl std::fmt::Debug for GptHeaderRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GptHeaderRaw")
            .field(&hex::encode(&self.0[..92]))
            .finish()
    }
}

impl GptHeaderRaw {
    fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.0[o..o + 4].try_into().expect("4 bytes"))
    }
    fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.0[o..o + 8].try_into().expect("8 bytes"))
    }
    fn set_u32(&mut self, o: usize, v: u32) {
        self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn set_u64(&mut self, o: usize, v: u64) {
        self.0[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// Whether the sector starts with "EFI PART".
    pub fn has_signature(&self) -> bool {
        self.0[..8] == HEADER_SIGNATURE
    }
    /// The CRC the header should carry, or `None` when HeaderSize is
    /// outside 92..=512 (the CRC cannot be computed).
    pub fn computed_crc(&self) -> Option<u32> {
        let size = self.u32_at(H_HEADER_SIZE) as usize;
        if !(HEADER_SIZE as usize..=512).contains(&size) {
            return None;
        }
        let mut copy = self.0;
        copy[H_HEADER_CRC..H_HEADER_CRC + 4].fill(0);
        Some(crc32(&copy[..size]))
    }
    /// Recompute and store the header CRC (HeaderSize must be valid).
    pub fn update_crc(&mut self) {
        if let Some(c) = self.computed_crc() {
            self.set_u32(H_HEADER_CRC, c);
        }
    }
    /// Decode the fields.
    pub fn header(&self) -> GptHeader {
        GptHeader {
            revision: self.u32_at(H_REVISION),
            header_size: self.u32_at(H_HEADER_SIZE),
            header_crc: self.u32_at(H_HEADER_CRC),
            my_lba: self.u64_at(H_MY_LBA),
            alternate_lba: self.u64_at(H_ALTERNATE_LBA),
            first_usable_lba: self.u64_at(H_FIRST_USABLE),
            last_usable_lba: self.u64_at(H_LAST_USABLE),
            disk_guid: Guid::from_bytes(&self.0[H_DISK_GUID..H_DISK_GUID + 16]),
            entries_lba: self.u64_at(H_ENTRIES_LBA),
            num_entries: self.u32_at(H_NUM_ENTRIES),
            entry_size: self.u32_at(H_ENTRY_SIZE),
            entries_crc: self.u32_at(H_ENTRIES_CRC),
        }
    }
}

/// The decoded fields of a GPT header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GptHeader {
    /// Revision (0x00010000).
    pub revision: u32,
    /// HeaderSize (92).
    pub header_size: u32,
    /// HeaderCRC32 as stored.
    pub header_crc: u32,
    /// MyLBA.
    pub my_lba: u64,
    /// AlternateLBA.
    pub alternate_lba: u64,
    /// FirstUsableLBA.
    pub first_usable_lba: u64,
    /// LastUsableLBA (inclusive).
    pub last_usable_lba: u64,
    /// DiskGUID.
    pub disk_guid: Guid,
    /// PartitionEntryLBA.
    pub entries_lba: u64,
    /// NumberOfPartitionEntries.
    pub num_entries: u32,
    /// SizeOfPartitionEntry.
    pub entry_size: u32,
    /// PartitionEntryArrayCRC32 as stored.
    pub entries_crc: u32,
}

impl GptHeader {
    /// Bytes of the partition array (entries x entry size).
    pub fn array_bytes(&self) -> u64 {
        self.num_entries as u64 * self.entry_size as u64
    }
    /// Sectors the partition array occupies.
    pub fn array_sectors(&self) -> u64 {
        self.array_bytes().div_ceil(SECTOR_SIZE)
    }
}

/// GPT type of the EFI system partition (UEFI 2.10 §5.3.3, "Defined GPT
/// Partition Entry - Partition Type GUIDs").
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type of the BIOS boot partition (GRUB's core.img, Limine 10.x's
/// stage 2): GRUB's GUID, whose 16 bytes on disk spell "Hah!IdontNeedEFI"
/// (GRUB's include/grub/gpt_partition.h, GRUB_GPT_PARTITION_TYPE_BIOS_BOOT).
pub const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";

/// A friendly name for common partition type GUIDs.
pub fn type_name(t: &Guid) -> Option<&'static str> {
    Some(match t.to_string().as_str() {
        ESP_TYPE => "EFI system partition",
        BIOS_BOOT_TYPE => "BIOS boot partition",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux x86-64 root (/)",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        _ => return None,
    })
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptPartition {
    /// Entry index, 1-based (as `sgdisk` numbers them).
    pub index: u32,
    /// Partition type GUID.
    pub type_guid: Guid,
    /// A friendly name for the type, when it is a common one.
    pub type_name: Option<&'static str>,
    /// Unique partition GUID.
    pub unique_guid: Guid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits (0 required, 1 no block I/O, 2 legacy BIOS bootable).
    pub attributes: u64,
    /// Name (UTF-16LE on disk, up to 36 code units, cut at the first NUL).
    pub name: String,
}

impl GptPartition {
    /// Decode a 128-byte (or longer) entry; `None` when unused (zero type).
    pub fn parse(index: u32, e: &[u8]) -> Option<GptPartition> {
        let type_guid = Guid::from_bytes(&e[0..16]);
        if type_guid.is_zero() {
            return None;
        }
        let units: Vec<u16> = e[56..56 + 2 * NAME_UNITS]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        Some(GptPartition {
            index,
            type_guid,
            type_name: type_name(&type_guid),
            unique_guid: Guid::from_bytes(&e[16..32]),
            first_lba: u64::from_le_bytes(e[32..40].try_into().expect("8 bytes")),
            last_lba: u64::from_le_bytes(e[40..48].try_into().expect("8 bytes")),
            attributes: u64::from_le_bytes(e[48..56].try_into().expect("8 bytes")),
            name: String::from_utf16_lossy(&units),
        })
    }

    /// Encode as a 128-byte entry. Names longer than 36 UTF-16 code units
    /// are cut.
    pub fn to_bytes(&self) -> [u8; ENTRY_SIZE as usize] {
        let mut e = [0u8; ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&self.type_guid.0);
        e[16..32].copy_from_slice(&self.unique_guid.0);
        e[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        e[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        for (i, u) in self.name.encode_utf16().take(NAME_UNITS).enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        e
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        (self
            .last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1))
        .saturating_mul(SECTOR_SIZE)
    }
}

/// A decoded GPT, for `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct GptLayout {
    /// Which copy was decoded: "primary" or "backup".
    pub source: &'static str,
    /// Disk GUID.
    pub disk_guid: Guid,
    /// LBA of the primary header (1).
    pub primary_header_lba: u64,
    /// LBA of the backup header (AlternateLBA of the primary).
    pub backup_header_lba: u64,
    /// First usable LBA.
    pub first_usable_lba: u64,
    /// Last usable LBA (inclusive).
    pub last_usable_lba: u64,
    /// LBA of the decoded copy's partition array.
    pub entries_lba: u64,
    /// Number of partition entries.
    pub num_entries: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// The kind of MBR in LBA 0.
    pub mbr: MbrKind,
    /// Used entries, in index order.
    pub partitions: Vec<GptPartition>,
}

/// One copy (primary or backup) of the GPT as read from a disk.
#[derive(Debug, Clone)]
struct GptCopy {
    lba: u64,
    raw: GptHeaderRaw,
    hdr: GptHeader,
    header_ok: bool,
    /// The array bytes, when they could be read.
    array: Option<Vec<u8>>,
    array_ok: bool,
}

impl GptCopy {
    fn sound(&self) -> bool {
        self.header_ok && self.array_ok
    }
    fn partitions(&self) -> Vec<(u64, GptPartition)> {
        let Some(a) = &self.array else {
            return Vec::new();
        };
        let es = self.hdr.entry_size as usize;
        a.chunks_exact(es)
            .enumerate()
            .filter_map(|(i, e)| {
                let off = self.hdr.entries_lba * SECTOR_SIZE + (i * es) as u64;
                GptPartition::parse(i as u32 + 1, e).map(|p| (off, p))
            })
            .collect()
    }
}

/// Everything read from a disk's partition structures.
struct Inspection {
    mbr: Mbr,
    mbr_sector: [u8; 512],
    primary: Option<GptCopy>,
    backup: Option<GptCopy>,
    /// Whether any sign of a GPT was seen (0xEE entry or a signature).
    gpt_present: bool,
    /// Problems with the headers and arrays (CRCs, locations, agreement):
    /// a GPT with any of these is corrupt.
    table: Vec<Finding>,
    /// Other problems (protective MBR, partition ranges).
    other: Vec<Finding>,
}

fn read_sector(disk: &dyn VirtualDisk, lba: u64) -> Result<[u8; 512]> {
    let mut s = [0u8; 512];
    disk.read_at(&mut s, lba * SECTOR_SIZE)
        .ctx(&format!("reading LBA {lba}"))
        .map_err(|e| e.at(lba * SECTOR_SIZE))?;
    Ok(s)
}

/// Read the header at `lba` and its array, reporting what is wrong with
/// them. `None` when there is no header there at all.
fn read_copy(
    disk: &dyn VirtualDisk,
    sectors: u64,
    lba: u64,
    which: &str,
    f: &mut Vec<Finding>,
) -> Result<Option<GptCopy>> {
    let base = lba * SECTOR_SIZE;
    let raw = GptHeaderRaw(read_sector(disk, lba)?);
    if !raw.has_signature() {
        f.push(Finding::at(
            base,
            format!("{which} GPT header missing: no \"EFI PART\" signature at LBA {lba}"),
        ));
        return Ok(None);
    }
    let hdr = raw.header();
    let header_ok = match raw.computed_crc() {
        None => {
            f.push(Finding::at(
                base + H_HEADER_SIZE as u64,
                format!(
                    "{which} header size {} is outside 92..=512",
                    hdr.header_size
                ),
            ));
            false
        }
        Some(c) if c != hdr.header_crc => {
            f.push(Finding::at(
                base + H_HEADER_CRC as u64,
                format!(
                    "{which} header CRC mismatch (expected {c:08x}, found {:08x})",
                    hdr.header_crc
                ),
            ));
            false
        }
        Some(_) => true,
    };
    let mut copy = GptCopy {
        lba,
        raw,
        hdr,
        header_ok,
        array: None,
        array_ok: false,
    };
    if !header_ok {
        return Ok(Some(copy));
    }
    if hdr.revision != REVISION_1_0 {
        f.push(Finding::at(
            base + H_REVISION as u64,
            format!(
                "{which} header revision is {:08x}, expected 00010000",
                hdr.revision
            ),
        ));
    }
    if hdr.my_lba != lba {
        f.push(Finding::at(
            base + H_MY_LBA as u64,
            format!(
                "{which} header MyLBA is {}, but it is at LBA {lba}",
                hdr.my_lba
            ),
        ));
    }
    let es = hdr.entry_size;
    if es < ENTRY_SIZE || !(es / ENTRY_SIZE).is_power_of_two() || es % ENTRY_SIZE != 0 {
        f.push(Finding::at(
            base + H_ENTRY_SIZE as u64,
            format!("{which} header partition entry size is {es}, not 128 x 2^n"),
        ));
        return Ok(Some(copy));
    }
    if hdr.array_bytes() > MAX_ARRAY_BYTES {
        f.push(Finding::at(
            base + H_NUM_ENTRIES as u64,
            format!(
                "{which} partition array of {} entries x {es} bytes is larger than {MAX_ARRAY_BYTES} bytes",
                hdr.num_entries
            ),
        ));
        return Ok(Some(copy));
    }
    let end = hdr.entries_lba.checked_add(hdr.array_sectors());
    if hdr.entries_lba < 2 || end.is_none_or(|e| e > sectors) {
        f.push(Finding::at(
            base + H_ENTRIES_LBA as u64,
            format!(
                "{which} partition array at LBA {} ({} sectors) lies outside the {sectors}-sector disk",
                hdr.entries_lba,
                hdr.array_sectors()
            ),
        ));
        return Ok(Some(copy));
    }
    let mut array = vec![0u8; hdr.array_bytes() as usize];
    disk.read_at(&mut array, hdr.entries_lba * SECTOR_SIZE)
        .ctx("reading a GPT partition array")
        .map_err(|e| e.at(hdr.entries_lba * SECTOR_SIZE))?;
    let c = crc32(&array);
    copy.array_ok = c == hdr.entries_crc;
    if !copy.array_ok {
        f.push(Finding::at(
            hdr.entries_lba * SECTOR_SIZE,
            format!(
                "{which} partition array CRC mismatch (expected {:08x}, found {c:08x})",
                hdr.entries_crc
            ),
        ));
    }
    copy.array = Some(array);
    Ok(Some(copy))
}

fn inspect(disk: &dyn VirtualDisk) -> Result<Inspection> {
    inspect_at(disk, None)
}

/// Inspect, looking for the backup header at `backup_at` instead of the
/// last LBA (used by [`grow`] for a disk already enlarged without moving
/// its backup, which `sgdisk -e` also accepts).
fn inspect_at(disk: &dyn VirtualDisk, backup_at: Option<u64>) -> Result<Inspection> {
    let (mbr, mbr_sector) = Mbr::read(disk)?;
    let size = disk.size();
    let sectors = size / SECTOR_SIZE;
    let mut ins = Inspection {
        mbr,
        mbr_sector,
        primary: None,
        backup: None,
        gpt_present: false,
        table: Vec::new(),
        other: Vec::new(),
    };
    let sig_at = |lba: u64| -> Result<bool> {
        Ok(lba < sectors && lba > 0 && read_sector(disk, lba)?[..8] == HEADER_SIGNATURE)
    };
    let has_ee = ins.mbr.protective_entry().is_some();
    ins.gpt_present =
        has_ee || sig_at(PRIMARY_HEADER_LBA)? || (sectors > 2 && sig_at(sectors - 1)?);
    if !ins.gpt_present {
        return Ok(ins);
    }
    if size % SECTOR_SIZE != 0 {
        ins.table.push(Finding::whole(format!(
            "disk size {size} is not a multiple of 512 bytes, so the GPT has no last LBA"
        )));
    }
    if sectors < 3 {
        ins.table.push(Finding::whole(format!(
            "disk of {sectors} sectors is too small for a GPT"
        )));
        return Ok(ins);
    }
    let last = backup_at
        .filter(|&b| b > PRIMARY_HEADER_LBA && b < sectors)
        .unwrap_or(sectors - 1);
    let t = &mut ins.table;
    ins.primary = read_copy(disk, sectors, PRIMARY_HEADER_LBA, "primary", t)?;
    ins.backup = read_copy(disk, sectors, last, "backup", t)?;

    // Locations: each header points at the other; the arrays lie outside
    // the usable range.
    for c in [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .filter(|c| c.header_ok)
    {
        let (which, other) = if c.lba == PRIMARY_HEADER_LBA {
            ("primary", last)
        } else {
            ("backup", 1)
        };
        let h = &c.hdr;
        let base = c.lba * SECTOR_SIZE;
        if h.alternate_lba != other {
            let msg = if which == "primary" {
                format!(
                    "primary header AlternateLBA is {}, but the disk's last LBA is {last}",
                    h.alternate_lba
                )
            } else {
                format!(
                    "backup header AlternateLBA is {}, expected 1",
                    h.alternate_lba
                )
            };
            t.push(Finding::at(base + H_ALTERNATE_LBA as u64, msg));
        }
        let arr_end = h.entries_lba.saturating_add(h.array_sectors());
        if h.first_usable_lba > h.last_usable_lba.saturating_add(1) || h.last_usable_lba >= last {
            t.push(Finding::at(
                base + H_FIRST_USABLE as u64,
                format!(
                    "{which} header usable range {}..={} is not inside the disk (last LBA {last})",
                    h.first_usable_lba, h.last_usable_lba
                ),
            ));
        } else if which == "primary" && (h.first_usable_lba < arr_end || h.first_usable_lba < 2) {
            t.push(Finding::at(
                base + H_FIRST_USABLE as u64,
                format!(
                    "primary partition array (LBA {}..{arr_end}) overlaps the usable range starting at LBA {}",
                    h.entries_lba, h.first_usable_lba
                ),
            ));
        } else if which == "backup" && (h.entries_lba <= h.last_usable_lba || arr_end > last) {
            t.push(Finding::at(
                base + H_ENTRIES_LBA as u64,
                format!(
                    "backup partition array (LBA {}..{arr_end}) is not between the usable range (last LBA {}) and the backup header (LBA {last})",
                    h.entries_lba, h.last_usable_lba
                ),
            ));
        }
    }

    // Agreement between the copies (only fields whose CRC checked out).
    if let (Some(p), Some(b)) = (&ins.primary, &ins.backup) {
        if p.header_ok && b.header_ok {
            let (ph, bh) = (&p.hdr, &b.hdr);
            let bb = b.lba * SECTOR_SIZE;
            let mut differ = |field: usize, what: &str, pv: String, bv: String| {
                if pv != bv {
                    t.push(Finding::at(
                        bb + field as u64,
                        format!("primary and backup headers disagree on the {what} (primary {pv}, backup {bv})"),
                    ));
                }
            };
            differ(
                H_DISK_GUID,
                "disk GUID",
                ph.disk_guid.to_string(),
                bh.disk_guid.to_string(),
            );
            differ(
                H_FIRST_USABLE,
                "first usable LBA",
                ph.first_usable_lba.to_string(),
                bh.first_usable_lba.to_string(),
            );
            differ(
                H_LAST_USABLE,
                "last usable LBA",
                ph.last_usable_lba.to_string(),
                bh.last_usable_lba.to_string(),
            );
            differ(
                H_NUM_ENTRIES,
                "number of partition entries",
                ph.num_entries.to_string(),
                bh.num_entries.to_string(),
            );
            differ(
                H_ENTRY_SIZE,
                "partition entry size",
                ph.entry_size.to_string(),
                bh.entry_size.to_string(),
            );
            if p.array_ok && b.array_ok && p.array != b.array {
                t.push(Finding::at(
                    bh.entries_lba * SECTOR_SIZE,
                    format!(
                        "primary and backup partition arrays differ (array CRC primary {:08x}, backup {:08x})",
                        ph.entries_crc, bh.entries_crc
                    ),
                ));
            }
        }
    }

    // Protective MBR.
    let o = &mut ins.other;
    let expected = mbr::protective_entry(sectors).sectors as u64;
    match ins.mbr.kind {
        MbrKind::Invalid => o.push(Finding::at(
            mbr::SIGNATURE_OFFSET as u64,
            "MBR has no 55AA signature: a GPT disk needs a protective MBR",
        )),
        MbrKind::Classic => o.push(Finding::at(
            mbr::ENTRIES_OFFSET as u64,
            "MBR has no protective 0xEE partition, so the GPT is not protected",
        )),
        MbrKind::Protective | MbrKind::Hybrid => {
            let e = ins
                .mbr
                .protective_entry()
                .copied()
                .expect("protective or hybrid MBRs have an 0xEE entry");
            let eo = (mbr::ENTRIES_OFFSET + (e.index as usize - 1) * mbr::ENTRY_LEN) as u64;
            if e.start_lba != 1 {
                o.push(Finding::at(
                    eo + 8,
                    format!(
                        "protective MBR partition starts at LBA {}, expected 1",
                        e.start_lba
                    ),
                ));
            }
            if ins.mbr.kind == MbrKind::Protective && e.sectors as u64 != expected {
                o.push(Finding::at(
                    eo + 12,
                    format!(
                        "protective MBR partition size is {} sectors, expected {expected} (min(disk sectors - 1, 0xFFFFFFFF))",
                        e.sectors
                    ),
                ));
            } else if ins.mbr.kind == MbrKind::Hybrid
                && e.start_lba as u64 + e.sectors as u64 > sectors
            {
                o.push(Finding::at(
                    eo + 12,
                    format!(
                        "hybrid MBR 0xEE partition runs past the end of the disk ({} sectors)",
                        e.sectors
                    ),
                ));
            }
        }
    }

    // Partitions of the sound copy.
    if let Some(c) = [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .find(|c| c.sound())
    {
        let h = c.hdr;
        let mut parts = c.partitions();
        for (off, p) in &parts {
            if p.first_lba > p.last_lba {
                o.push(Finding::at(
                    off + 32,
                    format!(
                        "partition {} starts at LBA {} after its end LBA {}",
                        p.index, p.first_lba, p.last_lba
                    ),
                ));
            } else if p.first_lba < h.first_usable_lba || p.last_lba > h.last_usable_lba {
                o.push(Finding::at(
                    off + 32,
                    format!(
                        "partition {} (LBA {}..={}) lies outside the usable range {}..={}",
                        p.index, p.first_lba, p.last_lba, h.first_usable_lba, h.last_usable_lba
                    ),
                ));
            }
        }
        parts.sort_by_key(|(_, p)| (p.first_lba, p.index));
        for w in parts.windows(2) {
            let ((_, a), (off, b)) = (&w[0], &w[1]);
            if b.first_lba <= a.last_lba && a.first_lba <= a.last_lba {
                o.push(Finding::at(
                    off + 32,
                    format!(
                        "partitions {} (LBA {}..={}) and {} (LBA {}..={}) overlap",
                        a.index, a.first_lba, a.last_lba, b.index, b.first_lba, b.last_lba
                    ),
                ));
            }
        }
    }
    Ok(ins)
}

/// Check a disk's GPT in both copies; every problem is a finding (offsets
/// are byte offsets in the disk). A disk with neither a 0xEE MBR entry nor
/// an "EFI PART" signature at LBA 1 or at the last LBA (MBR-only or no
/// table) gives no findings. If the GPT cannot be read at all (I/O error),
/// that is reported as one finding.
pub fn verify(disk: &dyn VirtualDisk) -> Vec<Finding> {
    match inspect(disk) {
        Ok(mut ins) => {
            ins.table.append(&mut ins.other);
            ins.table
        }
        Err(e) => vec![Finding {
            offset: e.offset(),
            message: format!("GPT could not be read: {}", e.message()),
            layer: crate::verify::Layer::Disk,
        }],
    }
}

fn corrupt(ins: &Inspection) -> Option<String> {
    if ins.table.is_empty() {
        return None;
    }
    let msgs: Vec<&str> = ins.table.iter().map(|f| f.message.as_str()).collect();
    Some(msgs.join("; "))
}

pub(crate) fn read_table(disk: &dyn VirtualDisk) -> Result<PartitionTable> {
    let ins = inspect(disk)?;
    if !ins.gpt_present {
        return Ok(match ins.mbr.kind {
            MbrKind::Classic => PartitionTable::Mbr(ins.mbr),
            _ => PartitionTable::None,
        });
    }
    let Some(c) = [&ins.primary, &ins.backup]
        .into_iter()
        .flatten()
        .find(|c| c.sound())
    else {
        return Err(Error::corrupt(format!(
            "GPT is corrupt: {}",
            corrupt(&ins).unwrap_or_else(|| "no sound header".into())
        )));
    };
    let h = c.hdr;
    let backup_header_lba = if c.lba == PRIMARY_HEADER_LBA {
        h.alternate_lba
    } else {
        c.lba
    };
    Ok(PartitionTable::Gpt(GptLayout {
        source: if c.lba == PRIMARY_HEADER_LBA {
            "primary"
        } else {
            "backup"
        },
        disk_guid: h.disk_guid,
        primary_header_lba: PRIMARY_HEADER_LBA,
        backup_header_lba,
        first_usable_lba: h.first_usable_lba,
        last_usable_lba: h.last_usable_lba,
        entries_lba: h.entries_lba,
        num_entries: h.num_entries,
        entry_size: h.entry_size,
        mbr: ins.mbr.kind,
        partitions: c.partitions().into_iter().map(|(_, p)| p).collect(),
    }))
}

/// Grow `disk` to `new_size` bytes the way `truncate -s NEW` followed by
/// `sgdisk -e` does, byte for byte, without copying the disk, unless that
/// would change bytes the GPT does not own (see below): then it refuses.
///
/// What changes (GPT fdisk 1.0.9 `MoveSecondHeaderToEnd` + `SaveGPTData`,
/// confirmed by experiment against `sgdisk -e`):
/// - new LastUsableLBA = N - FirstUsableLBA (N = new size in sectors), in
///   both headers. With the usual 34 this is N-34, but gdisk keeps the
///   *header's* first-usable value, whatever the array size or LBA;
/// - the backup array goes to LastUsableLBA + 1 and is an exact copy of the
///   primary array bytes (NumberOfPartitionEntries x SizeOfPartitionEntry,
///   zero-padded to a sector, as gdisk's `DiskIO::Write` does); the
///   header's entry count and size are kept;
/// - the backup header goes to LBA N-1: the old backup header sector with
///   MyLBA, LastUsableLBA, PartitionEntryLBA and the CRC updated;
/// - the primary header: AlternateLBA, LastUsableLBA, CRC;
/// - a *protective* MBR whose last-usable LBA changes is rebuilt as
///   `MakeProtectiveMBR` does: boot code kept, disk signature and the two
///   bytes after it zeroed, one 0xEE entry (status 0, start CHS 00 02 00,
///   end CHS of the last LBA with 255 heads x 63 sectors or FF FF FF past
///   CHS range, start 1, size N-1, or 0xFFFFFFFF once N >= 0xFFFFFFFF),
///   the other three entries zeroed ([`mbr::protective_mbr`]);
/// - a *hybrid* MBR is left as it is: gdisk only runs `OptimizeEESize` on
///   it, which leaves the layouts `sgdisk -h` makes (0xEE before or after
///   the hybrid partitions) unchanged; checked against `sgdisk -e` for
///   those two layouts only;
/// - an MBR without `55 AA` is replaced by a protective one (boot code
///   kept), as gdisk does on load; a classic MBR (no 0xEE entry) in front
///   of a GPT is refused, as `sgdisk -e` refuses it ("Invalid partition
///   data!");
/// - nothing else: the old backup header and array stay where they were
///   (Limine keeps BIOS stage 2 there).
///
/// One deliberate difference: gdisk also rewrites the primary array, so
/// when the array does not end on a sector boundary it zeroes the rest of
/// its last sector. `grow` leaves the primary array alone (its entries do
/// not change): the result is the same unless those bytes are non-zero,
/// and then they are kept, because the GPT does not own them.
///
/// **Bytes the GPT does not own are never changed.** The old GPT owns the
/// MBR's partition table area (bytes 440..512 of LBA 0, rebuilt as above),
/// its header sectors and its arrays' entry bytes (as the headers say).
/// Any other non-zero byte the new backup array or header would change
/// (say Limine's BIOS stage 2 just before the old backup header, when the
/// disk grows by fewer sectors than the backup GPT spans) makes `grow`
/// refuse, naming the LBAs; [`grow_to_multiple`] picks a size whose
/// backup GPT lands clear of them, and [`foreign_sectors`] lists them.
///
/// A disk without GPT (MBR-only or blank) is just extended with zeros. A
/// GPT whose headers or arrays are damaged or disagree is refused. A disk
/// that was already enlarged without moving its backup is accepted when
/// the backup sits, sound, at the primary's AlternateLBA (gdisk reads it
/// there too).
pub fn grow<D: VirtualDisk>(disk: D, new_size: u64) -> Result<PatchedDisk<D>> {
    let writes = grow_writes(&disk, new_size)?;
    let foreign = writes.foreign(&disk)?;
    if !foreign.is_empty() {
        return Err(Error::invalid_input(format!(
            "a backup GPT at {new_size} bytes would cover {}, which {} data the GPT does not own; refusing to grow the disk to that size",
            lba_ranges_text(&foreign),
            if is_one_lba(&foreign) { "holds" } else { "hold" }
        )));
    }
    let mut out = PatchedDisk::new(disk, new_size);
    for (at, bytes) in writes.patches {
        out.patch(at, bytes);
    }
    Ok(out)
}

/// An inclusive range of LBAs, `[first, last]` (as JSON: a two-number
/// array).
pub type LbaRange = [u64; 2];

/// Whether `ranges` is one single LBA (for "LBA 7, which holds" rather
/// than "LBAs 7-9, which hold").
pub fn is_one_lba(ranges: &[LbaRange]) -> bool {
    matches!(ranges, [[a, b]] if a == b)
}

/// Inclusive LBA ranges for messages: `LBA 7`, `LBAs 7-9`, `LBAs 3, 7-9`.
pub fn lba_ranges_text(ranges: &[LbaRange]) -> String {
    let one = is_one_lba(ranges);
    let list = ranges
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} {list}", if one { "LBA" } else { "LBAs" })
}

/// What growing a disk to a size writes, and what its old GPT owns.
struct GrowWrites {
    /// (offset, bytes), sorted and non-overlapping.
    patches: Vec<(u64, Vec<u8>)>,
    /// Byte ranges of the old disk its GPT owns.
    owned: Vec<std::ops::Range<u64>>,
    /// First LBA of the new backup array (`None` without a GPT).
    backup_lba: Option<u64>,
}

impl GrowWrites {
    /// LBAs (coalesced inclusive ranges) where a patch changes a non-zero
    /// byte of `old` that its GPT does not own.
    fn foreign(&self, old: &dyn VirtualDisk) -> Result<Vec<LbaRange>> {
        changed_foreign_lbas(old, &self.owned, &self.patches)
    }
}

/// The LBAs (coalesced inclusive ranges) where `patches` change a byte of
/// `old` that is non-zero and outside `owned`. Patches past the end of
/// `old` cover zeros and change nothing it holds.
fn changed_foreign_lbas(
    old: &dyn VirtualDisk,
    owned: &[std::ops::Range<u64>],
    patches: &[(u64, Vec<u8>)],
) -> Result<Vec<LbaRange>> {
    let size = old.size();
    let mut lbas: Vec<u64> = Vec::new();
    for (at, bytes) in patches {
        if *at >= size {
            continue;
        }
        let n = (size - at).min(bytes.len() as u64) as usize;
        let mut was = vec![0u8; n];
        old.read_at(&mut was, *at)
            .ctx("reading the sectors a backup GPT would cover")
            .map_err(|e| e.at(*at))?;
        for (i, (&w, &b)) in was.iter().zip(bytes).enumerate() {
            let off = at + i as u64;
            if w != 0 && w != b && !owned.iter().any(|r| r.contains(&off)) {
                let lba = off / SECTOR_SIZE;
                if lbas.last() != Some(&lba) {
                    lbas.push(lba);
                }
            }
        }
    }
    Ok(coalesce_lbas(lbas))
}

/// The byte ranges of a disk its (sound) GPT owns: the MBR's partition
/// table area (bytes 440..512: disk signature, entries, `55 AA`; the boot
/// code before it is not the GPT's), both header sectors and both arrays'
/// entry bytes, as the headers locate and size them.
fn owned_ranges(p: &GptCopy, b: &GptCopy) -> Vec<std::ops::Range<u64>> {
    let array = |c: &GptCopy| {
        let at = c.hdr.entries_lba * SECTOR_SIZE;
        at..at + c.hdr.array_bytes()
    };
    let header = |c: &GptCopy| c.lba * SECTOR_SIZE..(c.lba + 1) * SECTOR_SIZE;
    vec![
        mbr::BOOT_CODE_LEN as u64..SECTOR_SIZE,
        header(p),
        array(p),
        header(b),
        array(b),
    ]
}

/// Read and check the GPT of `disk` for growing: the sound primary and
/// backup copies (the backup read where the primary says it is when the
/// disk was enlarged before without moving it, as gdisk does), with the
/// inspection. `None` when the disk has no GPT.
fn growable_gpt(disk: &dyn VirtualDisk) -> Result<Option<Inspection>> {
    let size = disk.size();
    let ins = inspect(disk)?;
    if !ins.gpt_present {
        return Ok(None);
    }
    let moved = ins
        .primary
        .as_ref()
        .filter(|p| p.sound())
        .map(|p| p.hdr.alternate_lba);
    let ins = match moved {
        Some(alt) if alt < (size / SECTOR_SIZE).saturating_sub(1) && corrupt(&ins).is_some() => {
            let again = inspect_at(disk, Some(alt))?;
            if corrupt(&again).is_none() {
                again
            } else {
                ins
            }
        }
        _ => ins,
    };
    if let Some(why) = corrupt(&ins) {
        return Err(Error::corrupt(format!(
            "GPT is corrupt: {why}; refusing to grow it"
        )));
    }
    if ins.primary.is_none() || ins.backup.is_none() {
        return Err(Error::corrupt(
            "GPT is corrupt: a header is missing; refusing to grow it",
        ));
    }
    Ok(Some(ins))
}

/// The writes that grow `disk` to `new_size` (see [`grow`]), and what its
/// GPT owns.
fn grow_writes(disk: &dyn VirtualDisk, new_size: u64) -> Result<GrowWrites> {
    let size = disk.size();
    if new_size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "new disk size {new_size} is not a multiple of 512 bytes"
        )));
    }
    if new_size < size {
        return Err(Error::invalid_input(format!(
            "new disk size {new_size} is smaller than the disk ({size} bytes); disks are never shrunk"
        )));
    }
    let Some(ins) = growable_gpt(disk)? else {
        return Ok(GrowWrites {
            patches: Vec::new(),
            owned: Vec::new(),
            backup_lba: None,
        });
    };
    let (Some(p), Some(b)) = (&ins.primary, &ins.backup) else {
        unreachable!("growable_gpt returns both copies");
    };
    let n = new_size / SECTOR_SIZE;
    let ph = p.hdr;
    let new_last_usable = n
        .checked_sub(ph.first_usable_lba)
        .filter(|&l| l >= ph.first_usable_lba);
    let new_array_lba = new_last_usable.map(|l| l + 1);
    let Some((new_last_usable, new_array_lba)) = new_last_usable.zip(new_array_lba) else {
        return Err(Error::invalid_input(format!(
            "disk of {n} sectors is too small for a GPT whose first usable LBA is {}",
            ph.first_usable_lba
        )));
    };
    let primary_array_end = ph.entries_lba + ph.array_sectors();
    if new_array_lba + ph.array_sectors() > n - 1 || new_array_lba < primary_array_end.max(2) {
        return Err(Error::invalid_input(format!(
            "the backup partition array ({} sectors at LBA {new_array_lba}) does not fit before the backup header at LBA {}",
            ph.array_sectors(),
            n - 1
        )));
    }
    for (_, part) in p.partitions() {
        if part.last_lba > new_last_usable {
            return Err(Error::invalid_input(format!(
                "partition {} ends at LBA {}, past the new last usable LBA {new_last_usable}",
                part.index, part.last_lba
            )));
        }
    }
    let old_last_usable = ph.last_usable_lba;

    let mut primary = p.raw.clone();
    primary.set_u64(H_ALTERNATE_LBA, n - 1);
    primary.set_u64(H_LAST_USABLE, new_last_usable);
    primary.update_crc();

    let mut backup = b.raw.clone();
    backup.set_u64(H_MY_LBA, n - 1);
    backup.set_u64(H_LAST_USABLE, new_last_usable);
    backup.set_u64(H_ENTRIES_LBA, new_array_lba);
    backup.update_crc();

    let mut array = p.array.clone().expect("a sound copy has its array");
    array.resize((ph.array_sectors() * SECTOR_SIZE) as usize, 0);

    if ins.mbr.kind == MbrKind::Classic {
        return Err(Error::unsupported(
            "disk has a GPT behind a classic MBR without a 0xEE partition; refusing to grow it (sgdisk -e refuses too)",
        ));
    }
    let mut patches = Vec::new();
    let rebuild_mbr = match ins.mbr.kind {
        MbrKind::Protective => old_last_usable != new_last_usable,
        MbrKind::Invalid => true,
        MbrKind::Classic | MbrKind::Hybrid => false,
    };
    if rebuild_mbr {
        let m = mbr::protective_mbr(&ins.mbr_sector[..mbr::BOOT_CODE_LEN], n);
        patches.push((0, m.to_vec()));
    }
    patches.push((PRIMARY_HEADER_LBA * SECTOR_SIZE, primary.0.to_vec()));
    patches.push((new_array_lba * SECTOR_SIZE, array));
    patches.push(((n - 1) * SECTOR_SIZE, backup.0.to_vec()));
    Ok(GrowWrites {
        patches,
        owned: owned_ranges(p, b),
        backup_lba: Some(new_array_lba),
    })
}

/// The LBAs (coalesced inclusive ranges) a backup GPT placed for a disk of
/// `new_size` bytes (see [`grow`]) would change although they hold
/// non-zero data the disk's GPT does not own: empty when growing to that
/// size is safe. Errors are [`grow`]'s (bad size, corrupt GPT).
pub fn foreign_sectors(disk: &dyn VirtualDisk, new_size: u64) -> Result<Vec<LbaRange>> {
    grow_writes(disk, new_size)?.foreign(disk)
}

/// A size a disk was not grown to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSize {
    /// The size in bytes (a whole multiple of the unit) that was passed
    /// over.
    pub size: u64,
    /// The LBAs (inclusive ranges) a backup GPT at that size would have
    /// overwritten: non-zero data the GPT does not own.
    pub foreign_lbas: Vec<LbaRange>,
}

/// How a disk is grown to a whole multiple of a unit: from its size to
/// the chosen one, and the smaller multiples passed over because their
/// backup GPT would have overwritten data the GPT does not own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    /// The disk's size in bytes before growing.
    pub from: u64,
    /// The size it is grown to.
    pub to: u64,
    /// Smaller candidate sizes passed over, smallest first (empty when
    /// the first whole multiple was safe).
    pub skipped: Vec<SkippedSize>,
}

/// Choose the size to grow `disk` to: the smallest whole multiple of
/// `unit` (bytes, a multiple of 512) at least the disk's size whose backup
/// GPT covers no non-zero sector the disk's GPT does not own (see
/// [`foreign_sectors`]).
///
/// This always ends: the backup GPT of each larger multiple lies further
/// out, and one that starts at or after the disk's old end covers only
/// zeros. (The MBR and primary header writes change only bytes the GPT
/// owns, whatever the size.)
pub fn plan_growth(disk: &dyn VirtualDisk, unit: u64) -> Result<Growth> {
    if unit == 0 || unit % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "growth unit {unit} is not a positive multiple of 512 bytes"
        )));
    }
    let from = disk.size();
    let mut size = from.div_ceil(unit).max(1) * unit;
    let mut skipped = Vec::new();
    loop {
        let writes = grow_writes(disk, size)?;
        let foreign = writes.foreign(disk)?;
        if foreign.is_empty() {
            return Ok(Growth {
                from,
                to: size,
                skipped,
            });
        }
        if writes.backup_lba.is_none_or(|l| l * SECTOR_SIZE >= from) {
            // Cannot happen (see above); never loop for ever.
            return Err(Error::corrupt(format!(
                "growing the disk would change {} outside its backup GPT; refusing to grow it",
                lba_ranges_text(&foreign)
            )));
        }
        skipped.push(SkippedSize {
            size,
            foreign_lbas: foreign,
        });
        size = size
            .checked_add(unit)
            .ok_or_else(|| Error::invalid_input("no disk size is left to grow to".to_string()))?;
    }
}

/// A disk grown by [`grow_to_multiple`]: the grown disk and how its size
/// was chosen.
pub struct Grown<D> {
    /// The grown disk (the input, zeros to the new end, and the GPT's
    /// patches).
    pub disk: PatchedDisk<D>,
    /// Its old and new sizes and the sizes passed over.
    pub growth: Growth,
}

/// Grow `disk` to the size [`plan_growth`] chooses for `unit` (GCP: a
/// whole GiB, Azure: a whole MiB), as [`grow`] does.
pub fn grow_to_multiple<D: VirtualDisk>(disk: D, unit: u64) -> Result<Grown<D>> {
    let growth = plan_growth(&disk, unit)?;
    let disk = grow(disk, growth.to)?;
    Ok(Grown { disk, growth })
}

/// The LBAs (coalesced inclusive ranges) where `grown` changes its base
/// disk outside the GPT: a non-zero byte of the base that the base's GPT
/// does not own changed, or a zero byte (or one past the base's end) made
/// non-zero where the grown disk's own GPT owns nothing. Empty for every
/// disk [`grow`] makes. Only the patches are read, with the few sectors of
/// the base under them. `package` checks this for each grown disk: with
/// the artifact proven identical to the grown disk, it proves the
/// artifact holds the input unchanged outside the GPT.
pub fn changes_outside_gpt<D: VirtualDisk>(grown: &PatchedDisk<D>) -> Result<Vec<LbaRange>> {
    let base: &dyn VirtualDisk = grown.base();
    // Each GPT as `grow` reads it (the base's backup where its primary
    // says it is, for a disk enlarged before without moving it).
    let owned_by = |ins: Option<Inspection>| -> Vec<std::ops::Range<u64>> {
        match ins.as_ref().map(|i| (&i.primary, &i.backup)) {
            Some((Some(p), Some(b))) => owned_ranges(p, b),
            _ => Vec::new(),
        }
    };
    let old_owned = owned_by(growable_gpt(base)?);
    let new_owned = owned_by(growable_gpt(grown)?);
    let owns = |r: &[std::ops::Range<u64>], off: u64| r.iter().any(|r| r.contains(&off));
    let size = base.size();
    let mut lbas: Vec<u64> = Vec::new();
    for (at, bytes) in grown.patches() {
        let mut was = vec![0u8; bytes.len()];
        if *at < size {
            let n = (size - at).min(bytes.len() as u64) as usize;
            base.read_at(&mut was[..n], *at)
                .ctx("reading the sectors under the grown disk's GPT")
                .map_err(|e| e.at(*at))?;
        }
        for (i, (&w, &b)) in was.iter().zip(bytes).enumerate() {
            let off = at + i as u64;
            let allowed =
                w == b || (w != 0 && owns(&old_owned, off)) || (w == 0 && owns(&new_owned, off));
            if !allowed {
                lbas.push(off / SECTOR_SIZE);
            }
        }
    }
    Ok(coalesce_lbas(lbas))
}

/// Sorted, merged inclusive ranges of `lbas`.
fn coalesce_lbas(mut lbas: Vec<u64>) -> Vec<LbaRange> {
    lbas.sort_unstable();
    lbas.dedup();
    let mut ranges: Vec<LbaRange> = Vec::new();
    for lba in lbas {
        match ranges.last_mut() {
            Some(r) if r[1] + 1 == lba => r[1] = lba,
            _ => ranges.push([lba, lba]),
        }
    }
    ranges
}

/// A partition for [`create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartition {
    /// Type GUID.
    pub type_guid: Guid,
    /// Unique GUID.
    pub unique_guid: Guid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (at most 36 UTF-16 code units).
    pub name: String,
}

/// What [`create`] builds a GPT from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptSpec {
    /// Disk GUID.
    pub disk_guid: Guid,
    /// Up to 440 bytes of MBR boot code (empty for none).
    pub boot_code: Vec<u8>,
    /// Partitions, in entry order (entry i+1 is `partitions[i]`).
    pub partitions: Vec<NewPartition>,
    /// Number of partition entries ([`DEFAULT_ENTRIES`] normally).
    pub num_entries: u32,
}

impl GptSpec {
    /// A spec with no partitions, no boot code and 128 entries.
    pub fn new(disk_guid: Guid) -> Self {
        GptSpec {
            disk_guid,
            boot_code: Vec::new(),
            partitions: Vec::new(),
            num_entries: DEFAULT_ENTRIES,
        }
    }
}

/// A GPT built by [`create`]: bytes to write at the start and at the end
/// of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptImage {
    /// Protective MBR, primary header and primary array, for offset 0.
    pub head: Vec<u8>,
    /// Backup array and backup header, for offset [`tail_offset`](Self::tail_offset).
    pub tail: Vec<u8>,
    /// Where `tail` goes (it ends at the disk's end).
    pub tail_offset: u64,
    /// First usable LBA.
    pub first_usable_lba: u64,
    /// Last usable LBA.
    pub last_usable_lba: u64,
}

impl GptImage {
    /// The two (offset, bytes) writes.
    pub fn patches(&self) -> [(u64, &[u8]); 2] {
        [(0, &self.head), (self.tail_offset, &self.tail)]
    }
    /// Write both parts into a file (which must already be `disk_size` long
    /// or will be extended by the tail write).
    pub fn write_to(&self, file: &std::fs::File) -> Result<()> {
        use std::os::unix::fs::FileExt;
        for (o, b) in self.patches() {
            file.write_all_at(b, o).ctx("writing the GPT")?;
        }
        Ok(())
    }
}

/// Build a new GPT for a disk of `disk_size` bytes, laid out as `sgdisk -o`
/// does: protective MBR (boot code kept, signature 0), primary header at 1,
/// array at 2, first usable LBA 2 + array sectors (34), last usable
/// N - first usable, backup array right after it, backup header at N-1.
/// Partitions must lie in the usable range and not overlap; entries are
/// written in the given order.
pub fn create(spec: &GptSpec, disk_size: u64) -> Result<GptImage> {
    if disk_size % SECTOR_SIZE != 0 {
        return Err(Error::invalid_input(format!(
            "disk size {disk_size} is not a multiple of 512 bytes"
        )));
    }
    if spec.boot_code.len() > mbr::BOOT_CODE_LEN {
        return Err(Error::invalid_input(format!(
            "MBR boot code is {} bytes, more than {}",
            spec.boot_code.len(),
            mbr::BOOT_CODE_LEN
        )));
    }
    if spec.num_entries == 0 || spec.partitions.len() > spec.num_entries as usize {
        return Err(Error::invalid_input(format!(
            "{} partitions do not fit in {} entries",
            spec.partitions.len(),
            spec.num_entries
        )));
    }
    let array_bytes = spec.num_entries as u64 * ENTRY_SIZE as u64;
    if array_bytes > MAX_ARRAY_BYTES {
        return Err(Error::invalid_input(format!(
            "{} entries are too many",
            spec.num_entries
        )));
    }
    let array_sectors = array_bytes.div_ceil(SECTOR_SIZE);
    let n = disk_size / SECTOR_SIZE;
    let first_usable = 2 + array_sectors;
    if n < 2 * first_usable + 1 {
        return Err(Error::invalid_input(format!(
            "disk of {n} sectors is too small for a GPT"
        )));
    }
    let last_usable = n - first_usable;
    let backup_array_lba = last_usable + 1;

    let mut array = vec![0u8; (array_sectors * SECTOR_SIZE) as usize];
    let mut ranges = Vec::new();
    for (i, p) in spec.partitions.iter().enumerate() {
        if p.type_guid.is_zero() {
            return Err(Error::invalid_input(format!(
                "partition {} has the zero type GUID",
                i + 1
            )));
        }
        if p.first_lba > p.last_lba || p.first_lba < first_usable || p.last_lba > last_usable {
            return Err(Error::invalid_input(format!(
                "partition {} (LBA {}..={}) is not inside the usable range {first_usable}..={last_usable}",
                i + 1,
                p.first_lba,
                p.last_lba
            )));
        }
        ranges.push((p.first_lba, p.last_lba, i + 1));
        let gp = GptPartition {
            index: i as u32 + 1,
            type_guid: p.type_guid,
            type_name: None,
            unique_guid: p.unique_guid,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.attributes,
            name: p.name.clone(),
        };
        array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize]
            .copy_from_slice(&gp.to_bytes());
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(Error::invalid_input(format!(
                "partitions {} and {} overlap",
                w[0].2, w[1].2
            )));
        }
    }
    let array_crc = crc32(&array[..array_bytes as usize]);

    let mut primary = GptHeaderRaw([0u8; 512]);
    primary.0[..8].copy_from_slice(&HEADER_SIGNATURE);
    primary.set_u32(H_REVISION, REVISION_1_0);
    primary.set_u32(H_HEADER_SIZE, HEADER_SIZE);
    primary.set_u64(H_MY_LBA, 1);
    primary.set_u64(H_ALTERNATE_LBA, n - 1);
    primary.set_u64(H_FIRST_USABLE, first_usable);
    primary.set_u64(H_LAST_USABLE, last_usable);
    primary.0[H_DISK_GUID..H_DISK_GUID + 16].copy_from_slice(&spec.disk_guid.0);
    primary.set_u64(H_ENTRIES_LBA, 2);
    primary.set_u32(H_NUM_ENTRIES, spec.num_entries);
    primary.set_u32(H_ENTRY_SIZE, ENTRY_SIZE);
    primary.set_u32(H_ENTRIES_CRC, array_crc);
    let mut backup = primary.clone();
    primary.update_crc();
    backup.set_u64(H_MY_LBA, n - 1);
    backup.set_u64(H_ALTERNATE_LBA, 1);
    backup.set_u64(H_ENTRIES_LBA, backup_array_lba);
    backup.update_crc();

    let mut head = Vec::with_capacity(((2 + array_sectors) * SECTOR_SIZE) as usize);
    head.extend_from_slice(&mbr::protective_mbr(&spec.boot_code, n));
    head.extend_from_slice(&primary.0);
    head.extend_from_slice(&array);
    let mut tail = array;
    tail.extend_from_slice(&backup.0);
    Ok(GptImage {
        head,
        tail_offset: backup_array_lba * SECTOR_SIZE,
        tail,
        first_usable_lba: first_usable,
        last_usable_lba: last_usable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    fn guid(s: &str) -> Guid {
        s.parse().unwrap()
    }

    fn sample(size: u64) -> Vec<u8> {
        sample_with(size, 2048, 4095)
    }

    fn sample_with(size: u64, first_lba: u64, last_lba: u64) -> Vec<u8> {
        let mut spec = GptSpec::new(guid("11111111-2222-3333-4444-555555555555"));
        spec.partitions.push(NewPartition {
            type_guid: guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            unique_guid: guid("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"),
            first_lba,
            last_lba,
            attributes: 0,
            name: "EFI system".into(),
        });
        let img = create(&spec, size).unwrap();
        let mut d = vec![0u8; size as usize];
        for (o, b) in img.patches() {
            d[o as usize..o as usize + b.len()].copy_from_slice(b);
        }
        d
    }

    #[test]
    fn guid_round_trips_mixed_endian() {
        let g = guid("DD27F98D-7519-4C9E-8041-F2BFA7B1EF61");
        assert_eq!(g.0[..4], [0x8d, 0xf9, 0x27, 0xdd]);
        assert_eq!(g.to_string(), "DD27F98D-7519-4C9E-8041-F2BFA7B1EF61");
        assert!("xyz".parse::<Guid>().is_err());
    }

    #[test]
    fn created_gpt_verifies_and_decodes() {
        let d = MemDisk::new(sample(8 << 20));
        assert_eq!(verify(&d), vec![]);
        let PartitionTable::Gpt(l) = read_table(&d).unwrap() else {
            panic!("not gpt")
        };
        assert_eq!(l.partitions.len(), 1);
        assert_eq!(l.partitions[0].name, "EFI system");
        assert_eq!(l.partitions[0].type_name, Some("EFI system partition"));
        assert_eq!(l.last_usable_lba, 16384 - 34);
    }

    #[test]
    fn grown_gpt_verifies() {
        let d = MemDisk::new(sample(8 << 20));
        let g = grow(d, 16 << 20).unwrap();
        assert_eq!(verify(&g), vec![]);
        assert_eq!(g.patches().len(), 4);
    }

    /// `changes_outside_gpt` finds a patch that writes where no GPT
    /// structure is (over zeros) or over data the old GPT does not own,
    /// and nothing in what `grow` makes.
    #[test]
    fn changes_outside_gpt_are_found() {
        let mut old = sample(8 << 20);
        old[2048 * 512 + 7] = 0x42;
        let grown = grow(MemDisk::new(old.clone()), 16 << 20).unwrap();
        assert!(changes_outside_gpt(&grown).unwrap().is_empty());
        let mut bad = PatchedDisk::new(MemDisk::new(old), 16 << 20);
        for (at, b) in grown.patches() {
            bad.patch(*at, b.clone());
        }
        bad.patch(2048 * 512, vec![0; 512]);
        bad.patch(5000 * 512 + 3, vec![1, 2]);
        bad.patch(20000 * 512, vec![0; 512]);
        assert_eq!(
            changes_outside_gpt(&bad).unwrap(),
            vec![[2048, 2048], [5000, 5000]]
        );
    }

    #[test]
    fn corrupt_backup_refused() {
        let mut b = sample(8 << 20);
        let last = b.len() - 512;
        b[last + 60] ^= 1;
        let err = grow(MemDisk::new(b), 16 << 20).err().unwrap();
        assert!(
            err.message()
                .starts_with("GPT is corrupt: backup header CRC mismatch (expected "),
            "{err}"
        );
        assert!(err.message().ends_with("; refusing to grow it"));
    }

    /// Random damage to the MBR, headers and arrays never panics and
    /// always gives findings or a clean table.
    #[test]
    fn random_damage_never_panics() {
        let clean = sample_with(256 * 512, 40, 100);
        let n = clean.len();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let hot: Vec<usize> = (0..34 * 512).chain(n - 33 * 512..n).collect();
        for _ in 0..2000 {
            let mut b = clean.clone();
            for _ in 0..1 + next() % 4 {
                let i = hot[(next() % hot.len() as u64) as usize];
                b[i] = next() as u8;
            }
            let d = MemDisk::new(b);
            let _ = verify(&d);
            let _ = read_table(&d);
            if let Ok(g) = grow(&d, (n + 4096) as u64) {
                assert_eq!(verify(&g), vec![], "a grown GPT verifies");
            }
        }
    }

    #[test]
    fn blank_disk_has_no_findings() {
        assert_eq!(verify(&MemDisk::new(vec![0; 65536])), vec![]);
        assert!(matches!(
            read_table(&MemDisk::new(vec![0; 65536])).unwrap(),
            PartitionTable::None
        ));
    }
}
