//! The embedded text descriptor of a hosted sparse extent.
//!
//! Written after open-vmdk's `makeDiskDescriptorFile` (the layout VMware's
//! own stream-optimized writer uses), with the CID and long content ID
//! derived from the caller's seed instead of a random generator. Parsed
//! with a small line parser: `key=value` and `key = "value"` lines, and
//! extent lines `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
//!
//! A descriptor is judged by its content, never by its first comment:
//! `# Disk DescriptorFile` is what VMware and qemu write, but other
//! producers of stream-optimized VMDKs start with another comment (Red
//! Hat's VMDK-stream-converter, `VMDKstream.py` in
//! github.com/imcleod/VMDK-stream-converter, writes `# Description file
//! created by VMDK stream converter`, comment lines between the settings
//! and an `RDONLY` extent line), and qemu reads them. What qemu 7.2 needs of
//! the descriptor embedded in a sparse extent (`block/vmdk.c`,
//! `vmdk_open` -> `vmdk_read_cid`, `vmdk_parent_open`): a hexadecimal
//! `CID` and `parentCID`, and a `parentFileNameHint` only for a disk with a
//! parent; `createType` and the extent lines are not read (checked with
//! qemu-img 7.2 on edited files). A text descriptor file is recognised as
//! qemu's `vmdk_probe` does: after comment and blank lines, the first line
//! is `version=1`, `2` or `3`.

use sha2::{Digest, Sha256};

/// `parentCID` of a disk without a parent.
pub const CID_NO_PARENT: u32 = 0xFFFF_FFFF;
/// A CID some software reads as "disk full of zeroes"; never written.
pub const CID_RESERVED: u32 = 0xFFFF_FFFE;

/// Heads and sectors per track of the geometry written in the DDB: 255/63
/// suits every disk larger than a few GiB (open-vmdk's choice).
pub const GEOMETRY_HEADS: u64 = 255;
/// Sectors per track of the DDB geometry.
pub const GEOMETRY_SECTORS: u64 = 63;
/// Largest cylinder count in the DDB geometry.
pub const GEOMETRY_CYLINDERS_MAX: u64 = 65535;

/// `ddb.virtualHWVersion`: "4" is the value open-vmdk and qemu write; the
/// field is obsolete and only read by ESX 3.x and older.
pub const VIRTUAL_HW_VERSION: &str = "4";
/// `ddb.adapterType`: LSI Logic SCSI, what open-vmdk writes and what ESX
/// and AWS expect of an imported disk.
pub const ADAPTER_TYPE: &str = "lsilogic";

/// Identifiers derived from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorIds {
    /// Content ID (never `ffffffff` or `fffffffe`).
    pub cid: u32,
    /// 128-bit long content ID; its last 32 bits equal the CID, as in
    /// open-vmdk.
    pub long_content_id: [u32; 4],
}

impl DescriptorIds {
    /// Derive the identifiers from `seed` (SHA-256 of a domain tag and the
    /// seed): reproducible, and different for different inputs.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"cloudimg vmdk content id\0");
        h.update(seed);
        let d: [u8; 32] = h.finalize().into();
        let word = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let mut cid = word(0);
        if cid == CID_NO_PARENT || cid == CID_RESERVED {
            // Clear the low bit's neighbour: ffffffff/fffffffe -> fffffffd/fffffffc.
            cid &= !0b10;
        }
        DescriptorIds {
            cid,
            long_content_id: [word(4), word(8), word(12), cid],
        }
    }
}

/// `ddb.geometry.cylinders` for a disk of `capacity` sectors.
pub fn geometry_cylinders(capacity: u64) -> u64 {
    capacity
        .div_ceil(GEOMETRY_HEADS * GEOMETRY_SECTORS)
        .min(GEOMETRY_CYLINDERS_MAX)
}

/// The descriptor text cloudimg writes for a stream-optimized extent.
pub fn render(file_name: &str, capacity: u64, ids: &DescriptorIds) -> String {
    let l = ids.long_content_id;
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         encoding=\"UTF-8\"\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\
         \n\
         # Extent description\n\
         RW {capacity} SPARSE \"{file_name}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.longContentID = \"{l0:08x}{l1:08x}{l2:08x}{l3:08x}\"\n\
         ddb.virtualHWVersion = \"{VIRTUAL_HW_VERSION}\"\n\
         ddb.geometry.cylinders = \"{cyl}\"\n\
         ddb.geometry.heads = \"{GEOMETRY_HEADS}\"\n\
         ddb.geometry.sectors = \"{GEOMETRY_SECTORS}\"\n\
         ddb.adapterType = \"{ADAPTER_TYPE}\"\n",
        cid = ids.cid,
        l0 = l[0],
        l1 = l[1],
        l2 = l[2],
        l3 = l[3],
        cyl = geometry_cylinders(capacity),
    )
}

