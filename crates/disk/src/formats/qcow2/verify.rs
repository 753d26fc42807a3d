//! Deep check of a QCOW2 image: the header, every L1 and L2 entry, every
//! compressed cluster (inflated), the refcounts recomputed from the
//! metadata and compared with the stored ones (leaks, missing references,
//! overlapping clusters, "copied" flags), the decoded disk's SHA-256 and
//! its GPT.

use std::fs::File;

use flate2::Decompress;

use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::formats::table::{Verified, VerifyOptions};
use crate::formats::{read_up_to, Format};
use crate::io::DiskDigest;

use crate::verify::{Finding, Report};

use super::reader::{inflate_cluster, l2_mapping, read_header, Allow, Mapping, Qcow2Disk};
use super::wire::*;

/// Refcounts are only recomputed for files of at most this many clusters
/// (1 TiB of 64 KiB clusters): the stored and recomputed counts take 9
/// bytes a cluster.
pub const MAX_CHECKED_CLUSTERS: u64 = 16 << 20;

/// Findings of one repetitive kind reported in detail before summing up.
const MAX_REPEATED: usize = 50;

/// How often each host cluster is referenced.
struct Uses {
    cluster_bits: u32,
    /// References per host cluster (empty when not checked).
    count: Vec<u32>,
    /// Whether a metadata or uncompressed data cluster uses it.
    whole: Vec<bool>,
}

impl Uses {
    /// Count a reference to `[offset, offset + len)`; `whole` for anything
    /// but compressed data. Ranges past the file are reported elsewhere.
    fn add(&mut self, offset: u64, len: u64, whole: bool) {
        if self.count.is_empty() || len == 0 {
            return;
        }
        let first = offset >> self.cluster_bits;
        let last = (offset.saturating_add(len) - 1) >> self.cluster_bits;
        for c in first..=last.min(self.count.len() as u64 - 1) {
            self.count[c as usize] = self.count[c as usize].saturating_add(1);
            self.whole[c as usize] |= whole;
        }
    }
}

/// Decode and check a QCOW2 image in full, feeding the decoded disk to
/// `opts.digest`; the disk is handed back (for the GPT check) when every
/// cluster decoded. `Err` only when the file cannot be decoded at all (not
/// QCOW2, an unsupported feature, unreadable).
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let (h, len) = read_header(file)?;
    let mut r = Report::new(Format::Qcow2, len);
    if h.incompatible_features & INCOMPAT_CORRUPT != 0 {
        r.push(Finding::at(
            off::INCOMPATIBLE,
            "image is marked corrupt (incompatible feature bit 1)",
        ));
    }
    if h.incompatible_features & INCOMPAT_DIRTY != 0 {
        r.push(Finding::at(
            off::INCOMPATIBLE,
            "dirty bit is set: the image was not closed cleanly and its refcounts may be stale",
        ));
    }
    let dup = file.try_clone().ctx("opening")?;
    let disk = match Qcow2Disk::open_allowing(dup, Allow { corrupt: true }) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            r.push(Finding {
                offset: e.offset(),
                message: e.message().to_string(),
                layer: crate::verify::Layer::Container,
            });
            return Ok(Verified::report_only(r));
        }
        Err(e) => return Err(e),
    };
    header_details(&h, &mut r);
    check_header_fields(&h, len, &mut r);
    let extensions_reference_clusters = check_extensions(file, &h, len, &mut r)?;
    let (stored, uses) = plan_refcounts(file, &h, len, extensions_reference_clusters, &mut r)?;
    let cs = h.cluster_size();
    let mut walk = Walk {
        file,
        h: &h,
        len,
        refcounts_checked: stored.is_some(),
        stored: stored.unwrap_or_default(),
        uses,
        digest: opts.digest,
        decodable: true,
        allocated: 0,
        compressed: 0,
        zero_flagged: 0,
        z: Decompress::new(false),
        cluster: vec![0u8; cs as usize],
        copied_findings: 0,
    };
    // Walk L1 and L2 in virtual order, decoding as we go.
    for (i, &e) in disk.l1().iter().enumerate() {
        walk.l1_entry(&disk, i as u64, e, &mut r)?;
    }
    let Walk {
        digest, decodable, ..
    } = walk.finish(&mut r);
    if !decodable {
        return Ok(Verified::report_only(r));
    }
    r.virtual_size = Some(h.size);
    r.virtual_sha256 = Some(digest.finish());
    Ok(Verified::with_disk(r, disk))
}

