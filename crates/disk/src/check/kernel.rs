//! The kernel each loader boots (`kernel`, `kernel:uefi`, `kernel:bios`):
//! the GRUB or Limine config each firmware path reads, and whether the
//! kernel its default entry names is on the disk.

use super::esp::{read_file, Esp};
use super::grub::{embedded_grub_prefix, grub_kernels};
use super::limine::{self, limine_kernels, FoundConfig, LimineReport, Version};
use super::{fat, find, fix, Ctx, Firmware, Part, Status, EFI_LOADER_PATH};

/// What a boot loader config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KernelRef {
    /// A path on the ESP.
    Path(String),
    /// A path elsewhere or through a variable: cannot be checked.
    Unknown(String),
}

pub(super) fn check_kernel(cx: &mut Ctx<'_>, esp: Option<&Esp<'_>>, parts: Option<&[Part]>) {
    let efi = esp.and_then(|e| read_file(e, EFI_LOADER_PATH).ok());
    let efi_limine = efi
        .as_ref()
        .is_some_and(|b| find(b, b"Limine").is_some() && find(b, b"GNU GRUB").is_none());
    if cx.limine_mbr.is_some() || efi_limine {
        limine_kernel(cx, esp, parts.unwrap_or_default(), efi_limine);
        return;
    }
    let Some(esp) = esp else {
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            "no readable ESP, so no boot loader config to read: cannot tell which kernel boots",
            fix("see the esp check"),
            None,
        );
        return;
    };
    // GRUB: the prefix its embedded early config sets, then the usual places.
    let mut grub_paths: Vec<String> = Vec::new();
    if let Some(p) = efi.as_deref().and_then(embedded_grub_prefix) {
        grub_paths.push(format!("{}/grub.cfg", p.trim_end_matches('/')));
    }
    for p in [
        "/EFI/BOOT/grub.cfg",
        "/boot/grub/grub.cfg",
        "/grub/grub.cfg",
    ] {
        if !grub_paths.iter().any(|q| q.eq_ignore_ascii_case(p)) {
            grub_paths.push(p.into());
        }
    }
    let mut found: Option<(String, Vec<KernelRef>)> = None;
    for p in &grub_paths {
        if let Ok(cfg) = read_file(esp, p) {
            let refs = grub_kernels(esp, &String::from_utf8_lossy(&cfg), 0);
            found = Some((p.clone(), refs));
            break;
        }
    }
    let Some((cfg, refs)) = found else {
        // No GRUB config: a Limine config without Limine's MBR code or
        // loader (e.g. a BIOS-less image with another EFI loader).
        let all = parts.unwrap_or_default();
        let s = limine::config_search(Firmware::Uefi, None, None);
        if limine::find_config(cx.disk, all, Some(esp.index), &s, Firmware::Uefi).is_ok() {
            limine_kernel(cx, Some(esp), all, false);
            return;
        }
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            format!(
                "no grub.cfg ({}) or limine.conf on ESP partition {}: cannot tell which kernel boots",
                grub_paths.join(", "),
                esp.index
            ),
            fix("put the boot loader config on the ESP, where cloudimg can read it"),
            None,
        );
        return;
    };
    if refs.is_empty() {
        cx.push(
            "kernel",
            "kernel",
            Status::Warn,
            format!("{cfg} names no kernel (no multiboot2/multiboot/linux/chainloader line, or no path: key): cannot tell which kernel boots"),
            fix("check the boot entry in the config"),
            None,
        );
        return;
    }
    let resolved: Vec<Resolved> = refs
        .iter()
        .map(|r| match r {
            KernelRef::Unknown(s) => Resolved::Unknown(s.clone()),
            KernelRef::Path(p) => lookup_kernel(&esp.fs, p, p),
        })
        .collect();
    push_kernel(
        cx,
        KernelCheck {
            id: "kernel",
            subject: format!("kernel ({cfg})"),
            cfg: &cfg,
            note: String::new(),
            names: names(&refs),
            firmware: None,
        },
        resolved,
    );
}

