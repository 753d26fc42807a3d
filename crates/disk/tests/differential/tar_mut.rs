//! Mutators of tar archives: the GCP `disk.raw.tar.gz` (mutated inside
//! the gzip, then compressed again) and the OVA (a POSIX ustar of an OVF
//! descriptor, a stream-optimized VMDK and a `.mf` manifest).
//!
//! Header layout from POSIX.1-2001 `ustar` and GNU tar's `oldgnu`
//! (GNU tar manual, "Basic Tar Format" and "GNU Extensions": name 0..100,
//! mode 100, size 124, chksum 148, typeflag 156, linkname 157, magic 257,
//! ustar prefix 345..500; oldgnu sparse map at 386 (4 entries of offset
//! and size, 12 octal bytes each), isextended 482, realsize 483).

use crate::common::Rng;
use crate::mutate::{self, Extra, Kind};
use sha2::{Digest, Sha256};

/// One member of a tar archive.
#[derive(Clone, Debug)]
pub struct Member {
    /// Offset of its header block.
    pub hdr: usize,
    pub name: String,
    pub typeflag: u8,
    /// Bytes of data stored in the archive (the size field).
    pub size: u64,
    /// Offset of its data (after any GNU sparse extension blocks).
    pub data: usize,
    /// Offset of the next header.
    pub end: usize,
}

/// A tar numeric field: octal digits, or GNU's base-256 (high bit set).
pub fn octal(f: &[u8]) -> u64 {
    if f.first().is_some_and(|&b| b & 0x80 != 0) {
        return f[1..].iter().fold(0u64, |v, &b| (v << 8) | b as u64);
    }
    f.iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .fold(0u64, |v, &b| (v << 3) | (b - b'0') as u64)
}

/// Write `v` into a numeric field: octal with a NUL when it fits, else
/// base-256.
pub fn set_octal(f: &mut [u8], v: u64) {
    let w = f.len() - 1;
    let s = format!("{v:0w$o}");
    if s.len() <= w {
        f[..w].copy_from_slice(s.as_bytes());
        f[w] = 0;
    } else {
        f.fill(0);
        f[0] = 0x80;
        let n = f.len();
        for i in 0..(n - 1).min(8) {
            f[n - 1 - i] = (v >> (8 * i)) as u8;
        }
    }
}

/// Recompute a header block's checksum (the chksum field counted as
/// spaces; written as six octal digits, NUL, space).
pub fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let s: u32 = h[..512].iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
}

fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// The members of a tar archive, up to the first zero block.
pub fn members(t: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= t.len() {
        let h = &t[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let mut name = cstr(&h[..100]);
        if &h[257..263] == b"ustar\0" && h[345] != 0 {
            name = format!("{}/{name}", cstr(&h[345..500]));
        }
        let typeflag = h[156];
        let size = octal(&h[124..136]);
        let mut data = at + 512;
        if typeflag == b'S' && h[482] != 0 {
            while data + 512 <= t.len() {
                let ext = t[data + 504];
                data += 512;
                if ext == 0 {
                    break;
                }
            }
        }
        let end = data + (size as usize).div_ceil(512) * 512;
        out.push(Member {
            hdr: at,
            name,
            typeflag,
            size,
            data,
            end,
        });
        if end <= at || size > t.len() as u64 {
            break;
        }
        at = end;
    }
    out
}

/// The disk member of a GCP tarball (named `disk.raw`), else the first.
fn disk_member(ms: &[Member]) -> Option<Member> {
    ms.iter()
        .find(|m| m.name == "disk.raw")
        .or(ms.first())
        .cloned()
}

/// A copy of member `m` (header, extension blocks, data) renamed `name`,
/// its first non-zero data byte inverted so that its content differs.
fn altered_copy(t: &[u8], m: &Member, name: &str) -> Vec<u8> {
    let mut c = t[m.hdr..m.end.min(t.len())].to_vec();
    rename(&mut c[..512], name);
    let d = m.data - m.hdr;
    if let Some(i) = c[d..].iter().position(|&b| b != 0) {
        c[d + i] ^= 0xFF;
    } else if c.len() > d {
        c[d] = 0x5A;
    }
    c
}

fn rename(h: &mut [u8], name: &str) {
    h[..100].fill(0);
    h[..name.len()].copy_from_slice(name.as_bytes());
    if &h[257..263] == b"ustar\0" {
        h[345..500].fill(0);
    }
    fix_checksum(h);
}

/// Where the archive's members end (its end-of-archive blocks start).
fn members_end(ms: &[Member]) -> usize {
    ms.last().map_or(0, |m| m.end)
}

fn splice(t: &[u8], at: usize, ins: &[u8]) -> Vec<u8> {
    let mut out = t[..at].to_vec();
    out.extend_from_slice(ins);
    out.extend_from_slice(&t[at..]);
    out
}

/// A pax extended header ('x') whose one record is `key=value`.
fn pax_header(template: &[u8], key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    let rec = format!("{n}{body}");
    let mut h = template[..512].to_vec();
    h[..100].fill(0);
    h[..14].copy_from_slice(b"PaxHeaders/x.r");
    h[156] = b'x';
    h[157..257].fill(0);
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[345..512].fill(0);
    set_octal(&mut h[124..136], rec.len() as u64);
    fix_checksum(&mut h);
    let mut out = h;
    let mut data = rec.into_bytes();
    data.resize(data.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&data);
    out
}

/// Mutate the (uncompressed) GCP tar `t`.
pub fn apply(name: &str, t: &[u8], rng: &mut Rng, _extra: &Extra) -> Option<(Vec<u8>, String)> {
    let ms = members(t);
    let m = disk_member(&ms)?;
    match name {
        "tar-field" | "tar-field-nofix" => {
            let mut t = t.to_vec();
            let d = tar_field(&mut t, &m, rng, name == "tar-field")?;
            Some((t, d))
        }
        "tar-dup-member" => {
            let copy = altered_copy(t, &m, "disk.raw");
            let (at, where_) = if rng.next_u64() & 1 == 0 {
                (m.end, "right after it")
            } else {
                (members_end(&ms), "at the end")
            };
            Some((
                splice(t, at, &copy),
                format!("a second disk.raw member (content differs) {where_}"),
            ))
        }
        "tar-hardlink" => {
            let mut ins = altered_copy(t, &m, "b.raw");
            let mut h = t[m.hdr..m.hdr + 512].to_vec();
            rename(&mut h, "disk.raw");
            h[156] = b'1';
            h[157..257].fill(0);
            h[157..162].copy_from_slice(b"b.raw");
            set_octal(&mut h[124..136], 0);
            h[345..512].fill(0);
            fix_checksum(&mut h);
            ins.extend_from_slice(&h);
            Some((
                splice(t, m.end, &ins),
                "member b.raw (content differs), then disk.raw as a hard link to b.raw".into(),
            ))
        }
        "tar-pax-path" => {
            let mut ins = pax_header(&t[m.hdr..], "path", "disk.raw");
            ins.extend_from_slice(&altered_copy(t, &m, "c.raw"));
            let at = if rng.next_u64() & 1 == 0 {
                m.end
            } else {
                m.hdr
            };
            let where_ = if at == m.hdr { "before" } else { "after" };
            Some((splice(t, at, &ins), format!("{where_} disk.raw: member c.raw (content differs) with a pax path=disk.raw record")))
        }
        _ => None,
    }
}

/// Change one header field of member `m`.
fn tar_field(t: &mut [u8], m: &Member, rng: &mut Rng, fix: bool) -> Option<String> {
    let h = m.hdr;
    let gnu_sparse = m.typeflag == b'S';
    let mut fields: Vec<(&str, usize, usize)> = vec![
        ("name", 0, 100),
        ("mode", 100, 8),
        ("size", 124, 12),
        ("typeflag", 156, 1),
        ("magic", 257, 8),
    ];
    if gnu_sparse {
        fields.extend([
            ("sparse[0].offset", 386, 12),
            ("sparse[0].numbytes", 398, 12),
            ("sparse[1].offset", 410, 12),
            ("sparse[1].numbytes", 422, 12),
            ("isextended", 482, 1),
            ("realsize", 483, 12),
        ]);
    }
    let (fname, at, len) = fields[(rng.next_u64() % fields.len() as u64) as usize];
    let f = &mut t[h + at..h + at + len];
    let before = String::from_utf8_lossy(f).replace('\0', "\\0");
    match fname {
        "name" => {
            let names = [
                "./disk.raw",
                "DISK.RAW",
                "disk.raw/",
                "",
                "/disk.raw",
                "disk.raw\0x",
                "disk.ra",
            ];
            let n = names[(rng.next_u64() % names.len() as u64) as usize];
            f.fill(0);
            f[..n.len()].copy_from_slice(n.as_bytes());
        }
        "typeflag" => {
            let flags = b"0\x0012567gxLKS";
            f[0] = flags[(rng.next_u64() % flags.len() as u64) as usize];
        }
        "magic" => {
            let magics: [&[u8; 8]; 3] = [b"ustar  \0", b"ustar\x0000", b"\0\0\0\0\0\0\0\0"];
            f.copy_from_slice(magics[(rng.next_u64() % 3) as usize]);
        }
        "isextended" => f[0] ^= 1,
        _ => {
            let old = octal(f);
            let v = match rng.next_u64() % 9 {
                0 => 0,
                1 => old + 512,
                2 => old.wrapping_sub(512),
                3 => old + 1,
                4 => old * 2,
                5 => old / 2,
                6 => 0o77777777777,
                7 => 1 << 40,
                _ => old ^ (1 << (rng.next_u64() % 36)),
            };
            set_octal(f, v);
        }
    }
    let after = String::from_utf8_lossy(&t[h + at..h + at + len]).replace('\0', "\\0");
    if fix {
        fix_checksum(&mut t[h..h + 512]);
    }
    let fixed = if fix { "" } else { " (checksum left stale)" };
    Some(format!("{} {fname} {before:?} -> {after:?}{fixed}", m.name))
}

/// An OVA as members (header block, data) and what follows them.
struct Ova {
    members: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Ova {
    fn parse(b: &[u8]) -> Option<Ova> {
        let ms = members(b);
        if ms.is_empty() {
            return None;
        }
        let members = ms
            .iter()
            .map(|m| {
                (
                    b[m.hdr..m.hdr + 512].to_vec(),
                    b[m.data..(m.data + m.size as usize).min(b.len())].to_vec(),
                )
            })
            .collect();
        Some(Ova { members })
    }
    fn name(&self, i: usize) -> String {
        cstr(&self.members[i].0[..100])
    }
    fn find(&self, suffix: &str) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.name(i).to_ascii_lowercase().ends_with(suffix))
    }
    fn set_data(&mut self, i: usize, data: Vec<u8>) {
        set_octal(&mut self.members[i].0[124..136], data.len() as u64);
        fix_checksum(&mut self.members[i].0);
        self.members[i].1 = data;
    }
    fn insert(&mut self, at: usize, template: usize, name: &str, data: Vec<u8>) {
        let mut h = self.members[template].0.clone();
        rename(&mut h, name);
        self.members.insert(at, (h, Vec::new()));
        self.set_data(at, data);
    }
    /// Rewrite the `.mf` member: one `SHA256(name)= hex` line per member
    /// but itself, as the OVF specification (DSP0243 §5.1) has it.
    fn rewrite_mf(&mut self) {
        let Some(mf) = self.find(".mf") else { return };
        let mut text = String::new();
        for i in 0..self.members.len() {
            if i != mf {
                let d = hex::encode(Sha256::digest(&self.members[i].1));
                text.push_str(&format!("SHA256({})= {d}\n", self.name(i)));
            }
        }
        self.set_data(mf, text.into_bytes());
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, d) in &self.members {
            out.extend_from_slice(h);
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

/// Mutate an OVA.
pub fn apply_ova(name: &str, b: &[u8], rng: &mut Rng, extra: &Extra) -> Option<(Vec<u8>, String)> {
    let mut o = Ova::parse(b)?;
    let disk = o.find(".vmdk")?;
    let disk_name = o.name(disk);
    let d = match name {
        "ova-extra-disk" => {
            let names = ["aaa.vmdk", "disk0.VMDK", "capos-disk0.vmdk"];
            let n = names[(rng.next_u64() % 3) as usize];
            let at = [disk, disk + 1, o.members.len()][(rng.next_u64() % 3) as usize];
            o.insert(at, disk, n, extra.alt_vmdk.clone());
            o.rewrite_mf();
            format!("a second VMDK member {n} (another disk) at member {at}, not referenced by the OVF; manifest rewritten")
        }
        "ova-href" => {
            let ovf = o.find(".ovf")?;
            let text = String::from_utf8(o.members[ovf].1.clone()).ok()?;
            let alt = "alt.vmdk";
            let new = text.replace(&format!("\"{disk_name}\""), &format!("\"{alt}\""));
            if new == text {
                return None;
            }
            let at = if rng.next_u64() & 1 == 0 {
                disk + 1
            } else {
                o.members.len()
            };
            o.set_data(ovf, new.into_bytes());
            o.insert(at, disk, alt, extra.alt_vmdk.clone());
            let fixed = rng.next_u64() % 4 != 0;
            if fixed {
                o.rewrite_mf();
            }
            format!(
                "the OVF references a new member {alt} (another disk, at member {at}) instead of {disk_name}; manifest {}",
                if fixed { "rewritten" } else { "left stale" }
            )
        }
        "ova-second-ref" => {
            // A second disk the OVF references (a second File element),
            // as a new member; the manifest rewritten or not.
            let ovf = o.find(".ovf")?;
            let text = String::from_utf8(o.members[ovf].1.clone()).ok()?;
            let start = text.find("<File ").or_else(|| text.find(":File "))?;
            let start = text[..start + 1].rfind('<')?;
            let end = start + text[start..].find("/>")? + 2;
            let file = &text[start..end];
            let second = file.replace(&format!("\"{disk_name}\""), "\"second.vmdk\"");
            if second == file {
                return None;
            }
            let second = second.replacen("id=\"", "id=\"second-", 1);
            let new = format!("{}\n{second}{}", &text[..end], &text[end..]);
            o.set_data(ovf, new.into_bytes());
            let at = if rng.next_u64() & 1 == 0 {
                disk
            } else {
                disk + 1
            };
            o.insert(at, disk, "second.vmdk", extra.alt_vmdk.clone());
            let fixed = rng.next_u64() % 4 != 0;
            if fixed {
                o.rewrite_mf();
            }
            format!(
                "the OVF references a second disk second.vmdk (member {at}); manifest {}",
                if fixed { "rewritten" } else { "left stale" }
            )
        }
        "ova-mf" => {
            let mf = o.find(".mf")?;
            let mut text = o.members[mf].1.clone();
            let eq: Vec<usize> = text
                .iter()
                .enumerate()
                .filter(|(_, &c)| c == b'=')
                .map(|(i, _)| i)
                .collect();
            let at = *eq.get((rng.next_u64() % eq.len().max(1) as u64) as usize)?
                + 2
                + (rng.next_u64() % 64) as usize;
            if at >= text.len() {
                return None;
            }
            text[at] = if text[at] == b'0' { b'1' } else { b'0' };
            o.set_data(mf, text);
            format!("manifest digest digit at byte {at} changed")
        }
        "ova-vmdk" | "ova-vmdk-fixmf" => {
            let l = mutate::layout(Kind::Vmdk, &o.members[disk].1);
            let muts = [
                "field", "flags", "count", "offset", "copy", "entry", "dup", "flip",
            ];
            let m = muts[(rng.next_u64() % muts.len() as u64) as usize];
            let mut v = o.members[disk].1.clone();
            let d = mutate::generic(m, &l, &mut v, rng)?;
            o.members[disk].1 = v;
            let fixed = name == "ova-vmdk-fixmf";
            if fixed {
                o.rewrite_mf();
            }
            format!(
                "{disk_name}: {m}: {d}; manifest {}",
                if fixed { "rewritten" } else { "left stale" }
            )
        }
        _ => return None,
    };
    Some((o.bytes(), d))
}
