//! Seeded, deterministic mutators: each takes a valid file of one format
//! and a `u64` and returns a changed file and a one-line description of
//! the change. The same seed file and the same number give the same
//! mutant, so every disagreement found is a reproducible named case.
//!
//! Where the fields are: each format's layout is read here, independently
//! of the library, from the format specifications as qemu implements them
//! (offsets cited per format below). Generic mutators then work on
//! "fields" (header words, with a role: count, offset, size, flags) and
//! "tables" (arrays of entries: QCOW2 L1/L2/refcount tables, VHD BAT and
//! block bitmaps, VMDK grain directory and grain tables, VHDX BAT), and
//! the checksums a format has are recomputed after the change (the
//! `*-nofix` mutators leave them stale).

use crate::common::Rng;

/// The container formats the harness mutates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Qcow2,
    Vhd,
    Vmdk,
    Vhdx,
    /// A GCP-shaped `disk.raw.tar.gz`.
    TarGz,
    Ova,
}

/// What a header word means, which decides the values tried.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Count,
    Offset,
    Size,
    Flags,
    Other,
}

/// A header word at `at` (bytes, absolute in the file).
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub at: usize,
    pub width: usize,
    pub be: bool,
    pub role: Role,
    /// The same word in the format's other copy (VHD footer copies, VMDK
    /// head and footer headers, VHDX headers and region tables), if any.
    pub mirror: Option<usize>,
}

/// An array of `entries` words of `width` bytes at `at`.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub at: usize,
    pub entries: usize,
    pub width: usize,
    pub be: bool,
}

/// A checksum to recompute after a change.
#[derive(Clone, Copy, Debug)]
pub enum Fix {
    /// VHD: one's complement of the byte sum of `len` bytes at `at`, the
    /// 4-byte big-endian field at `sum_at` counted as zero (VHD spec,
    /// "Checksum"; qemu block/vpc.c `vpc_checksum`).
    VhdSum {
        at: usize,
        len: usize,
        sum_at: usize,
    },
    /// VHDX: CRC-32C of `len` bytes at `at`, the 4-byte little-endian
    /// field at `sum_at` counted as zero (MS-VHDX 2.2.2, 2.2.3; qemu
    /// block/vhdx.c `vhdx_update_checksum`).
    Crc32c {
        at: usize,
        len: usize,
        sum_at: usize,
    },
}

/// Everything the mutators know about one seed file.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub fields: Vec<Field>,
    pub tables: Vec<Table>,
    pub fixes: Vec<Fix>,
}

/// The mutators of the image formats' structures ([`generic`]), the last
/// one (the embedded descriptor's) for VMDK only.
const STRUCTURAL: [&str; 12] = [
    "field",
    "field-nofix",
    "flags",
    "count",
    "offset",
    "copy",
    "entry",
    "dup",
    "flip",
    "flip-fix",
    "pair",
    "descriptor",
];

/// The mutators that apply to a kind of file, by stable name (used in
/// `cases.txt`).
pub fn mutators(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Vmdk => &STRUCTURAL,
        // All but the VMDK descriptor's.
        Kind::Qcow2 | Kind::Vhdx | Kind::Vhd => &STRUCTURAL[..STRUCTURAL.len() - 1],
        Kind::TarGz => &[
            "tar-field",
            "tar-field-nofix",
            "tar-dup-member",
            "tar-hardlink",
            "tar-pax-path",
        ],
        Kind::Ova => &[
            "ova-extra-disk",
            "ova-href",
            "ova-mf",
            "ova-vmdk",
            "ova-vmdk-fixmf",
            "ova-second-ref",
        ],
    }
}

/// Extra material some mutators need: a different valid stream-optimized
/// VMDK (for a second OVA disk).
pub struct Extra {
    pub alt_vmdk: Vec<u8>,
}

/// Apply mutator `name` with number `n` to `seed` (a file of `kind`).
/// None when the mutator has nothing to work on in this file.
pub fn apply(
    kind: Kind,
    name: &str,
    seed: &[u8],
    n: u64,
    extra: &Extra,
) -> Option<(Vec<u8>, String)> {
    let mut rng = Rng::new(n.wrapping_mul(0x100_0000_01B3) ^ 0x5EED);
    match kind {
        Kind::TarGz => {
            let tar = gunzip(seed)?;
            let (t, d) = crate::tar_mut::apply(name, &tar, &mut rng, extra)?;
            Some((gzip(&t), d))
        }
        Kind::Ova => crate::tar_mut::apply_ova(name, seed, &mut rng, extra),
        Kind::Vmdk if name == "descriptor" => {
            let mut b = seed.to_vec();
            let d = vmdk_descriptor(&mut b, &mut rng)?;
            Some((b, d))
        }
        _ => {
            let layout = layout(kind, seed);
            let mut b = seed.to_vec();
            let d = generic(name, &layout, &mut b, &mut rng)?;
            Some((b, d))
        }
    }
}