/// The header's facts, for `--json`.
fn header_details(h: &QcowHeader, r: &mut Report) {
    r.detail("version", h.version);
    r.detail("virtual_size", h.size);
    r.detail("cluster_size", h.cluster_size());
    r.detail("l1_size", h.l1_size);
    r.detail("refcount_bits", 1u64 << h.refcount_order.min(6));
    r.detail("header_length", h.header_length);
    r.detail("compression_type", h.compression_type);
    r.detail("nb_snapshots", h.nb_snapshots);
    r.detail("incompatible_features", h.incompatible_features);
    r.detail("compatible_features", h.compatible_features);
    r.detail("autoclear_features", h.autoclear_features);
}

/// The stored refcounts, when every reference can be counted (no
/// snapshots, bitmaps or extensions that reference clusters; a sane
/// refcount width; at most [`MAX_CHECKED_CLUSTERS`]), and the references
/// of the header, L1 table, refcount table and blocks counted so far.
fn plan_refcounts(
    file: &File,
    h: &QcowHeader,
    len: u64,
    extensions_reference_clusters: bool,
    r: &mut Report,
) -> Result<(Option<Vec<u32>>, Uses)> {
    let cs = h.cluster_size();
    let file_clusters = len.div_ceil(cs);
    let checkable = h.nb_snapshots == 0
        && h.autoclear_features & AUTOCLEAR_BITMAPS == 0
        && !extensions_reference_clusters
        && h.refcount_order <= 6
        && file_clusters <= MAX_CHECKED_CLUSTERS;
    let stored = if checkable {
        read_refcounts(file, h, len, file_clusters, r)?
    } else {
        None
    };
    let n = if stored.is_some() {
        file_clusters as usize
    } else {
        0
    };
    let mut uses = Uses {
        cluster_bits: h.cluster_bits,
        count: vec![0; n],
        whole: vec![false; n],
    };
    uses.add(0, cs, true);
    uses.add(h.l1_table_offset, h.l1_size as u64 * 8, true);
    if h.refcount_table_offset % cs == 0
        && h.refcount_table_offset
            .checked_add(h.refcount_table_clusters as u64 * cs)
            .is_some_and(|e| e <= len)
    {
        uses.add(
            h.refcount_table_offset,
            h.refcount_table_clusters as u64 * cs,
            true,
        );
    }
    if stored.is_some() {
        for (_, at) in refcount_blocks(file, h, len)? {
            if at % cs == 0 && at.checked_add(cs).is_some_and(|end| end <= len) {
                uses.add(at, cs, true);
            }
        }
    }
    Ok((stored, uses))
}

/// The walk of the L1 and L2 tables in virtual order: references counted,
/// clusters decoded into the digest, counts for the report.
struct Walk<'a, 'd> {
    file: &'a File,
    h: &'a QcowHeader,
    len: u64,
    refcounts_checked: bool,
    stored: Vec<u32>,
    uses: Uses,
    digest: DiskDigest<'d>,
    /// Every cluster inside the disk decoded.
    decodable: bool,
    allocated: u64,
    compressed: u64,
    zero_flagged: u64,
    z: Decompress,
    /// One cluster's worth of buffer.
    cluster: Vec<u8>,
    copied_findings: usize,
}

