//! The tar reader and gzip reader against files made by other projects
//! (/work/shared/corpus, facts in its README §3 and §4).

mod common;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use cloudimg_disk::codec::{gzip, tar};
use cloudimg_disk::io::DiskDigest;
use common::corpus;

#[derive(Debug)]
struct Member {
    name: String,
    typeflag: char,
    size: u64,
    realsize: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    sparse: Option<Vec<(u64, u64)>>,
    sha256: String,
    crc32: u32,
    /// The data chunks (logical offset, bytes), only kept for small members.
    data: Vec<(u64, Vec<u8>)>,
}

/// Read every member of a tar stream, hashing its logical content.
fn read_members(r: impl Read) -> Result<Vec<Member>, cloudimg_disk::Error> {
    let mut t = tar::TarReader::new(r);
    let mut out = Vec::new();
    while let Some(e) = t.next_entry()? {
        let mut d = DiskDigest::new();
        let mut crc = crc32fast::Hasher::new();
        let mut data = Vec::new();
        t.read_content(|o, c| {
            match c {
                tar::TarChunk::Data(b) => {
                    d.data(b);
                    crc.update(b);
                    if data.len() < 64 {
                        data.push((o, b.to_vec()));
                    }
                }
                tar::TarChunk::Hole(n) => {
                    d.zeros(n);
                    // crc32 of zeros: only used for small members.
                    if n < 1 << 24 {
                        crc.update(&vec![0; n as usize]);
                    }
                }
            }
            Ok(())
        })?;
        out.push(Member {
            name: e.name_str(),
            typeflag: e.typeflag as char,
            size: e.size,
            realsize: e.realsize,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            sparse: e
                .sparse
                .map(|m| m.iter().map(|s| (s.offset, s.numbytes)).collect()),
            sha256: d.finish().to_string(),
            crc32: crc.finalize(),
            data,
        });
    }
    Ok(out)
}