/// The layout of a file of a disk-container kind (not tar).
pub fn layout(kind: Kind, b: &[u8]) -> Layout {
    match kind {
        Kind::Qcow2 => qcow2_layout(b),
        Kind::Vhd => vhd_layout(b),
        Kind::Vmdk => vmdk_layout(b),
        Kind::Vhdx => vhdx_layout(b),
        Kind::TarGz | Kind::Ova => Layout::default(),
    }
}

/// Run a generic mutator on `b`; return its description.
pub fn generic(name: &str, l: &Layout, b: &mut [u8], rng: &mut Rng) -> Option<String> {
    let pick_field = |rng: &mut Rng, ok: &dyn Fn(&Field) -> bool| -> Option<Field> {
        let c: Vec<&Field> = l
            .fields
            .iter()
            .filter(|f| ok(f) && f.at + f.width <= b.len())
            .collect();
        (!c.is_empty()).then(|| c[pick(rng, c.len())].clone())
    };
    let d = match name {
        "field" | "field-nofix" => {
            let f = pick_field(rng, &|_| true)?;
            set_field(b, &f, rng, f.role, true)
        }
        "flags" => {
            let f = pick_field(rng, &|f| f.role == Role::Flags)?;
            set_field(b, &f, rng, Role::Flags, true)
        }
        "count" => {
            let f = pick_field(rng, &|f| f.role == Role::Count)?;
            set_field(b, &f, rng, Role::Count, true)
        }
        "offset" => {
            let f = pick_field(rng, &|f| f.role == Role::Offset)?;
            set_field(b, &f, rng, Role::Offset, true)
        }
        "copy" => {
            let f = pick_field(rng, &|f| f.mirror.is_some())?;
            let mut f = f;
            if rng.next_u64() & 1 == 1 {
                let m = f.mirror.unwrap();
                f.mirror = Some(f.at);
                f.at = m;
                f.name = format!("{} (other copy)", f.name);
            }
            if f.at + f.width > b.len() {
                return None;
            }
            set_field(b, &f, rng, f.role, false)
        }
        "entry" => {
            let t = pick_table(l, b, rng)?;
            let i = pick_entry(&t, b, rng, true);
            let old = get(b, t.at + i * t.width, t.width, t.be);
            let other = get(b, t.at + pick(rng, t.entries) * t.width, t.width, t.be);
            let max = mask(t.width);
            let v = match rng.next_u64() % 12 {
                0 => 0,
                1 => other,
                // 1: VMDK's "zeroed grain" (GTE_ZEROED), VHDX's state 1.
                9 => 1,
                // An entry pointing k MiB into the file, its low 3 bits
                // kept: a VHDX payload block over the log (1 MiB), the
                // metadata (2 MiB) or the BAT (3 MiB), as qemu lays
                // them out.
                10 => ((1 + rng.next_u64() % 3) << 20 | (old & 7)) & max,
                11 => old & !0xFFFF_FFFF & max | 1,
                2 => old.wrapping_add(1) & max,
                3 => old ^ (1 << (rng.next_u64() % (t.width as u64 * 8))),
                4 => max,
                5 => old.wrapping_add(b.len() as u64) & max,
                6 => (old << 1) & max,
                7 => (b.len() as u64 / 512) & max,
                _ => rng.next_u64() & max,
            };
            put(b, t.at + i * t.width, t.width, t.be, v);
            format!("{}[{i}] {old:#x} -> {v:#x}", t.name)
        }
        "dup" => {
            let t = pick_table(l, b, rng)?;
            let used: Vec<usize> = (0..t.entries)
                .filter(|&i| get(b, t.at + i * t.width, t.width, t.be) != 0)
                .collect();
            if used.is_empty() {
                return None;
            }
            let src = used[pick(rng, used.len())];
            // Onto another used entry (two references to one place), or
            // onto an unused one (a hole that now aliases data).
            let dst = if used.len() > 1 && rng.next_u64() & 1 == 0 {
                let mut d = used[pick(rng, used.len())];
                if d == src {
                    d = used[(used.iter().position(|&x| x == src).unwrap() + 1) % used.len()];
                }
                d
            } else {
                pick(rng, t.entries)
            };
            if dst == src {
                return None;
            }
            let v = get(b, t.at + src * t.width, t.width, t.be);
            let old = get(b, t.at + dst * t.width, t.width, t.be);
            put(b, t.at + dst * t.width, t.width, t.be, v);
            format!("{}[{dst}] {old:#x} -> {v:#x} (= entry {src})", t.name)
        }
        "pair" => {
            // Two changes at once (compound states, e.g. a flag and the
            // table entry it gives a meaning to).
            let muts = ["field", "flags", "count", "offset", "copy", "entry", "dup"];
            let mut d = Vec::new();
            for _ in 0..2 {
                let m = muts[pick(rng, muts.len())];
                if let Some(x) = generic(m, l, b, rng) {
                    d.push(format!("{m}: {x}"));
                }
            }
            if d.is_empty() {
                return None;
            }
            d.join("; ")
        }
        "flip" | "flip-fix" => {
            let k = 1 + pick(rng, 4);
            let mut d = Vec::new();
            for _ in 0..k {
                // Half in the first 64 KiB, a quarter in the last 1536
                // bytes (footers), a quarter in a table or header word.
                let at = match rng.next_u64() % 4 {
                    0 | 1 => pick(rng, b.len().min(64 << 10)),
                    2 => b.len() - 1 - pick(rng, b.len().min(1536)),
                    _ => {
                        let spots: Vec<(usize, usize)> = l
                            .tables
                            .iter()
                            .map(|t| (t.at, (t.entries * t.width).min(4096)))
                            .chain(l.fields.iter().map(|f| (f.at, f.width)))
                            .filter(|&(a, n)| n > 0 && a + n <= b.len())
                            .collect();
                        if spots.is_empty() {
                            pick(rng, b.len())
                        } else {
                            let (a, n) = spots[pick(rng, spots.len())];
                            a + pick(rng, n)
                        }
                    }
                };
                let v = (rng.next_u64() & 0xFF) as u8;
                d.push(format!("[{at:#x}] {:#04x}->{v:#04x}", b[at]));
                b[at] = v;
            }
            format!("bytes {}", d.join(" "))
        }
        _ => return None,
    };
    if !name.ends_with("-nofix") && name != "flip" {
        fix(l, b);
    }
    Some(d)
}

