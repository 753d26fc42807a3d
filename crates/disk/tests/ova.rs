//! OVA writer and verifier against GNU tar, Python tarfile and minidom,
//! sha256sum and qemu-img.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::formats::ova;
use cloudimg_disk::formats::WriteOptions;
use cloudimg_disk::io::{sha256_disk, DiskDigest, RawFile};
use common::{require_tool, run, Rng};

const OPTS: WriteOptions = WriteOptions {
    mtime: 1_700_000_000,
    seed: [9; 32],
};
const SIZE: u64 = 8 << 20;

/// A sparse raw disk with a GPT and seeded random data runs.
fn make_input(path: &Path, size: u64, seed: u64) {
    let f = common::gpt_file(path, size, seed);
    let mut rng = Rng::new(seed);
    let mut off = 1 << 20;
    while off + 65536 < size - (1 << 16) {
        let mut buf = vec![0u8; 4096 * (1 + rng.next_u64() as usize % 8)];
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
        off += 256 * 1024 + (rng.next_u64() % 64) * 4096;
    }
}

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
}

fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.raw");
    let out = dir.path().join("capos.ova");
    make_input(&input, SIZE, 5);
    write_ova(&input, &out, 2, dir.path());
    Case { dir, input, out }
}

fn write_ova(input: &Path, out: &Path, jobs: usize, tmp: &Path) {
    let disk = RawFile::open(input).unwrap();
    let f = File::create(out).unwrap();
    ova::write_in(&disk, &f, "capos", &OPTS, jobs, tmp).unwrap();
}

fn findings(p: &Path) -> Vec<String> {
    let r = cloudimg_disk::verify::verify_file(
        &File::open(p).unwrap(),
        cloudimg_disk::formats::Format::Ova,
    )
    .unwrap();
    r.findings.iter().map(|f| f.to_string()).collect()
}

#[test]
fn gnu_tar_lists_and_extracts_members_in_order() {
    if !require_tool("tar") || !require_tool("qemu-img") || !require_tool("sha256sum") {
        return;
    }
    let c = case();
    let list = run(Command::new("tar").arg("-tf").arg(&c.out));
    assert_eq!(list, "capos.ovf\ncapos-disk1.vmdk\ncapos.mf\n");
    let verbose = run(Command::new("tar").arg("-tvf").arg(&c.out));
    assert!(verbose.starts_with("-rw-r--r-- root/root"), "{verbose}");
    let x = c.dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&c.out).arg("-C").arg(&x));
    let vmdk = x.join("capos-disk1.vmdk");
    run(Command::new("qemu-img")
        .args(["check", "-f", "vmdk"])
        .arg(&vmdk));
    run(Command::new("qemu-img")
        .args(["compare", "-f", "vmdk", "-F", "raw"])
        .arg(&vmdk)
        .arg(&c.input));
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&vmdk));
    assert!(
        info.contains("\"create-type\": \"streamOptimized\""),
        "{info}"
    );

    // The manifest matches sha256sum of the extracted members.
    let mf = std::fs::read_to_string(x.join("capos.mf")).unwrap();
    let mut expected = String::new();
    for m in ["capos.ovf", "capos-disk1.vmdk"] {
        let out = run(Command::new("sha256sum").arg(x.join(m)));
        let hex = out.split_whitespace().next().unwrap();
        expected.push_str(&format!("SHA256({m})= {hex}\n"));
    }
    assert_eq!(mf, expected);

    // The descriptor's References and DiskSection match the members.
    let vmdk_size = std::fs::metadata(&vmdk).unwrap().len();
    let ovf = std::fs::read_to_string(x.join("capos.ovf")).unwrap();
    assert!(ovf.contains(&format!(
        "<File ovf:href=\"capos-disk1.vmdk\" ovf:id=\"file1\" ovf:size=\"{vmdk_size}\"/>"
    )));
    assert!(ovf.contains(&format!(
        "ovf:capacity=\"{SIZE}\" ovf:capacityAllocationUnits=\"byte\""
    )));
}

