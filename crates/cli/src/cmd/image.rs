//! `cloudimg image build`: write the hybrid BIOS+UEFI capOS boot disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand};

use cloudimg_image::{build_image, ImageOptions};

/// `cloudimg image ...`
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build a raw GPT disk (BIOS boot + FAT32 ESP with GRUB and a
    /// multiboot2 kernel); the same inputs and SOURCE_DATE_EPOCH give the
    /// same bytes.
    Build(BuildArgs),
}

#[derive(Debug, ClapArgs)]
struct BuildArgs {
    /// Output image.
    #[arg(short, long, default_value = "target/capos-image.raw")]
    output: PathBuf,
    /// Disk size (bytes, or with K/M/G/T suffix, powers of 1024).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    size: u64,
    /// EFI system partition size.
    #[arg(long, default_value = "128M", value_parser = parse_size)]
    esp_size: u64,
    /// A multiboot2 kernel ELF (default: the built-in demo kernel).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Seed of the disk/partition GUIDs and FAT volume id (default:
    /// SOURCE_DATE_EPOCH, else 0).
    #[arg(long)]
    seed: Option<u64>,
    /// GRUB's platform directories (holding x86_64-efi/ and i386-pc/).
    #[arg(long, default_value = "/usr/lib/grub")]
    grub_dir: PathBuf,
}

/// Parse `256M`, `10G`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?} (use K, M, G or T)")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("size {s} is too large"))
}

fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("parsing SOURCE_DATE_EPOCH={v:?}")
            })?))
        }
        _ => Ok(None),
    }
}

/// Run `cloudimg image`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ImageCommand::Build(a) = args.command;
    let mut opts = ImageOptions::new();
    let epoch = source_date_epoch()?;
    opts.size = a.size;
    opts.esp_size = a.esp_size;
    opts.cmdline = a.cmdline;
    if let Some(e) = epoch {
        opts.source_date_epoch = e;
    }
    opts.seed = match (a.seed, epoch) {
        (Some(s), _) => s,
        (None, Some(e)) => e as u64,
        (None, None) => 0,
    };
    opts.grub.lib_dir = a.grub_dir;
    if let Some(k) = &a.kernel {
        opts.kernel =
            std::fs::read(k).with_context(|| format!("reading kernel {}", k.display()))?;
        if !cloudimg_image::kernel::has_multiboot2_header(&opts.kernel) {
            bail!(
                "{} has no multiboot2 header in its first 32 KiB",
                k.display()
            );
        }
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let built = build_image(&opts, &a.output)
        .with_context(|| format!("building {}", a.output.display()))?;
    println!(
        "wrote {} ({} bytes, {} written): BIOS boot LBA {}..={}, ESP LBA {}..={} (FAT32 {}), disk GUID {}",
        built.path.display(),
        built.size,
        built.bytes_written,
        built.bios_boot.first_lba,
        built.bios_boot.last_lba,
        built.esp.first_lba,
        built.esp.last_lba,
        cloudimg_image::hybrid::fat_uuid(built.esp_volume_id),
        built.disk_guid
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(
            parse_size("3X"),
            Err("unknown size suffix 'X' (use K, M, G or T)".into())
        );
        assert_eq!(
            parse_size("99999999999T"),
            Err("size 99999999999T is too large".into())
        );
    }
}