impl<'d> Walk<'_, 'd> {
    /// Whether the refcount of the cluster at `host` is 1 (what the copied
    /// flag says), when known.
    fn copied_ok(&self, host: u64) -> Option<bool> {
        self.stored
            .get((host >> self.h.cluster_bits) as usize)
            .map(|&s| s == 1)
    }

    /// A copied flag that disagrees with the refcount: the first
    /// [`MAX_REPEATED`] are reported one by one.
    fn copied_mismatch(&mut self, at: u64, message: String, r: &mut Report) {
        self.copied_findings += 1;
        if self.copied_findings <= MAX_REPEATED {
            r.push(Finding::at(at, message));
        }
    }

    /// L1 entry `i` (`e`) and the L2 table it points at.
    fn l1_entry(&mut self, disk: &Qcow2Disk, i: u64, e: u64, r: &mut Report) -> Result<()> {
        let (h, len, cs) = (self.h, self.len, self.h.cluster_size());
        let at = h.l1_table_offset + i * 8;
        let region = h.l1_entry_bytes();
        let rstart = i * region;
        let rend = rstart.saturating_add(region).min(h.size).max(rstart);
        let in_disk = rstart < h.size;
        if e & L1_RESERVED != 0 {
            r.push(Finding::at(
                at,
                format!("L1 entry {i} has reserved bits set ({e:#018x})"),
            ));
        }
        let l2 = e & OFFSET_MASK;
        let mut usable = l2 != 0;
        if l2 != 0 && (l2 % cs != 0 || l2 + cs > len) {
            r.push(Finding::at(
                at,
                format!("L1 entry {i} points at {l2:#x}, not a cluster inside the {len}-byte file"),
            ));
            usable = false;
            if in_disk {
                self.decodable = false;
            }
        }
        if !usable {
            if in_disk {
                self.digest.zeros(rend - rstart);
            }
            return Ok(());
        }
        self.uses.add(l2, cs, true);
        if self.refcounts_checked && (e & OFLAG_COPIED != 0) != self.copied_ok(l2).unwrap_or(false)
        {
            self.copied_mismatch(
                at,
                format!("L1 entry {i}: copied flag does not match the L2 table's refcount"),
                r,
            );
        }
        let table = disk
            .read_l2(l2)
            .map_err(|e| Error::io("reading an L2 table", e).at(l2))?;
        for (j, &le) in table.iter().enumerate() {
            let j = j as u64;
            let eat = l2 + j * 8;
            let vstart = rstart + j * cs;
            let live = vstart < h.size;
            let vlen = if live { cs.min(h.size - vstart) } else { 0 };
            let entry = L2Entry {
                i,
                j,
                at: eat,
                le,
                vstart,
                vlen,
            };
            match l2_mapping(le, h.cluster_bits) {
                Mapping::Compressed(o, l) => self.compressed_cluster(&entry, o, l, r)?,
                m => self.standard_cluster(&entry, m, r)?,
            }
        }
        Ok(())
    }

    /// A compressed cluster: inflated into the digest.
    fn compressed_cluster(&mut self, e: &L2Entry, o: u64, l: u64, r: &mut Report) -> Result<()> {
        let (len, cs) = (self.len, self.h.cluster_size());
        let (i, j, live, vlen) = (e.i, e.j, e.vlen > 0, e.vlen);
        self.compressed += 1;
        if e.le & OFLAG_COPIED != 0 {
            r.push(Finding::at(
                e.at,
                format!("compressed cluster entry {j} of L2 table {i} has the copied flag set"),
            ));
        }
        if o >= len {
            r.push(Finding::at(
                e.at,
                format!("compressed cluster at {o:#x} lies past the end of the {len}-byte file"),
            ));
            if live {
                self.decodable = false;
                self.digest.zeros(vlen);
            }
            return Ok(());
        }
        self.uses.add(o, l, false);
        let n = l.min(len - o) as usize;
        let mut input = vec![0u8; n];
        crate::io::read_exact_at(self.file, &mut input, o).ctx("reading a compressed cluster")?;
        match inflate_cluster(&mut self.z, &input, &mut self.cluster) {
            Ok(more) => {
                if more {
                    r.push(Finding::at(
                        o,
                        format!("virtual cluster {}: compressed cluster inflates to more than the cluster size {cs}", e.vstart / cs),
                    ));
                }
                if live {
                    self.digest.data(&self.cluster[..vlen as usize]);
                }
            }
            Err(m) => {
                r.push(Finding::at(
                    o,
                    format!("virtual cluster {}: {m}", e.vstart / cs),
                ));
                if live {
                    self.decodable = false;
                    self.digest.zeros(vlen);
                }
            }
        }
        Ok(())
    }

    /// A standard (uncompressed, zero or unallocated) cluster.
    fn standard_cluster(&mut self, e: &L2Entry, m: Mapping, r: &mut Report) -> Result<()> {
        let (len, cs) = (self.len, self.h.cluster_size());
        let (i, j, le, live, vlen) = (e.i, e.j, e.le, e.vlen > 0, e.vlen);
        if le & L2_STANDARD_RESERVED != 0 {
            r.push(Finding::at(
                e.at,
                format!("L2 entry {j} of table {i} has reserved bits set ({le:#018x})"),
            ));
        }
        if le & OFLAG_ZERO != 0 {
            self.zero_flagged += 1;
            // qemu (qcow2-cluster.c, qcow2_get_host_offset): "Zero cluster
            // entry found in pre-v3 image", a corruption it refuses to read.
            if self.h.version < 3 {
                r.push(Finding::at(
                    e.at,
                    format!("L2 entry {j} of table {i} has the zero flag, which a version 2 image cannot have"),
                ));
                self.decodable &= !live;
            }
        }
        let host = le & OFFSET_MASK;
        if host != 0 {
            if host % cs != 0 || host + cs > len {
                r.push(Finding::at(
                    e.at,
                    format!("L2 entry {j} of table {i} points at {host:#x}, not a cluster inside the {len}-byte file"),
                ));
                if live {
                    self.decodable &= m == Mapping::Zero;
                    self.digest.zeros(vlen);
                }
                return Ok(());
            }
            self.allocated += 1;
            self.uses.add(host, cs, true);
            if self.refcounts_checked
                && (le & OFLAG_COPIED != 0) != self.copied_ok(host).unwrap_or(false)
            {
                self.copied_mismatch(
                    e.at,
                    format!("L2 entry {j} of table {i}: copied flag does not match the cluster's refcount"),
                    r,
                );
            }
        } else if le & OFLAG_COPIED != 0 {
            r.push(Finding::at(
                e.at,
                format!("unallocated L2 entry {j} of table {i} has the copied flag set"),
            ));
        }
        if !live {
            return Ok(());
        }
        match m {
            Mapping::Data(host) => {
                crate::io::read_exact_at(self.file, &mut self.cluster[..vlen as usize], host)
                    .ctx("reading a data cluster")?;
                self.digest.data(&self.cluster[..vlen as usize]);
            }
            _ => self.digest.zeros(vlen),
        }
        Ok(())
    }

    /// Sum up: copied-flag findings not listed, the refcount comparison,
    /// the counts.
    fn finish(self, r: &mut Report) -> Self {
        if self.copied_findings > MAX_REPEATED {
            r.push(Finding::whole(format!(
                "{} more L1/L2 entries with a wrong copied flag",
                self.copied_findings - MAX_REPEATED
            )));
        }
        if self.refcounts_checked {
            compare_refcounts(&self.uses, &self.stored, r);
        }
        r.detail("refcounts_checked", self.refcounts_checked);
        r.detail("allocated_clusters", self.allocated);
        r.detail("compressed_clusters", self.compressed);
        r.detail("zero_flagged_clusters", self.zero_flagged);
        self
    }
}

