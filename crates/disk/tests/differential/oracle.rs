//! The two readings of one file and their comparison.
//!
//! cloudimg's reading runs in a child process (this test binary again,
//! running `child_process_entry`), under a time limit (`timeout`) and an
//! address-space limit (`ulimit -v`), so that a hang, an abort or an
//! allocation bomb in the library is recorded as a disagreement (class
//! `resource`) instead of taking the harness down. It opens the file with
//! `open_disk` (what `package`, `inspect` and `boot` read), writes the
//! bytes it decodes to a sparse file (Data extents read, Zero extents
//! left as holes: the way `package` copies a disk), and runs `verify_path`.
//!
//! The independent reading: `qemu-img convert -f <explicit format> -O raw`
//! (never a probe), run in the mutant's own directory; for a GCP tarball
//! GNU tar's extraction (`disk.raw`, the last one wins, as tar does); for
//! an OVA, GNU tar's extraction, then the one disk the OVF's `href`s
//! name, its `.mf` digests checked, decoded by qemu-img as a VMDK.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// cloudimg reads at most this virtual size in the harness (the GCP
/// tarball's disk is 1 GiB); a bigger disk is not compared.
pub const MAX_VIRTUAL: u64 = 3 << 29;
/// ... and at most this many bytes of Data extents.
pub const MAX_DATA: u64 = 256 << 20;
/// Seconds the child and qemu-img may take on one file.
pub const TIMEOUT_SECS: u32 = 60;
/// The child's address-space limit (KiB, for `ulimit -v`): 3 GiB.
pub const MEMORY_KIB: u64 = 3 << 20;

/// The child side: read `input` as cloudimg does, write the decoded disk
/// to `out` and what happened to `result` (JSON).
pub fn child_main(input: &Path, out: &Path, result: &Path) {
    use cloudimg_disk::formats::open::open_disk;
    use cloudimg_disk::ExtentKind;
    use std::os::unix::fs::FileExt;
    let mut r = json!({});
    let write = |r: &Value| fs::write(result, serde_json::to_vec(r).unwrap()).unwrap();
    match open_disk(input) {
        Err(e) => r["open"] = json!({"ok": false, "error": e.to_string()}),
        Ok((disk, format)) => {
            let size = disk.size();
            r["format"] = json!(format!("{format:?}"));
            let extents = disk.extents();
            let data: u64 = extents
                .iter()
                .flatten()
                .filter(|e| e.kind == ExtentKind::Data)
                .map(|e| e.len)
                .sum();
            if size > MAX_VIRTUAL || data > MAX_DATA {
                r["open"] = json!({"ok": true, "size": size, "skipped": format!("{size} bytes, {data} of data: too big to compare")});
                // verify would hash the whole declared size: not run.
                r["verify"] = json!({"skipped": true});
                write(&r);
                return;
            }
            let res = (|| -> Result<String, String> {
                let extents = extents.map_err(|e| format!("listing extents: {e}"))?;
                let f = File::create(out).map_err(|e| e.to_string())?;
                f.set_len(size).map_err(|e| e.to_string())?;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let zeros = vec![0u8; 1 << 20];
                for e in extents {
                    let mut at = e.offset;
                    while at < e.end() {
                        let k = (e.end() - at).min(buf.len() as u64) as usize;
                        if e.kind == ExtentKind::Data {
                            disk.read_at(&mut buf[..k], at)
                                .map_err(|e| format!("reading at {at}: {e}"))?;
                            if buf[..k].iter().any(|&b| b != 0) {
                                f.write_all_at(&buf[..k], at).map_err(|e| e.to_string())?;
                            }
                            h.update(&buf[..k]);
                        } else {
                            h.update(&zeros[..k]);
                        }
                        at += k as u64;
                    }
                }
                Ok(hex::encode(h.finalize()))
            })();
            r["open"] = match res {
                Ok(sha) => json!({"ok": true, "size": size, "sha256": sha}),
                Err(e) => {
                    json!({"ok": false, "error": format!("opened as {format:?} ({size} bytes) but: {e}")})
                }
            };
        }
    }
    write(&r);
    r["verify"] = match cloudimg_disk::verify::verify_path(input) {
        Err(e) => json!({"ok": false, "error": e.to_string()}),
        Ok(rep) => json!({
            "ok": true,
            "format": format!("{:?}", rep.format),
            // A provider's rule (GCP's whole GiB, oldgnu headers) makes a
            // file unfit for that provider, not read two ways: not counted.
            "findings": rep
                .findings
                .iter()
                .filter(|f| f.layer != cloudimg_disk::verify::Layer::Provider)
                .map(|f| f.to_string())
                .collect::<Vec<_>>(),
            "virtual_size": rep.virtual_size,
            "virtual_sha256": rep.virtual_sha256.map(|s| s.to_string()),
        }),
    };
    write(&r);
}