/// Set field `f` (and its mirror when `both`) to a value chosen for `role`.
fn set_field(b: &mut [u8], f: &Field, rng: &mut Rng, role: Role, both: bool) -> String {
    let old = get(b, f.at, f.width, f.be);
    let max = mask(f.width);
    let len = b.len() as u64;
    let v = match role {
        Role::Count => match rng.next_u64() % 10 {
            0 => 0,
            1 => 1,
            2 => old.wrapping_sub(1),
            3 => old.wrapping_add(1),
            4 => old.wrapping_mul(2),
            5 => old / 2,
            6 => 0xFFFF,
            7 => max,
            8 => old << 8,
            _ => rng.next_u64(),
        },
        Role::Offset => match rng.next_u64() % 10 {
            0 => 0,
            1 => old.wrapping_add(1),
            2 => old.wrapping_add(512),
            3 => old.wrapping_sub(512),
            4 => len,
            5 => len + 65536,
            6 => max,
            7 => old / 2,
            8 => old.wrapping_add(65536),
            _ => rng.next_u64(),
        },
        Role::Size => match rng.next_u64() % 9 {
            0 => 0,
            1 => old.wrapping_sub(512),
            2 => old.wrapping_add(512),
            3 => old.wrapping_mul(2),
            4 => old.wrapping_add(1),
            5 => old / 2,
            6 => 1 << 40,
            7 => 1 << 50,
            _ => rng.next_u64(),
        },
        Role::Flags => match rng.next_u64() % 6 {
            0 => 0,
            1 => max,
            _ => old ^ (1 << (rng.next_u64() % (f.width as u64 * 8))),
        },
        Role::Other => match rng.next_u64() % 4 {
            0 => 0,
            1 => old ^ 1,
            2 => max,
            _ => rng.next_u64(),
        },
    } & max;
    put(b, f.at, f.width, f.be, v);
    if both {
        if let Some(m) = f.mirror.filter(|m| m + f.width <= b.len()) {
            put(b, m, f.width, f.be, v);
        }
    }
    let copies = if both && f.mirror.is_some() {
        " (both copies)"
    } else {
        ""
    };
    format!("{} {old:#x} -> {v:#x}{copies}", f.name)
}

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// A table that lies inside the file.
fn pick_table(l: &Layout, b: &[u8], rng: &mut Rng) -> Option<Table> {
    let c: Vec<Table> = l
        .tables
        .iter()
        .filter(|t| t.entries > 0 && t.at + t.width <= b.len())
        .map(|t| {
            let mut t = t.clone();
            t.entries = t.entries.min((b.len() - t.at) / t.width);
            t
        })
        .collect();
    (!c.is_empty()).then(|| c[pick(rng, c.len())].clone())
}