fn read_tar(rel: &str) -> Option<Vec<Member>> {
    let p = corpus(rel)?;
    Some(read_members(File::open(p).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn find<'a>(ms: &'a [Member], name: &str) -> &'a Member {
    ms.iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}: {ms:#?}"))
}

#[test]
fn tar_rs_sparse_members() {
    let Some(ms) = read_tar("tar-rs/sparse.tar") else {
        return;
    };
    let want = [
        (
            "sparse_begin.txt",
            8096,
            vec![(0, 512), (8096, 0)],
            "32a3f380f2cf5f61be7a20c88696aefba4bef751749df9769278edab00522a46",
        ),
        (
            "sparse_end.txt",
            8105,
            vec![(7680, 425)],
            "b6c2c5d27dccaa4d063f5e31dbeed4ed03437596fb131efc493ed9e95611f4c1",
        ),
        (
            "sparse_ext.txt",
            45061,
            vec![
                (4096, 512),
                (12288, 512),
                (20480, 512),
                (28672, 512),
                (36864, 512),
                (45056, 5),
            ],
            "87a018180a7448696e81db90f496f187a89119484aa50aa9973127050db041a8",
        ),
        (
            "sparse.txt",
            16384,
            vec![(4096, 512), (11776, 512), (16384, 0)],
            "ffa5da6566e25cab76a36f083c51e7be408dd7723d592975562609b1ffa3e603",
        ),
    ];
    assert_eq!(ms.len(), 4);
    for (name, realsize, map, sha) in want {
        let m = find(&ms, name);
        assert_eq!(m.typeflag, 'S', "{name}");
        assert_eq!(m.realsize, realsize, "{name}");
        assert_eq!(m.sparse.as_ref().unwrap(), &map, "{name}");
        assert_eq!(m.sha256, sha, "{name}");
    }
}

#[test]
fn tar_rs_sparse_1_and_large() {
    if let Some(ms) = read_tar("tar-rs/sparse-1.tar") {
        assert_eq!(ms.len(), 1);
        let m = &ms[0];
        assert_eq!(m.name, "a.big");
        assert_eq!(m.realsize, 1048588);
        assert_eq!(
            m.sparse.as_ref().unwrap(),
            &[(0, 4096), (1048576, 12), (1048588, 0)]
        );
        assert_eq!(
            m.sha256,
            "7e368efcc0c98ef01c5401a5896b99d85697f727ee43241950886a5dafdabccd"
        );
    }
    // 12.6 GB of logical content: check the map and the data instead of
    // hashing it all (see the ignored test below for the hash).
    if let Some(p) = corpus("tar-rs/sparse-large.tar") {
        let mut t = tar::TarReader::new(File::open(p).unwrap());
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(e.name_str(), "huge");
        assert_eq!((e.uid, e.gid), (1000, 100));
        assert_eq!(e.realsize, 12626929280);
        let map: Vec<_> = e
            .sparse
            .unwrap()
            .iter()
            .map(|s| (s.offset, s.numbytes))
            .collect();
        assert_eq!(map, [(12626927616, 1664), (12626929280, 0)]);
    }
}

#[test]
#[ignore = "hashes 12.6 GB of zeros (about 8 s): run with --ignored"]
fn tar_rs_sparse_large_content_hash() {
    if let Some(ms) = read_tar("tar-rs/sparse-large.tar") {
        assert_eq!(
            ms[0].sha256,
            "19f823052301644a8c6a1abed0a789a5dfceb5df46d5fe7cf574afea615f02a6"
        );
    }
}

#[test]
fn tar_rs_biguid_gnu() {
    let Some(ms) = read_tar("tar-rs/biguid_gnu.tar") else {
        return;
    };
    assert_eq!(ms.len(), 1);
    let m = &ms[0];
    assert_eq!(m.name, "./test.txt");
    assert_eq!((m.uid, m.gid), (4294967294, 4294967294));
    assert_eq!(m.size, 14);
    assert!(
        m.sha256.starts_with("d9014c46") && m.sha256.ends_with("72ff5"),
        "{}",
        m.sha256
    );
}

#[test]
fn cpython_testtar() {
    let Some(ms) = read_tar("cpython/testtar.tar") else {
        return;
    };
    let sparse = find(&ms, "gnu/sparse");
    assert_eq!(sparse.typeflag, 'S');
    assert_eq!(sparse.size, 40960);
    assert_eq!(sparse.realsize, 86016);
    let map = sparse.sparse.as_ref().unwrap();
    // Ten 4 KiB chunks, then GNU tar's final {realsize, 0} entry (the
    // README counts only the ten chunks; Python drops empty entries).
    assert_eq!(map.len(), 11, "{map:?}");
    assert!(
        map[..10]
            .iter()
            .enumerate()
            .all(|(i, &(o, n))| o == 4096 + 8192 * i as u64 && n == 4096),
        "{map:?}"
    );
    assert_eq!(map[10], (86016, 0));
    assert_eq!(
        sparse.sha256,
        "4f05a776071146756345ceee937b33fc5644f5a96b9780d1c7d6a32cdf164d7b"
    );
    for name in [
        "ustar/regtype",
        "ustar/conttype",
        "misc/regtype-old-v7",
        "gnu/regtype-gnu-uid",
    ] {
        let m = find(&ms, name);
        assert_eq!(m.size, 7011, "{name}");
        assert_eq!(
            m.sha256, "e09e4bc8b3c9d9177e77256353b36c159f5f040531bbd4b024a8f9b9196c71ce",
            "{name}"
        );
    }
    assert_eq!(find(&ms, "gnu/regtype-gnu-uid").uid, 4294967295);
    // The dense copy of the sparse file.
    assert_eq!(find(&ms, "ustar/sparse").sha256, sparse.sha256);
    // Every member was read, up to the end marker.
    assert_eq!(ms.last().unwrap().name, "misc/eof");
    // Every mtime is 2003-01-05 23:19 UTC, except the Solaris tar member
    // (and its 'X' header) and the pax global headers, which are from 2007.
    let odd: Vec<_> = ms
        .iter()
        .filter(|m| !m.name.contains("suntar") && m.typeflag != 'g')
        .filter(|m| !(1041808740..1041808800).contains(&m.mtime))
        .map(|m| (&m.name, m.typeflag, m.mtime))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
}

#[test]
fn go_gnu_tar() {
    let Some(ms) = read_tar("golang-go/archive-tar/gnu.tar") else {
        return;
    };
    assert_eq!(ms.len(), 2);
    assert_eq!(
        (ms[0].name.as_str(), ms[0].size, ms[0].crc32, ms[0].mtime),
        ("small.txt", 5, 0x6cbd88fc, 1244428340)
    );
    assert_eq!(
        (ms[1].name.as_str(), ms[1].size, ms[1].crc32, ms[1].mtime),
        ("small2.txt", 11, 0xddac04b3, 1244436044)
    );
    assert_eq!((ms[0].uid, ms[0].gid), (73025, 5000));
    assert_eq!(ms[0].data[0].1, b"Kilts");
}

#[test]
fn go_gnu_sparse_big() {
    let Some(p) = corpus("golang-go/archive-tar/gnu-sparse-big.tar") else {
        return;
    };
    let mut t = tar::TarReader::new(File::open(p).unwrap());
    let e = t.next_entry().unwrap().unwrap();
    assert_eq!(e.name_str(), "gnu-sparse");
    assert_eq!((e.size, e.realsize), (3072, 60000000000));
    let map: Vec<_> = e
        .sparse
        .unwrap()
        .iter()
        .map(|s| (s.offset, s.numbytes))
        .collect();
    let want: Vec<_> = (1..=6).map(|i| (i * 10_000_000_000 - 512, 512)).collect();
    assert_eq!(map, want);
    assert_eq!(e.data_offset, 1024, "one extension block");
    // Each chunk: 412 NULs then "0123456789" x 10. Holes are not hashed
    // here (60 GB); the chunks are compared directly.
    let mut chunk = vec![0u8; 412];
    chunk.extend(b"0123456789".repeat(10));
    let mut got = Vec::new();
    t.read_content(|o, c| {
        if let tar::TarChunk::Data(d) = c {
            got.push((o, d.to_vec()));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(got.len(), 6);
    for (i, (o, d)) in got.iter().enumerate() {
        assert_eq!(*o, want[i].0);
        assert_eq!(*d, chunk);
    }
    assert!(t.next_entry().unwrap().is_none());
}

#[test]
fn go_sparse_formats_oldgnu_member() {
    let Some(ms) = read_tar("golang-go/archive-tar/sparse-formats.tar") else {
        return;
    };
    let m = &ms[0];
    assert_eq!(m.name, "sparse-gnu");
    assert_eq!((m.typeflag, m.size, m.realsize), ('S', 95, 200));
    let map = m.sparse.as_ref().unwrap();
    assert_eq!(map.len(), 95);
    assert!(map
        .iter()
        .enumerate()
        .all(|(i, &(o, n))| o == 1 + 2 * i as u64 && n == 1));
    assert_eq!(
        m.sha256,
        "ed7c086b492e5f08afd6f20f81d445bcc007c24c5f6aad6d30f9d7e5a9ae34d9"
    );
    assert_eq!(m.crc32, 0x5375e1d2);
    assert_eq!(m.mtime, 1392395740);
    // The PAX sparse members come through undecoded, with their pax
    // records attached; the last member is the plain "end".
    assert_eq!(ms.len(), 5);
    let end = ms.last().unwrap();
    assert_eq!((end.name.as_str(), end.crc32), ("end", 0x8eb179ba));
}

#[test]
fn go_gnu_nil_sparse_and_incremental() {
    if let Some(ms) = read_tar("golang-go/archive-tar/gnu-nil-sparse-data.tar") {
        assert_eq!(
            ms[0].sha256,
            "ab6c5f3237f551d208fc2ca5225a4cca20b3fd638794a804f0ed5549d5041734"
        );
    }
    if let Some(ms) = read_tar("golang-go/archive-tar/gnu-nil-sparse-hole.tar") {
        assert_eq!(ms[0].sparse.as_ref().unwrap(), &[(1000, 0)]);
        assert_eq!(
            ms[0].sha256,
            "541b3e9daa09b20bf85fa273e5cbd3e80185aa4ec298e765db87742b70138a53"
        );
    }
    if let Some(ms) = read_tar("golang-go/archive-tar/gnu-incremental.tar") {
        let names: Vec<_> = ms.iter().map(|m| (m.name.as_str(), m.typeflag)).collect();
        assert_eq!(
            names,
            [("test2/", 'D'), ("test2/foo", '0'), ("test2/sparse", 'S')]
        );
        assert_eq!(
            ms[1].sha256,
            "da99a5f9e4ed22389485bf6d8e944e5a6ba2aedd2ddf3036f02a6c901061a1e7"
        );
        assert_eq!(
            ms[2].sha256,
            "9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"
        );
    }
}

#[test]
fn go_long_names_last_one_wins() {
    if let Some(p) = corpus("golang-go/archive-tar/gnu-multi-hdrs.tar") {
        let mut t = tar::TarReader::new(File::open(p).unwrap());
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!(e.name_str(), "GNU2/GNU2/long-path-name");
        assert_eq!(
            String::from_utf8_lossy(&e.link_name),
            "GNU4/GNU4/long-linkpath-name"
        );
        assert_eq!((e.long_names, e.long_links), (2, 2));
    }
    if let Some(ms) = read_tar("golang-go/archive-tar/gnu-long-nul.tar") {
        assert_eq!(ms[0].name, "0123456789");
    }
    if let Some(ms) = read_tar("golang-go/archive-tar/gnu-utf8.tar") {
        // The corpus README says 21 repeats; GNU tar lists 18 (162 bytes).
        assert_eq!(ms[0].name, "☺☻☹".repeat(18));
    }
    if let Some(ms) = read_tar("golang-go/archive-tar/ustar.tar") {
        assert_eq!(ms[0].name, format!("{}file.txt", "longname/".repeat(15)));
        assert_eq!(ms[0].size, 6);
    }
    for rel in ["v7.tar", "star.tar", "writer.tar"] {
        if let Some(ms) = read_tar(&format!("golang-go/archive-tar/{rel}")) {
            assert_eq!(ms[0].name, "small.txt", "{rel}");
            assert_eq!(ms[0].crc32, 0x6cbd88fc, "{rel}");
            assert_eq!(ms[1].crc32, 0xddac04b3, "{rel}");
        }
    }
}

#[test]
fn go_truncated_big_file_fails_on_data() {
    let Some(p) = corpus("golang-go/archive-tar/writer-big.tar") else {
        return;
    };
    let mut t = tar::TarReader::new(File::open(p).unwrap());
    let e = t.next_entry().unwrap().unwrap();
    assert_eq!(e.name_str(), "tmp/16gig.txt");
    assert_eq!(e.size, 17179869184);
    let err = t.read_content(|_, _| Ok(())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar stream truncated in member data (at byte 512)"
    );
}

#[test]
fn go_fuzz_cases_are_errors() {
    for (rel, msg) in [
        (
            "neg-size.tar",
            "tar header size field is a negative base-256 number (at byte 124)",
        ),
        (
            "issue10968.tar",
            "tar header size field is a negative base-256 number (at byte 124)",
        ),
        (
            "issue11169.tar",
            "tar stream truncated in member data (at byte 602)",
        ),
        (
            "issue12435.tar",
            "tar header size field is a base-256 number too large for 64 bits (at byte 124)",
        ),
    ] {
        let Some(p) = corpus(&format!("golang-go/archive-tar/{rel}")) else {
            continue;
        };
        let err = read_members(File::open(p).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), msg, "{rel}");
    }
}

// ---------------------------------------------------------------------------
// gzip

fn gunzip(rel: &str) -> Option<(Vec<u8>, gzip::GzipFacts, Vec<String>)> {
    let p = corpus(rel)?;
    let mut r = gzip::GzipReader::new(File::open(p).unwrap()).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    let findings = r.findings().iter().map(|f| f.to_string()).collect();
    Some((v, r.facts().clone(), findings))
}

#[test]
fn flate2_good_file() {
    let Some((data, facts, findings)) = gunzip("flate2-rs/good-file.gz") else {
        return;
    };
    assert_eq!(
        data,
        std::fs::read(corpus("flate2-rs/good-file.txt").unwrap()).unwrap()
    );
    assert_eq!(data.len(), 14877);
    assert_eq!(
        (facts.flags, facts.mtime, facts.os, facts.crc),
        (0, 0, 11, 0x4d264751)
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn flate2_multi_member() {
    let Some((data, facts, findings)) = gunzip("flate2-rs/multi.gz") else {
        return;
    };
    // Every member is read, as GNU gzip and flate2's MultiGzDecoder do
    // (RFC 1952 §2.2).
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(File::open(corpus("flate2-rs/multi.gz").unwrap()).unwrap())
        .read_to_end(&mut all)
        .unwrap();
    assert!(all.starts_with(b"first\n") && all.len() > 6, "{all:?}");
    assert_eq!(data, all);
    assert_eq!((facts.mtime, facts.os, facts.members), (1463129537, 3, 2));
    let at = facts.next_member_offset.unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].starts_with(&format!(
            "at byte {at}: gzip: more than one gzip member: another starts here"
        )),
        "{findings:?}"
    );
    // The GCP verifier reports it too (beside the tar findings), as a
    // provider's rule.
    let report = cloudimg_disk::verify::verify_file(
        &File::open(corpus("flate2-rs/multi.gz").unwrap()).unwrap(),
        cloudimg_disk::formats::Format::Gzip,
    )
    .unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.to_string() == findings[0])
        .expect("reported");
    assert_eq!(f.layer, cloudimg_disk::verify::Layer::Provider);
    assert_eq!(report.details["gzip_members"], "more than one");
}

#[test]
fn dfvfs_syslog_facts() {
    let Some((data, facts, findings)) = gunzip("dfvfs/syslog.gz") else {
        return;
    };
    assert_eq!(facts.name.as_deref(), Some("syslog.1"));
    assert_eq!(facts.flags, 8);
    assert_eq!((facts.mtime, facts.os), (0x501416D7, 3));
    assert_eq!((data.len(), facts.crc), (1247, 0x9d510ecc));
    let mut d = DiskDigest::new();
    d.data(&data);
    assert_eq!(
        d.finish().to_string(),
        "0420b023f8dc1b71ff25191ce4ce88d10028f99f99f7c21532611f4c273aeae9"
    );
    assert!(findings.is_empty());
}

#[test]
fn dfvfs_corrupt1_is_truncated() {
    let Some(p) = corpus("dfvfs/corrupt1.gz") else {
        return;
    };
    let mut r = gzip::GzipReader::new(File::open(&p).unwrap()).unwrap();
    let mut d = DiskDigest::new();
    let mut buf = vec![0u8; 65536];
    let err = loop {
        match r.read(&mut buf) {
            Ok(0) => panic!("corrupt1.gz decoded without error"),
            Ok(n) => d.data(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err.to_string(),
        "gzip file truncated: the deflate stream ends before its final block (at byte 196608)"
    );
    // zcat writes the same 2994187 bytes before failing.
    assert_eq!(d.len(), 2994187);
    assert_eq!(
        d.finish().to_string(),
        "a33d898c1cdf6592e13eaaa39040a657d23007faeb2e04845c8e7db6ece46438"
    );
    let err = cloudimg_disk::verify::verify_file(
        &File::open(&p).unwrap(),
        cloudimg_disk::formats::Format::Gzip,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "gzip file truncated: the deflate stream ends before its final block (at byte 196608)"
    );
}

#[test]
fn dfvfs_fsevents_two_members() {
    let Some((data, facts, findings)) = gunzip("dfvfs/fsevents_000000000000b208") else {
        return;
    };
    assert!(data.starts_with(b"1SLD"));
    assert_eq!((facts.mtime, facts.os), (0, 3));
    assert_eq!(findings.len(), 1);
    assert!(findings[0].contains("more than one gzip member"));
    // Both members together give the documented content.
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(
        File::open(corpus("dfvfs/fsevents_000000000000b208").unwrap()).unwrap(),
    )
    .read_to_end(&mut all)
    .unwrap();
    assert_eq!(all.len(), 506631);
    assert_eq!(data, all);
}

/// Our reader reads chunks back to back; make sure the short reads of a
/// slow reader do not change anything.
#[test]
fn short_reads_give_the_same_members() {
    struct Trickle<R>(R, usize);
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.1 = self.1 % 7 + 1;
            let n = b.len().min(self.1 * 37);
            self.0.read(&mut b[..n])
        }
    }
    let Some(p) = corpus("cpython/testtar.tar") else {
        return;
    };
    let a = read_members(File::open(&p).unwrap()).unwrap();
    let b = read_members(Trickle(File::open(&p).unwrap(), 0)).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.name, &x.sha256), (&y.name, &y.sha256));
    }
    let _ = Path::new("");
}

