//! Deep verification of an OVA: the tar, the descriptor, the manifest and
//! the VMDK, decoded in full.
//!
//! The tar is read in one pass: every member is hashed (SHA-256) for the
//! manifest, the `.ovf` and `.mf` are kept in memory (bounded), and the
//! disk member is copied to an unnamed temporary file that the VMDK
//! verifier ([`crate::formats::vmdk::verify_with`]) then decodes. The
//! temporary file goes beside the OVA when its directory is known and
//! writable, else to [`std::env::temp_dir`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use sha2::{Digest, Sha256};

use super::ovf;
use super::VMDK_STREAM_OPTIMIZED_URI;
use crate::codec::tar::{typeflag, TarChunk, TarEnd, TarEntry, TarFormat, TarReader, RECORD_SIZE};
use crate::disk::BUFFER_SIZE;
use crate::error::{Error, IoContext, Result};
use crate::formats::table::{Verified, VerifyOptions};
use crate::formats::{read_up_to, Format};
use crate::io::{unnamed_temp_beside, FileReader};
use crate::verify::{Finding, Report};

/// Largest `.ovf` or `.mf` member read into memory.
pub const MAX_TEXT_MEMBER: u64 = 1 << 20;

/// One member as found in the archive.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    header_offset: u64,
    data_offset: u64,
    size: u64,
    sha256: String,
}

/// Decode and check an OVA in full, feeding its VMDK's decoded disk to
/// `opts.digest`; that disk is handed back for the GPT check.
pub fn verify(file: &File, opts: VerifyOptions<'_>) -> Result<Verified> {
    let digest = opts.digest;
    let file_size = file.metadata().ctx("reading file metadata")?.len();
    let mut r = Report::new(Format::Ova, file_size);
    r.detail("container", "ova");

    let mut tar = TarReader::new(BufReader::with_capacity(BUFFER_SIZE, FileReader::new(file)));
    let Members {
        members,
        ovf_text,
        mf_text,
        disk,
    } = read_members(file, &mut tar, &mut r)?;
    end_findings(file, file_size, tar.end(), &mut r)?;

    r.detail(
        "members",
        members
            .iter()
            .map(|m| serde_json::json!({"name": m.name, "size": m.size, "offset": m.data_offset}))
            .collect::<Vec<_>>(),
    );
    order_findings(
        &members,
        ovf_text.as_ref().map(|t| t.0),
        mf_text.as_ref().map(|t| t.0),
        &mut r,
    );

    // Decode the disk first: the descriptor's capacity is checked against
    // it.
    let mut capacity = None;
    let mut decoded = None;
    match &disk {
        Some((i, f)) => {
            let m = &members[*i];
            let vr = crate::formats::vmdk::verify(
                f,
                VerifyOptions {
                    digest,
                    ..VerifyOptions::default()
                },
            )?;
            decoded = vr.disk;
            let vr = vr.report;
            for mut f in vr.findings {
                if f.layer == crate::verify::Layer::Container {
                    f.offset = f.offset.map(|o| o.saturating_add(m.data_offset));
                    f.message = format!("{}: {}", m.name, f.message);
                }
                r.push(f);
            }
            r.virtual_size = vr.virtual_size;
            r.virtual_sha256 = vr.virtual_sha256;
            capacity = vr.virtual_size;
            r.detail("vmdk", serde_json::Value::Object(vr.details));
        }
        None => r.push(Finding::whole("no VMDK disk member")),
    }

    match &ovf_text {
        Some((i, text)) => descriptor_findings(
            text,
            &members[*i],
            &members,
            disk.as_ref().map(|d| &members[d.0]),
            capacity,
            &mut r,
        ),
        None => r.push(Finding::whole("no OVF descriptor (.ovf) member")),
    }
    match &mf_text {
        Some((i, text)) => manifest_findings(text, &members[*i], &members, &mut r),
        // DSP0243 makes the manifest optional; vSphere's OVAs have one.
        None => r.push(Finding::whole("no manifest (.mf) member").provider_rule()),
    }
    Ok(Verified {
        report: r,
        disk: decoded,
    })
}

/// The archive's members as read: each one's place and SHA-256, the text
/// of the descriptor and of the manifest, and the disk member, copied out.
struct Members {
    members: Vec<Member>,
    ovf_text: Option<(usize, String)>,
    mf_text: Option<(usize, String)>,
    /// The disk member, copied out: (index in `members`, file).
    disk: Option<(usize, File)>,
}