/// What the child reported, or how it died.
pub enum Child {
    Done(Value),
    /// Killed, aborted or timed out; the partial result (if the open part
    /// was done) and what happened.
    Died(Option<Value>, String),
}

/// Run the child on `input`; its decoded disk goes to `out`. The child is
/// this test binary, running only `child_process_entry`.
pub fn cloudimg_read(input: &Path, out: &Path, result: &Path) -> Child {
    cloudimg_read_with(
        &[
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ],
        input,
        out,
        result,
    )
}

/// [`cloudimg_read`], the current executable run with `args` as the
/// child (the fuzz target runs itself without arguments: its init code
/// sees `DIFF_CHILD_INPUT` and calls [`child_main`]).
pub fn cloudimg_read_with(args: &[&str], input: &Path, out: &Path, result: &Path) -> Child {
    let exe = std::env::current_exe().unwrap();
    let _ = fs::remove_file(result);
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_KIB}; exec timeout -s KILL {TIMEOUT_SECS} \"$0\" \"$@\""
        ))
        .arg(&exe)
        .args(args)
        .env("DIFF_CHILD_INPUT", input)
        .env("DIFF_CHILD_OUT", out)
        .env("DIFF_CHILD_RESULT", result)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let v: Option<Value> = fs::read(result)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match v {
        Some(v) if o.status.success() && v.get("verify").is_some() => Child::Done(v),
        v => {
            let err = String::from_utf8_lossy(&o.stderr);
            let out = String::from_utf8_lossy(&o.stdout);
            let msg = out
                .lines()
                .chain(err.lines())
                .find(|l| {
                    l.contains("panicked") || l.contains("memory allocation") || l.contains("error")
                })
                .unwrap_or("")
                .trim()
                .to_string();
            let how = match o.status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed (time limit or signal)".into(),
            };
            Child::Died(v, format!("{how} {msg}").trim().to_string())
        }
    }
}

/// A name qemu-img or GNU tar may be given to open: a plain file name in
/// the mutant's own directory (no path, no protocol prefix, no dot file).
pub fn plain_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n[0] != b'.'
        && n.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Whether qemu-img may be run on this file: it names no file other
