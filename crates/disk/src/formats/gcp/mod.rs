//! The GCP import shape (reference §1): a gzip file with exactly one member
//! (§4e) holding a GNU `oldgnu` tar (§4c) with exactly one member named
//! `disk.raw`, whose size is a whole multiple of 1 GiB. Holes become an
//! old GNU sparse member (typeflag `S`), as `tar --format=oldgnu -S`
//! writes them; a disk without holes is a regular `0` member, as GNU tar
//! writes it.
//!
//! The tar stream is byte-for-byte what GNU tar 1.34 writes with
//! `--format=oldgnu -S --owner=root:0 --group=root:0 --mode=0644
//! --mtime=@<mtime>` for a file with the same holes (tested). The gzip
//! layer is one member with `gzip -n`'s header (MTIME 0, no FNAME, XFL 0,
//! OS 3), compressed pigz-style in independent blocks (see [`gzip`]), so
//! its deflate bytes differ from `gzip`'s but not between thread counts.
//!
//! Oracles (tests/gcp.rs): `gzip -t`, GNU `tar -tvf` / `tar -xSf` and
//! byte comparison with GNU tar's own archive, Python `tarfile`, sgdisk
//! GPTs, and archives made by `tar --format=oldgnu -Sczf` read back by
//! [`verify`]; the reader is also checked on tar and gzip files from other
//! projects (tests/tar_gzip_corpus.rs).

use std::fs::File;
use std::io::Write;

use std::path::Path;

use crate::codec::{gzip, tar};
use crate::disk::VirtualDisk;
use crate::error::{Error, IoContext, Result};
use crate::formats::table::{self, Inspected, Output, Probe};
use crate::formats::{foreign, WriteOptions};
use crate::io::{unnamed_temp_beside, write_nonzero, FileReader, RawFile};
use crate::vocab::GCP_SIZE_UNIT;

mod verify;

pub use verify::verify;

/// The format table's detector: gzip whose content is a tar. Any other
/// gzip (a compressed disk image, say) is refused, saying to decompress
/// it first. A disk whose first sector is a plausible MBR is never taken
/// for gzip ([`foreign::looks_partitioned`]).
pub fn detect(p: &Probe<'_>) -> Result<bool> {
    if !p.head.starts_with(foreign::GZIP_MAGIC) || foreign::looks_partitioned(p.head) {
        return Ok(false);
    }
    if !foreign::gzip_holds_tar(p.file) {
        return Err(Error::unsupported(foreign::Foreign::Gzip.refusal(p.path)));
    }
    Ok(true)
}

/// The format table's opener: `disk.raw` extracted (sparse) to an
/// unnamed temporary file beside `file` (or in `$TMPDIR`), which
/// disappears with the returned disk.
pub fn open(file: File, _len: u64, path: &Path) -> Result<Box<dyn VirtualDisk>> {
    let out = unnamed_temp_beside(&file, "a temporary extracted disk")?;
    let size = extract_disk(&file, &out)?;
    Ok(Box::new(RawFile::window(out, path, 0, size)))
}

/// The format table's inspection: the first member's facts and the start
/// of its content (enough for the primary GPT, not for the backup at the
/// end), without decompressing the rest ([`peek`]).
pub fn inspect(file: File, _len: u64, _path: &Path) -> Result<Inspected> {
    let (mut details, head, size) = peek(&file)?;
    details.insert(
        "note".into(),
        "only the start of disk.raw is decoded: the backup GPT is not read (verify decodes all)"
            .into(),
    );
    Ok(Inspected {
        details,
        virtual_size: size,
        disk: size.map(|s| Box::new(HeadDisk { head, size: s }) as Box<dyn VirtualDisk>),
    })
}

/// The format table's writer: [`write_tar_gz_jobs`] through a buffer.
pub fn write_artifact(disk: &dyn VirtualDisk, out: &Output<'_>, opts: &WriteOptions) -> Result<()> {
    table::through_buffer(out.file, |w| {
        write_tar_gz_jobs(disk, w, opts, out.jobs).map(drop)
    })
}

