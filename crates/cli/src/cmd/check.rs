//! `cloudimg check IMAGE`: before any upload, can the image boot on each
//! cloud and firmware path, and if not, why not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cloudimg_disk::check::limine::{Family, Version};
use cloudimg_disk::check::{check, Checklist, LimineReport, Provider, Status};
use cloudimg_disk::formats;
use cloudimg_disk::VirtualDisk;

/// Say whether an image can boot on each cloud and firmware path, and
/// why not.
///
/// Checks, read-only: the size, the protective MBR, both GPT copies, the
/// BIOS boot code and the stage it loads (GRUB core.img; Limine's stage 2
/// in either layout, two halves up to 9.x or one piece in a BIOS boot
/// partition from 10.x, and its limine-bios.sys), the EFI system
/// partition and /EFI/BOOT/BOOTX64.EFI (PE32+, x86-64, EFI application),
/// partition alignment, the kernel the GRUB or Limine config names (for
/// Limine, the config each firmware path of its release reads), and each
/// cloud's size rules. Paths: gcp-uefi, gcp-bios, aws-uefi,
/// aws-bios, azure-gen2 (UEFI), azure-gen1 (BIOS). A `fail` makes the
/// paths it names not ready; a `warn` does not.
///
/// Reads every image format cloudimg reads (raw, VHD, VMDK, QCOW2, VHDX,
/// a GCP disk.raw.tar.gz, an OVA), told from its content.
/// Exit status: 0 every requested path ready, 1 some path not ready,
/// 2 the image could not be read.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks (read-only): size-sector, mbr, gpt, bios-boot-code (GRUB, or Limine
and its layout family), bios-stage2 (GRUB core.img or Limine stage 2: present,
inside the disk, clear of partitions and GPT areas), bios-stage3 (Limine's
limine-bios.sys), esp, efi-loader (/EFI/BOOT/BOOTX64.EFI: PE32+, x86-64, EFI
application), alignment, kernel (named by grub.cfg or limine.conf; for Limine
kernel:uefi and kernel:bios instead when the two firmware paths read different
configs), size:gcp, size:aws, size:azure. A fail makes the paths it names not
ready: gcp-uefi, gcp-bios, aws-uefi, aws-bios, azure-gen2 (UEFI), azure-gen1
(BIOS). A warn does not.

Reads any image format cloudimg reads. --json prints the same checks and
verdicts (cloudimg.check/1), and under \"limine\" what was found of Limine
(family, versions, stage 2 byte ranges, limine-bios.sys, the config each
firmware reads).

Exit codes: 0 every requested path ready, 1 some path not ready, 2 the image
could not be read.")]
pub struct Args {
    /// The disk image.
    pub image: PathBuf,
    /// The clouds to check (repeat or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub provider: Vec<ProviderArg>,
    /// Print the checks and verdicts as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A `--provider` value: one of the clouds `check` knows
/// ([`Provider::CLOUDS`], by its id), or `all` of them (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderArg(pub Option<Provider>);

impl ProviderArg {
    /// Every value, in the order `--help` lists them.
    const VALUES: [ProviderArg; 4] = [
        ProviderArg(Some(Provider::CLOUDS[0])),
        ProviderArg(Some(Provider::CLOUDS[1])),
        ProviderArg(Some(Provider::CLOUDS[2])),
        ProviderArg(None),
    ];
}

impl clap::ValueEnum for ProviderArg {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::VALUES
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self.0 {
            Some(p) => clap::builder::PossibleValue::new(p.id()).help(p.title()),
            None => clap::builder::PossibleValue::new("all").help("All three"),
        })
    }
}

