//! `cloudimg image build`: write the hybrid BIOS+UEFI capOS boot disk,
//! with GRUB (the default) or Limine (`--loader limine --limine DIR`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand};

use cloudimg_image::limine::{LIMINE_BIOS_SYS_PATH, LIMINE_CONF_PATH, LIMINE_KERNEL_PATH};
use cloudimg_image::{
    build_image, build_limine_image, ImageOptions, LimineOptions, LimineRelease, LimineTool,
};

/// `cloudimg image ...`
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Build a raw GPT disk (BIOS boot + FAT32 ESP with GRUB and a
    /// multiboot2 kernel, or Limine with --limine DIR); the same inputs
    /// and SOURCE_DATE_EPOCH give the same bytes. An existing output file
    /// is never replaced without --force.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(BuildArgs),
}

const BUILD_EXAMPLES: &str = "\
Examples:
  cloudimg image build -o demo.raw
  cloudimg image build --loader limine --limine limine-8.2.0 -o capos.raw
  cloudimg image build --limine limine-10.4.0 --bios-boot-partition \\
      --hybrid-mbr -o capos.raw

With --limine, DIR holds Limine's BOOTX64.EFI, limine-bios.sys and
limine.c (compiled with cc into a private temporary directory) or a
`limine` executable; `limine bios-install` installs the BIOS stages.
Limine 10.x needs --bios-boot-partition.";

/// The boot loader of a built image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Loader {
    /// GRUB, from the host's grub-mkimage and platform files.
    Grub,
    /// Limine, from the release in --limine DIR.
    Limine,
}

#[derive(Debug, ClapArgs)]
struct BuildArgs {
    /// Output image (refused if it exists, unless --force).
    #[arg(short, long, default_value = "target/capos-image.raw")]
    output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Boot loader (default grub; limine when --limine is given).
    #[arg(long, value_enum)]
    loader: Option<Loader>,
    /// Limine release directory: BOOTX64.EFI, limine-bios.sys, and
    /// limine.c or a `limine` executable.
    #[arg(long, value_name = "DIR")]
    limine: Option<PathBuf>,
    /// Limine: add a BIOS boot partition (LBA 40-2047) for stage 2
    /// (needed by Limine 10.x; keeps 8.x's stage 2 out of the GPT areas).
    #[arg(long)]
    bios_boot_partition: bool,
    /// Limine: write a hybrid MBR (0xEE + the ESP, as `sgdisk -h`).
    #[arg(long)]
    hybrid_mbr: bool,
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
    /// Print what was built as JSON (`cloudimg.image/1`) on stdout.
    #[arg(long)]
    json: bool,
}

/// What `image build --json` prints (`cloudimg.image/1`).
#[derive(serde::Serialize)]
struct Built {
    /// The image written.
    path: PathBuf,
    /// `grub` or `limine`.
    loader: &'static str,
    /// The Limine release's version (Limine only).
    #[serde(skip_serializing_if = "Option::is_none")]
    limine_version: Option<String>,
    /// The disk's size.
    size_bytes: u64,
    /// The bytes of data written (GRUB only; the rest is holes).
    #[serde(skip_serializing_if = "Option::is_none")]
    written_bytes: Option<u64>,
    /// The GPT disk GUID.
    disk_guid: String,
    /// The BIOS boot partition, when there is one.
    bios_boot: Option<Lbas>,
    /// The EFI system partition.
    esp: Lbas,
    /// The ESP's FAT volume id, as `blkid` shows it (`XXXX-XXXX`).
    esp_volume_id: String,
    /// `protective` or `hybrid`.
    mbr: &'static str,
    /// The SOURCE_DATE_EPOCH used (none when unset).
    source_date_epoch: Option<i64>,
    /// The seed of the GUIDs and the volume id.
    seed: u64,
}

/// A partition's first and last LBA (inclusive).
#[derive(serde::Serialize)]
struct Lbas {
    first_lba: u64,
    last_lba: u64,
}

/// Print `built` as JSON, or the one-line `text`.
fn report(a: &BuildArgs, built: &Built, text: String) -> anyhow::Result<ExitCode> {
    if a.json {
        super::print_json("image", built)?;
    } else {
        super::outln!("{text}")?;
    }
    Ok(ExitCode::SUCCESS)
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

/// The loader asked for: `--loader`, else Limine when `--limine` is
/// given, else GRUB; Limine-only flags without Limine are refused.
fn loader_of(a: &BuildArgs) -> anyhow::Result<Loader> {
    let loader = a.loader.unwrap_or(if a.limine.is_some() {
        Loader::Limine
    } else {
        Loader::Grub
    });
    match loader {
        Loader::Limine if a.limine.is_none() => {
            bail!("--loader limine needs --limine DIR (the Limine release: BOOTX64.EFI, limine-bios.sys, limine.c)")
        }
        Loader::Grub if a.limine.is_some() => bail!("--limine DIR needs --loader limine"),
        Loader::Grub if a.bios_boot_partition || a.hybrid_mbr => {
            bail!("--bios-boot-partition and --hybrid-mbr are for --loader limine (the GRUB image always has a BIOS boot partition)")
        }
        l => Ok(l),
    }
}

/// SOURCE_DATE_EPOCH and the seed (--seed, else SOURCE_DATE_EPOCH, else 0).
fn epoch_and_seed(a: &BuildArgs) -> anyhow::Result<(Option<i64>, u64)> {
    let epoch = source_date_epoch()?;
    let seed = match (a.seed, epoch) {
        (Some(s), _) => s,
        (None, Some(e)) => e as u64,
        (None, None) => 0,
    };
    Ok((epoch, seed))
}

/// The kernel: the file given, else the built-in demo kernel.
fn kernel_of(a: &BuildArgs) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(k) = &a.kernel else {
        return Ok(None);
    };
    let kernel = std::fs::read(k).with_context(|| format!("reading kernel {}", k.display()))?;
    if !cloudimg_image::kernel::has_multiboot2_header(&kernel) {
        bail!(
            "{} has no multiboot2 header in its first 32 KiB",
            k.display()
        );
    }
    Ok(Some(kernel))
}

