//! Limine's config: where each firmware path of each release looks for
//! it ([`config_search`], [`find_config`]), the kernel its default entry
//! names ([`limine_kernels`]) and Limine URIs ([`limine_uri`]).

use super::{open_fat, read, Family, Version};
use crate::check::{Firmware, Part};
use crate::disk::VirtualDisk;

/// The config search of one firmware path of one Limine release: the
/// files looked for first on the partition of the EFI application (UEFI,
/// 10.3+), then on each partition in turn, and the source of that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSearch {
    /// Looked for before the partition scan, on the ESP only.
    pub app_dir: Option<&'static str>,
    /// Looked for on each partition, in order.
    pub per_partition: Vec<&'static str>,
    /// Which rule applied.
    pub basis: String,
}

const CONF_8: [&str; 5] = [
    "/limine.conf",
    "/limine/limine.conf",
    "/boot/limine.conf",
    "/boot/limine/limine.conf",
    "/EFI/BOOT/limine.conf",
];
const CFG_OLD: [&str; 5] = [
    "/limine.cfg",
    "/limine/limine.cfg",
    "/boot/limine.cfg",
    "/boot/limine/limine.cfg",
    "/EFI/BOOT/limine.cfg",
];
const CONF_9: [&str; 4] = [
    "/limine.conf",
    "/limine/limine.conf",
    "/boot/limine.conf",
    "/boot/limine/limine.conf",
];
const CONF_10_3: [&str; 4] = [
    "/boot/limine/limine.conf",
    "/boot/limine.conf",
    "/limine/limine.conf",
    "/limine.conf",
];