#[test]
fn python_reads_ustar_and_parses_the_descriptor() {
    if !require_tool("python3") {
        return;
    }
    let c = case();
    let script = r#"
import sys, tarfile, xml.dom.minidom
p = sys.argv[1]
raw = open(p, 'rb').read()
with tarfile.open(p) as t:
    ms = t.getmembers()
    print(' '.join(m.name for m in ms))
    for m in ms:
        assert raw[m.offset + 257:m.offset + 265] == b'ustar\x0000', m.name
        assert (m.uid, m.gid, m.uname, m.gname, m.mode, m.mtime) == (0, 0, 'root', 'root', 0o644, 1700000000), m.name
        assert m.isreg()
    d = xml.dom.minidom.parseString(t.extractfile('capos.ovf').read())
    ns = 'http://schemas.dmtf.org/ovf/envelope/1'
    f = d.getElementsByTagNameNS(ns, 'File')[0]
    disk = d.getElementsByTagNameNS(ns, 'Disk')[0]
    print(f.getAttributeNS(ns, 'href'), f.getAttributeNS(ns, 'size') == str(t.getmember('capos-disk1.vmdk').size),
          disk.getAttributeNS(ns, 'capacity'), disk.getAttributeNS(ns, 'format'))
    print(d.getElementsByTagNameNS('http://www.vmware.com/schema/ovf', 'Config')[0].getAttributeNS('http://www.vmware.com/schema/ovf', 'value'))
"#;
    let out = run(Command::new("python3").arg("-c").arg(script).arg(&c.out));
    assert_eq!(
        out,
        format!(
            "capos.ovf capos-disk1.vmdk capos.mf\ncapos-disk1.vmdk True {SIZE} {}\nefi\n",
            ova::VMDK_STREAM_OPTIMIZED_URI
        )
    );
}

#[test]
fn output_is_reproducible_and_leaves_no_temporary_file() {
    let c = case();
    let again = c.dir.path().join("again.ova");
    let tmp = tempfile::tempdir().unwrap();
    write_ova(&c.input, &again, 1, tmp.path());
    assert_eq!(
        std::fs::read(&c.out).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    let mut names: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["again.ova", "capos.ova", "in.raw"]);
    assert_eq!(std::fs::metadata(&c.out).unwrap().len() % 10240, 0);
}

