//! Time the stream-optimized writer for several worker counts:
//! `cargo run --release --example vmdk_bench -- [MiB] [raw-out-path]`.
use std::time::Instant;

use cloudimg_disk::formats::vmdk;
use cloudimg_disk::formats::WriteOptions;
use cloudimg_disk::MemDisk;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let mut b = vec![0u8; mib << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (i, c) in b.chunks_mut(1 << 20).enumerate() {
        match i % 3 {
            0 => c.iter_mut().for_each(|v| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }),
            1 => c
                .iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = b"lorem ipsum dolor sit amet\n"[j % 27]),
            _ => {}
        }
    }
    if let Some(p) = std::env::args().nth(2) {
        std::fs::write(p, &b).unwrap();
    }
    let d = MemDisk::new(b);
    let opts = WriteOptions {
        mtime: 0,
        seed: [0; 32],
    };
    let mut first: Option<Vec<u8>> = None;
    for jobs in [1, 2, 4] {
        let t = Instant::now();
        let out = vmdk::write_stream_optimized_jobs(&d, Vec::new(), "b.vmdk", &opts, jobs).unwrap();
        let dt = t.elapsed();
        println!(
            "jobs={jobs}: {mib} MiB -> {} bytes in {:.2?} ({:.0} MiB/s)",
            out.len(),
            dt,
            mib as f64 / dt.as_secs_f64()
        );
        match &first {
            None => first = Some(out),
            Some(f) => assert!(f == &out, "output differs with jobs={jobs}"),
        }
    }
}
