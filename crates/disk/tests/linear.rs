//! Linear time and bounded memory, for every parser: each test builds an
//! adversarial input at two scales (N and 4N: more clusters, grains,
//! blocks, members, a bigger declared table, a bigger declared disk) and
//! reads it as `package`, `check` and `boot` do (`open_disk`: the opener
//! and the verifier's one decode) or as `verify` does, in a child process
//! (this test binary again). What is asserted is counted, never timed:
//!
//! - the bytes read and the read calls made (the kernel's count,
//!   /proc/thread-self/io `rchar`/`syscr`, proc(5)) grow at most
//!   linearly from N to 4N;
//! - the peak resident memory the reading adds (`VmHWM` of
//!   /proc/self/status before and after, in the child) stays under a
//!   bound set by the input's real content, whatever its headers declare.
//!
//! The VHDX log's search is counted in sectors by its unit tests
//! (formats/vhdx/log.rs). `bench/linear.sh` runs these inputs at more
//! scales and prints the times (for the README; times are never
//! asserted).

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cloudimg_disk::formats::{ova, vmdk, WriteOptions};
use cloudimg_disk::MemDisk;
use common::{counting_reads, require_tool, Reads, Rng};

const MIB: u64 = 1 << 20;
const OPTS: WriteOptions = WriteOptions {
    mtime: 1_700_000_000,
    seed: [3; 32],
};

/// How the child reads a file.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `formats::open::open_disk`, then every byte of the disk read.
    Open,
    /// `verify::verify_path`.
    Verify,
    /// `layout::gpt::verify` of the file as a raw disk.
    Gpt,
}

/// What one reading cost.
#[derive(Debug, Clone, Copy)]
struct Cost {
    reads: Reads,
    /// Growth of the child's peak resident set (KiB) during the reading.
    peak_kib: u64,
    /// Seconds it took: printed by bench/linear.sh, never asserted.
    seconds: f64,
}

fn vm_hwm_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}

/// The child's side: read `LINEAR_PATH` as `LINEAR_OP` says and print
/// its cost on one line.
#[test]
fn linear_child_entry() {
    let (Some(path), Some(op)) = (
        std::env::var_os("LINEAR_PATH"),
        std::env::var("LINEAR_OP").ok(),
    ) else {
        return;
    };
    let path = PathBuf::from(path);
    let before = vm_hwm_kib();
    let t = std::time::Instant::now();
    let ((), reads) = counting_reads(|| match op.as_str() {
        "Open" => {
            if let Ok((d, _)) = cloudimg_disk::formats::open::open_disk(&path) {
                let _ = cloudimg_disk::io::sha256_disk(&*d);
            }
        }
        "Verify" => {
            let _ = cloudimg_disk::verify::verify_path(&path);
        }
        _ => {
            let d = cloudimg_disk::io::RawFile::open(&path).unwrap();
            let _ = cloudimg_disk::layout::gpt::verify(&d);
        }
    });
    let seconds = t.elapsed().as_secs_f64();
    let peak = vm_hwm_kib().saturating_sub(before);
    println!(
        "LINEAR-COST {} {} {peak} {seconds:.6}",
        reads.bytes, reads.calls
    );
}

