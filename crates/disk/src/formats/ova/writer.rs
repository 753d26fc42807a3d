//! Write an OVA: the VMDK goes to an unnamed temporary file first (its
//! size must be in its tar header and in the descriptor before its bytes),
//! then the archive is written in one pass.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{check_name, member_names, ovf, ustar_header};
use crate::codec::tar::{pad, BLOCK_SIZE, RECORD_SIZE};
use crate::disk::{VirtualDisk, BUFFER_SIZE};
use crate::error::{Error, IoContext, Result};
use crate::formats::vmdk::write_stream_optimized_jobs;
use crate::formats::WriteOptions;
use crate::io::unnamed_temp_in;

/// Write `disk` as the OVA `name` to `out`, with `jobs` VMDK compression
/// workers; the temporary VMDK goes to [`std::env::temp_dir`]. The bytes
/// written do not depend on `jobs` or on the temporary directory.
pub fn write(
    disk: &dyn VirtualDisk,
    out: impl Write,
    name: &str,
    opts: &WriteOptions,
    jobs: usize,
) -> Result<()> {
    write_in(disk, out, name, opts, jobs, &std::env::temp_dir())
}

/// [`write`], with the temporary VMDK in `temp_dir` (pass the output's
/// directory: same filesystem, same free space). The temporary file's name
/// is removed as soon as it is created, so nothing is left behind even if
/// the process dies.
pub fn write_in(
    disk: &dyn VirtualDisk,
    mut out: impl Write,
    name: &str,
    opts: &WriteOptions,
    jobs: usize,
    temp_dir: &Path,
) -> Result<()> {
    check_name(name).map_err(Error::invalid_input)?;
    let (ovf_name, vmdk_name, mf_name) = member_names(name);
    let capacity = disk.size();

    let mut tmp = unnamed_temp_in(temp_dir, "the temporary VMDK")?;
    {
        let w = BufWriter::with_capacity(BUFFER_SIZE, &tmp);
        let w = write_stream_optimized_jobs(disk, w, &vmdk_name, opts, jobs)?;
        w.into_inner()
            .map_err(|e| Error::io("writing the temporary VMDK", e.into_error()))?;
    }
    let vmdk_size = tmp
        .metadata()
        .ctx("reading the temporary VMDK's size")?
        .len();

    let ovf_text = ovf::render(name, &vmdk_name, vmdk_size, capacity);
    let mut written = put_member(&mut out, &ovf_name, ovf_text.as_bytes(), opts.mtime)?;

    out.write_all(&ustar_header(&vmdk_name, vmdk_size, opts.mtime))
        .ctx("writing the OVA")?;
    tmp.seek(SeekFrom::Start(0))
        .ctx("rewinding the temporary VMDK")?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut copied = 0u64;
    loop {
        let n = match tmp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading the temporary VMDK", e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).ctx("writing the OVA")?;
        copied += n as u64;
    }
    if copied != vmdk_size {
        return Err(Error::corrupt(format!(
            "temporary VMDK changed size while being copied: {copied} bytes, expected {vmdk_size}"
        )));
    }
    out.write_all(&[0u8; 512][..pad(vmdk_size) as usize])
        .ctx("writing the OVA")?;
    let vmdk_sha = hex::encode(hasher.finalize());
    let written_vmdk = BLOCK_SIZE + vmdk_size + pad(vmdk_size);

    let ovf_sha = hex::encode(Sha256::digest(ovf_text.as_bytes()));
    let mf = format!("SHA256({ovf_name})= {ovf_sha}\nSHA256({vmdk_name})= {vmdk_sha}\n");
    written += written_vmdk;
    written += put_member(&mut out, &mf_name, mf.as_bytes(), opts.mtime)?;
    let total = written;

    // Two zero blocks end the archive; pad to a whole record as GNU tar
    // does.
    let end = (total + 2 * BLOCK_SIZE).div_ceil(RECORD_SIZE) * RECORD_SIZE;
    let zeros = vec![0u8; (end - total) as usize];
    out.write_all(&zeros).ctx("writing the end of the OVA")?;
    out.flush().ctx("writing the OVA")?;
    Ok(())
}

/// Write one small member (header, data, padding); returns the bytes
/// written.
fn put_member(out: &mut impl Write, name: &str, data: &[u8], mtime: u64) -> Result<u64> {
    let len = data.len() as u64;
    out.write_all(&ustar_header(name, len, mtime))
        .ctx("writing the OVA")?;
    out.write_all(data).ctx("writing the OVA")?;
    out.write_all(&[0u8; 512][..pad(len) as usize])
        .ctx("writing the OVA")?;
    Ok(BLOCK_SIZE + len + pad(len))
}
