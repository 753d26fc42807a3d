//! Unit tests of the gzip writer and reader.

use super::*;

fn gz(data: &[u8]) -> Vec<u8> {
    let mut w = GzipWriter::new(Vec::new()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

#[test]
fn writes_gzip_n_header_and_round_trips() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let z = gz(&data);
    assert_eq!(&z[..10], &WRITER_HEADER);
    let mut r = GzipReader::new(&z[..]).unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert!(r.findings().is_empty(), "{:?}", r.findings());
    assert_eq!(r.facts().crc, crc32fast::hash(&data));
    // flate2's own decoder agrees.
    let mut d = flate2::read::GzDecoder::new(&z[..]);
    let mut back2 = Vec::new();
    d.read_to_end(&mut back2).unwrap();
    assert_eq!(back2, data);
}

#[test]
fn reports_crc_isize_and_second_member() {
    let mut z = gz(b"hello");
    let n = z.len();
    z[n - 8] ^= 1;
    z[n - 4] ^= 1;
    z.extend_from_slice(&gz(b"x"));
    let mut r = GzipReader::new(&z[..]).unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    // Both members are read (RFC 1952 §2.2), the first one's trailer
    // checked.
    assert_eq!(back, b"hellox");
    let msgs: Vec<_> = r.findings().iter().map(|f| f.to_string()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert!(
        msgs[0].starts_with(&format!("at byte {}: gzip: CRC32 mismatch", n - 8)),
        "{msgs:?}"
    );
    assert_eq!(
        msgs[1],
        format!(
            "at byte {}: gzip: ISIZE mismatch: trailer says 4, the data is 5 bytes (5 mod 2^32)",
            n - 4
        )
    );
    assert!(msgs[2].contains("more than one gzip member"));
}

#[test]
fn output_does_not_depend_on_jobs_or_write_sizes() {
    let mut data = vec![0u8; 3 * GZIP_BLOCK_SIZE + 12345];
    for (i, b) in data.iter_mut().enumerate() {
        *b = ((i as u64).wrapping_mul(2654435761) >> 13) as u8 & 0x3f;
    }
    let one = gz(&data);
    for jobs in [2, 3, 8] {
        let mut w = GzipWriter::with_jobs(Vec::new(), jobs).unwrap();
        for c in data.chunks(77_777) {
            w.write_all(c).unwrap();
        }
        assert!(w.finish().unwrap() == one, "jobs {jobs}");
    }
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&one[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data);
}

#[test]
fn empty_input_is_a_valid_gzip() {
    let z = gz(b"");
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&z[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back.is_empty());
    assert_eq!(&z[z.len() - 8..], &[0; 8]);
}

#[test]
fn short_reads_decode_the_same() {
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 5 + 1;
            let n = b.len().min(self.1).min(self.0.len());
            b[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data: Vec<u8> = (0..70_000u32).map(|i| (i / 300) as u8).collect();
    let mut z = gz(&data);
    z.extend_from_slice(b"xy");
    let mut r = GzipReader::new(Trickle(&z, 0)).unwrap();
    let mut back = Vec::new();
    r.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(r.facts().trailing_bytes, 2);
}

#[test]
fn truncation_is_an_error() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 255) as u8).collect();
    let z = gz(&data);
    let mut r = GzipReader::new(&z[..z.len() / 2]).unwrap();
    let err = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(r.fatal().is_some());
}