/// Open an image of any format cloudimg reads as a virtual disk.
pub fn open_disk(path: &Path) -> anyhow::Result<Box<dyn VirtualDisk>> {
    Ok(formats::open::open_disk(path)?.0)
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let clouds: Vec<Provider> = if args.provider.contains(&ProviderArg(None)) {
        Provider::CLOUDS.to_vec()
    } else {
        args.provider.iter().filter_map(|p| p.0).collect()
    };
    let disk = open_disk(&args.image)?;
    let list = check(disk.as_ref(), &clouds).map_err(|e| e.with_path(&args.image))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        drop(out);
        super::print_json("check", &document(&args.image, &list)?)?;
    } else {
        human(&mut out, &args.image, &list)?;
    }
    Ok(ExitCode::from(if list.ready() { 0 } else { 1 }))
}

/// The `cloudimg.check/1` document: the checklist with the image's path,
/// the verdict, its size under `virtual_size_bytes` and each verdict's
/// cloud under `provider`.
fn document(image: &Path, list: &Checklist) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(list)?;
    super::rename_key(&mut v, "virtual_size", "virtual_size_bytes");
    if let Some(verdicts) = v["verdicts"].as_array_mut() {
        for verdict in verdicts {
            super::rename_key(verdict, "cloud", "provider");
        }
    }
    v["path"] = serde_json::json!(image);
    v["ready"] = serde_json::json!(list.ready());
    Ok(v)
}

/// One line on Limine: its family, versions, and the config each
/// firmware path reads.
fn limine_line(l: &LimineReport) -> String {
    let v = |v: Option<Version>| v.map_or("version unread".to_string(), |v| v.to_string());
    let mut parts = vec![match l.family {
        Some(Family::UpTo9) => "MBR code of the 9.x-or-earlier layout".to_string(),
        Some(Family::From10) => "MBR code of the 10.x-or-later layout".to_string(),
        None => "no Limine MBR code".to_string(),
    }];
    parts.push(format!("BOOTX64.EFI {}", v(l.uefi_version)));
    if l.stage3.is_some() {
        parts.push(format!("limine-bios.sys {}", v(l.bios_version)));
    }
    let cfg = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".to_string());
    parts.push(format!("UEFI reads {}", cfg(&l.uefi_config)));
    parts.push(format!("BIOS reads {}", cfg(&l.bios_config)));
    format!("Limine: {}", parts.join("; "))
}

fn human(out: &mut impl Write, path: &Path, list: &Checklist) -> anyhow::Result<()> {
    writeln!(out, "{}: {} bytes", path.display(), list.virtual_size)?;
    if let Some(l) = &list.limine {
        writeln!(out, "{}", limine_line(l))?;
    }
    let w = list
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(out, "{:<w$}  STATUS  MESSAGE", "CHECK")?;
    for c in &list.checks {
        let status = match c.status {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        writeln!(
            out,
            "{:<w$}  {status:<6}  {}: {}",
            c.id, c.subject, c.message
        )?;
        if let Some(f) = &c.fix {
            writeln!(out, "{:<w$}  {:<6}  fix: {f}", "", "")?;
        }
    }
    writeln!(out)?;
    for v in &list.verdicts {
        if v.ready {
            let warn = if v.warnings.is_empty() {
                String::new()
            } else {
                format!(" (warnings: {})", v.warnings.join(", "))
            };
            writeln!(out, "{:<11} ready{warn}", v.target.name())?;
        } else {
            writeln!(
                out,
                "{:<11} NOT READY: {}",
                v.target.name(),
                v.failing.join(", ")
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn provider_values_are_the_clouds_then_all() {
        let names: Vec<String> = ProviderArg::value_variants()
            .iter()
            .map(|v| v.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, ["gcp", "aws", "azure", "all"]);
        for p in Provider::CLOUDS {
            assert_eq!(
                ProviderArg::from_str(p.id(), false),
                Ok(ProviderArg(Some(p)))
            );
        }
        assert_eq!(ProviderArg::from_str("all", false), Ok(ProviderArg(None)));
        assert!(ProviderArg::from_str("openstack", false).is_err());
    }
}