/// One extent line of a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    /// `RW`, `RDONLY` or `NOACCESS`.
    pub access: String,
    /// Size in sectors.
    pub sectors: u64,
    /// `SPARSE`, `FLAT`, `ZERO`, `VMFS`, ...
    pub kind: String,
    /// The extent file name.
    pub file: String,
}

/// The parts of a descriptor cloudimg looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `version`, as written.
    pub version: Option<String>,
    /// `parentFileNameHint`, without quotes: the disk has a parent.
    pub parent_hint: Option<String>,
    /// `createType`, without quotes.
    pub create_type: Option<String>,
    /// `CID`, as written.
    pub cid: Option<String>,
    /// `parentCID`, as written.
    pub parent_cid: Option<String>,
    /// Extent lines, in order.
    pub extents: Vec<ExtentLine>,
    /// Lines that are neither comments, settings nor extents (1-based
    /// line number, text).
    pub bad_lines: Vec<(usize, String)>,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

impl Descriptor {
    /// Parse descriptor text (stops at the first NUL, as the text is padded
    /// with zeros to whole sectors).
    pub fn parse(bytes: &[u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..end]);
        let mut d = Descriptor::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = unquote(v).to_string();
                match k.trim() {
                    "createType" => d.create_type = Some(v),
                    "CID" => d.cid = Some(v),
                    "parentCID" => d.parent_cid = Some(v),
                    "version" => d.version = Some(v),
                    "parentFileNameHint" => d.parent_hint = Some(v),
                    _ => {}
                }
                continue;
            }
            match parse_extent(line) {
                Some(e) => d.extents.push(e),
                None => d.bad_lines.push((i + 1, line.to_string())),
            }
        }
        d
    }

    /// Why the disk cannot be read alone, as qemu-img 7.2 would refuse it
    /// too: no hexadecimal `CID` or `parentCID` (qemu: "Invalid
    /// argument"), or a parent disk (`parentCID` other than `ffffffff`, or
    /// a `parentFileNameHint`: qemu opens the parent as a backing file).
    pub fn reading_problem(&self) -> Option<String> {
        let cid = |name: &str, v: &Option<String>| match v {
            None => Some(format!("the embedded descriptor has no {name}")),
            Some(c) if !is_cid(c) => Some(format!(
                "the embedded descriptor's {name} {c:?} is not 1 to 8 hex digits"
            )),
            Some(_) => None,
        };
        if let Some(p) = cid("CID", &self.cid).or_else(|| cid("parentCID", &self.parent_cid)) {
            return Some(p);
        }
        if let Some(hint) = &self.parent_hint {
            return Some(format!(
                "is a delta disk of the parent {hint:?} (parentFileNameHint): convert the pair first (qemu-img convert -O raw) and give the result"
            ));
        }
        match self.parent_cid.as_deref() {
            Some(p) if !p.eq_ignore_ascii_case("ffffffff") => Some(format!(
                "is a delta disk (parentCID {p}): its parent is needed; convert the pair first (qemu-img convert -O raw) and give the result"
            )),
            _ => None,
        }
    }
}

/// Whether `head` (a file's first bytes) is a VMDK text descriptor file as
/// qemu's `vmdk_probe` (`block/vmdk.c`) tells one: skipping lines that
/// start with `#` and lines of spaces, the first line is `version=1`,
/// `version=2` or `version=3` (ending `\n` or `\r\n`). A text starting
/// `# Disk DescriptorFile` is one too (what VMware writes first).
pub fn is_text_descriptor(head: &[u8]) -> bool {
    if head.starts_with(b"# Disk DescriptorFile") {
        return true;
    }
    let mut rest = head;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"#") || line.iter().all(|&b| b == b' ') {
            match next {
                Some(n) => rest = n,
                None => return false,
            }
            continue;
        }
        // The version line must be complete (qemu compares "version=N\n").
        return next.is_some() && matches!(line, b"version=1" | b"version=2" | b"version=3");
    }
    false
}

fn parse_extent(line: &str) -> Option<ExtentLine> {
    let (head, rest) = line.split_once('"')?;
    let (file, _tail) = rest.split_once('"')?;
    let mut it = head.split_whitespace();
    let access = it.next()?.to_string();
    let sectors = it.next()?.parse().ok()?;
    let kind = it.next()?.to_string();
    if it.next().is_some() || !matches!(access.as_str(), "RW" | "RDONLY" | "NOACCESS") {
        return None;
    }
    Some(ExtentLine {
        access,
        sectors,
        kind,
        file: file.to_string(),
    })
}