/// A kernel a config names, looked up.
enum Resolved {
    /// Found: its display name and size.
    Present(String, u64),
    /// Missing or empty: why.
    Missing(String),
    /// Cannot be resolved on a FAT partition.
    Unknown(String),
}

fn lookup_kernel(fs: &fat::Fat<'_>, path: &str, shown: &str) -> Resolved {
    match fs.lookup(path) {
        Ok(f) if f.size == 0 => Resolved::Missing(format!("{shown} is empty")),
        Ok(f) => Resolved::Present(shown.to_string(), f.size),
        Err(e) => Resolved::Missing(format!("{shown} is missing ({e})")),
    }
}

/// How one `kernel` check is named and worded.
struct KernelCheck<'s> {
    id: &'static str,
    subject: String,
    /// The config, as named at the start of the message.
    cfg: &'s str,
    /// Appended to the message: who reads the config, and why that one.
    note: String,
    /// The kernels named, for a failure.
    names: String,
    firmware: Option<Firmware>,
}

fn push_kernel(cx: &mut Ctx<'_>, k: KernelCheck<'_>, resolved: Vec<Resolved>) {
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    let mut present = Vec::new();
    for r in resolved {
        match r {
            Resolved::Present(p, len) => present.push(format!("{p} ({len} bytes)")),
            Resolved::Missing(m) => missing.push(m),
            Resolved::Unknown(u) => unknown.push(u),
        }
    }
    let cfg = k.cfg;
    let (status, message, fix_it) = if !missing.is_empty() {
        (
            Status::Fail,
            format!("{cfg} boots {}: {}", k.names, missing.join("; ")),
            fix("copy the kernel to that path on the ESP (mcopy -i ESP.img kernel ::/path), or fix the path in the config"),
        )
    } else if !unknown.is_empty() {
        (
            Status::Warn,
            format!(
                "{cfg} names {}, which cloudimg cannot resolve on the ESP{}",
                unknown.join(", "),
                if present.is_empty() {
                    String::new()
                } else {
                    format!(" (found {})", present.join(", "))
                }
            ),
            fix("use a plain path on the ESP so that it can be checked"),
        )
    } else if present.is_empty() {
        (
            Status::Warn,
            format!("{cfg} names no kernel (no path:/kernel_path: key in its default entry): cannot tell which kernel boots"),
            fix("check the boot entry in the config"),
        )
    } else {
        (
            Status::Pass,
            format!("{cfg} boots {}", present.join(", ")),
            None,
        )
    };
    cx.push(
        k.id,
        k.subject,
        status,
        format!("{message}{}", k.note),
        fix_it,
        k.firmware,
    );
}

/// The config one firmware path of Limine reads, or why none.
type Found = (Firmware, Result<FoundConfig, String>);