/// An entry index, a used (non-zero) one most of the time.
fn pick_entry(t: &Table, b: &[u8], rng: &mut Rng, prefer_used: bool) -> usize {
    if prefer_used && rng.next_u64() % 4 != 0 {
        let used: Vec<usize> = (0..t.entries)
            .filter(|&i| {
                let v = get(b, t.at + i * t.width, t.width, t.be);
                v != 0 && v != mask(t.width)
            })
            .collect();
        if !used.is_empty() {
            return used[pick(rng, used.len())];
        }
    }
    pick(rng, t.entries)
}

pub fn mask(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    }
}

/// The `width`-byte integer at `at` (0 past the end).
pub fn get(b: &[u8], at: usize, width: usize, be: bool) -> u64 {
    if at + width > b.len() {
        return 0;
    }
    let s = &b[at..at + width];
    let mut v = 0u64;
    for i in 0..width {
        let byte = if be { s[i] } else { s[width - 1 - i] };
        v = (v << 8) | byte as u64;
    }
    v
}

pub fn put(b: &mut [u8], at: usize, width: usize, be: bool, v: u64) {
    if at + width > b.len() {
        return;
    }
    for i in 0..width {
        let byte = (v >> (8 * i)) as u8;
        let k = if be { at + width - 1 - i } else { at + i };
        b[k] = byte;
    }
}

