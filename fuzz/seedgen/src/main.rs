//! `cloudimg-fuzz-seedgen OUTDIR`: write seed inputs for the fuzz targets
//! with cloudimg's own writers, one folder per target:
//! `OUTDIR/{gpt,vhd,vmdk,tar,gzip}/`. Every image is small (the GPT disks
//! are 64 KiB; the GCP tarballs hold a 1 GiB disk that is nearly all
//! holes), so libFuzzer can mutate them.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use cloudimg_disk::formats::gcp::{self, gzip::GzipReader};
use cloudimg_disk::formats::{vhd, vmdk, WriteOptions};
use cloudimg_disk::layout::gpt::{self, GptSpec, NewPartition};
use cloudimg_disk::layout::Guid;
use cloudimg_disk::{MemDisk, VirtualDisk};

const GIB: u64 = 1 << 30;

fn guid(n: u8) -> Guid {
    Guid::v4_from([n; 16])
}

/// A small GPT disk: `entries` entries, two partitions with some data.
fn gpt_disk(size: u64, entries: u32) -> Vec<u8> {
    let mut spec = GptSpec::new(guid(1));
    spec.num_entries = entries;
    spec.boot_code = vec![0xeb, 0x63, 0x90];
    let first = 2 + (entries as u64 * 128).div_ceil(512);
    let last = size / 512 - first - 1;
    let mid = (first + last) / 2;
    spec.partitions = vec![
        NewPartition {
            type_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap(),
            unique_guid: guid(2),
            first_lba: first,
            last_lba: mid,
            attributes: 0,
            name: "EFI system".into(),
        },
        NewPartition {
            type_guid: "21686148-6449-6E6F-744E-656564454649".parse().unwrap(),
            unique_guid: guid(3),
            first_lba: mid + 1,
            last_lba: last,
            attributes: 1 << 2,
            name: "BIOS boot".into(),
        },
    ];
    let img = gpt::create(&spec, size).expect("gpt::create");
    let mut d = vec![0u8; size as usize];
    for (o, b) in img.patches() {
        d[o as usize..o as usize + b.len()].copy_from_slice(b);
    }
    // Some content in the first partition.
    let at = (first * 512) as usize;
    for (i, b) in d[at..at + 1500].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    d
}

fn opts() -> WriteOptions {
    WriteOptions {
        mtime: 1_700_000_000,
        seed: [7; 32],
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("writing a seed");
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: cloudimg-fuzz-seedgen OUTDIR");
    let out = Path::new(&out);
    let dirs = ["gpt", "vhd", "vmdk", "tar", "gzip"];
    for d in dirs {
        fs::create_dir_all(out.join(d)).expect("creating a seed folder");
    }
    let tmp = out.join("tmp");
    fs::create_dir_all(&tmp).expect("creating a scratch folder");

    // GPT disks: default and small arrays, a hybrid MBR, a damaged copy.
    let disks = [
        ("gpt-128.img", gpt_disk(64 << 10, 128)),
        ("gpt-4.img", gpt_disk(16 << 10, 4)),
    ];
    for (name, d) in &disks {
        write(&out.join("gpt"), name, d);
    }
    let mut hybrid = disks[1].1.clone();
    hybrid[446 + 16 + 4] = 0x0c; // a FAT32 LBA entry beside the 0xEE one
    hybrid[446 + 16 + 8] = 40;
    hybrid[446 + 16 + 12] = 8;
    write(&out.join("gpt"), "gpt-hybrid.img", &hybrid);
    let mut damaged = disks[1].1.clone();
    damaged[512 + 40] ^= 1;
    write(&out.join("gpt"), "gpt-damaged-primary.img", &damaged);
    write(&out.join("gpt"), "mbr-only.img", &{
        let mut m = vec![0u8; 4096];
        m[446 + 4] = 0x83;
        m[446 + 8] = 1;
        m[446 + 12] = 7;
        m[510] = 0x55;
        m[511] = 0xaa;
        m
    });

    for (name, d) in &disks {
        let disk = MemDisk::new(d.clone());
        // Fixed VHD.
        let p = tmp.join("x.vhd");
        let f = File::create(&p).expect("creating a scratch file");
        vhd::write_fixed(&disk, &f, &opts()).expect("vhd::write_fixed");
        write(
            &out.join("vhd"),
            &name.replace(".img", ".vhd"),
            &fs::read(&p).unwrap(),
        );
        // Stream-optimized VMDK.
        let v = vmdk::write_stream_optimized(&disk, Vec::new(), "disk.vmdk", &opts())
            .expect("vmdk::write_stream_optimized");
        write(&out.join("vmdk"), &name.replace(".img", ".vmdk"), &v);
    }

    // GCP tarballs: the small GPT disk grown to 1 GiB (nearly all holes,
    // so the sparse member is small), and its tar stream.
    let base = MemDisk::new(disks[1].1.clone());
    let grown = gpt::grow(&base, GIB).expect("gpt::grow");
    let targz = gcp::write_tar_gz(&grown, Vec::new(), &opts()).expect("gcp::write_tar_gz");
    write(&out.join("gzip"), "targz-sparse.tar.gz", &targz);
    let mut tar = Vec::new();
    GzipReader::new(&targz[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    write(&out.join("tar"), "tar-sparse.tar", &tar);
    // Many holes: extension blocks in the sparse map.
    let mut bytes = vec![0u8; 256 << 10];
    for i in 0..60 {
        bytes[i * 4096] = 1 + i as u8;
    }
    let holes = gpt::grow(MemDisk::new(bytes), GIB).expect("gpt::grow");
    let targz = gcp::write_tar_gz(&holes, Vec::new(), &opts()).expect("gcp::write_tar_gz");
    write(&out.join("gzip"), "targz-many-holes.tar.gz", &targz);
    let mut tar = Vec::new();
    GzipReader::new(&targz[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    write(&out.join("tar"), "tar-many-holes.tar", &tar);
    // A plain gzip of some text.
    let mut w = gcp::gzip::GzipWriter::new(Vec::new()).unwrap();
    std::io::Write::write_all(&mut w, b"hello, fuzzer\n").unwrap();
    write(&out.join("gzip"), "gz-text.gz", &w.finish().unwrap());
    let _ = grown.size();
    fs::remove_dir_all(&tmp).ok();
}