/// Refuse an existing output (any kind of file, a dangling symlink too)
/// before any work; the final link is exclusive as well.
fn refuse_existing(a: &BuildArgs) -> anyhow::Result<()> {
    if !a.force && std::fs::symlink_metadata(&a.output).is_ok() {
        bail!(
            "{} exists; not replacing it (pass --force to replace it)",
            a.output.display()
        );
    }
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Run `cloudimg image`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ImageCommand::Build(a) = args.command;
    let loader = loader_of(&a)?;
    refuse_existing(&a)?;
    match loader {
        Loader::Grub => build_grub(a),
        Loader::Limine => build_limine(a),
    }
}

fn build_grub(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let mut opts = ImageOptions::new();
    let (epoch, seed) = epoch_and_seed(&a)?;
    opts.size = a.size;
    opts.esp_size = a.esp_size;
    opts.cmdline = a.cmdline.clone();
    if let Some(e) = epoch {
        opts.source_date_epoch = e;
    }
    opts.seed = seed;
    opts.overwrite = a.force;
    opts.grub.lib_dir = a.grub_dir.clone();
    if let Some(k) = kernel_of(&a)? {
        opts.kernel = k;
    }
    let built = build_image(&opts, &a.output)
        .with_context(|| format!("building {}", a.output.display()))?;
    let text = format!(
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
    let doc = Built {
        path: built.path.clone(),
        loader: "grub",
        limine_version: None,
        size_bytes: built.size,
        written_bytes: Some(built.bytes_written),
        disk_guid: built.disk_guid.to_string(),
        bios_boot: Some(Lbas {
            first_lba: built.bios_boot.first_lba,
            last_lba: built.bios_boot.last_lba,
        }),
        esp: Lbas {
            first_lba: built.esp.first_lba,
            last_lba: built.esp.last_lba,
        },
        esp_volume_id: cloudimg_image::hybrid::fat_uuid(built.esp_volume_id),
        mbr: "protective",
        source_date_epoch: epoch,
        seed,
    };
    report(&a, &doc, text)
}

fn build_limine(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = a.limine.clone().expect("loader_of checked --limine");
    let mut opts = LimineOptions::new();
    let (epoch, seed) = epoch_and_seed(&a)?;
    opts.size = a.size;
    opts.esp_size = a.esp_size;
    opts.cmdline = a.cmdline.clone();
    if let Some(e) = epoch {
        opts.source_date_epoch = e;
    }
    opts.seed = seed;
    opts.overwrite = a.force;
    opts.bios_boot_partition = a.bios_boot_partition;
    opts.hybrid_mbr = a.hybrid_mbr;
    if let Some(k) = kernel_of(&a)? {
        opts.kernel = k;
    }
    let release = LimineRelease::load(&dir)?;
    let tool = LimineTool::for_release(&release)?;
    let built = build_limine_image(&opts, &release, &tool, &a.output)
        .with_context(|| format!("building {}", a.output.display()))?;
    let bios = match built.layout.bios_boot {
        Some(b) => format!("BIOS boot LBA {}..={}, ", b.first_lba, b.last_lba),
        None => String::new(),
    };
    let mbr = if a.hybrid_mbr { "hybrid" } else { "protective" };
    let text = format!(
        "wrote {} ({} bytes): Limine {}, {}ESP LBA {}..={} (FAT32 {}: {}, {}, {}), {} MBR, disk GUID {}",
        built.path.display(),
        built.size,
        built.version,
        bios,
        built.layout.esp.first_lba,
        built.layout.esp.last_lba,
        cloudimg_image::hybrid::fat_uuid(built.esp_volume_id),
        LIMINE_CONF_PATH,
        LIMINE_BIOS_SYS_PATH,
        LIMINE_KERNEL_PATH,
        mbr,
        built.disk_guid
    );
    let doc = Built {
        path: built.path.clone(),
        loader: "limine",
        limine_version: Some(built.version.to_string()),
        size_bytes: built.size,
        written_bytes: None,
        disk_guid: built.disk_guid.to_string(),
        bios_boot: built.layout.bios_boot.map(|b| Lbas {
            first_lba: b.first_lba,
            last_lba: b.last_lba,
        }),
        esp: Lbas {
            first_lba: built.layout.esp.first_lba,
            last_lba: built.layout.esp.last_lba,
        },
        esp_volume_id: cloudimg_image::hybrid::fat_uuid(built.esp_volume_id),
        mbr,
        source_date_epoch: epoch,
        seed,
    };
    report(&a, &doc, text)
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