/// The config each firmware path of Limine reads, in its release's search
/// order, and the kernel its default entry boots. One `kernel` check when
/// both read the same file; else `kernel:uefi` and `kernel:bios`.
fn limine_kernel(cx: &mut Ctx<'_>, esp: Option<&Esp<'_>>, parts: &[Part], efi_limine: bool) {
    let esp_index = esp.map(|e| e.index);
    let uefi_version = limine::uefi_version(cx.disk, parts, esp_index);
    let bios_version = cx.limine.as_ref().and_then(|r| r.bios_version);
    let found = limine_configs(cx, parts, esp_index, [uefi_version, bios_version]);
    let report = cx.limine.get_or_insert_with(LimineReport::default);
    report.uefi_version = uefi_version;
    report.uefi_config = found[0].1.as_ref().ok().map(|c| c.place());
    report.bios_config = found[1].1.as_ref().ok().map(|c| c.place());
    let same = match (&found[0].1, &found[1].1) {
        (Ok(a), Ok(b)) => a.part == b.part && a.path == b.path,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    // Which firmware surely runs Limine (a missing config then stops it).
    let bios_limine = cx.limine_mbr.is_some();
    let runs = |fw: Firmware| match fw {
        Firmware::Uefi => efi_limine && esp_index.is_some(),
        Firmware::Bios => bios_limine,
    };
    let jobs: Vec<(&'static str, Option<Firmware>, usize)> = if same {
        vec![("kernel", None, 0)]
    } else {
        vec![
            ("kernel:uefi", Some(Firmware::Uefi), 0),
            ("kernel:bios", Some(Firmware::Bios), 1),
        ]
    };
    for (id, firmware, i) in jobs {
        let (who, sure, versions) = match firmware {
            None => (
                "UEFI and BIOS",
                runs(Firmware::Uefi) || runs(Firmware::Bios),
                vec![uefi_version, bios_version],
            ),
            Some(Firmware::Uefi) => ("UEFI", runs(Firmware::Uefi), vec![uefi_version]),
            Some(Firmware::Bios) => ("BIOS", runs(Firmware::Bios), vec![bios_version]),
        };
        match &found[i].1 {
            Err(e) => cx.push(
                id,
                format!("Limine config ({who})"),
                if sure { Status::Fail } else { Status::Warn },
                format!("Limine {who}: {e}"),
                fix("put limine.conf in /boot/limine/ on the ESP (and nowhere else Limine looks first)"),
                firmware,
            ),
            Ok(c) => {
                let job = LimineJob {
                    id,
                    firmware,
                    who,
                    versions,
                    other: firmware.map(|_| &found[1 - i]),
                };
                limine_config_kernel(cx, parts, c, &job);
            }
        }
    }
}

/// The config each firmware path reads (UEFI first, then BIOS), searched
/// as the release of that path's binary (`versions`, same order) does.
fn limine_configs(
    cx: &Ctx<'_>,
    parts: &[Part],
    esp_index: Option<u32>,
    versions: [Option<Version>; 2],
) -> Vec<Found> {
    let family = cx.limine_mbr.map(|m| m.family);
    let mut found = Vec::new();
    for (fw, version) in [Firmware::Uefi, Firmware::Bios].into_iter().zip(versions) {
        let search = limine::config_search(fw, version, family);
        let r = if fw == Firmware::Uefi && esp_index.is_none() {
            Err("no readable EFI system partition, so no UEFI Limine to read a config".to_string())
        } else {
            limine::find_config(cx.disk, parts, esp_index, &search, fw)
        };
        found.push((fw, r));
    }
    found
}

/// One Limine `kernel` check to make.
struct LimineJob<'f> {
    /// `kernel`, `kernel:uefi` or `kernel:bios`.
    id: &'static str,
    /// The firmware it concerns (`None`: both).
    firmware: Option<Firmware>,
    /// "UEFI and BIOS", "UEFI" or "BIOS".
    who: &'static str,
    /// The Limine versions of the paths that read the config.
    versions: Vec<Option<Version>>,
    /// For a per-firmware check, what the other path reads.
    other: Option<&'f Found>,
}

impl LimineJob<'_> {
    /// "read" for both paths, "reads" for one.
    fn reads(&self) -> &'static str {
        if self.firmware.is_none() {
            ""
        } else {
            "s"
        }
    }
}