/// than plain names in its own directory. QCOW2: the backing file name
/// (header bytes 8..20; qcow2.txt) and the external data file
/// (incompatible feature bit 2). VMDK: every extent line and
/// `parentFileNameHint` anywhere in the file (qemu reads an embedded
/// descriptor as the descriptor file when the header's capacity is 0,
/// and always follows `parentFileNameHint`; block/vmdk.c `vmdk_open_vmdk4`,
/// `vmdk_parent_open`). Err says what it names.
pub fn safe_for_qemu(qemu_fmt: &str, b: &[u8]) -> Result<(), String> {
    use crate::mutate::get;
    match qemu_fmt {
        "qcow2" => {
            let off = get(b, 8, 8, true) as usize;
            let len = get(b, 16, 4, true) as usize;
            // qemu reads a backing file name only when the offset is not
            // 0 (block/qcow2.c `qcow2_do_open`).
            if off != 0 && len > 0 && off < b.len() {
                let name = &b[off..(off + len).min(b.len())];
                if !plain_name(name) {
                    return Err(format!(
                        "names a backing file {:?}",
                        String::from_utf8_lossy(&name[..name.len().min(40)])
                    ));
                }
            }
            if get(b, 4, 4, true) >= 3 && get(b, 72, 8, true) & 4 != 0 {
                return Err("has the external data file bit".into());
            }
            Ok(())
        }
        "vmdk" => {
            for line in b.split(|&c| c == b'\n' || c == b'\r') {
                let t = line.trim_ascii();
                let extent = [&b"RW"[..], b"RDONLY", b"NOACCESS"]
                    .iter()
                    .any(|k| t.starts_with(k));
                let parent = t.windows(18).any(|w| w == b"parentFileNameHint");
                if !(extent || parent) {
                    continue;
                }
                let q: Vec<usize> = t
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c == b'"')
                    .map(|(i, _)| i)
                    .collect();
                let name = match q.as_slice() {
                    [a, z, ..] => &t[a + 1..*z],
                    _ => continue,
                };
                if !plain_name(name) {
                    return Err(format!(
                        "names a file {:?}",
                        String::from_utf8_lossy(&name[..name.len().min(40)])
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The qemu-img format name for a format cloudimg detected.
pub fn qemu_format(cloudimg_format: &str) -> Option<&'static str> {
    Some(match cloudimg_format {
        "Qcow2" => "qcow2",
        "VhdFixed" | "VhdDynamic" => "vpc",
        "Vmdk" => "vmdk",
        "Vhdx" => "vhdx",
        "Raw" => "raw",
        _ => return None,
    })
}

/// The reference reading of `input` (a file in its own directory),
/// written to `out`; Err is the reference's refusal. `format` is what
/// cloudimg detected.
pub fn reference(format: &str, input: &Path, out: &Path, work: &Path) -> Result<(), String> {
    match format {
        "Gzip" => {
            let dir = work.join("tar-x");
            fs::create_dir_all(&dir).unwrap();
            gnu_tar(&dir, &["-xzf"], input)?;
            regular(&dir.join("disk.raw"))?;
            fs::rename(dir.join("disk.raw"), out).unwrap();
            Ok(())
        }
        "Ova" => ova_reference(input, out, work),
        f => {
            let q = qemu_format(f).ok_or_else(|| format!("no reference reader for {f}"))?;
            qemu_convert(q, input, out)
        }
    }
}

fn regular(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(_) => Err(format!(
            "{} is not a regular file after extraction",
            p.display()
        )),
        Err(_) => Err(format!("no {} after extraction", p.display())),
    }
}

/// `tar ARGS input` in `dir` (no owners, no modes: the harness runs as
/// root too). Err on a non-zero exit, with tar's first message.
fn gnu_tar(dir: &Path, args: &[&str], input: &Path) -> Result<String, String> {
    let o = Command::new("timeout")
        .arg(TIMEOUT_SECS.to_string())
        .arg("tar")
        .args(args)
        .arg(input)
        .args(["--no-same-owner", "--no-same-permissions"])
        .current_dir(dir)
        .output()
        .unwrap();
    if !o.status.success() {
        let e = String::from_utf8_lossy(&o.stderr);
        return Err(format!(
            "GNU tar: {}",
            e.lines().next().unwrap_or("failed").trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `qemu-img convert -f fmt -O raw input out`, in `input`'s directory,
/// after [`safe_for_qemu`].
pub fn qemu_convert(fmt: &str, input: &Path, out: &Path) -> Result<(), String> {
    let bytes = fs::read(input).unwrap();
    if let Err(e) = safe_for_qemu(fmt, &bytes) {
        return Err(format!("UNSAFE: not given to qemu-img: {e}"));
    }
    let o = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            &TIMEOUT_SECS.to_string(),
            "qemu-img",
            "convert",
            "-f",
            fmt,
            "-O",
            "raw",
        ])
        .arg(input.file_name().unwrap())
        .arg(out)
        .current_dir(input.parent().unwrap())
        .output()
        .unwrap();
    if !o.status.success() {
        let e = String::from_utf8_lossy(&o.stderr);
        let e = e
            .lines()
            .next()
            .unwrap_or("killed (time limit)")
            .trim()
            .to_string();
        return Err(format!("qemu-img: {e}"));
    }
    Ok(())
}

/// An OVA's reference: the first member must be the `.ovf` (DSP0243
/// §5.3: "the OVF descriptor shall be the first file"); it must name
/// exactly one file (`href`); every digest in the `.mf` must match; that
/// file is decoded by qemu-img as a VMDK.
fn ova_reference(input: &Path, out: &Path, work: &Path) -> Result<(), String> {
    let dir = work.join("ova-x");
    fs::create_dir_all(&dir).unwrap();
    let list = gnu_tar(&dir, &["-tf"], input)?;
    let names: Vec<&str> = list.lines().collect();
    let ovf = names
        .first()
        .filter(|n| n.ends_with(".ovf"))
        .ok_or("the first member is not the .ovf")?;
    gnu_tar(&dir, &["-xf"], input)?;
    regular(&dir.join(ovf))?;
    let text = fs::read_to_string(dir.join(ovf)).map_err(|_| "the OVF is not UTF-8")?;
    let hrefs: Vec<&str> = text
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    let [disk] = hrefs.as_slice() else {
        return Err(format!("the OVF names {} files", hrefs.len()));
    };
    if let Some(mf) = names.iter().find(|n| n.ends_with(".mf")) {
        regular(&dir.join(mf))?;
        for line in fs::read_to_string(dir.join(mf))
            .map_err(|_| "the .mf is not UTF-8")?
            .lines()
        {
            let Some((lhs, want)) = line.split_once(")= ") else {
                return Err(format!("manifest line {line:?} is not SHA256(file)= hex"));
            };
            let name = lhs
                .strip_prefix("SHA256(")
                .ok_or(format!("manifest line {line:?}"))?;
            if !plain_name(name.as_bytes()) || regular(&dir.join(name)).is_err() {
                return Err(format!("manifest names {name:?}, not a member"));
            }
            let got = hex::encode(Sha256::digest(fs::read(dir.join(name)).unwrap()));
            if got != want.trim() {
                return Err(format!("manifest digest of {name} does not match"));
            }
        }
    }
    if !plain_name(disk.as_bytes()) {
        return Err(format!("the OVF names {disk:?}"));
    }
    regular(&dir.join(disk))?;
    qemu_convert("vmdk", &dir.join(disk), out)
}

/// The next offset at or after `at` where `f` holds data (SEEK_DATA),
/// or `len` when only a hole follows.
fn next_data(f: &File, at: u64, len: u64) -> u64 {
    match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(at)) {
        Ok(o) => o.min(len),
        Err(_) => len,
    }
}

/// Compare two decoded disks (sparse files): None when equal, else where
/// they differ. Ranges that are holes in both files are skipped (a hole
/// reads as zeros).
pub fn compare(a: &Path, b: &Path) -> Option<String> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 1 << 20;
    let (la, lb) = (
        fs::metadata(a).unwrap().len(),
        fs::metadata(b).unwrap().len(),
    );
    if la != lb {
        return Some(format!(
            "sizes differ: cloudimg {la} bytes, reference {lb} bytes"
        ));
    }
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
    let (mut first, mut chunks) = (None, 0u64);
    let mut at = 0u64;
    loop {
        let next = next_data(&fa, at, la).min(next_data(&fb, at, la));
        if next >= la {
            break;
        }
        at = (next / CHUNK * CHUNK).max(at);
        let k = (la - at).min(CHUNK) as usize;
        fa.read_exact_at(&mut ba[..k], at).unwrap();
        fb.read_exact_at(&mut bb[..k], at).unwrap();
        if ba[..k] != bb[..k] {
            chunks += 1;
            if first.is_none() {
                let i = (0..k).find(|&i| ba[i] != bb[i]).unwrap();
                first = Some((at + i as u64, ba[i], bb[i]));
            }
        }
        at += k as u64;
    }
    first.map(|(o, x, y)| format!("bytes differ from offset {o} (cloudimg {x:#04x}, reference {y:#04x}; {chunks} MiB differ)"))
}

/// A fresh work directory for one mutant: `dir/<n>/` holding the mutant
/// alone in `m/` (qemu-img resolves relative names there).
pub fn mutant_dir(root: &Path, n: usize) -> PathBuf {
    let d = root.join(format!("m{n}"));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("m")).unwrap();
    d
}
