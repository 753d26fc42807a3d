//! Helpers shared by the integration tests: see `cloudimg-testkit`.
#![allow(unused_imports, dead_code)]

pub use cloudimg_testkit::*;

/// A new sparse file of `size` bytes at `path` holding only a GPT with one
/// Linux data partition from LBA 2048 to the last usable LBA (disk GUID
/// from `seed`); the caller writes the data it wants on top.
pub fn gpt_file(path: &std::path::Path, size: u64, seed: u64) -> std::fs::File {
    use cloudimg_disk::layout::gpt::{create, GptSpec, NewPartition};
    use cloudimg_disk::layout::Guid;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    let mut spec = GptSpec::new(Guid::v4_from([seed as u8; 16]));
    spec.partitions.push(NewPartition {
        type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".parse().unwrap(),
        unique_guid: Guid::v4_from([3; 16]),
        first_lba: 2048,
        last_lba: size / 512 - 34,
        attributes: 0,
        name: "data".into(),
    });
    create(&spec, size).unwrap().write_to(&f).unwrap();
    f
}

/// [`gpt_file`] laid out as Limine 8.x's `bios-install` leaves a GPT disk
/// (limine.c `bios_install`, GPT embedding): both arrays shrunk to 44
/// entries (11 sectors), and seeded random "stage 2 half B" bytes in the
/// 20 sectors before the backup header (LBAs N-21..=N-2). Returns half B.
pub fn limine_like_file(path: &std::path::Path, size: u64, seed: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = gpt_file(path, size, seed);
    let n = size / 512;
    shrink_arrays_to_44(&f, n);
    let mut half_b = vec![0u8; 20 * 512];
    Rng::new(seed).fill(&mut half_b);
    f.write_all_at(&half_b, (n - 21) * 512).unwrap();
    half_b
}

/// Shrink both GPT arrays of a 128-entry disk of `n` sectors (arrays at
/// LBA 2 and N-33) to 44 entries, as Limine 8.x's `bios-install` does,
/// updating each header's entry count, array CRC and header CRC.
pub fn shrink_arrays_to_44(f: &std::fs::File, n: u64) {
    use cloudimg_disk::layout::gpt::crc32;
    use std::os::unix::fs::FileExt;
    let entries = 44u32;
    for (hdr_lba, arr_lba) in [(1u64, 2u64), (n - 1, n - 33)] {
        let mut h = [0u8; 512];
        f.read_exact_at(&mut h, hdr_lba * 512).unwrap();
        let mut arr = vec![0u8; entries as usize * 128];
        f.read_exact_at(&mut arr, arr_lba * 512).unwrap();
        h[80..84].copy_from_slice(&entries.to_le_bytes());
        h[88..92].copy_from_slice(&crc32(&arr).to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        f.write_all_at(&h, hdr_lba * 512).unwrap();
    }
}

/// `gzip -n -c` of `data`: one gzip member, as GNU gzip writes it.
pub fn gzip_n(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer
        .join()
        .expect("writer thread")
        .expect("writing to gzip");
    assert!(out.status.success(), "gzip -n -c");
    out.stdout
}

/// `qemu-img convert -f raw -O <format> [options...] <raw> <out>`: the
/// independent writer most tests compare with (panics if it fails).
pub fn qemu_convert_raw(
    raw: &std::path::Path,
    format: &str,
    options: &[&str],
    out: &std::path::Path,
) {
    run(std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", format])
        .args(options)
        .arg(raw)
        .arg(out));
}

/// qemu-img's stream-optimized VMDK of the raw disk `raw`, written to `out`.
pub fn qemu_stream_vmdk(raw: &std::path::Path, out: &std::path::Path) {
    qemu_convert_raw(raw, "vmdk", &["-o", "subformat=streamOptimized"], out);
}

/// Reading work done by this thread, counted by the kernel: the bytes its
/// read(2)/pread(2) calls returned and how many calls it made
/// (`rchar`/`syscr` of /proc/thread-self/io, proc(5)). A count of work,
/// not a time: the same code on the same input counts the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reads {
    /// Bytes returned by read calls.
    pub bytes: u64,
    /// Read calls.
    pub calls: u64,
}

fn thread_reads() -> Reads {
    let io = std::fs::read_to_string("/proc/thread-self/io")
        .expect("/proc/thread-self/io (Linux task I/O accounting)");
    let field = |name: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/thread-self/io"))
    };
    Reads {
        bytes: field("rchar:"),
        calls: field("syscr:"),
    }
}

/// Run `f` and count the reads this thread made meanwhile (the reading of
/// /proc itself, a few hundred bytes, included).
pub fn counting_reads<T>(f: impl FnOnce() -> T) -> (T, Reads) {
    let before = thread_reads();
    let out = f();
    let after = thread_reads();
    (
        out,
        Reads {
            bytes: after.bytes - before.bytes,
            calls: after.calls - before.calls,
        },
    )
}