/// The kernel the default entry of config `c` names, checked as `job`.
fn limine_config_kernel(cx: &mut Ctx<'_>, parts: &[Part], c: &FoundConfig, job: &LimineJob<'_>) {
    // The path key: 8.2.0 knows only `kernel_path:` (booted with `path:`
    // it stops: "multiboot2: KERNEL_PATH not specified"; its binaries
    // carry KERNEL_PATH and no PATH string); 10.4.0 takes both (booted
    // with each). 9.x NOT measured: both are taken.
    let pre9 = job.versions.iter().flatten().find(|v| v.0 < 9).copied();
    let keys: &[&str] = if pre9.is_some() {
        &["kernel_path", "image_path"]
    } else {
        &["path", "kernel_path", "image_path"]
    };
    let refs = limine_kernels(&c.text, c.part, keys);
    if let Some(v) = pre9.filter(|_| refs.is_empty()) {
        if !limine_kernels(&c.text, c.part, &["path"]).is_empty() {
            cx.push(
                job.id,
                format!("kernel ({})", c.path),
                Status::Fail,
                format!(
                    "{} names its kernel with `path:`, which Limine {v} does not know (its key is `kernel_path:`): it stops with \"KERNEL_PATH not specified\" (Limine {} read{} it from partition {})",
                    c.path,
                    job.who,
                    job.reads(),
                    c.part
                ),
                fix("use `kernel_path:` for Limine 8.x (10.x takes both)"),
                job.firmware,
            );
            return;
        }
    }
    let names = refs
        .iter()
        .map(|r| match r {
            Ok((_, p)) => p.clone(),
            Err(u) => u.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let resolved = refs
        .iter()
        .map(|r| match r {
            Err(u) => Resolved::Unknown(u.clone()),
            Ok((part, p)) => resolve_limine_path(cx, parts, c.part, *part, p),
        })
        .collect();
    let other = match job.other {
        None => String::new(),
        Some((fw, Ok(o))) => format!(
            "; {} reads {} on partition {} instead",
            fw.name(),
            o.path,
            o.part
        ),
        Some((fw, Err(_))) => format!("; {} finds none", fw.name()),
    };
    push_kernel(
        cx,
        KernelCheck {
            id: job.id,
            subject: format!("kernel ({})", c.path),
            cfg: &c.path,
            note: format!(
                " (Limine {} read{} {} on partition {}: the first found in {}{other})",
                job.who,
                job.reads(),
                c.path,
                c.part,
                c.basis,
            ),
            names,
            firmware: job.firmware,
        },
        resolved,
    );
    if c.path.ends_with(".cfg") {
        old_format_warning(cx);
    }
}

/// A kernel path `p` on partition `part` a config read from partition
/// `cfg_part` names, looked up.
fn resolve_limine_path(
    cx: &Ctx<'_>,
    parts: &[Part],
    cfg_part: u32,
    part: u32,
    p: &str,
) -> Resolved {
    let shown = if part == cfg_part {
        p.to_string()
    } else {
        format!("{p} on partition {part}")
    };
    match limine::fat_of(cx.disk, parts, part) {
        Some(fs) => lookup_kernel(&fs, p, &shown),
        None => Resolved::Unknown(format!(
            "{shown} (partition {part} is not a readable FAT partition)"
        )),
    }
}

/// A `limine.cfg` (the pre-8.x format) read by Limine 8.x: it boots, but
/// shows on every boot "The format of the config file has changed in
/// Limine version 8.x ... this warning and associated 20 second timeout
/// will persist" and waits (seen on the serial console of 8.2.0 under
/// SeaBIOS; the text is in 8.2.0's BOOTX64.EFI and limine-bios.sys).
fn old_format_warning(cx: &mut Ctx<'_>) {
    let c = cx
        .checks
        .last_mut()
        .expect("a kernel check was just pushed");
    if c.status == Status::Pass {
        c.status = Status::Warn;
        c.fix = fix("convert it to the limine.conf format (`key: value`, entries `/Name`) and rename it limine.conf");
    }
    c.message.push_str("; it is a limine.cfg: Limine 8.x warns about the old format and waits 20 s on every boot (later releases may not read it at all)");
}

fn names(refs: &[KernelRef]) -> String {
    refs.iter()
        .map(|r| match r {
            KernelRef::Path(p) | KernelRef::Unknown(p) => p.as_str(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
