//! `cloudimg-fuzz-seedgen OUTDIR`: write seed inputs for the fuzz targets
//! with cloudimg's own writers, one folder per target:
//! `OUTDIR/{gpt,vhd,vmdk,tar,gzip,qcow2,vhdx,ova,check,deflate}/`. Every
//! image is small (the GPT disks are 64 KiB; the GCP tarballs hold a 1 GiB
//! disk that is nearly all holes), so libFuzzer can mutate them; images
//! that are mostly zeros (VHDX, QCOW2, disks with a FAT ESP) are also
//! written page-encoded (`*.pages`, see [`encode_pages`]).
//!
//! `cloudimg-fuzz-seedgen --encode IN OUT [MAX]`: page-encode the file
//! `IN` (for corpus files such as the qemu VHDXs), keeping only the
//! non-zero runs that fit in `MAX` bytes of records (in file order; the
//! file length is always kept). The qemu VHDXs hold 20 and 66 MiB of
//! 0xA5 data blocks after 100 KiB of structures: with a budget, the
//! structures are kept and the data blocks read as zeros.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use cloudimg_disk::codec::gzip::{self, GzipReader};
use cloudimg_disk::formats::gcp;
use cloudimg_disk::formats::{ova, qcow2, vhd, vhdx, vmdk, WriteOptions};
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--encode") {
        let (i, o, max) = match &args[..] {
            [_, i, o] => (i, o, usize::MAX),
            [_, i, o, m] => (i, o, m.parse().expect("MAX is a number of bytes")),
            _ => panic!("usage: cloudimg-fuzz-seedgen --encode IN OUT [MAX]"),
        };
        let bytes = fs::read(i).expect("reading the file to encode");
        fs::write(o, encode_pages_max(&bytes, max)).expect("writing the encoded file");
        return;
    }
    let out = args
        .first()
        .expect("usage: cloudimg-fuzz-seedgen OUTDIR | --encode IN OUT");
    let out = Path::new(out);
    let dirs = [
        "gpt", "vhd", "vmdk", "tar", "gzip", "qcow2", "vhdx", "ova", "check", "deflate",
    ];
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
    let mut w = gzip::GzipWriter::new(Vec::new()).unwrap();
    std::io::Write::write_all(&mut w, b"hello, fuzzer\n").unwrap();
    write(&out.join("gzip"), "gz-text.gz", &w.finish().unwrap());
    let _ = grown.size();

    new_format_seeds(out, &tmp, &disks);
    fs::remove_dir_all(&tmp).ok();
}

/// Page-encode a file for the targets that take page-encoded inputs
/// (`cloudimg_fuzz::page_records`): records `{ u32 LE sector, u16 LE
/// length, bytes }` for every run of non-zero 512-byte sectors (at most
/// 127 sectors a record), then one record that sets the file length.
pub fn encode_pages(file: &[u8]) -> Vec<u8> {
    encode_pages_max(file, usize::MAX)
}