/// One L2 entry and the virtual range it maps.
struct L2Entry {
    /// Index of its L2 table (= of the L1 entry).
    i: u64,
    /// Index in its table.
    j: u64,
    /// Its offset in the file.
    at: u64,
    /// Its value.
    le: u64,
    /// Virtual offset of the cluster it maps.
    vstart: u64,
    /// Bytes of that cluster inside the disk (0 past its end).
    vlen: u64,
}

/// Fields that do not stop decoding but are not what they should be.
fn check_header_fields(h: &QcowHeader, len: u64, r: &mut Report) {
    let cs = h.cluster_size();
    if h.size % 512 != 0 {
        r.push(Finding::at(
            off::SIZE,
            format!("virtual size {} is not a multiple of 512 bytes", h.size),
        ));
    }
    if h.version == 3 && h.header_length % 8 != 0 {
        r.push(Finding::at(
            off::HEADER_LENGTH,
            format!("header length {} is not a multiple of 8", h.header_length),
        ));
    }
    if h.refcount_order > 6 {
        r.push(Finding::at(
            off::REFCOUNT_ORDER,
            format!(
                "refcount order {} is above 6 (64-bit refcounts)",
                h.refcount_order
            ),
        ));
    }
    if h.refcount_table_clusters == 0 {
        r.push(Finding::at(
            off::REFCOUNT_TABLE_CLUSTERS,
            "refcount table has no clusters",
        ));
    }
    if h.refcount_table_offset % cs != 0 {
        r.push(Finding::at(
            off::REFCOUNT_TABLE_OFFSET,
            format!(
                "refcount table offset {:#x} is not a multiple of the cluster size {cs}",
                h.refcount_table_offset
            ),
        ));
    } else if h
        .refcount_table_offset
        .checked_add(h.refcount_table_clusters as u64 * cs)
        .is_none_or(|e| e > len)
    {
        r.push(Finding::at(
            off::REFCOUNT_TABLE_OFFSET,
            format!(
                "refcount table of {} clusters at {:#x} runs past the end of the {len}-byte file",
                h.refcount_table_clusters, h.refcount_table_offset
            ),
        ));
    }
    if h.nb_snapshots == 0 && h.snapshots_offset != 0 {
        r.push(Finding::at(
            off::NB_SNAPSHOTS,
            format!(
                "no snapshots but a snapshot table offset {:#x}",
                h.snapshots_offset
            ),
        ));
    }
}

