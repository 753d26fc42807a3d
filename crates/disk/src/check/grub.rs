//! GRUB's config, as far as `check` follows it: the prefix its embedded
//! early config sets, device prefixes, and the kernels of the default
//! `menuentry` (through `configfile`/`source`, bounded).

use super::esp::{read_file, Esp};
use super::kernel::KernelRef;
use super::{find, MAX_CONFIG_DEPTH};

/// The `prefix` GRUB's embedded early config sets (`set prefix=($root)/X`
/// as cloudimg writes it): `/X`.
pub(super) fn embedded_grub_prefix(efi: &[u8]) -> Option<String> {
    let at = find(efi, b"set prefix=")? + b"set prefix=".len();
    let rest = &efi[at..efi.len().min(at + 256)];
    let end = rest
        .iter()
        .position(|&b| b == b'\n' || b == 0 || b == b' ' || b == b';')
        .unwrap_or(rest.len());
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    let path = strip_grub_device(v)?;
    path.starts_with('/').then(|| path.to_string())
}

/// `(dev)/path` or `/path` → `/path`; anything with a variable left → None.
pub(super) fn strip_grub_device(s: &str) -> Option<&str> {
    let p = if s.starts_with('(') {
        &s[s.find(')')? + 1..]
    } else {
        s
    };
    (!p.contains('$') && p.starts_with('/')).then_some(p)
}

/// The kernels the default entry of a GRUB config loads.
pub(super) fn grub_kernels(esp: &Esp<'_>, cfg: &str, depth: usize) -> Vec<KernelRef> {
    const LOADERS: [&str; 8] = [
        "multiboot2",
        "multiboot",
        "linux",
        "linuxefi",
        "linux16",
        "chainloader",
        "kernel",
        "knetbsd",
    ];
    let mut default = 0usize;
    let mut entries: Vec<Vec<KernelRef>> = Vec::new();
    let mut top: Vec<KernelRef> = Vec::new();
    let mut includes: Vec<String> = Vec::new();
    let mut depth_braces = 0usize;
    let mut in_entry = false;
    for line in cfg.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let first = words[0];
        if let Some(v) = line.strip_prefix("set default=") {
            default = v
                .trim_matches(|c| c == '"' || c == '\'')
                .parse()
                .unwrap_or(0);
        }
        if first == "menuentry" && depth_braces == 0 {
            entries.push(Vec::new());
            in_entry = true;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if LOADERS.contains(&first) {
            let r = match words.iter().skip(1).find(|w| !w.starts_with("--")) {
                Some(w) => {
                    let w = w.trim_matches(|c| c == '"' || c == '\'');
                    match strip_grub_device(w) {
                        Some(p) => KernelRef::Path(p.to_string()),
                        None => KernelRef::Unknown(w.to_string()),
                    }
                }
                None => KernelRef::Unknown(format!("{first} without a path")),
            };
            match (in_entry, entries.last_mut()) {
                (true, Some(e)) => e.push(r),
                _ => top.push(r),
            }
        }
        if (first == "configfile" || first == "source") && words.len() > 1 {
            includes.push(words[1].to_string());
        }
        depth_braces = (depth_braces + opens).saturating_sub(closes);
        if depth_braces == 0 {
            in_entry = false;
        }
    }
    let chosen = entries
        .get(default)
        .or(entries.first())
        .cloned()
        .unwrap_or_default();
    let mut refs = if chosen.is_empty() { top } else { chosen };
    if refs.is_empty() && depth < MAX_CONFIG_DEPTH {
        for inc in includes {
            let inc = inc.trim_matches(|c| c == '"' || c == '\'');
            match strip_grub_device(inc) {
                Some(p) => {
                    if let Ok(c) = read_file(esp, p) {
                        refs = grub_kernels(esp, &String::from_utf8_lossy(&c), depth + 1);
                        if !refs.is_empty() {
                            break;
                        }
                    }
                }
                None => refs.push(KernelRef::Unknown(format!("configfile {inc}"))),
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_prefix_and_devices() {
        let efi = b"\0\0search --fs-uuid --set=root 1234-abcd\nset prefix=($root)/EFI/BOOT\n\0";
        assert_eq!(embedded_grub_prefix(efi).as_deref(), Some("/EFI/BOOT"));
        assert_eq!(strip_grub_device("(hd0,gpt2)/k"), Some("/k"));
        assert_eq!(strip_grub_device("$prefix/k"), None);
    }
}