/// Recompute every checksum of the layout.
pub fn fix(l: &Layout, b: &mut [u8]) {
    for f in &l.fixes {
        match *f {
            Fix::VhdSum { at, len, sum_at } if at + len <= b.len() => {
                put(b, sum_at, 4, true, 0);
                let s: u32 = b[at..at + len].iter().map(|&x| x as u32).sum();
                put(b, sum_at, 4, true, (!s) as u64);
            }
            Fix::Crc32c { at, len, sum_at } if at + len <= b.len() => {
                put(b, sum_at, 4, false, 0);
                let c = crc32c(&b[at..at + len]);
                put(b, sum_at, 4, false, c as u64);
            }
            _ => {}
        }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: the
/// checksum of VHDX (MS-VHDX 2.2: "CRC-32C ... Castagnoli").
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn field(name: &str, at: usize, width: usize, be: bool, role: Role) -> Field {
    Field {
        name: name.to_string(),
        at,
        width,
        be,
        role,
        mirror: None,
    }
}

/// QCOW2 (docs/interop/qcow2.txt in qemu; big-endian header): the header
/// words, the L1 table, every L2 table, the refcount table and its first
/// refcount block.
fn qcow2_layout(b: &[u8]) -> Layout {
    let g = |at, w| get(b, at, w, true);
    let mut l = Layout::default();
    let version = g(4, 4);
    for (name, at, w, role) in [
        ("version", 4, 4, Role::Other),
        ("backing_file_offset", 8, 8, Role::Offset),
        ("backing_file_size", 16, 4, Role::Count),
        ("cluster_bits", 20, 4, Role::Count),
        ("size", 24, 8, Role::Size),
        ("crypt_method", 32, 4, Role::Flags),
        ("l1_size", 36, 4, Role::Count),
        ("l1_table_offset", 40, 8, Role::Offset),
        ("refcount_table_offset", 48, 8, Role::Offset),
        ("refcount_table_clusters", 56, 4, Role::Count),
        ("nb_snapshots", 60, 4, Role::Count),
        ("snapshots_offset", 64, 8, Role::Offset),
    ] {
        l.fields.push(field(name, at, w, true, role));
    }
    if version >= 3 {
        for (name, at, w, role) in [
            ("incompatible_features", 72, 8, Role::Flags),
            ("compatible_features", 80, 8, Role::Flags),
            ("autoclear_features", 88, 8, Role::Flags),
            ("refcount_order", 96, 4, Role::Count),
            ("header_length", 100, 4, Role::Count),
        ] {
            l.fields.push(field(name, at, w, true, role));
        }
        if g(100, 4) > 104 {
            l.fields
                .push(field("compression_type", 104, 1, true, Role::Flags));
        }
    }
    let cs = 1usize << g(20, 4).min(21);
    // L1 and L2 entries: host offset in bits 9-55 (qcow2.txt "L1 table
    // entry", "Standard Cluster Descriptor").
    const OFFSET_MASK: u64 = 0x00FF_FFFF_FFFF_FE00;
    let l1 = g(40, 8) as usize;
    let l1_size = g(36, 4) as usize;
    l.tables.push(Table {
        name: "l1".into(),
        at: l1,
        entries: l1_size,
        width: 8,
        be: true,
    });
    for i in 0..l1_size.min(64) {
        let e = g(l1 + 8 * i, 8) & OFFSET_MASK;
        if e != 0 {
            l.tables.push(Table {
                name: format!("l2[{i}]"),
                at: e as usize,
                entries: cs / 8,
                width: 8,
                be: true,
            });
        }
    }
    let rt = g(48, 8) as usize;
    let rt_entries = g(56, 4) as usize * cs / 8;
    l.tables.push(Table {
        name: "refcount_table".into(),
        at: rt,
        entries: rt_entries,
        width: 8,
        be: true,
    });
    let order = if version >= 3 { g(96, 4) } else { 4 };
    let rb = g(rt, 8) as usize;
    if rb != 0 && (3..=6).contains(&order) {
        let w = 1usize << (order - 3);
        l.tables.push(Table {
            name: "refcount_block[0]".into(),
            at: rb,
            entries: cs / w,
            width: w,
            be: true,
        });
    }
    l
}

/// VHD (Microsoft's VHD specification; qemu block/vpc.c): the footer (at
/// the end, and its copy at 0 in a dynamic VHD), the dynamic header, the
/// BAT and the first allocated block's sector bitmap.
fn vhd_layout(b: &[u8]) -> Layout {
    let mut l = Layout::default();
    let len = b.len();
    if len < 512 {
        return l;
    }
    let tail = len - 512;
    let head = (b.len() >= 1024 && &b[..8] == b"conectix").then_some(0usize);
    for (name, at, w, role) in [
        ("footer.features", 8, 4, Role::Flags),
        ("footer.version", 12, 4, Role::Other),
        ("footer.data_offset", 16, 8, Role::Offset),
        ("footer.creator_app", 28, 4, Role::Other),
        ("footer.original_size", 40, 8, Role::Size),
        ("footer.current_size", 48, 8, Role::Size),
        ("footer.geometry", 56, 4, Role::Other),
        ("footer.disk_type", 60, 4, Role::Flags),
    ] {
        let mut f = field(name, tail + at, w, true, role);
        f.mirror = head.map(|h| h + at);
        l.fields.push(f);
    }
    l.fixes.push(Fix::VhdSum {
        at: tail,
        len: 512,
        sum_at: tail + 64,
    });
    if let Some(h) = head {
        l.fixes.push(Fix::VhdSum {
            at: h,
            len: 512,
            sum_at: h + 64,
        });
        let dh = get(b, h + 16, 8, true) as usize;
        if dh + 1024 <= len && &b[dh..dh + 8] == b"cxsparse" {
            for (name, at, w, role) in [
                ("dynheader.data_offset", 8, 8, Role::Offset),
                ("dynheader.table_offset", 16, 8, Role::Offset),
                ("dynheader.header_version", 24, 4, Role::Other),
                ("dynheader.max_table_entries", 28, 4, Role::Count),
                ("dynheader.block_size", 32, 4, Role::Count),
            ] {
                l.fields.push(field(name, dh + at, w, true, role));
            }
            l.fixes.push(Fix::VhdSum {
                at: dh,
                len: 1024,
                sum_at: dh + 36,
            });
            let bat = get(b, dh + 16, 8, true) as usize;
            let n = get(b, dh + 28, 4, true) as usize;
            l.tables.push(Table {
                name: "bat".into(),
                at: bat,
                entries: n,
                width: 4,
                be: true,
            });
            // The first allocated block's sector bitmap, one byte an
            // entry (VHD spec: "sector bitmap" before each block's data).
            if let Some(s) = (0..n.min(4096))
                .map(|i| get(b, bat + 4 * i, 4, true))
                .find(|&s| s != 0xFFFF_FFFF)
            {
                l.tables.push(Table {
                    name: "bitmap".into(),
                    at: s as usize * 512,
                    entries: 512,
                    width: 1,
                    be: true,
                });
            }
        }
    }
    l
}

/// VMDK hosted sparse extent (VMware "Virtual Disk Format 1.1"; qemu
/// block/vmdk.c `VMDK4Header`, little-endian): the header (and for a
/// stream-optimized file the footer's copy, the sector before the
/// end-of-stream marker), the grain directory (and redundant one), the
/// first grain tables, and the first grain markers of a stream.
fn vmdk_layout(b: &[u8]) -> Layout {
    let mut l = Layout::default();
    let len = b.len();
    let g = |at, w| get(b, at, w, false);
    let foot = (len >= 1536 && &b[len - 1024..len - 1020] == b"KDMV").then_some(len - 1024);
    for (name, at, w, role) in [
        ("version", 4, 4, Role::Other),
        ("flags", 8, 4, Role::Flags),
        ("capacity", 12, 8, Role::Size),
        ("grain_size", 20, 8, Role::Count),
        ("descriptor_offset", 28, 8, Role::Offset),
        ("descriptor_size", 36, 8, Role::Count),
        ("num_gtes_per_gt", 44, 4, Role::Count),
        ("rgd_offset", 48, 8, Role::Offset),
        ("gd_offset", 56, 8, Role::Offset),
        ("overhead", 64, 8, Role::Offset),
        ("unclean_shutdown", 72, 1, Role::Other),
        ("compress_algorithm", 77, 2, Role::Flags),
    ] {
        let mut f = field(name, at, w, false, role);
        f.mirror = foot.map(|h| h + at);
        l.fields.push(f);
    }
    // The header that locates the grain directory: the footer's when the
    // head says "at the end" (GD_AT_END, all ones).
    let h = if g(56, 8) == u64::MAX {
        foot.unwrap_or(0)
    } else {
        0
    };
    let capacity = g(h + 12, 8);
    let grain = g(h + 20, 8).max(1);
    let per_gt = g(h + 44, 4).clamp(1, 1 << 16);
    let gts = capacity.div_ceil(grain).div_ceil(per_gt).min(1 << 16) as usize;
    let stream = g(h + 8, 4) & (1 << 16) != 0;
    for (name, at) in [("gd", g(h + 56, 8)), ("rgd", g(h + 48, 8))] {
        if at == 0 || at == u64::MAX || (name == "rgd" && g(h + 8, 4) & 2 == 0) {
            continue;
        }
        let at = (at * 512) as usize;
        l.tables.push(Table {
            name: name.into(),
            at,
            entries: gts,
            width: 4,
            be: false,
        });
        for i in 0..gts.min(8) {
            let e = g(at + 4 * i, 4);
            if e > 1 {
                let t = Table {
                    name: format!("{name}.gt[{i}]"),
                    at: e as usize * 512,
                    entries: per_gt as usize,
                    width: 4,
                    be: false,
                };
                if stream && i == 0 && name == "gd" {
                    // Grain markers of a stream: {lba u64, size u32, data}.
                    let used = (0..t.entries)
                        .map(|k| g(t.at + 4 * k, 4))
                        .filter(|&s| s > 1);
                    for (k, s) in used.take(4).enumerate() {
                        let at = s as usize * 512;
                        l.fields.push(field(
                            &format!("grain_marker[{k}].lba"),
                            at,
                            8,
                            false,
                            Role::Offset,
                        ));
                        l.fields.push(field(
                            &format!("grain_marker[{k}].size"),
                            at + 8,
                            4,
                            false,
                            Role::Count,
                        ));
                    }
                }
                l.tables.push(t);
            }
        }
    }
    l
}

/// The on-disk bytes of a GUID written as text (MS-VHDX: GUIDs are stored
/// with their first three fields little-endian).
fn guid_bytes(s: &str) -> [u8; 16] {
    let h: Vec<u8> = s
        .split('-')
        .flat_map(|p| {
            p.as_bytes()
                .chunks(2)
                .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut g = [0u8; 16];
    g[..4].copy_from_slice(&[h[3], h[2], h[1], h[0]]);
    g[4..6].copy_from_slice(&[h[5], h[4]]);
    g[6..8].copy_from_slice(&[h[7], h[6]]);
    g[8..].copy_from_slice(&h[8..16]);
    g
}

/// VHDX (MS-VHDX v1.0 §2; qemu block/vhdx.h, little-endian): the two
/// headers at 64 and 128 KiB, the two region tables at 192 and 256 KiB,
/// the metadata table and its items, the BAT.
fn vhdx_layout(b: &[u8]) -> Layout {
    let mut l = Layout::default();
    let g = |at, w| get(b, at, w, false);
    const H: [usize; 2] = [64 << 10, 128 << 10];
    const R: [usize; 2] = [192 << 10, 256 << 10];
    if b.len() < (320 << 10) {
        return l;
    }
    for (name, at, w, role) in [
        ("header.sequence_number", 8, 8, Role::Count),
        ("header.log_version", 64, 2, Role::Other),
        ("header.version", 66, 2, Role::Other),
        ("header.log_length", 68, 4, Role::Count),
        ("header.log_offset", 72, 8, Role::Offset),
    ] {
        let mut f = field(name, H[0] + at, w, false, role);
        f.mirror = Some(H[1] + at);
        l.fields.push(f);
    }
    // The first half of the log GUID: non-zero means a log to replay.
    let mut f = field("header.log_guid", H[0] + 48, 8, false, Role::Other);
    f.mirror = Some(H[1] + 48);
    l.fields.push(f);
    let n = g(R[0] + 8, 4) as usize;
    let mut mrt = None;
    let mut bat = None;
    let mut bat_len = 0usize;
    let rfield = |name: String, at: usize, w: usize, role: Role, l: &mut Layout| {
        let mut f = field(&name, R[0] + at, w, false, role);
        f.mirror = Some(R[1] + at);
        l.fields.push(f);
    };
    rfield("region.entry_count".into(), 8, 4, Role::Count, &mut l);
    let bat_guid = guid_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08");
    let meta_guid = guid_bytes("8B7CA206-4790-4B9A-B8FE-575F050F886E");
    for i in 0..n.min(8) {
        let e = R[0] + 16 + 32 * i;
        let what = if b[e..e + 16] == bat_guid {
            bat = Some(g(e + 16, 8) as usize);
            bat_len = g(e + 24, 4) as usize;
            "bat"
        } else if b[e..e + 16] == meta_guid {
            mrt = Some(g(e + 16, 8) as usize);
            "metadata"
        } else {
            "other"
        };
        rfield(
            format!("region[{i}:{what}].file_offset"),
            16 + 32 * i + 16,
            8,
            Role::Offset,
            &mut l,
        );
        rfield(
            format!("region[{i}:{what}].length"),
            16 + 32 * i + 24,
            4,
            Role::Count,
            &mut l,
        );
        rfield(
            format!("region[{i}:{what}].required"),
            16 + 32 * i + 28,
            4,
            Role::Flags,
            &mut l,
        );
    }
    for at in H {
        l.fixes.push(Fix::Crc32c {
            at,
            len: 4096,
            sum_at: at + 4,
        });
    }
    for at in R {
        l.fixes.push(Fix::Crc32c {
            at,
            len: 64 << 10,
            sum_at: at + 4,
        });
    }
    let (mut block, mut vsize, mut lss) = (0u64, 0u64, 512u64);
    if let Some(m) = mrt.filter(|&m| m + (64 << 10) <= b.len() && &b[m..m + 8] == b"metadata") {
        let count = g(m + 10, 2) as usize;
        l.fields
            .push(field("metadata.entry_count", m + 10, 2, false, Role::Count));
        let items = [
            ("CAA16737-FA36-4D43-B3B6-33F0AA44E76B", "file_parameters"),
            ("2FA54224-CD1B-4876-B211-5DBED83BF4B8", "virtual_disk_size"),
            (
                "8141BF1D-A96F-4709-BA47-F233A8FAAB5F",
                "logical_sector_size",
            ),
            (
                "CDA348C7-445D-4471-9CC9-E9885251C556",
                "physical_sector_size",
            ),
            ("BECA12AB-B2E6-4523-93EF-C309E000C746", "page83"),
        ];
        for i in 0..count.min(16) {
            let e = m + 32 + 32 * i;
            let what = items
                .iter()
                .find(|(gs, _)| b[e..e + 16] == guid_bytes(gs))
                .map_or("other", |x| x.1);
            l.fields.push(field(
                &format!("metadata[{what}].offset"),
                e + 16,
                4,
                false,
                Role::Offset,
            ));
            l.fields.push(field(
                &format!("metadata[{what}].length"),
                e + 20,
                4,
                false,
                Role::Count,
            ));
            l.fields.push(field(
                &format!("metadata[{what}].flags"),
                e + 24,
                4,
                false,
                Role::Flags,
            ));
            let item = m + g(e + 16, 4) as usize;
            match what {
                "file_parameters" => {
                    block = g(item, 4);
                    l.fields.push(field(
                        "file_parameters.block_size",
                        item,
                        4,
                        false,
                        Role::Count,
                    ));
                    l.fields.push(field(
                        "file_parameters.flags",
                        item + 4,
                        4,
                        false,
                        Role::Flags,
                    ));
                }
                "virtual_disk_size" => {
                    vsize = g(item, 8);
                    l.fields
                        .push(field("virtual_disk_size", item, 8, false, Role::Size));
                }
                "logical_sector_size" => {
                    lss = g(item, 4).max(1);
                    l.fields
                        .push(field("logical_sector_size", item, 4, false, Role::Other));
                }
                "physical_sector_size" => {
                    l.fields
                        .push(field("physical_sector_size", item, 4, false, Role::Other));
                }
                _ => {}
            }
        }
    }
    if let Some(at) = bat {
        // MS-VHDX 2.5: chunk ratio = 2^23 * logical sector size / block
        // size; a sector bitmap entry follows every chunk ratio payload
        // entries.
        let entries = if block > 0 {
            let payload = vsize.div_ceil(block);
            let ratio = ((1u64 << 23) * lss / block).max(1);
            (payload + payload.saturating_sub(1) / ratio) as usize
        } else {
            bat_len / 8
        };
        l.tables.push(Table {
            name: "bat".into(),
            at,
            entries: entries.min(bat_len / 8).max(1),
            width: 8,
            be: false,
        });
    }
    l
}

pub fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Change the text descriptor embedded in a VMDK sparse extent (at the
/// header's descriptorOffset, descriptorSize sectors; VMware "Virtual Disk
/// Format 1.1" §"The Descriptor File"): a parent (delta disk), the create
/// type, the extent's type or size. Names written are plain names in the
/// mutant's own directory (the harness gives qemu-img nothing else).
fn vmdk_descriptor(b: &mut [u8], rng: &mut Rng) -> Option<String> {
    let at = get(b, 28, 8, false) as usize * 512;
    let len = get(b, 36, 8, false) as usize * 512;
    if at == 0 || len == 0 || at + len > b.len() {
        return None;
    }
    let area = &b[at..at + len];
    let end = area.iter().position(|&c| c == 0).unwrap_or(len);
    let text = String::from_utf8(area[..end].to_vec()).ok()?;
    let line = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(str::to_string)
    };
    let (new, d) = match rng.next_u64() % 6 {
        0 => {
            let l = line("parentCID")?;
            (
                text.replace(&l, "parentCID=1234abcd"),
                "parentCID=1234abcd (a delta disk)".to_string(),
            )
        }
        1 => {
            let l = line("parentCID")?;
            let add = format!("{l}\nparentFileNameHint=\"base.vmdk\"");
            (
                text.replace(&l, &add),
                "parentCID kept, parentFileNameHint=\"base.vmdk\" added (a delta disk)".into(),
            )
        }
        2 => {
            let l = line("createType")?;
            let types = [
                "monolithicFlat",
                "twoGbMaxExtentSparse",
                "vmfsSparse",
                "streamOptimized",
                "monolithicSparse",
                "seSparse",
            ];
            let t = types[pick(rng, types.len())];
            (
                text.replace(&l, &format!("createType=\"{t}\"")),
                format!("createType=\"{t}\""),
            )
        }
        3 => {
            let l = line("RW")?;
            let types = ["FLAT", "ZERO", "VMFS", "SPARSE", "VMFSSPARSE"];
            let t = types[pick(rng, types.len())];
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 4 {
                return None;
            }
            let nl = format!("{} {} {t} {}", w[0], w[1], w[3..].join(" "));
            (text.replace(&l, &nl), format!("extent line {nl:?}"))
        }
        4 => {
            let l = line("RW")?;
            let w: Vec<&str> = l.split_whitespace().collect();
            let n: u64 = w.get(1)?.parse().ok()?;
            let m = [n / 2, n * 2, n + 1, 0][pick(rng, 4)];
            let nl = format!("{} {m} {}", w[0], w[2..].join(" "));
            (
                text.replace(&l, &nl),
                format!("extent line {nl:?} (was {n} sectors)"),
            )
        }
        _ => {
            let l = line("RW")?;
            let nl = format!("{l}\n{l}");
            (text.replace(&l, &nl), "the extent line twice".into())
        }
    };
    if new.len() > len || new == text {
        return None;
    }
    let area = &mut b[at..at + len];
    area.fill(0);
    area[..new.len()].copy_from_slice(new.as_bytes());
    Some(format!("descriptor: {d}"))
}