/// Read every member of the archive, hashing each, keeping the text of
/// the descriptor and manifest and a copy of the disk member.
fn read_members<R: std::io::Read>(
    file: &File,
    tar: &mut TarReader<R>,
    r: &mut Report,
) -> Result<Members> {
    let mut members: Vec<Member> = Vec::new();
    let mut ovf_text: Option<(usize, String)> = None;
    let mut mf_text: Option<(usize, String)> = None;
    let mut disk: Option<(usize, File)> = None;
    let mut disk_href: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::new();

    while let Some(e) = tar.next_entry()? {
        let name = e.name_str();
        let index = members.len();
        member_header_findings(&e, &name, &mut seen, r);
        let is_ovf = name.ends_with(".ovf");
        let is_mf = name.ends_with(".mf");
        // The disk: the file the descriptor names, or (descriptor not read
        // yet) the first .vmdk.
        let is_disk = disk.is_none()
            && match &disk_href {
                Some(h) => *h == name,
                None => name.ends_with(".vmdk"),
            };
        let keep_text = (is_ovf || is_mf) && e.size <= MAX_TEXT_MEMBER;
        if (is_ovf || is_mf) && !keep_text {
            r.push(Finding::at(
                e.main_header_offset,
                format!(
                    "member {name:?} is {} bytes, more than {MAX_TEXT_MEMBER}: not read",
                    e.size
                ),
            ));
        }
        let mut text = Vec::new();
        let mut copy = if is_disk {
            Some(BufWriter::with_capacity(
                BUFFER_SIZE,
                unnamed_temp_beside(file, "a temporary VMDK")?,
            ))
        } else {
            None
        };
        let mut hasher = Sha256::new();
        tar.read_content(|_, chunk| {
            if let TarChunk::Data(d) = chunk {
                hasher.update(d);
                if keep_text {
                    text.extend_from_slice(d);
                }
                if let Some(w) = copy.as_mut() {
                    w.write_all(d).ctx("copying the VMDK member")?;
                }
            }
            Ok(())
        })?;
        members.push(Member {
            name: name.clone(),
            header_offset: e.header_offset,
            data_offset: e.data_offset,
            size: e.size,
            sha256: hex::encode(hasher.finalize()),
        });
        if let Some(w) = copy {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("copying the VMDK member", e.into_error()))?;
            disk = Some((index, f));
        }
        if keep_text {
            let s = match String::from_utf8(text) {
                Ok(s) => s,
                Err(_) => {
                    r.push(Finding::at(
                        e.data_offset,
                        format!("member {name:?} is not UTF-8 text"),
                    ));
                    continue;
                }
            };
            if is_ovf {
                if ovf_text.is_some() {
                    r.push(Finding::at(
                        e.main_header_offset,
                        format!("a second descriptor {name:?}"),
                    ));
                } else {
                    if disk.is_none() {
                        disk_href = ovf::first_file_href(&s);
                    }
                    ovf_text = Some((index, s));
                }
            } else if mf_text.is_some() {
                r.push(Finding::at(
                    e.main_header_offset,
                    format!("a second manifest {name:?}"),
                ));
            } else {
                mf_text = Some((index, s));
            }
        }
    }
    Ok(Members {
        members,
        ovf_text,
        mf_text,
        disk,
    })
}

/// What is wrong with a member's header for an OVA: not plain ustar, not
/// a regular file, not at the top level, or a second member of its name.
fn member_header_findings(e: &TarEntry, name: &str, seen: &mut HashSet<String>, r: &mut Report) {
    if e.format != TarFormat::Ustar {
        r.push(Finding::at(
            e.main_header_offset,
            format!(
                "member {name:?} has a {} header, not POSIX ustar",
                e.format.name()
            ),
        ));
    }
    if e.long_names + e.long_links > 0 || e.pax.is_some() {
        r.push(Finding::at(
            e.header_offset,
            format!("member {name:?} uses GNU long-name or pax headers, not plain ustar"),
        ));
    }
    if !matches!(e.typeflag, typeflag::REGULAR | typeflag::REGULAR_V7) {
        r.push(Finding::at(
            e.main_header_offset,
            format!(
                "member {name:?} is not a regular file (typeflag {:?})",
                e.typeflag as char
            ),
        ));
    }
    if name.contains('/') {
        r.push(Finding::at(
            e.main_header_offset,
            format!("member {name:?} is not at the top level of the archive"),
        ));
    }
    // A set, not a scan of the members so far: an archive of n members
    // costs n lookups, not n² comparisons.
    if !seen.insert(name.to_string()) {
        r.push(Finding::at(
            e.main_header_offset,
            format!("member {name:?} appears twice"),
        ));
    }
}