/// Whether `s` is a CID: 1 to 8 hex digits. VMware writes 8 (`%08x`),
/// qemu drops leading zeros (`%x`); both read it with `%x`.
pub fn is_cid(s: &str) -> bool {
    (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_descriptor_parses_back() {
        let ids = DescriptorIds::from_seed(&[7; 32]);
        let text = render("disk.vmdk", 20480, &ids);
        let d = Descriptor::parse(text.as_bytes());
        assert_eq!(d.version.as_deref(), Some("1"));
        assert_eq!(d.reading_problem(), None);
        assert!(is_text_descriptor(text.as_bytes()));
        assert_eq!(d.create_type.as_deref(), Some("streamOptimized"));
        assert_eq!(d.cid, Some(format!("{:08x}", ids.cid)));
        assert_eq!(d.parent_cid.as_deref(), Some("ffffffff"));
        assert_eq!(
            d.extents,
            vec![ExtentLine {
                access: "RW".into(),
                sectors: 20480,
                kind: "SPARSE".into(),
                file: "disk.vmdk".into()
            }]
        );
        assert!(d.bad_lines.is_empty());
        assert!(text.contains("ddb.geometry.cylinders = \"2\"\n"));
        assert!(text.len() < 20 * 512);
    }

    #[test]
    fn ids_are_reproducible_and_never_reserved() {
        assert_eq!(
            DescriptorIds::from_seed(&[1; 32]),
            DescriptorIds::from_seed(&[1; 32])
        );
        assert_ne!(
            DescriptorIds::from_seed(&[1; 32]),
            DescriptorIds::from_seed(&[2; 32])
        );
        for s in 0..=255u8 {
            let ids = DescriptorIds::from_seed(&[s; 32]);
            assert!(ids.cid != CID_NO_PARENT && ids.cid != CID_RESERVED);
            assert_eq!(ids.long_content_id[3], ids.cid);
        }
    }

    #[test]
    fn geometry_caps_cylinders() {
        assert_eq!(geometry_cylinders(1), 1);
        assert_eq!(geometry_cylinders(255 * 63 + 1), 2);
        assert_eq!(geometry_cylinders(1 << 40), 65535);
    }

    #[test]
    fn text_descriptors_are_told_as_qemu_probes_them() {
        assert!(is_text_descriptor(b"# Disk DescriptorFile\nCID=1\n"));
        assert!(is_text_descriptor(
            b"# Description file created by VMDK stream converter\nversion=1\nCID=7e5b80a7\n"
        ));
        assert!(is_text_descriptor(b"\n   \n#x\r\nversion=3\r\nCID=1"));
        assert!(!is_text_descriptor(b"# comment\nCID=1\nversion=1\n"));
        assert!(!is_text_descriptor(b"version=4\n"));
        assert!(!is_text_descriptor(b"version=1"));
        assert!(!is_text_descriptor(b"\xEB\x63\x90version=1\n"));
    }

    #[test]
    fn what_qemu_refuses_is_a_reading_problem() {
        let problem = |t: &[u8]| Descriptor::parse(t).reading_problem();
        assert_eq!(
            problem(b"createType=\"streamOptimized\"\n"),
            Some("the embedded descriptor has no CID".into())
        );
        assert_eq!(
            problem(b"CID=zz\nparentCID=ffffffff\n"),
            Some("the embedded descriptor's CID \"zz\" is not 1 to 8 hex digits".into())
        );
        assert!(problem(b"CID=1\nparentCID=2\n")
            .unwrap()
            .starts_with("is a delta disk (parentCID 2)"));
        assert!(
            problem(b"CID=1\nparentCID=ffffffff\nparentFileNameHint=\"b.vmdk\"\n")
                .unwrap()
                .starts_with("is a delta disk of the parent \"b.vmdk\"")
        );
        assert_eq!(problem(b"CID=1\nparentCID=ffffffff\n"), None);
    }

    #[test]
    fn parses_vmware_style_descriptor() {
        let d = Descriptor::parse(
            b"# Disk DescriptorFile\nversion=1\nCID=00000000\nparentCID=ffffffff\n\
              createType=\"streamOptimized\"\nRW 20480 SPARSE \"streamOptimized.vmdk\"\n\
              ddb.adapterType = \"buslogic\"\n\0\0\0garbage",
        );
        assert_eq!(d.create_type.as_deref(), Some("streamOptimized"));
        assert_eq!(d.extents.len(), 1);
        assert_eq!(d.extents[0].sectors, 20480);
    }
}