/// [`encode_pages`], dropping the records that would take the output
/// past `max` bytes (the length record is always written).
pub fn encode_pages_max(file: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rec = |sector: usize, bytes: &[u8], always: bool| {
        if !always && out.len().saturating_add(6 + bytes.len()) > max {
            return;
        }
        out.extend_from_slice(&(sector as u32).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let sectors = file.len() / 512;
    let mut s = 0;
    while s < sectors {
        if file[s * 512..(s + 1) * 512].iter().all(|&b| b == 0) {
            s += 1;
            continue;
        }
        let mut e = s + 1;
        while e < sectors && e - s < 127 && file[e * 512..(e + 1) * 512].iter().any(|&b| b != 0) {
            e += 1;
        }
        rec(s, &file[s * 512..e * 512], false);
        s = e;
    }
    // The length: the partial last sector, or an empty record at the end.
    rec(sectors, &file[sectors * 512..], true);
    out
}

/// A minimal PE32+ EFI application header (x86-64) followed by `tag`.
fn pe(tag: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3C] = 0x80;
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    b[0x98..0x9A].copy_from_slice(&0x20Bu16.to_le_bytes());
    b[0x98 + 68..0x98 + 70].copy_from_slice(&10u16.to_le_bytes());
    b.extend_from_slice(tag);
    b
}

/// Limine-style MBR code: `EB 58 90`, zero BPB area, some code, and the
/// two stage-2 halves (512 bytes each) at LBA 40 and 41.
fn limine_mbr() -> Vec<u8> {
    let mut c = vec![0u8; 440];
    c[..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    for (i, b) in c[0x5A..0x1A4].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    c[0x1A4..0x1A6].copy_from_slice(&512u16.to_le_bytes());
    c[0x1A6..0x1A8].copy_from_slice(&512u16.to_le_bytes());
    c[0x1A8..0x1B0].copy_from_slice(&(40u64 * 512).to_le_bytes());
    c[0x1B0..0x1B8].copy_from_slice(&(41u64 * 512).to_le_bytes());
    c
}

/// GRUB-style MBR code: `EB 63 90`, the "GRUB " mark, core.img at LBA 40.
fn grub_mbr() -> Vec<u8> {
    let mut c = vec![0u8; 440];
    c[..3].copy_from_slice(&[0xEB, 0x63, 0x90]);
    c[0x5C..0x64].copy_from_slice(&40u64.to_le_bytes());
    c[0x180..0x185].copy_from_slice(b"GRUB ");
    c
}

/// The ESP files of a Limine or a GRUB setup (long names included).
fn esp_files(limine: bool) -> Vec<(String, Vec<u8>)> {
    let mut f = vec![(
        "/EFI/BOOT/BOOTX64.EFI".to_string(),
        pe(if limine { b"Limine" } else { b"GNU GRUB" }),
    )];
    if limine {
        f.push((
            "/limine.conf".into(),
            b"timeout: 0\nserial: yes\n\n/capOS\n    protocol: multiboot2\n    path: boot():/boot/capos-kernel.elf\n".to_vec(),
        ));
    } else {
        f.push((
            "/EFI/BOOT/grub.cfg".into(),
            b"set timeout=0\nmenuentry capOS {\n  multiboot2 /boot/capos-kernel.elf console=ttyS0\n  boot\n}\n".to_vec(),
        ));
    }
    f.push(("/boot/capos-kernel.elf".into(), vec![0x7F; 3000]));
    f
}

/// A FAT12 or FAT16 volume of `size` bytes made by `fatfs` (with long
/// names: fatfs's `alloc` feature), holding `files`.
fn small_fat(size: u64, fat: fatfs::FatType, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::{Cursor, Write};
    let mut vol = Cursor::new(vec![0u8; size as usize]);
    fatfs::format_volume(
        &mut vol,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fat)
            .bytes_per_cluster(512)
            .total_sectors((size / 512) as u32)
            .volume_id(0x1234_5678)
            .volume_label(*b"ESP        "),
    )
    .expect("formatting a FAT volume");
    vol.set_position(0);
    {
        let fs = fatfs::FileSystem::new(&mut vol, fatfs::FsOptions::new()).expect("opening FAT");
        for (path, bytes) in files {
            let mut comps: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let name = comps.pop().unwrap();
            let mut dir = fs.root_dir();
            for c in comps {
                dir = dir.open_dir(c).or_else(|_| dir.create_dir(c)).unwrap();
            }
            dir.create_file(name).unwrap().write_all(bytes).unwrap();
        }
        fs.unmount().unwrap();
    }
    vol.into_inner()
}

/// A GPT disk: BIOS boot partition at LBA 2048..4095 (stage 2 bytes at
/// LBA 40), an ESP at LBA 4096 holding `esp` (given as (offset, bytes)
/// chunks of a volume of `esp_len` bytes), 1 MiB free at the end.
fn esp_disk(esp_len: u64, esp: &[(u64, &[u8])], boot_code: Vec<u8>) -> Vec<u8> {
    let size = 4096 * 512 + esp_len + (1 << 20);
    let esp_sectors = esp_len / 512;
    let spec = GptSpec {
        boot_code,
        partitions: vec![
            NewPartition {
                type_guid: "21686148-6449-6E6F-744E-656564454649".parse().unwrap(),
                unique_guid: guid(4),
                first_lba: 2048,
                last_lba: 4095,
                attributes: 0,
                name: "BIOS boot".into(),
            },
            NewPartition {
                type_guid: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".parse().unwrap(),
                unique_guid: guid(5),
                first_lba: 4096,
                last_lba: 4096 + esp_sectors - 1,
                attributes: 0,
                name: "EFI System".into(),
            },
        ],
        ..GptSpec::new(guid(6))
    };
    let img = gpt::create(&spec, size).expect("gpt::create");
    let mut d = vec![0u8; size as usize];
    for (o, b) in img.patches() {
        d[o as usize..o as usize + b.len()].copy_from_slice(b);
    }
    d[40 * 512..42 * 512].fill(0x5A);
    if d[..3] == [0xEB, 0x63, 0x90] {
        // GRUB diskboot.img's first blocklist entry: 1 sector at LBA 41.
        let b = 40 * 512 + 500;
        d[b..b + 8].copy_from_slice(&41u64.to_le_bytes());
        d[b + 8..b + 10].copy_from_slice(&1u16.to_le_bytes());
        d[b + 10..b + 12].copy_from_slice(&0x820u16.to_le_bytes());
    }
    for (o, b) in esp {
        let at = 4096 * 512 + *o as usize;
        d[at..at + b.len()].copy_from_slice(b);
    }
    d
}

/// Seeds of the qcow2, vhdx, ova, check and deflate targets.
fn new_format_seeds(out: &Path, tmp: &Path, disks: &[(&str, Vec<u8>)]) {
    for (name, d) in disks {
        let disk = MemDisk::new(d.clone());
        let stem = name.trim_end_matches(".img");
        // QCOW2, plain and compressed: raw and page-encoded.
        for compress in [false, true] {
            let p = tmp.join("x.qcow2");
            let f = File::create(&p).expect("creating a scratch file");
            qcow2::write(&disk, &f, &opts(), compress, 1).expect("qcow2::write");
            let bytes = fs::read(&p).unwrap();
            let kind = if compress { "compressed" } else { "plain" };
            write(
                &out.join("qcow2"),
                &format!("qcow2-{kind}-{stem}.qcow2"),
                &bytes,
            );
            write(
                &out.join("qcow2"),
                &format!("qcow2-{kind}-{stem}.pages"),
                &encode_pages(&bytes),
            );
        }
        // Dynamic VHDX, page-encoded.
        let p = tmp.join("x.vhdx");
        let f = File::create(&p).expect("creating a scratch file");
        vhdx::write_dynamic(&disk, &f, &opts()).expect("vhdx::write_dynamic");
        write(
            &out.join("vhdx"),
            &format!("vhdx-{stem}.pages"),
            &encode_pages(&fs::read(&p).unwrap()),
        );
        // OVA.
        let mut o = Vec::new();
        ova::write(&disk, &mut o, "capos", &opts(), 1).expect("ova::write");
        write(&out.join("ova"), &format!("ova-{stem}.ova"), &o);
        // The raw disk, page-encoded, for check.
        write(
            &out.join("check"),
            &format!("check-{stem}.pages"),
            &encode_pages(d),
        );
    }
    write(
        &out.join("ova"),
        "ovf-capos.ovf",
        ova::ovf::render("capos", "capos-disk1.vmdk", 12345, 1 << 30).as_bytes(),
    );

    // GPT disks with a FAT ESP: FAT32 by cloudimg-image (Limine and GRUB
    // setups), FAT12 and FAT16 by fatfs.
    for limine in [true, false] {
        let files = esp_files(limine);
        let code = if limine { limine_mbr() } else { grub_mbr() };
        let setup = if limine { "limine" } else { "grub" };
        let vol = cloudimg_image::esp::build_esp(&cloudimg_image::esp::EspSpec {
            size: 34 << 20,
            volume_id: 0x1234_5678,
            label: "ESP".into(),
            mtime: 1_700_000_000,
            hidden_sectors: 4096,
            files: files.clone(),
        })
        .expect("build_esp");
        let chunks: Vec<(u64, &[u8])> = vol.data_chunks().collect();
        let d = esp_disk(vol.len(), &chunks, code.clone());
        write(
            &out.join("check"),
            &format!("check-fat32-{setup}.pages"),
            &encode_pages(&d),
        );
        for (fat, size, n) in [
            (fatfs::FatType::Fat12, 1u64 << 20, "fat12"),
            (fatfs::FatType::Fat16, 4 << 20, "fat16"),
        ] {
            let v = small_fat(size, fat, &files);
            let d = esp_disk(size, &[(0, &v)], code.clone());
            write(
                &out.join("check"),
                &format!("check-{n}-{setup}.pages"),
                &encode_pages(&d),
            );
        }
    }

    // Deflate: raw streams of text and of a disk at a few levels, and the
    // uncompressed inputs (for the compress-then-walk mode).
    let text =
        b"cloudimg fuzz seed: deflate blocks, stored, fixed and dynamic Huffman. ".repeat(40);
    for (what, data) in [("text", &text[..]), ("disk", &disks[1].1[..])] {
        for level in [0, 1, 4, 12] {
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
            let mut z = vec![0u8; c.deflate_compress_bound(data.len())];
            let n = c.deflate_compress(data, &mut z).unwrap();
            write(
                &out.join("deflate"),
                &format!("deflate-{what}-{level}.deflate"),
                &z[..n],
            );
        }
        write(&out.join("deflate"), &format!("deflate-{what}.raw"), data);
    }
}