#[test]
fn verifier_decodes_the_disk_and_finds_nothing() {
    let c = case();
    let input = RawFile::open(&c.input).unwrap();
    let file = File::open(&c.out).unwrap();
    let r = cloudimg_disk::verify::verify_file(&file, cloudimg_disk::formats::Format::Ova).unwrap();
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.virtual_size, Some(SIZE));
    assert_eq!(r.virtual_sha256, Some(sha256_disk(&input).unwrap()));
    assert_eq!(r.details["ovf_capacity"], SIZE);
    let sha = sha256_disk(&input).unwrap();
    let digest = DiskDigest::comparing(&input, sha).unwrap();
    let r = cloudimg_disk::verify::verify_file_with(
        &file,
        cloudimg_disk::formats::Format::Ova,
        cloudimg_disk::verify::VerifyOptions {
            digest,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    // The VMDK copy made beside the OVA has no name left.
    assert_eq!(std::fs::read_dir(c.dir.path()).unwrap().count(), 2);
}

#[test]
fn names_that_do_not_fit_are_refused() {
    let disk = cloudimg_disk::MemDisk::new(vec![0; 1 << 20]);
    let err = ova::write(&disk, Vec::new(), "a/b", &OPTS, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "OVA name \"a/b\" must be 1 to 80 ASCII letters, digits, '.', '_', '-' or '+', not starting with '.' or '-'"
    );
}

/// Offset of `needle` in the file.
fn find(p: &Path, needle: &[u8]) -> u64 {
    let b = std::fs::read(p).unwrap();
    b.windows(needle.len()).position(|w| w == needle).unwrap() as u64
}

#[test]
fn manifest_mismatch_is_found() {
    let c = case();
    let at = find(&c.out, b"SHA256(capos-disk1.vmdk)= ") + 26;
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    let mut b = [0u8; 1];
    File::open(&c.out)
        .unwrap()
        .read_exact_at(&mut b, at)
        .unwrap();
    f.write_all_at(&[if b[0] == b'0' { b'1' } else { b'0' }], at)
        .unwrap();
    let fs = findings(&c.out);
    assert_eq!(fs.len(), 1, "{fs:?}");
    let vmdk_at = find(&c.out, b"KDMV");
    assert!(
        fs[0].starts_with(&format!(
            "at byte {vmdk_at}: capos.mf: SHA256 of \"capos-disk1.vmdk\" is "
        )),
        "{fs:?}"
    );
    assert!(fs[0].contains(", the manifest says "), "{fs:?}");
}

#[test]
fn descriptor_size_mismatch_is_found() {
    let c = case();
    let text = std::fs::read(&c.out).unwrap();
    let at = find(&c.out, b"ovf:size=\"") + 10;
    let len = text[at as usize..].iter().position(|&b| b == b'"').unwrap();
    let size: u64 = std::str::from_utf8(&text[at as usize..at as usize + len])
        .unwrap()
        .parse()
        .unwrap();
    let wrong = format!("{:0len$}", (size + 1) % 10u64.pow(len as u32));
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    f.write_all_at(wrong.as_bytes(), at).unwrap();
    let fs = findings(&c.out);
    assert_eq!(fs.len(), 2, "{fs:?}");
    let file_at = find(&c.out, b"<File ");
    assert_eq!(
        fs[0],
        format!("at byte {file_at}: capos.ovf: File \"capos-disk1.vmdk\" has ovf:size {} but the member is {size} bytes", wrong.parse::<u64>().unwrap())
    );
    assert!(
        fs[1].contains("capos.mf: SHA256 of \"capos.ovf\" is "),
        "{fs:?}"
    );
}

#[test]
fn wrong_member_order_is_found() {
    if !require_tool("tar") {
        return;
    }
    let c = case();
    let x = c.dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&c.out).arg("-C").arg(&x));
    let bad = c.dir.path().join("bad.ova");
    run(Command::new("tar")
        .args(["--format=ustar", "--owner=0", "--group=0", "-cf"])
        .arg(&bad)
        .arg("-C")
        .arg(&x)
        .args(["capos-disk1.vmdk", "capos.ovf", "capos.mf"]));
    assert_eq!(
        findings(&bad),
        ["at byte 0: the first member is \"capos-disk1.vmdk\", not the OVF descriptor (DSP0243 wants the .ovf first)"]
    );
    // A manifest in the middle of three or more members.
    let bad2 = c.dir.path().join("bad2.ova");
    std::fs::write(x.join("extra.txt"), b"x").unwrap();
    let mf = std::fs::read_to_string(x.join("capos.mf")).unwrap();
    let extra =
        "SHA256(extra.txt)= 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n";
    std::fs::write(x.join("capos.mf"), mf + extra).unwrap();
    run(Command::new("tar")
        .args(["--format=ustar", "--owner=0", "--group=0", "-cf"])
        .arg(&bad2)
        .arg("-C")
        .arg(&x)
        .args(["capos.ovf", "capos-disk1.vmdk", "capos.mf", "extra.txt"]));
    let fs = findings(&bad2);
    assert_eq!(fs.len(), 1, "{fs:?}");
    assert!(
        fs[0].ends_with(": manifest \"capos.mf\" is member 3 of 4: DSP0243 wants it right after the .ovf or last"),
        "{fs:?}"
    );
}

#[test]
fn truncated_archive_is_an_error() {
    let c = case();
    let len = std::fs::metadata(&c.out).unwrap().len();
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    f.set_len(len / 2).unwrap();
    let err = cloudimg_disk::verify::verify_file(
        &File::open(&c.out).unwrap(),
        cloudimg_disk::formats::Format::Ova,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("tar stream truncated in member data (at byte {})", len / 2)
    );
    // Cut after the last member: the missing end blocks are a finding.
    let c = case();
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    let end = find(&c.out, b"SHA256(capos.ovf)") + 512;
    f.set_len(end).unwrap();
    assert_eq!(
        findings(&c.out),
        [format!(
            "at byte {end}: the archive ends without its two zero blocks"
        )]
    );
}

#[test]
fn gnu_headers_and_a_missing_manifest_are_found() {
    if !require_tool("tar") {
        return;
    }
    let c = case();
    let x = c.dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar").arg("-xf").arg(&c.out).arg("-C").arg(&x));
    let gnu = c.dir.path().join("gnu.ova");
    run(Command::new("tar")
        .args(["--format=gnu", "-cf"])
        .arg(&gnu)
        .arg("-C")
        .arg(&x)
        .args(["capos.ovf", "capos-disk1.vmdk"]));
    let vmdk_header = find(&gnu, b"capos-disk1.vmdk\0");
    assert_eq!(
        findings(&gnu),
        [
            "at byte 0: member \"capos.ovf\" has a gnu header, not POSIX ustar".to_string(),
            format!("at byte {vmdk_header}: member \"capos-disk1.vmdk\" has a gnu header, not POSIX ustar"),
            "no manifest (.mf) member".to_string(),
        ]
    );
}