/// Walk the header extensions (version 3); returns whether one of them
/// references clusters (bitmaps, encryption), which makes the refcount
/// comparison incomplete.
fn check_extensions(file: &File, h: &QcowHeader, len: u64, r: &mut Report) -> Result<bool> {
    if h.version < 3 {
        return Ok(false);
    }
    let cs = h.cluster_size();
    let mut buf = vec![0u8; cs.min(len) as usize];
    let n = read_up_to(file, &mut buf, 0)?;
    let buf = &buf[..n];
    let mut at = h.header_length as usize;
    let mut references = false;
    let mut names = Vec::new();
    loop {
        if at + 8 > buf.len() {
            r.push(Finding::at(
                at as u64,
                "header extensions run past the first cluster without an end marker",
            ));
            break;
        }
        let ty = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let l = u32::from_be_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if ty == EXT_END {
            break;
        }
        if at + 8 + l > buf.len() {
            r.push(Finding::at(
                at as u64,
                format!("header extension {ty:#010x} of {l} bytes runs past the first cluster"),
            ));
            break;
        }
        names.push(format!("{ty:#010x}"));
        if ty == EXT_BITMAPS || ty == EXT_CRYPTO {
            references = true;
        }
        at += 8 + l.next_multiple_of(8);
    }
    r.detail("header_extensions", names);
    Ok(references)
}

/// The refcount block offsets listed in the refcount table (index, offset),
/// non-zero entries only.
fn refcount_blocks(file: &File, h: &QcowHeader, len: u64) -> Result<Vec<(u64, u64)>> {
    let cs = h.cluster_size();
    let bytes = h.refcount_table_clusters as u64 * cs;
    if h.refcount_table_offset % cs != 0
        || h.refcount_table_offset
            .checked_add(bytes)
            .is_none_or(|e| e > len)
    {
        return Ok(Vec::new());
    }
    let mut raw = vec![0u8; bytes as usize];
    crate::io::read_exact_at(file, &mut raw, h.refcount_table_offset)
        .ctx("reading the refcount table")?;
    Ok(raw
        .chunks_exact(8)
        .enumerate()
        .map(|(i, c)| {
            (
                i as u64,
                u64::from_be_bytes(c.try_into().expect("8 bytes")) & REFTABLE_OFFSET_MASK,
            )
        })
        .filter(|&(_, o)| o != 0)
        .collect())
}

