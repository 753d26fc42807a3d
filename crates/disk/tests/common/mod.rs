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