#[test]
fn capacity_mismatch_is_found() {
    let c = case();
    let at = find(&c.out, format!("ovf:capacity=\"{SIZE}\"").as_bytes()) + 14;
    let f = OpenOptions::new().write(true).open(&c.out).unwrap();
    // 8388608 -> 9388608: same length, the manifest no longer matches either.
    f.write_all_at(b"9", at).unwrap();
    let disk_at = find(&c.out, b"<Disk ");
    let fs = findings(&c.out);
    assert_eq!(fs.len(), 2, "{fs:?}");
    assert!(
        fs[1].starts_with("at byte 512: capos.mf: SHA256 of \"capos.ovf\" is "),
        "{fs:?}"
    );
    assert_eq!(
        fs[0],
        format!("at byte {disk_at}: capos.ovf: Disk capacity is 9388608 bytes but the VMDK holds {SIZE} bytes")
    );
}

// ---------------------------------------------------------------------------
// The OVF read with namespaces, whatever the prefix

/// Python: rewrite the `.ovf` of the OVA `src` as `mode` says, re-hash it
/// into the `.mf`, write the members in the same order as a ustar OVA at
/// `dst` (Python's tarfile), and print what Python's ElementTree (an
/// independent, namespace-aware parser) reads: the `File` and `Disk`
/// attributes, by the OVF namespace URI.
const REWRITE_OVF: &str = r#"
import hashlib, io, json, sys, tarfile
import xml.etree.ElementTree as ET
src, dst, mode = sys.argv[1:4]
OVF = "http://schemas.dmtf.org/ovf/envelope/1"
members = []
with tarfile.open(src) as t:
    for m in t.getmembers():
        members.append((m.name, t.extractfile(m).read()))
ovf_name, ovf = members[0]
if mode == "ns0":
    # ElementTree's own serialisation: every namespace gets an nsN prefix.
    root = ET.fromstring(ovf)
    ovf = ET.tostring(root, encoding="utf-8", xml_declaration=True)
elif mode == "default":
    # The OVF namespace as the default one and under the prefix "o" (our
    # writer binds it to both the default and "ovf").
    ovf = ovf.replace(b'xmlns:ovf="' + OVF.encode(), b'xmlns:o="' + OVF.encode())
    ovf = ovf.replace(b" ovf:", b" o:").replace(b'"ovf:/disk', b'"o:/disk')
elif mode == "foreign":
    ovf = ovf.replace(OVF.encode(), b"http://example.com/not-ovf")
else:
    raise SystemExit("unknown mode " + mode)
out = []
for name, data in members:
    if name == ovf_name:
        data = ovf
    elif name.endswith(".mf"):
        lines = []
        for line in data.decode().splitlines():
            if line.startswith("SHA256(%s)=" % ovf_name):
                line = "SHA256(%s)= %s" % (ovf_name, hashlib.sha256(ovf).hexdigest())
            lines.append(line)
        data = ("\n".join(lines) + "\n").encode()
    out.append((name, data))
with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in out:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
root = ET.fromstring(ovf)
ns = {"o": OVF}
a = lambda e, k: e.get("{%s}%s" % (OVF, k))
print(json.dumps({
    "ovf": ovf.decode(),
    "files": [[a(f, "href"), a(f, "id"), a(f, "size")] for f in root.findall("o:References/o:File", ns)],
    "disks": [[a(d, "capacity"), a(d, "fileRef"), a(d, "format")] for d in root.findall("o:DiskSection/o:Disk", ns)],
}))
"#;

fn rewrite_ovf(c: &Case, mode: &str) -> (PathBuf, serde_json::Value) {
    let dst = c.dir.path().join(format!("{mode}.ova"));
    let out = run(Command::new("python3")
        .args(["-c", REWRITE_OVF])
        .arg(&c.out)
        .arg(&dst)
        .arg(mode));
    (dst, serde_json::from_str(&out).unwrap())
}