/// DSP0243: the descriptor first; the manifest right after it or last.
fn order_findings(members: &[Member], ovf: Option<usize>, mf: Option<usize>, r: &mut Report) {
    if let Some(first) = members.first() {
        if ovf != Some(0) {
            r.push(Finding::at(
                first.header_offset,
                format!(
                    "the first member is {:?}, not the OVF descriptor (DSP0243 wants the .ovf first)",
                    first.name
                ),
            ));
        }
    }
    if let Some(i) = mf {
        if i != 1 && i + 1 != members.len() {
            r.push(Finding::at(
                members[i].header_offset,
                format!(
                    "manifest {:?} is member {} of {}: DSP0243 wants it right after the .ovf or last",
                    members[i].name,
                    i + 1,
                    members.len()
                ),
            ));
        }
    }
}

/// How the archive ends: two zero blocks, then only zeros up to a record.
fn end_findings(file: &File, file_size: u64, end: TarEnd, r: &mut Report) -> Result<()> {
    match end {
        TarEnd::ZeroBlocks(at) => {
            let after = at + 1024;
            let rest = file_size.saturating_sub(after);
            if rest >= RECORD_SIZE {
                r.push(Finding::at(
                    after,
                    format!("{rest} bytes follow the end of the archive"),
                ));
            } else {
                let mut b = vec![0u8; rest as usize];
                read_up_to(file, &mut b, after)?;
                if let Some(p) = b.iter().position(|&x| x != 0) {
                    r.push(Finding::at(
                        after + p as u64,
                        "non-zero bytes after the end of the archive",
                    ));
                }
            }
        }
        TarEnd::LoneZeroBlock(at) => r.push(Finding::at(
            at,
            "the archive ends with one zero block instead of two",
        )),
        TarEnd::Eof(at) => r.push(Finding::at(
            at,
            "the archive ends without its two zero blocks",
        )),
        TarEnd::NotYet => {}
    }
    Ok(())
}

/// References, DiskSection and the disk member agree.
fn descriptor_findings(
    text: &str,
    ovf_member: &Member,
    members: &[Member],
    disk: Option<&Member>,
    capacity: Option<u64>,
    r: &mut Report,
) {
    let base = ovf_member.data_offset;
    let name = &ovf_member.name;
    let env = match ovf::parse(text) {
        Ok(env) => env,
        Err(e) => {
            r.push(Finding::at(
                base + e.offset as u64,
                format!("{name}: {}", e.message),
            ));
            return;
        }
    };
    r.detail("ovf_namespace", env.namespace);
    let at = |offset: usize| base + offset as u64;
    let files = file_references(&env.files, ovf_member, members, r);
    if env.disks.is_empty() {
        // The disk read is the one the File references name; a
        // DiskSection is what vSphere needs to import it.
        r.push(Finding::at(base, format!("{name}: no Disk in a DiskSection")).provider_rule());
    }
    if env.disks.len() > 1 {
        r.push(Finding::at(
            at(env.disks[1].offset),
            format!(
                "{name}: {} disks: cloudimg reads an OVA of one disk (give each disk on its own)",
                env.disks.len()
            ),
        ));
    }
    let Some(d) = env.disks.first() else { return };
    let href = match d.file_ref.as_ref().and_then(|id| files.get(id)) {
        Some(href) => Some(href.as_str()),
        None => {
            r.push(Finding::at(
                at(d.offset),
                format!("{name}: Disk's ovf:fileRef names no File in References"),
            ));
            None
        }
    };
    if let (Some(href), Some(disk)) = (href, disk) {
        if href != disk.name {
            r.push(Finding::at(
                at(d.offset),
                format!(
                    "{name}: Disk refers to {href:?} but the decoded disk member is {:?}",
                    disk.name
                ),
            ));
        }
    }
    if d.format.as_deref() != Some(VMDK_STREAM_OPTIMIZED_URI) {
        r.push(Finding::at(
            at(d.offset),
            format!(
                "{name}: Disk ovf:format is {:?}, not {VMDK_STREAM_OPTIMIZED_URI:?}",
                d.format.as_deref().unwrap_or("")
            ),
        ));
    }
    let units = d.capacity_units.as_deref().unwrap_or("byte");
    let Some(unit) = ovf::allocation_units(units) else {
        r.push(Finding::at(
            at(d.offset),
            format!(
                "{name}: Disk has capacityAllocationUnits {units:?}, which cloudimg cannot read"
            ),
        ));
        return;
    };
    let declared = d
        .capacity
        .as_deref()
        .and_then(|c| c.parse::<u64>().ok())
        .and_then(|c| c.checked_mul(unit));
    match (declared, capacity) {
        (None, _) => r.push(Finding::at(
            at(d.offset),
            format!("{name}: Disk has a missing or malformed ovf:capacity"),
        )),
        (Some(c), Some(v)) if c != v => r.push(Finding::at(
            at(d.offset),
            format!("{name}: Disk capacity is {c} bytes but the VMDK holds {v} bytes"),
        )),
        _ => {}
    }
    if let Some(c) = declared {
        r.detail("ovf_capacity", c);
    }
}

