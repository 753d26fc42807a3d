//! The GPT on disk: header fields and their offsets (UEFI 2.10 §5.3.2,
//! table 5-5), partition entries (§5.3.3), the CRC and the type GUIDs.

use serde::Serialize;

use crate::disk::SECTOR_SIZE;
use crate::layout::Guid;

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
pub(super) const H_REVISION: usize = 8;
pub(super) const H_HEADER_SIZE: usize = 12;
pub(super) const H_HEADER_CRC: usize = 16;
pub(super) const H_MY_LBA: usize = 24;
pub(super) const H_ALTERNATE_LBA: usize = 32;
pub(super) const H_FIRST_USABLE: usize = 40;
pub(super) const H_LAST_USABLE: usize = 48;
pub(super) const H_DISK_GUID: usize = 56;
pub(super) const H_ENTRIES_LBA: usize = 72;
pub(super) const H_NUM_ENTRIES: usize = 80;
pub(super) const H_ENTRY_SIZE: usize = 84;
pub(super) const H_ENTRIES_CRC: usize = 88;

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
    pub(super) fn set_u32(&mut self, o: usize, v: u32) {
        self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub(super) fn set_u64(&mut self, o: usize, v: u64) {
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