/// Limine's config search order for `fw` and `version` (or, when the
/// version string cannot be read, the MBR `family`).
///
/// Measured (booting the corpus releases under SeaBIOS and OVMF with a
/// config at every candidate path, each naming another kernel, removing
/// the one read and booting again; the kernel path Limine reports on the
/// serial console tells which config it read):
///
/// * 8.2.0, UEFI: `/limine.conf`, `/limine/limine.conf`,
///   `/boot/limine.conf`, `/boot/limine/limine.conf`,
///   `/EFI/BOOT/limine.conf`, then the same five named `limine.cfg`;
///   `/EFI/limine/limine.conf` is never read.
/// * 8.2.0, BIOS: the same five `limine.conf` in that order. With only
///   `limine.cfg` files left no kernel load was seen within 60 s (the 8.x
///   old-format warning; NOT confirmed that BIOS then reads them in the
///   UEFI order, assumed).
/// * 10.4.0, UEFI: `/EFI/BOOT/limine.conf` (next to BOOTX64.EFI), then
///   `/boot/limine/limine.conf`, `/boot/limine.conf`, `/limine/limine.conf`,
///   `/limine.conf`; `/EFI/limine/limine.conf` is never read.
/// * 10.4.0, BIOS: `/boot/limine/limine.conf`, `/boot/limine.conf`,
///   `/limine/limine.conf`, `/limine.conf`; no `/EFI/...` path.
///
/// Documented (limine-bootloader/limine): CONFIG.md of v7.x (`limine.cfg`
/// in /, /limine, /boot, /boot/limine, /EFI/BOOT) and v8.x (the five
/// `limine.conf`; "every partition ... first partition first (or, on
/// UEFI, the partition containing the EFI executable ... first)"); commit
/// e06cc37 "lib/config: Change default paths for config search and
/// ordering" (2025-11-03, in 10.3.0: "search first for a configuration
/// file in the same directory as the EFI application file of Limine, on
/// EFI ports"), whose CONFIG.md matches the 10.4.0 measurements and
/// replaced, for the releases before it, the four `/limine.conf` ..
/// `/boot/limine/limine.conf` followed on EFI by `/EFI/BOOT/limine.conf`
/// and `/EFI/limine/limine.conf`. NOT confirmed: which releases between
/// 9.0 and 10.2 used that list (and whether 9.0 dropped `limine.cfg`);
/// versions before 8.0 other than by the v7.x CONFIG.md.
pub fn config_search(
    fw: Firmware,
    version: Option<Version>,
    family: Option<Family>,
) -> ConfigSearch {
    let uefi = fw == Firmware::Uefi;
    let (rule, basis) = match version {
        Some(v) => (rule_of(v), format!("Limine {v}'s search order")),
        None => match family {
            Some(Family::From10) => (
                Rule::V10_3,
                "the 10.3+ search order (version unread; 10.x MBR code)".to_string(),
            ),
            _ => (
                Rule::V8,
                "the 8.x search order (version unread)".to_string(),
            ),
        },
    };
    match rule {
        Rule::Old => ConfigSearch {
            app_dir: None,
            per_partition: CFG_OLD.to_vec(),
            basis,
        },
        Rule::V8 => ConfigSearch {
            app_dir: None,
            per_partition: CONF_8.iter().chain(CFG_OLD.iter()).copied().collect(),
            basis,
        },
        Rule::V9 => {
            let mut v = CONF_9.to_vec();
            if uefi {
                v.extend(["/EFI/BOOT/limine.conf", "/EFI/limine/limine.conf"]);
            }
            ConfigSearch {
                app_dir: None,
                per_partition: v,
                basis,
            }
        }
        Rule::V10_3 => ConfigSearch {
            // BOOTX64.EFI is found at the removable path; its directory.
            app_dir: uefi.then_some("/EFI/BOOT/limine.conf"),
            per_partition: CONF_10_3.to_vec(),
            basis,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Old,
    V8,
    V9,
    V10_3,
}

fn rule_of(v: Version) -> Rule {
    if v.0 < 8 {
        Rule::Old
    } else if v.0 < 9 {
        Rule::V8
    } else if v < Version(10, 3, 0) {
        Rule::V9
    } else {
        Rule::V10_3
    }
}

/// A config Limine reads.
#[derive(Debug, Clone)]
pub struct FoundConfig {
    /// Partition index it was read from.
    pub part: u32,
    /// Its path.
    pub path: String,
    /// Its text.
    pub text: String,
    /// The search rule that found it.
    pub basis: String,
}

impl FoundConfig {
    /// "partition N: /path".
    pub fn place(&self) -> String {
        format!("partition {}: {}", self.part, self.path)
    }
}

/// The config `fw` reads: the app directory first (UEFI 10.3+, on the
/// ESP), then each FAT partition (UEFI: the ESP first) and each path in
/// order. `Err` names what was searched.
pub(in crate::check) fn find_config(
    disk: &dyn VirtualDisk,
    parts: &[Part],
    esp: Option<u32>,
    search: &ConfigSearch,
    fw: Firmware,
) -> Result<FoundConfig, String> {
    let mut order: Vec<&Part> = Vec::new();
    if fw == Firmware::Uefi {
        order.extend(parts.iter().filter(|p| Some(p.index) == esp));
    }
    order.extend(
        parts
            .iter()
            .filter(|p| fw == Firmware::Bios || Some(p.index) != esp),
    );
    let mut tried = Vec::new();
    for (i, p) in order.iter().enumerate() {
        let Some(fs) = open_fat(disk, p) else {
            continue;
        };
        tried.push(p.index.to_string());
        let app = if i == 0 && fw == Firmware::Uefi && Some(p.index) == esp {
            search.app_dir
        } else {
            None
        };
        for path in app.into_iter().chain(search.per_partition.iter().copied()) {
            if let Some(b) = read(&fs, path) {
                return Ok(FoundConfig {
                    part: p.index,
                    path: path.to_string(),
                    text: String::from_utf8_lossy(&b).into_owned(),
                    basis: search.basis.clone(),
                });
            }
        }
    }
    Err(format!(
        "no {} on FAT partition(s) {} (searched {}{}, {}): Limine stops with \"config file not found\"",
        if search.per_partition[0].ends_with(".cfg") {
            "limine.cfg"
        } else {
            "limine.conf"
        },
        if tried.is_empty() {
            "(none)".to_string()
        } else {
            tried.join(", ")
        },
        search
            .app_dir
            .map(|a| format!("{a} then "))
            .unwrap_or_default(),
        search.per_partition.join(", "),
        search.basis
    ))
}

/// The kernel of the default entry of a Limine config: the first of
/// `keys` (of `path:` / `kernel_path:` / `image_path:`, limine.conf, v8+;
/// keys case-insensitive,
/// config.c `strncasecmp`) or `KERNEL_PATH=` (limine.cfg, older), as
/// `Ok((partition, path))`, or `Err(uri)` when it is not on a partition of
/// this disk. `boot_part` is the partition the config was read from.
///
/// Entries are lines starting with `/` (limine.conf; `//` for sub-entries)
/// or `:` (limine.cfg). `default_entry` is 1-based (CONFIG.md v8.x: "If
/// unspecified, it is 1"); an entry without a path (a directory) makes
/// the first entry with one be taken. NOT modelled: how Limine counts
/// directories and sub-entries for `default_entry`, `remember_last_entry`,
/// and `${macros}` (a path using one is reported as unresolvable).
pub(in crate::check) fn limine_kernels(
    cfg: &str,
    boot_part: u32,
    keys: &[&str],
) -> Vec<std::result::Result<(u32, String), String>> {
    let mut default = 1usize;
    let mut entries: Vec<Option<String>> = Vec::new();
    for line in cfg.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('/') || line.starts_with(':') {
            entries.push(None);
            continue;
        }
        let (k, v) = match (line.find(':'), line.find('=')) {
            (Some(c), Some(e)) if e < c => (&line[..e], &line[e + 1..]),
            (Some(c), _) => (&line[..c], &line[c + 1..]),
            (None, Some(e)) => (&line[..e], &line[e + 1..]),
            (None, None) => continue,
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        match k.as_str() {
            "default_entry" => default = v.parse().unwrap_or(1),
            k if keys.contains(&k) => {
                if let Some(e) = entries.last_mut() {
                    e.get_or_insert_with(|| v.to_string());
                }
            }
            _ => {}
        }
    }
    let pick = entries
        .get(default.saturating_sub(1))
        .and_then(|e| e.clone())
        .or_else(|| entries.iter().flatten().next().cloned());
    let Some(uri) = pick else { return Vec::new() };
    vec![limine_uri(&uri, boot_part)]
}

/// A Limine URI on the boot drive: `boot():/p` (CONFIG.md, `boot`
/// resource: "If omitted, the partition containing the configuration file
/// on the boot drive is used"), `boot(N):/p` (1-based partition of the
/// boot drive), and the older `boot:///p`, `boot://N/p`; a
/// `#hash` suffix and a leading `$` (compressed) are dropped. Anything
/// else (guid, uuid, fslabel, hdd, odd, tftp, macros) is `Err`.
fn limine_uri(uri: &str, boot_part: u32) -> std::result::Result<(u32, String), String> {
    let u = uri.trim_start_matches('$');
    let u = u.split('#').next().unwrap_or(u);
    let unknown = || Err(uri.to_string());
    let (part, path) = if let Some(r) = u.strip_prefix("boot(") {
        let Some(close) = r.find(')') else {
            return unknown();
        };
        let Some(path) = r[close + 1..].strip_prefix(':') else {
            return unknown();
        };
        (&r[..close], path)
    } else if let Some(r) = u.strip_prefix("boot://") {
        let slash = r.find('/').unwrap_or(r.len());
        (&r[..slash], &r[slash..])
    } else {
        return unknown();
    };
    let part = if part.is_empty() {
        boot_part
    } else {
        match part.parse::<u32>() {
            Ok(n) => n,
            Err(_) => return unknown(),
        }
    };
    if path.starts_with('/') && !path.contains("..") && !path.contains("${") {
        Ok((part, path.to_string()))
    } else {
        unknown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::limine::version_in;

    #[test]
    fn limine_uris() {
        let p = |n: u32, s: &str| Ok((n, s.to_string()));
        assert_eq!(limine_uri("boot():/boot/kernel", 2), p(2, "/boot/kernel"));
        assert_eq!(limine_uri("boot(2):/k#abcd", 1), p(2, "/k"));
        assert_eq!(limine_uri("$boot:///k.gz", 2), p(2, "/k.gz"));
        assert_eq!(limine_uri("boot://3/k", 2), p(3, "/k"));
        assert_eq!(limine_uri("guid://x/k", 2), Err("guid://x/k".into()));
        assert_eq!(
            limine_uri("boot():/${ARCH}/k", 2),
            Err("boot():/${ARCH}/k".into())
        );
        let conf = "timeout: 0\n\n/capOS\n    protocol: multiboot2\n    kernel_path: boot():/capos/kernel.elf\n/Other\n    path: boot():/other\n";
        const ALL: &[&str] = &["path", "kernel_path", "image_path"];
        assert_eq!(
            limine_kernels(conf, 1, ALL),
            vec![p(1, "/capos/kernel.elf")]
        );
        let conf2 = format!("default_entry: 2\n{conf}");
        assert_eq!(limine_kernels(&conf2, 1, ALL), vec![p(1, "/other")]);
        // 8.x knows no `path:`: the second entry names no kernel for it.
        assert_eq!(
            limine_kernels(&conf2, 1, &["kernel_path"]),
            vec![p(1, "/capos/kernel.elf")]
        );
        let old = "TIMEOUT=0\n:capOS\nPROTOCOL=multiboot2\nKERNEL_PATH=boot:///kernel.elf\n";
        assert_eq!(limine_kernels(old, 1, ALL), vec![p(1, "/kernel.elf")]);
    }

    #[test]
    fn limine_versions_and_search_orders() {
        assert_eq!(
            version_in(b"xx Limine boot Limine 10.4.0 (x86-64, UEFI)"),
            Some(Version(10, 4, 0))
        );
        assert_eq!(version_in(b"Limine 8.2"), Some(Version(8, 2, 0)));
        assert_eq!(version_in(b"no version"), None);
        let u = config_search(Firmware::Uefi, Some(Version(10, 4, 0)), None);
        assert_eq!(u.app_dir, Some("/EFI/BOOT/limine.conf"));
        assert_eq!(u.per_partition[0], "/boot/limine/limine.conf");
        let b = config_search(Firmware::Bios, Some(Version(10, 4, 0)), None);
        assert_eq!(b.app_dir, None);
        let b8 = config_search(Firmware::Bios, Some(Version(8, 2, 0)), None);
        assert_eq!(b8.per_partition[0], "/limine.conf");
        assert_eq!(b8.per_partition[4], "/EFI/BOOT/limine.conf");
        let u9 = config_search(Firmware::Uefi, Some(Version(10, 2, 1)), None);
        assert_eq!(u9.per_partition.last(), Some(&"/EFI/limine/limine.conf"));
        let guess = config_search(Firmware::Uefi, None, Some(Family::From10));
        assert_eq!(guess.app_dir, Some("/EFI/BOOT/limine.conf"));
    }
}