#[test]
fn ovf_with_any_prefix_for_the_namespace_is_read() {
    if !require_tool("python3") {
        return;
    }
    let c = case();
    for mode in ["ns0", "default"] {
        let (ova_path, oracle) = rewrite_ovf(&c, mode);
        let text = oracle["ovf"].as_str().unwrap();
        if mode == "ns0" {
            assert!(
                text.contains("<ns0:Envelope ") && !text.contains(" ovf:"),
                "{text}"
            );
        } else {
            assert!(
                text.contains(" o:href=") && !text.contains(" ovf:"),
                "{text}"
            );
        }
        // Our parser reads what ElementTree reads.
        let env = ova::ovf::parse(text).unwrap();
        let files: Vec<_> = env
            .files
            .iter()
            .map(|f| serde_json::json!([f.href, f.id, f.size]))
            .collect();
        let disks: Vec<_> = env
            .disks
            .iter()
            .map(|d| serde_json::json!([d.capacity, d.file_ref, d.format]))
            .collect();
        assert_eq!(serde_json::Value::from(files), oracle["files"], "{mode}");
        assert_eq!(serde_json::Value::from(disks), oracle["disks"], "{mode}");
        assert_eq!(oracle["files"].as_array().unwrap().len(), 1);
        // And the whole OVA verifies clean.
        assert_eq!(findings(&ova_path), Vec::<String>::new(), "{mode}");
    }
}

#[test]
fn ovf_in_another_namespace_is_refused_in_one_line() {
    if !require_tool("python3") {
        return;
    }
    let c = case();
    let (ova_path, oracle) = rewrite_ovf(&c, "foreign");
    assert_eq!(oracle["files"], serde_json::json!([]));
    let text = oracle["ovf"].as_str().unwrap();
    let root_at = text.find("<Envelope").unwrap();
    // The .ovf is the first member: its data starts after one header.
    assert_eq!(
        findings(&ova_path),
        vec![format!(
            "at byte {}: capos.ovf: the root element is {{http://example.com/not-ovf}}Envelope, \
             not an OVF Envelope (namespace http://schemas.dmtf.org/ovf/envelope/1)",
            512 + root_at
        )]
    );
}

/// An OVA with another `.vmdk` before the one its descriptor names: the
/// reader (what `package` decodes) and the verifier both take the named
/// one, which holds the input.
#[test]
fn reader_takes_the_disk_the_descriptor_names() {
    if !require_tool("python3") || !require_tool("qemu-img") {
        return;
    }
    let c = case();
    let other_raw = c.dir.path().join("other.raw");
    make_input(&other_raw, 2 << 20, 6);
    let decoy = c.dir.path().join("decoy.vmdk");
    common::qemu_stream_vmdk(&other_raw, &decoy);
    let dst = c.dir.path().join("two.ova");
    // Python's tarfile writes: .ovf, aaa.vmdk (the decoy), the named
    // VMDK, then a manifest listing all three.
    run(Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import hashlib, io, sys, tarfile
src, decoy, dst = sys.argv[1:4]
with tarfile.open(src) as t:
    m = [(x.name, t.extractfile(x).read()) for x in t.getmembers()]
ovf, vmdk = m[0], m[1]
members = [ovf, ("aaa.vmdk", open(decoy, "rb").read()), vmdk]
mf = "".join("SHA256(%s)= %s\n" % (n, hashlib.sha256(d).hexdigest()) for n, d in members)
members.append(("capos.mf", mf.encode()))
with tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as t:
    for n, d in members:
        i = tarfile.TarInfo(n)
        i.size = len(d)
        t.addfile(i, io.BytesIO(d))
"#,
        )
        .arg(&c.out)
        .arg(&decoy)
        .arg(&dst));
    let input_sha = sha256_disk(&RawFile::open(&c.input).unwrap()).unwrap();
    let r = cloudimg_disk::verify::verify_file(
        &File::open(&dst).unwrap(),
        cloudimg_disk::formats::Format::Ova,
    )
    .unwrap();
    assert_eq!(r.findings, vec![]);
    assert_eq!(r.virtual_sha256, Some(input_sha));
    let disk = cloudimg_disk::formats::open::open_file_disk(
        File::open(&dst).unwrap(),
        std::fs::metadata(&dst).unwrap().len(),
        cloudimg_disk::formats::Format::Ova,
        &dst,
    )
    .unwrap();
    assert_eq!(sha256_disk(&*disk).unwrap(), input_sha);
}