/// gzip a corpus tar with our writer and run the GCP verifier on it.
fn verify_gzipped(rel: &str) -> Option<Vec<String>> {
    let p = corpus(rel)?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar.gz");
    let mut w = gzip::GzipWriter::new(File::create(&out).unwrap()).unwrap();
    std::io::copy(&mut File::open(p).unwrap(), &mut w).unwrap();
    w.finish().unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&out).unwrap(),
        cloudimg_disk::formats::Format::Gzip,
    )
    .unwrap();
    Some(r.findings.iter().map(|f| f.to_string()).collect())
}

#[test]
fn verifier_findings_on_foreign_archives() {
    if let Some(m) = verify_gzipped("golang-go/archive-tar/sparse-formats.tar") {
        let extra = |at: u32, name: &str| {
            format!("at byte {at}: tar stream: extra member \"{name}\": the archive must hold only disk.raw")
        };
        let pax = |at: u32| {
            format!("at byte {at}: tar stream: pax extended header (typeflag 'x'): GCP wants plain oldgnu headers")
        };
        assert_eq!(
            m,
            [
                "at byte 0: tar stream: member is named \"sparse-gnu\", expected \"disk.raw\"".to_string(),
                "at byte 0: tar stream: \"sparse-gnu\" is 200 bytes, not a whole number of GiB".into(),
                "at byte 0: tar stream: sparse chunk 0 at 1 is 1 bytes, not a multiple of 512: GNU tar cannot read it"
                    .into(),
                pax(3584),
                extra(3584, "sparse-posix-0.0"),
                pax(10240),
                extra(10240, "./GNUSparseFile.1234/sparse-posix-0.1"),
                pax(12800),
                extra(12800, "./GNUSparseFile.1234/sparse-posix-1.0"),
                extra(15872, "end"),
            ]
        );
    }
    if let Some(m) = verify_gzipped("golang-go/archive-tar/writer-big.tar") {
        assert_eq!(
            m,
            [
                "at byte 0: tar stream: member is named \"tmp/16gig.txt\", expected \"disk.raw\"",
                "at byte 512: tar stream truncated in member data",
            ]
        );
    }
    if let Some(m) = verify_gzipped("golang-go/archive-tar/neg-size.tar") {
        assert_eq!(
            m,
            ["at byte 124: tar stream: tar header size field is a negative base-256 number"]
        );
    }
}