/// Each member name's first member (as a scan from the start finds it),
/// looked up in constant time.
fn by_name(members: &[Member]) -> HashMap<&str, &Member> {
    let mut index = HashMap::with_capacity(members.len());
    for m in members {
        index.entry(m.name.as_str()).or_insert(m);
    }
    index
}

/// The descriptor's `References/File` elements name members of the
/// archive, with their sizes; returns their ids and hrefs.
fn file_references(
    refs: &[ovf::FileRef],
    ovf_member: &Member,
    members: &[Member],
    r: &mut Report,
) -> BTreeMap<String, String> {
    let name = &ovf_member.name;
    let at = |offset: usize| ovf_member.data_offset + offset as u64;
    // id -> href
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let index = by_name(members);
    for e in refs {
        let (Some(href), Some(id)) = (&e.href, &e.id) else {
            r.push(Finding::at(
                at(e.offset),
                format!("{name}: File without ovf:href or ovf:id"),
            ));
            continue;
        };
        files.insert(id.clone(), href.clone());
        match index.get(href.as_str()) {
            None => r.push(Finding::at(
                at(e.offset),
                format!("{name}: File {href:?} is not in the archive"),
            )),
            Some(m) => match e.size.as_deref().map(str::parse::<u64>) {
                None => {}
                Some(Ok(s)) if s == m.size => {}
                Some(Ok(s)) => r.push(Finding::at(
                    at(e.offset),
                    format!(
                        "{name}: File {href:?} has ovf:size {s} but the member is {} bytes",
                        m.size
                    ),
                )),
                Some(Err(_)) => r.push(Finding::at(
                    at(e.offset),
                    format!("{name}: File {href:?} has a malformed ovf:size"),
                )),
            },
        }
    }
    files
}

/// Every line `SHA256(<member>)= <hex>` matches, and every other member is
/// listed.
fn manifest_findings(text: &str, mf: &Member, members: &[Member], r: &mut Report) {
    let mut listed = HashSet::new();
    let index = by_name(members);
    let mut line_at = mf.data_offset;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let at = line_at;
        line_at += line.len() as u64;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once('(').and_then(|(alg, rest)| {
            let (file, hex) = rest.split_once(")=")?;
            Some((alg.trim(), file, hex.trim()))
        });
        let Some((alg, file, hex)) = parsed else {
            r.push(Finding::at(
                at,
                format!("{}: line {} is not ALG(file)= digest", mf.name, n + 1),
            ));
            continue;
        };
        listed.insert(file.to_string());
        let Some(m) = index.get(file) else {
            r.push(Finding::at(
                at,
                format!(
                    "{}: line {} names {file:?}, which is not in the archive",
                    mf.name,
                    n + 1
                ),
            ));
            continue;
        };
        if alg != "SHA256" {
            r.push(Finding::at(
                at,
                format!(
                    "{}: line {} uses {alg}, which cloudimg does not check (only SHA256)",
                    mf.name,
                    n + 1
                ),
            ));
            continue;
        }
        if !hex.eq_ignore_ascii_case(&m.sha256) {
            r.push(Finding::at(
                m.data_offset,
                format!(
                    "{}: SHA256 of {file:?} is {}, the manifest says {hex}",
                    mf.name, m.sha256
                ),
            ));
        }
    }
    for m in members {
        if m.name != mf.name && !listed.contains(m.name.as_str()) {
            r.push(Finding::at(
                m.header_offset,
                format!("{}: member {:?} is not listed", mf.name, m.name),
            ));
        }
    }
}