/// Read `path` with `op` in a child process; its cost.
fn cost(path: &Path, op: Op) -> Cost {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "linear_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("LINEAR_PATH", path)
        .env("LINEAR_OP", format!("{op:?}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("LINEAR-COST "))
        .unwrap_or_else(|| panic!("child: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let w: Vec<&str> = line.split_whitespace().collect();
    Cost {
        reads: Reads {
            bytes: w[0].parse().unwrap(),
            calls: w[1].parse().unwrap(),
        },
        peak_kib: w[2].parse().unwrap(),
        seconds: w[3].parse().unwrap(),
    }
}

/// The scales: N and 4N; `LINEAR_SCALES=1,4,16` (bench/linear.sh) for more.
fn scales() -> Vec<u64> {
    std::env::var("LINEAR_SCALES")
        .ok()
        .map(|s| s.split(',').map(|k| k.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1, 4])
}

/// Build the input at every scale with `build(dir, k)`, read it with
/// `op`, print the costs, and assert that work grows at most linearly
/// and memory stays under `mem_bound_kib(file length)`.
fn check_linear(
    name: &str,
    op: Op,
    build: impl Fn(&Path, u64) -> PathBuf,
    mem_bound_kib: impl Fn(u64) -> u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut costs = Vec::new();
    for k in scales() {
        let p = build(dir.path(), k);
        let len = fs::metadata(&p).unwrap().len();
        let c = cost(&p, op);
        println!(
            "LINEAR {name} scale {k}: file {len} bytes, read {} bytes in {} calls, peak +{} KiB, {:.3} s",
            c.reads.bytes, c.reads.calls, c.peak_kib, c.seconds
        );
        assert!(
            c.peak_kib <= mem_bound_kib(len),
            "{name} scale {k}: peak memory grew {} KiB, over {} KiB for a {len}-byte file",
            c.peak_kib,
            mem_bound_kib(len)
        );
        costs.push((k, c));
        fs::remove_file(&p).unwrap();
    }
    let (k0, c0) = costs[0];
    for &(k, c) in &costs[1..] {
        let f = k / k0;
        // Linear: at most f times the work of scale k0, and a constant
        // (headers, the reading of /proc, a short table) beyond.
        assert!(
            c.reads.bytes <= f * c0.reads.bytes + MIB,
            "{name}: {} bytes read at scale {k}, {} at scale {k0}: more than linear",
            c.reads.bytes,
            c0.reads.bytes
        );
        assert!(
            c.reads.calls <= f * c0.reads.calls + 64,
            "{name}: {} read calls at scale {k}, {} at scale {k0}: more than linear",
            c.reads.calls,
            c0.reads.calls
        );
    }
}

/// Memory bound: 64 MiB beyond twice the file's own size (buffers, the
/// tables a file really holds).
fn content_bound(len: u64) -> u64 {
    (64 * MIB + 2 * len) / 1024
}

/// A raw disk of `k` × 8 MiB: every other 64 KiB cluster half random
/// (compressible), the others holes.
fn raw_disk(dir: &Path, k: u64) -> PathBuf {
    let p = dir.join(format!("raw{k}.raw"));
    let size = k * 8 * MIB;
    let f = fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    let mut rng = Rng::new(k);
    let mut c = vec![0u8; 64 << 10];
    for at in (0..size).step_by(128 << 10) {
        rng.fill(&mut c[..32 << 10]);
        f.write_all_at(&c, at).unwrap();
    }
    p
}

fn raw_bytes(dir: &Path, k: u64) -> Vec<u8> {
    let p = raw_disk(dir, k);
    let b = fs::read(&p).unwrap();
    fs::remove_file(p).unwrap();
    b
}

#[test]
fn qcow2_compressed_clusters_read_in_linear_time() {
    if !require_tool("qemu-img") {
        return;
    }
    check_linear(
        "qcow2 (compressed clusters)",
        Op::Open,
        |dir, k| {
            let raw = raw_disk(dir, k);
            let q = dir.join(format!("q{k}.qcow2"));
            common::qemu_convert_raw(&raw, "qcow2", &["-c"], &q);
            q
        },
        content_bound,
    );
}

#[test]
fn qcow2_refcount_table_in_a_sparse_region_costs_what_the_file_holds() {
    if !require_tool("qemu-img") {
        return;
    }
    // The refcount table moved into a hole past the data, and declared
    // 1024·k clusters long (64·k MiB of zeros): the reading may cost the
    // bytes of the file, but memory must not follow what is declared.
    check_linear(
        "qcow2 (refcount table in a sparse region)",
        Op::Verify,
        |dir, k| {
            let q = dir.join(format!("r{k}.qcow2"));
            run_qemu_img(&["create", "-q", "-f", "qcow2", q.to_str().unwrap(), "1G"]);
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&q)
                .unwrap();
            let clusters = 1024 * k;
            let at = 16 * MIB;
            f.write_all_at(&at.to_be_bytes(), 48).unwrap();
            f.write_all_at(&(clusters as u32).to_be_bytes(), 56)
                .unwrap();
            f.set_len(at + clusters * 65536).unwrap();
            q
        },
        |_| 64 * MIB / 1024,
    );
}

fn run_qemu_img(args: &[&str]) {
    common::run(Command::new("qemu-img").args(args));
}

#[test]
fn vhd_dynamic_blocks_read_in_linear_time() {
    if !require_tool("qemu-img") {
        return;
    }
    check_linear(
        "vhd (dynamic)",
        Op::Open,
        |dir, k| {
            let raw = raw_disk(dir, k);
            let q = dir.join(format!("d{k}.vhd"));
            common::qemu_convert_raw(&raw, "vpc", &["-o", "subformat=dynamic"], &q);
            q
        },
        content_bound,
    );
}

#[test]
fn vhdx_blocks_read_in_linear_time() {
    if !require_tool("qemu-img") {
        return;
    }
    check_linear(
        "vhdx",
        Op::Open,
        |dir, k| {
            let raw = raw_disk(dir, k);
            let q = dir.join(format!("x{k}.vhdx"));
            common::qemu_convert_raw(
                &raw,
                "vhdx",
                &["-o", "subformat=dynamic,block_size=1048576"],
                &q,
            );
            q
        },
        content_bound,
    );
}

/// A stream-optimized VMDK of the `k`-scaled disk (cloudimg's writer).
fn stream_vmdk(dir: &Path, k: u64) -> PathBuf {
    let raw = raw_bytes(dir, k);
    let v = vmdk::write_stream_optimized(&MemDisk::new(raw), Vec::new(), "s.vmdk", &OPTS).unwrap();
    let p = dir.join(format!("s{k}.vmdk"));
    fs::write(&p, v).unwrap();
    p
}

#[test]
fn vmdk_grains_read_in_linear_time() {
    check_linear(
        "vmdk (stream-optimized grains)",
        Op::Open,
        stream_vmdk,
        content_bound,
    );
}

#[test]
fn vmdk_declaring_huge_sectors_costs_what_the_file_holds() {
    // Issue 13: a VMDK declaring 2^48 sectors took 6.3 GB in inspect.
    // Here 2^46·k sectors: every header copy (KDMV sectors) says so.
    check_linear(
        "vmdk (2^46·k sectors declared)",
        Op::Open,
        |dir, k| {
            let p = stream_vmdk(dir, 1);
            let mut b = fs::read(&p).unwrap();
            for s in (0..b.len()).step_by(512) {
                if b[s..].starts_with(b"KDMV") {
                    b[s + 12..s + 20].copy_from_slice(&((1u64 << 46) * k).to_le_bytes());
                }
            }
            fs::write(&p, b).unwrap();
            p
        },
        content_bound,
    );
}

/// A tar of `n` members: an OVF descriptor first, then `n` small ones.
fn many_member_tar(n: u64) -> Vec<u8> {
    let mut t = Vec::new();
    let mut push = |name: &str, data: &[u8]| {
        t.extend_from_slice(&ova::ustar_header(name, data.len() as u64, 0));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    };
    push("a.ovf", b"<Envelope/>");
    for i in 0..n {
        push(&format!("m{i}.txt"), format!("member {i}\n").as_bytes());
    }
    t.resize(t.len() + 1024, 0);
    t
}

#[test]
fn ova_with_many_members_reads_in_linear_time() {
    check_linear(
        "ova/tar (many members)",
        Op::Verify,
        |dir, k| {
            let p = dir.join(format!("m{k}.ova"));
            fs::write(&p, many_member_tar(4000 * k)).unwrap();
            p
        },
        content_bound,
    );
}

#[test]
fn gzip_of_many_members_reads_in_linear_time() {
    if !require_tool("tar") {
        return;
    }
    // GNU tar's GCP tarball of the k-scaled disk, each 4 KiB of the tar
    // stream its own gzip member.
    check_linear(
        "gzip (many members) of a GCP tarball",
        Op::Open,
        |dir, k| {
            let t = dir.join(format!("t{k}"));
            fs::create_dir_all(&t).unwrap();
            fs::rename(raw_disk(dir, k), t.join("disk.raw")).unwrap();
            common::run(Command::new("tar").current_dir(&t).args([
                "--format=oldgnu",
                "-Scf",
                "disk.tar",
                "disk.raw",
            ]));
            let tar = fs::read(t.join("disk.tar")).unwrap();
            let mut gz = Vec::new();
            for piece in tar.chunks(4096) {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut z, piece).unwrap();
                gz.extend_from_slice(&z.finish().unwrap());
            }
            fs::remove_dir_all(&t).unwrap();
            let p = dir.join(format!("g{k}.tar.gz"));
            fs::write(&p, gz).unwrap();
            p
        },
        content_bound,
    );
}

#[test]
fn gpt_declaring_a_huge_entry_array_costs_what_the_file_holds() {
    // A GPT whose headers claim 2^20·k entries (128·k MiB of array) on a
    // 32 MiB disk: the array is not there to read.
    check_linear(
        "gpt (2^20·k entries declared)",
        Op::Gpt,
        |dir, k| {
            let p = dir.join(format!("gpt{k}.raw"));
            let f = common::gpt_file(&p, 32 * MIB, k);
            let n = 32 * MIB / 512;
            for lba in [1, n - 1] {
                let mut h = [0u8; 512];
                f.read_exact_at(&mut h, lba * 512).unwrap();
                h[80..84].copy_from_slice(&((1u32 << 20) * k as u32).to_le_bytes());
                h[16..20].fill(0);
                let c = cloudimg_disk::layout::gpt::crc32(&h[..92]);
                h[16..20].copy_from_slice(&c.to_le_bytes());
                f.write_all_at(&h, lba * 512).unwrap();
            }
            p
        },
        content_bound,
    );
}