/// The stored refcount of every cluster of the file, or None when the
/// refcount table itself is unusable (reported).
fn read_refcounts(
    file: &File,
    h: &QcowHeader,
    len: u64,
    file_clusters: u64,
    r: &mut Report,
) -> Result<Option<Vec<u32>>> {
    let cs = h.cluster_size();
    let bytes = h.refcount_table_clusters as u64 * cs;
    if h.refcount_table_offset % cs != 0
        || h.refcount_table_offset
            .checked_add(bytes)
            .is_none_or(|e| e > len)
    {
        return Ok(None);
    }
    let bits = 1u64 << h.refcount_order;
    let per_block = cs * 8 / bits;
    let mut stored = vec![0u32; file_clusters as usize];
    let mut block = vec![0u8; cs as usize];
    for (b, at) in refcount_blocks(file, h, len)? {
        let eat = h.refcount_table_offset + b * 8;
        if at % cs != 0 || at.checked_add(cs).is_none_or(|end| end > len) {
            r.push(Finding::at(
                eat,
                format!("refcount table entry {b} points at {at:#x}, not a cluster inside the {len}-byte file"),
            ));
            continue;
        }
        let first = b * per_block;
        if first >= file_clusters {
            continue;
        }
        crate::io::read_exact_at(file, &mut block, at).ctx("reading a refcount block")?;
        for k in 0..per_block.min(file_clusters - first) {
            stored[(first + k) as usize] =
                refcount_entry(&block, k, bits).min(u32::MAX as u64) as u32;
        }
    }
    Ok(Some(stored))
}

/// Entry `k` of a refcount block of `bits`-bit entries (sub-byte entries
/// are packed from the least significant bit, as qemu does).
fn refcount_entry(block: &[u8], k: u64, bits: u64) -> u64 {
    if bits >= 8 {
        let w = (bits / 8) as usize;
        let at = k as usize * w;
        block[at..at + w]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    } else {
        let per_byte = 8 / bits;
        let byte = block[(k / per_byte) as usize];
        (byte as u64 >> ((k % per_byte) * bits)) & ((1 << bits) - 1)
    }
}

/// Stored against recomputed refcounts, and overlapping clusters.
fn compare_refcounts(uses: &Uses, stored: &[u32], r: &mut Report) {
    let cb = uses.cluster_bits;
    let (mut leaks, mut wrong, mut overlaps) = (0usize, 0usize, 0usize);
    for (c, (&n, &s)) in uses.count.iter().zip(stored).enumerate() {
        let at = (c as u64) << cb;
        if n > 1 && uses.whole[c] {
            overlaps += 1;
            if overlaps <= MAX_REPEATED {
                r.push(Finding::at(
                    at,
                    format!("cluster {c} is used {n} times, overlapping metadata or data"),
                ));
            }
        }
        if n == s {
            continue;
        }
        if n == 0 {
            leaks += 1;
            if leaks <= MAX_REPEATED {
                r.push(Finding::at(
                    at,
                    format!("cluster {c} is leaked: refcount {s} but nothing uses it"),
                ));
            }
        } else {
            wrong += 1;
            if wrong <= MAX_REPEATED {
                r.push(Finding::at(
                    at,
                    format!("cluster {c} has refcount {s} but is used {n} times"),
                ));
            }
        }
    }
    for (count, what) in [
        (leaks, "leaked clusters"),
        (wrong, "clusters with a wrong refcount"),
        (overlaps, "overlapping clusters"),
    ] {
        if count > MAX_REPEATED {
            r.push(Finding::whole(format!(
                "{} more {what} ({count} in all)",
                count - MAX_REPEATED
            )));
        }
    }
}