/// The first bytes of a disk, known; the rest reads as zeros. Used only to
/// show the primary GPT of a compressed disk (the backup, at the end, is
/// not decoded by `inspect`).
struct HeadDisk {
    head: Vec<u8>,
    size: u64,
}

impl VirtualDisk for HeadDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        buf.fill(0);
        let head = self.head.len() as u64;
        if offset < head {
            let n = (head - offset).min(buf.len() as u64) as usize;
            buf[..n].copy_from_slice(&self.head[offset as usize..offset as usize + n]);
        }
        Ok(())
    }
    fn extents(&self) -> std::io::Result<Vec<crate::disk::Extent>> {
        Ok(vec![crate::disk::Extent {
            offset: 0,
            len: self.size,
            kind: crate::disk::ExtentKind::Data,
        }])
    }
}

/// The only member name GCP accepts.
pub const MEMBER_NAME: &str = "disk.raw";
/// Mode of the member.
pub const MEMBER_MODE: u64 = 0o644;

/// Write `disk` (already grown to whole GiB) as `disk.raw` in a gzip'd
/// oldgnu tar to `out`, and return `out`. The bytes depend only on the
/// disk's content and extents and on `opts.mtime`.
pub fn write_tar_gz<W: Write>(disk: &dyn VirtualDisk, out: W, opts: &WriteOptions) -> Result<W> {
    // Memory is about 2 MiB per job; more than 8 jobs gains little.
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    write_tar_gz_jobs(disk, out, opts, jobs)
}

/// [`write_tar_gz`] compressing on up to `jobs` threads. The bytes written
/// are the same for every `jobs`.
pub fn write_tar_gz_jobs<W: Write>(
    disk: &dyn VirtualDisk,
    out: W,
    opts: &WriteOptions,
    jobs: usize,
) -> Result<W> {
    let size = disk.size();
    if size == 0 || size % GCP_SIZE_UNIT != 0 {
        return Err(Error::invalid_input(format!(
            "disk.raw must be a whole number of GiB for GCP, but the disk is {size} bytes: grow it first"
        )));
    }
    let mut gz = gzip::GzipWriter::with_jobs(out, jobs)?;
    let spec = tar::MemberSpec {
        name: MEMBER_NAME,
        mode: MEMBER_MODE,
        mtime: opts.mtime,
    };
    tar::write_disk_tar(disk, &spec, &mut gz)?;
    gz.finish()
}

/// Decode `disk.raw` from a GCP tarball into `out` (which should be empty)
/// as a sparse file: holes of the sparse map and all-zero 4 KiB blocks
/// ([`crate::io::HOLE_BLOCK`]) are not written. Returns the disk's size. Fails if there is no `disk.raw`
/// member, or the gzip CRC-32/ISIZE does not match.
pub fn extract_disk(file: &File, out: &File) -> Result<u64> {
    let gz = gzip::GzipReader::new(FileReader::new(file))?;
    let mut tar = tar::TarReader::new(gz);
    let fatal = |tar: &mut tar::TarReader<gzip::GzipReader<FileReader<'_>>>, e: Error| {
        tar.get_mut().take_fatal().unwrap_or(e)
    };
    let size = loop {
        let entry = match tar.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => {
                return Err(Error::invalid_format(
                    "the tar archive has no disk.raw member",
                ))
            }
            Err(e) => return Err(fatal(&mut tar, e)),
        };
        // GNU tar's pax sparse formats (`--format=posix -S`) name the member
        // in `GNU.sparse.name` and keep the sparse map out of the header.
        let pax_sparse = entry.pax.as_ref().is_some_and(|p| {
            p.iter().any(|(k, v)| {
                k == "GNU.sparse.name" && v.as_slice() == MEMBER_NAME.as_bytes()
                    || k.starts_with("GNU.sparse.") && entry.name.ends_with(MEMBER_NAME.as_bytes())
            })
        });
        if pax_sparse {
            return Err(Error::unsupported(
                "disk.raw is a pax (GNU.sparse) sparse member, which cloudimg does not read and GCP does not accept: make the tarball with tar --format=oldgnu -S",
            ));
        }
        if entry.name != MEMBER_NAME.as_bytes()
            || !matches!(
                entry.typeflag,
                tar::typeflag::REGULAR | tar::typeflag::GNU_SPARSE | 0
            )
        {
            continue;
        }
        out.set_len(0).ctx("truncating the output")?;
        out.set_len(entry.realsize).ctx("sizing the output")?;
        let res = tar.read_content(|offset, chunk| {
            if let tar::TarChunk::Data(d) = chunk {
                write_nonzero(out, d, offset)?;
            }
            Ok(())
        });
        if let Err(e) = res {
            return Err(fatal(&mut tar, e));
        }
        break entry.realsize;
    };
    let mut gz = tar.into_inner();
    let rest = gz.drain_at_most(verify::MAX_AFTER_ARCHIVE)?;
    if !rest.complete {
        return Err(Error::corrupt(format!(
            "gzip: more than {} bytes follow disk.raw in the tar stream; decompression stopped (a deflate bomb?)",
            verify::MAX_AFTER_ARCHIVE
        ))
        .at(gz.file_position()));
    }
    // A second member or trailing bytes do not change disk.raw; a bad
    // CRC-32 or ISIZE means the data is not what was compressed.
    let damage = |f: &&crate::verify::Finding| {
        f.message.starts_with("gzip: CRC32 mismatch")
            || f.message.starts_with("gzip: ISIZE mismatch")
    };
    if let Some(f) = gz.findings().iter().find(damage) {
        return Err(Error::corrupt(f.message.clone()).at(f.offset.unwrap_or(0)));
    }
    Ok(size)
}

