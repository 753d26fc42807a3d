//! A gzip file of several members (RFC 1952 §2.2: "A gzip file consists
//! of a series of "members""), as `gzip -c a; gzip -c b` or pigz write
//! it, is read as GNU gzip and tar read it: every member, in order. The
//! oracles: `gzip -t` accepts the file and GNU `tar -xzf` extracts the
//! disk cloudimg decodes. More than one member is a provider-rule finding
//! (GCP's reading of it is not documented [U]), never a container defect.

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

use cloudimg_disk::codec::gzip::GzipReader;
use cloudimg_disk::formats::{open, Format};
use cloudimg_disk::verify::{verify_path, Layer};
use cloudimg_disk::VirtualDisk;
use common::{require_tool, run, Rng};

const MIB: u64 = 1 << 20;

/// A 4 MiB `disk.raw` in `dir` with random data in a few places, and the
/// oldgnu sparse tar of it GNU tar makes (the GCP recipe, reference §1).
fn disk_and_tar(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut disk = vec![0u8; 4 * MIB as usize];
    let mut rng = Rng::new(13);
    for (at, len) in [
        (0usize, 70_000usize),
        (MIB as usize + 5, 300_000),
        (4 * MIB as usize - 4096, 4096),
    ] {
        rng.fill(&mut disk[at..at + len]);
    }
    fs::write(dir.join("disk.raw"), &disk).unwrap();
    run(Command::new("tar").current_dir(dir).args([
        "--format=oldgnu",
        "-Scf",
        "disk.tar",
        "disk.raw",
    ]));
    (disk, fs::read(dir.join("disk.tar")).unwrap())
}

/// `tool -c` of each piece of `tar` (cut at `cuts`), concatenated.
fn members(dir: &Path, tool: &str, tar: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut from = 0;
    for (i, &to) in cuts.iter().chain([tar.len()].iter()).enumerate() {
        let piece = dir.join(format!("piece{i}"));
        fs::write(&piece, &tar[from..to]).unwrap();
        let z = Command::new(tool)
            .args(["-n", "-c"])
            .arg(&piece)
            .output()
            .unwrap();
        assert!(z.status.success(), "{tool} -c");
        out.extend_from_slice(&z.stdout);
        from = to;
    }
    out
}

/// Check `gz` (at `path`) with the oracles and with cloudimg: gzip -t
/// passes, GNU tar extracts `disk`, cloudimg decodes `disk` and finds
/// only provider rules, one of them the second member.
fn check_multi_member(dir: &Path, path: &Path, disk: &[u8]) {
    run(Command::new("gzip").arg("-t").arg(path));
    let x = dir.join("x");
    fs::create_dir_all(&x).unwrap();
    run(Command::new("tar").arg("-xzf").arg(path).arg("-C").arg(&x));
    assert!(
        fs::read(x.join("disk.raw")).unwrap() == disk,
        "GNU tar extracts the disk"
    );

    let report = verify_path(path).unwrap();
    let container: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.layer == Layer::Container)
        .collect();
    assert!(container.is_empty(), "{container:?}");
    assert!(
        report.findings.iter().any(|f| f.layer == Layer::Provider
            && f.message.starts_with("gzip: more than one gzip member")),
        "{:?}",
        report.findings
    );
    let (d, format) = open::open_disk(path).unwrap();
    assert_eq!(format, Format::Gzip);
    let mut got = vec![0u8; d.size() as usize];
    d.read_at(&mut got, 0).unwrap();
    assert!(got == disk, "cloudimg decodes what GNU tar extracts");
}

#[test]
fn gzip_c_members_concatenated_read_as_gnu_tar_reads_them() {
    if !(require_tool("tar") && require_tool("gzip")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, tar) = disk_and_tar(dir.path());
    // Cut inside the first header, inside the data, and inside the end
    // blocks: every layer of the tar stream crosses a member boundary.
    let cuts = [100, 1_000_000, tar.len() - 700];
    let p = dir.path().join("multi.tar.gz");
    fs::write(&p, members(dir.path(), "gzip", &tar, &cuts)).unwrap();
    check_multi_member(dir.path(), &p, &disk);
}

#[test]
fn pigz_members_concatenated_read_as_gnu_tar_reads_them() {
    if !(require_tool("tar") && require_tool("gzip") && require_tool("pigz")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (disk, tar) = disk_and_tar(dir.path());
    let p = dir.path().join("pigz.tar.gz");
    fs::write(
        &p,
        members(dir.path(), "pigz", &tar, &[512, 2 * MIB as usize + 3]),
    )
    .unwrap();
    check_multi_member(dir.path(), &p, &disk);
}

#[test]
fn each_member_has_its_own_trailer_checked() {
    if !require_tool("gzip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tar = b"first part, then the second".to_vec();
    let mut gz = members(dir.path(), "gzip", &tar, &[11]);
    // The second member's CRC-32 (its trailer: the last 8 bytes).
    let n = gz.len();
    gz[n - 8] ^= 1;
    let mut r = GzipReader::new(&gz[..]).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut back).unwrap();
    assert_eq!(back, tar);
    let msgs: Vec<_> = r.findings().iter().map(|f| f.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].contains("gzip: more than one gzip member"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with(&format!("at byte {}: gzip: CRC32 mismatch", n - 8)),
        "{msgs:?}"
    );
    assert_eq!(r.facts().members, 2);
    // gzip -t agrees that the file is damaged.
    let p = dir.path().join("bad.gz");
    fs::write(&p, &gz).unwrap();
    let st = Command::new("gzip").arg("-t").arg(&p).status().unwrap();
    assert!(
        !st.success(),
        "gzip -t refuses a bad CRC in the second member"
    );
    let _ = File::open(&p).unwrap();
}
