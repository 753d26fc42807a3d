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
//!
//! One file per concern: `wire` (header and entry layout, CRC, type
//! GUIDs), `inspect` (read and check both copies: [`verify`],
//! `read_table`), `grow` ([`grow`], [`plan_growth`] and the checks that
//! growing changes nothing the GPT does not own), `create` ([`create`]).

mod create;
mod grow;
mod inspect;
mod wire;

pub use create::{create, GptImage, GptSpec, NewPartition};
pub use grow::{
    changes_outside_gpt, foreign_sectors, grow, grow_to_multiple, is_one_lba, lba_ranges_text,
    plan_growth, Grown, Growth, LbaRange, SkippedSize,
};
pub(crate) use inspect::read_table;
pub use inspect::{verify, GptLayout};
pub use wire::{
    crc32, type_name, GptHeader, GptHeaderRaw, GptPartition, BIOS_BOOT_TYPE, DEFAULT_ENTRIES,
    ENTRY_SIZE, ESP_TYPE, HEADER_SIGNATURE, HEADER_SIZE, MAX_ARRAY_BYTES, NAME_UNITS,
    PRIMARY_HEADER_LBA, REVISION_1_0,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{MemDisk, PatchedDisk};
    use crate::layout::{Guid, PartitionTable};

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