/// What [`peek`] returns: the first member's facts, the first bytes of
/// its content, and its logical size (None when there is no member).
pub type Peek = (
    serde_json::Map<String, serde_json::Value>,
    Vec<u8>,
    Option<u64>,
);

/// How much of the decoded disk [`peek`] keeps: the protective MBR, the
/// primary GPT and well beyond.
const PEEK_BYTES: u64 = 1 << 20;

/// Read only the start of a GCP tarball, for `inspect`: the first tar
/// member's facts, the first MiB of its content, and its logical size.
/// Decompresses about a MiB, whatever the archive's size.
pub fn peek(file: &File) -> Result<Peek> {
    let gz = gzip::GzipReader::new(FileReader::new(file))?;
    let mut tar = tar::TarReader::new(gz);
    let mut facts = serde_json::Map::new();
    let Some(entry) = tar.next_entry()? else {
        facts.insert("members".into(), 0.into());
        return Ok((facts, Vec::new(), None));
    };
    facts.insert("member".into(), entry.name_str().into());
    facts.insert(
        "typeflag".into(),
        char::from(entry.typeflag).to_string().into(),
    );
    facts.insert("tar_format".into(), entry.format.name().into());
    facts.insert("realsize".into(), entry.realsize.into());
    facts.insert("stored_size".into(), entry.size.into());
    facts.insert("mtime".into(), entry.mtime.into());
    if let Some(map) = &entry.sparse {
        facts.insert("sparse_entries".into(), map.len().into());
    }
    let want = entry.realsize.min(PEEK_BYTES) as usize;
    let mut head = vec![0u8; want];
    // Stop early by returning a sentinel error once the window is full.
    let res = tar.read_content(|offset, chunk| {
        if offset >= want as u64 {
            return Err(Error::new(
                crate::error::ErrorKind::Interrupted,
                "peek window full",
            ));
        }
        if let tar::TarChunk::Data(d) = chunk {
            let n = d.len().min(want - offset as usize);
            head[offset as usize..offset as usize + n].copy_from_slice(&d[..n]);
        }
        Ok(())
    });
    match res {
        Ok(()) => {}
        Err(e) if e.message() == "peek window full" => {}
        Err(e) => return Err(e),
    }
    Ok((facts, head, Some(entry.realsize)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn refuses_size_not_whole_gib() {
        let disk = MemDisk::new(vec![0; 1 << 20]);
        let opts = WriteOptions {
            mtime: 0,
            seed: [0; 32],
        };
        let err = write_tar_gz(&disk, Vec::new(), &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "disk.raw must be a whole number of GiB for GCP, but the disk is 1048576 bytes: grow it first"
        );
    }
}
