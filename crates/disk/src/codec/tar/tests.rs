//! Unit tests of the tar header functions, writer and reader.

use std::io::{self, Read};

use super::*;
use crate::MemDisk;

#[test]
fn numbers_round_trip_octal_and_base256() {
    let mut f = [0u8; 12];
    put_number(&mut f, 0o644);
    assert_eq!(&f, b"00000000644\0");
    assert_eq!(parse_number(&f), Ok(0o644));
    put_number(&mut f, 10 << 30);
    assert_eq!(f, [0x80, 0, 0, 0, 0, 0, 0, 2, 0x80, 0, 0, 0]);
    assert_eq!(parse_number(&f), Ok(10 << 30));
    put_number(&mut f, (1 << 33) - 1);
    assert_eq!(&f, b"77777777777\0");
    let mut m = [0u8; 8];
    put_number(&mut m, 0o644);
    assert_eq!(&m, b"0000644\0");
    assert_eq!(parse_number(b"  755 \0\0"), Ok(0o755));
    assert!(parse_number(&[0xff; 12]).unwrap_err().contains("negative"));
    assert!(parse_number(b"12x4\0").is_err());
    assert_eq!(parse_number(b"011420\x000"), Ok(0o11420));
    assert!(parse_number(b"7777777777777777777777\0").is_err());
}

#[test]
fn header_matches_gnu_tar_layout() {
    // Same fields as `tar --format=oldgnu -S` of a 1 GiB file with
    // three data blocks at the start, mtime 0o15301547250 (header
    // dumped from GNU tar 1.34).
    let map = [
        SparseEntry {
            offset: 0,
            numbytes: 0x3000,
        },
        SparseEntry {
            offset: 1 << 30,
            numbytes: 0,
        },
    ];
    let spec = MemberSpec {
        name: "disk.raw",
        mode: 0o644,
        mtime: 0o15301547250,
    };
    let b = member_headers(&spec, 1 << 30, Some(&map));
    assert_eq!(b.len(), 1);
    let h = &b[0];
    assert_eq!(&h[148..156], b"016404\0 ");
    assert_eq!(h[156], b'S');
    assert_eq!(&h[124..136], b"00000030000\0");
    assert_eq!(&h[483..495], b"10000000000\0");
    assert_eq!(&h[257..265], b"ustar  \0");
}

#[test]
fn round_trip_through_reader_with_extension_blocks() {
    let mut bytes = vec![0u8; 1 << 20];
    for i in 0..30 {
        bytes[i * 8192 + 100] = i as u8 + 1;
    }
    let disk = MemDisk::new(bytes.clone());
    let spec = MemberSpec {
        name: "disk.raw",
        mode: 0o644,
        mtime: 7,
    };
    let mut out = Vec::new();
    write_disk_tar(&disk, &spec, &mut out).unwrap();
    assert_eq!(out.len() as u64 % RECORD_SIZE, 0);
    let mut r = TarReader::new(&out[..]);
    let e = r.next_entry().unwrap().unwrap();
    assert_eq!(e.name, b"disk.raw");
    assert_eq!(e.sparse.as_ref().unwrap().len(), 31);
    let mut got = vec![0u8; e.realsize as usize];
    r.read_content(|o, c| {
        if let TarChunk::Data(d) = c {
            got[o as usize..o as usize + d.len()].copy_from_slice(d);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(got, bytes);
    assert!(r.next_entry().unwrap().is_none());
    assert!(matches!(r.end(), TarEnd::ZeroBlocks(_)));
}

/// A header block with `fill` applied and a valid checksum.
fn header(fill: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..4].copy_from_slice(b"bomb");
    put_number(&mut h[MODE], 0o644);
    put_number(&mut h[UID], 0);
    put_number(&mut h[GID], 0);
    put_number(&mut h[MTIME], 0);
    h[MAGIC.start..VERSION.end].copy_from_slice(MAGIC_GNU);
    fill(&mut h);
    let (sum, _) = header_checksum(&h);
    h[CHKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Endless sparse extension blocks, each flagging another one.
struct EndlessExtensions;
impl Read for EndlessExtensions {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut b = [0u8; 512];
        for i in 0..GNU_SPARSE_IN_EXT {
            put_number(&mut b[24 * i..24 * i + 12], 0);
            put_number(&mut b[24 * i + 12..24 * i + 24], 0);
        }
        b[EXT_ISEXTENDED] = 1;
        let n = buf.len().min(512);
        buf[..n].copy_from_slice(&b[..n]);
        Ok(n)
    }
}

#[test]
fn endless_sparse_map_is_refused() {
    let h = header(|h| {
        h[TYPEFLAG] = b'S';
        put_number(&mut h[SIZE], 0);
        put_number(&mut h[GNU_REALSIZE], 1 << 40);
        h[GNU_ISEXTENDED] = 1;
    });
    let mut r = TarReader::new((&h[..]).chain(EndlessExtensions));
    let err = r.next_entry().unwrap_err();
    assert!(
        err.message()
            .starts_with("sparse map has more than 1048576 entries"),
        "{err}"
    );
}

#[test]
fn huge_long_name_and_pax_are_refused() {
    for (t, msg) in [
        (
            b'L',
            "GNU long name header has size 1099511627776 (more than 65536)",
        ),
        (
            b'K',
            "GNU long link header has size 1099511627776 (more than 65536)",
        ),
        (
            b'x',
            "pax extended header has size 1099511627776 (more than 1048576)",
        ),
    ] {
        let h = header(|h| {
            h[TYPEFLAG] = t;
            put_number(&mut h[SIZE], 1 << 40);
        });
        let err = TarReader::new(&h[..]).next_entry().unwrap_err();
        assert_eq!(err.to_string(), format!("{msg} (at byte 0)"));
    }
}

#[test]
fn huge_regular_member_is_streamed_not_allocated() {
    let h = header(|h| {
        h[TYPEFLAG] = b'0';
        put_number(&mut h[SIZE], i64::MAX as u64);
    });
    let mut r = TarReader::new(&h[..]);
    let e = r.next_entry().unwrap().unwrap();
    assert_eq!(e.size, i64::MAX as u64);
    let err = r.read_content(|_, _| Ok(())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar stream truncated in member data (at byte 512)"
    );
}

#[test]
fn sparse_map_checks() {
    let e = |offset, numbytes| SparseEntry { offset, numbytes };
    assert!(check_sparse_map(&[e(0, 512), e(1024, 512)], 1024, 2048).is_ok());
    assert_eq!(
        check_sparse_map(&[e(1024, 512), e(0, 512)], 1024, 2048).unwrap_err(),
        "sparse map entry 1 (offset 0) overlaps or precedes the previous one (ending at 1536)"
    );
    assert_eq!(
        check_sparse_map(&[e(0, 4096)], 4096, 2048).unwrap_err(),
        "sparse map entry 0 ends at 4096, past the real size 2048"
    );
    assert_eq!(
        check_sparse_map(&[e(0, 512)], 1024, 2048).unwrap_err(),
        "sparse map holds 512 bytes of data but the size field says 1024"
    );
}
