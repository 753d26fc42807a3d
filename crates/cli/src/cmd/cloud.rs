//! `cloudimg cloud gcp|aws|azure|teardown`: import an artifact into a real
//! cloud through its CLI, boot it, wait for the landmark on the serial
//! console, and tear everything down (or `--plan` to print the commands).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use cloudimg_cloud::azure;
use cloudimg_cloud::{
    flow, AwsFormat, AwsTarget, AzureTarget, BootMode, ErrorKind, GcpTarget, Generation, Log,
    RunOptions, Runner, Target,
};
use cloudimg_disk::vocab::Firmware;

use crate::config::{self, Config};

/// Import an artifact into GCP, AWS or Azure, boot it and watch its serial
/// console for the landmark; every resource is journaled and torn down.
///
/// Exit status: 0 landmark seen, 1 not seen in time, 2 error (including
/// resources that teardown could not delete).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: CloudCmd,
}

#[derive(Debug, clap::Subcommand)]
enum CloudCmd {
    /// Google Compute Engine: gcloud storage cp, images create, instances create.
    Gcp(GcpArgs),
    /// Amazon EC2: aws s3 cp, ec2 import-snapshot, register-image, run-instances.
    Aws(AwsArgs),
    /// Microsoft Azure: az storage blob upload (page blob), disk create, vm create --attach-os-disk.
    Azure(AzureArgs),
    /// Delete every resource a journal lists (after a crash or --keep).
    Teardown(TeardownArgs),
}

/// Options shared by the providers.
#[derive(Debug, clap::Args)]
struct Common {
    /// The artifact to upload.
    #[arg(long, value_name = "FILE")]
    artifact: Option<PathBuf>,
    /// Evidence directory [default: target/cloud-evidence/<provider>-<run id>].
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Print the commands that would run, and run nothing.
    #[arg(long)]
    plan: bool,
    /// Leave the resources up and print how to remove them.
    #[arg(long, conflicts_with = "publish")]
    keep: bool,
    /// Once the boot is proven, keep the image (GCP image, AWS AMI and its
    /// snapshot, Azure managed disk), delete everything else, print its id;
    /// `cloud teardown --journal` removes it later.
    #[arg(long)]
    publish: bool,
    /// A label (GCP) or tag (AWS, Azure) of the image: KEY=VALUE
    /// (lowercase letters, digits, _ and -), repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label_arg)]
    labels: Vec<(String, String)>,
    /// Name of the image, instance and object [default: capos-<run id>].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Seconds to wait for the landmark once the instance runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=super::MAX_SECONDS))]
    timeout: u64,
    /// The serial console line that proves the boot.
    #[arg(long, value_name = "TEXT", default_value = "capos kernel starting")]
    expect: String,
    /// Seconds between polls of the import task and the console.
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=super::MAX_SECONDS))]
    poll: u64,
    /// Print the plan (with --plan, cloudimg.cloud-plan/1) or the run's
    /// summary (cloudimg.cloud-run/1) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct GcpArgs {
    /// The GCP project [default: CLOUDIMG_GCP_PROJECT, gcp.project in
    /// cloudimg.toml, else gcloud's configured project].
    #[arg(long)]
    project: Option<String>,
    /// The Cloud Storage bucket to upload to [or CLOUDIMG_GCP_BUCKET, gcp.bucket].
    #[arg(long)]
    bucket: Option<String>,
    /// The zone of the instance [default: CLOUDIMG_GCP_ZONE, gcp.zone, else
    /// gcloud's configured compute/zone].
    #[arg(long)]
    zone: Option<String>,
    /// The VPC network of the instance [default: the project's `default`].
    #[arg(long)]
    network: Option<String>,
    /// The subnet of the instance (in --network's region).
    #[arg(long)]
    subnet: Option<String>,
    /// The machine type [default: e2-small; see `cloudimg config`].
    #[arg(long)]
    machine_type: Option<String>,
    /// Upload and delete with gsutil instead of gcloud storage.
    #[arg(long)]
    gsutil: bool,
    /// The image family of the image (with --publish: the family to publish into).
    #[arg(long, value_name = "FAMILY")]
    family: Option<String>,
    /// Do not mark the image UEFI_COMPATIBLE (boots legacy BIOS).
    #[arg(long)]
    no_uefi: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Raw,
    Vhd,
    Vmdk,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BootModeArg {
    Uefi,
    LegacyBios,
    UefiPreferred,
}

#[derive(Debug, clap::Args)]
struct AwsArgs {
    /// The S3 bucket to upload to (in the same region) [or CLOUDIMG_AWS_BUCKET, aws.bucket].
    #[arg(long)]
    bucket: Option<String>,
    /// The region [default: CLOUDIMG_AWS_REGION, aws.region, else the AWS CLI's configuration].
    #[arg(long)]
    region: Option<String>,
    /// The artifact's format [default: detected from --artifact, else raw].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The AMI's boot mode.
    #[arg(long, value_enum, default_value = "uefi-preferred")]
    boot_mode: BootModeArg,
    /// The instance type (Nitro types boot UEFI and BIOS over NVMe; the
    /// console is read with --latest only on Nitro types) [default: t3.micro].
    #[arg(long)]
    instance_type: Option<String>,
    /// The subnet to launch into (needed where the account has no default VPC).
    #[arg(long, value_name = "SUBNET_ID")]
    subnet_id: Option<String>,
    /// A security group for the instance (repeatable) [default: the VPC's default group].
    #[arg(long = "security-group-id", value_name = "SG_ID")]
    security_group_ids: Vec<String>,
    /// Seconds the import task may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=super::MAX_SECONDS))]
    import_timeout: u64,
    #[command(flatten)]
    common: Common,
}

/// `--boot-mode uefi|bios`: a firmware, by its id, with Azure's name for
/// it (the Hyper-V generation) as the value's help.
fn firmware_arg() -> impl clap::builder::TypedValueParser<Value = Firmware> {
    use clap::builder::{PossibleValue, TypedValueParser};
    const FIRMWARES: [Firmware; 2] = [Firmware::Uefi, Firmware::Bios];
    clap::builder::PossibleValuesParser::new(FIRMWARES.map(|f| {
        PossibleValue::new(f.id()).help(format!(
            "Hyper-V generation {}",
            Generation::of(f).api_name()
        ))
    }))
    .map(|id| {
        FIRMWARES
            .into_iter()
            .find(|f| f.id() == id)
            .expect("clap admits only the listed ids")
    })
}

#[derive(Debug, clap::Args)]
struct AzureArgs {
    /// The resource group (must exist) [or CLOUDIMG_AZURE_RESOURCE_GROUP, azure.resource_group].
    #[arg(long)]
    resource_group: Option<String>,
    /// The location of the disk and the VM; must be the storage account's
    /// [default: CLOUDIMG_AZURE_LOCATION, azure.location, else the resource group's].
    #[arg(long)]
    location: Option<String>,
    /// The storage account to upload to (must exist; also holds boot diagnostics).
    #[arg(long)]
    storage_account: Option<String>,
    /// The blob container (must exist).
    #[arg(long)]
    container: Option<String>,
    /// The VM size [default: Standard_B1s].
    #[arg(long)]
    size: Option<String>,
    /// The firmware: uefi (Hyper-V generation V2) or bios (V1).
    #[arg(long, value_parser = firmware_arg(), default_value = "uefi")]
    boot_mode: Firmware,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct TeardownArgs {
    /// The journal (resources.json in the run's evidence directory).
    #[arg(long, value_name = "FILE")]
    journal: PathBuf,
    /// Print what was done as JSON (cloudimg.teardown/1) on stdout.
    #[arg(long)]
    json: bool,
}

/// `KEY=VALUE`.
fn label_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn log() -> Log {
    Arc::new(|s: &str| eprintln!("cloudimg: {s}"))
}

/// Run the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        CloudCmd::Teardown(t) => teardown(t),
        CloudCmd::Azure(a) => azure(a, &Config::load()?),
        CloudCmd::Gcp(g) => {
            let cfg = Config::load()?;
            let run_id = flow::new_run_id();
            let artifact = g
                .common
                .artifact
                .clone()
                .unwrap_or_else(|| PathBuf::from("target/cloud-image/disk.raw.tar.gz"));
            let target = Target::Gcp(GcpTarget {
                project: cfg
                    .value(&config::GCP_PROJECT, g.project)
                    .unwrap_or_default(),
                bucket: cfg.require(&config::GCP_BUCKET, g.bucket)?,
                zone: cfg.value(&config::GCP_ZONE, g.zone).unwrap_or_default(),
                network: g.network,
                subnet: g.subnet,
                family: g.family,
                labels: g.common.labels.clone(),
                machine_type: cfg.require(&config::GCP_MACHINE_TYPE, g.machine_type)?,
                name: name(&g.common, &run_id),
                gsutil: g.gsutil,
                firmware: if g.no_uefi {
                    Firmware::Bios
                } else {
                    Firmware::Uefi
                },
            });
            go(
                target,
                artifact,
                &g.common,
                &run_id,
                Duration::from_secs(3600),
            )
        }
        CloudCmd::Aws(a) => {
            let cfg = Config::load()?;
            let run_id = flow::new_run_id();
            let format = match (a.format, &a.common.artifact) {
                (Some(f), _) => match f {
                    FormatArg::Raw => AwsFormat::Raw,
                    FormatArg::Vhd => AwsFormat::Vhd,
                    FormatArg::Vmdk => AwsFormat::Vmdk,
                },
                // The artifact's shape, as AWS takes it (an unreadable or
                // refused file is left to the run's verification to name).
                (None, Some(p)) => cloudimg_disk::formats::detect(p)
                    .ok()
                    .and_then(AwsFormat::of)
                    .unwrap_or(AwsFormat::Raw),
                (None, None) => AwsFormat::Raw,
            };
            let artifact = a.common.artifact.clone().unwrap_or_else(|| {
                PathBuf::from(format!("target/cloud-image/capos-aws.{}", format.ext()))
            });
            let target = Target::Aws(AwsTarget {
                bucket: cfg.require(&config::AWS_BUCKET, a.bucket)?,
                region: cfg.value(&config::AWS_REGION, a.region),
                format,
                boot_mode: match a.boot_mode {
                    BootModeArg::Uefi => BootMode::Uefi,
                    BootModeArg::LegacyBios => BootMode::LegacyBios,
                    BootModeArg::UefiPreferred => BootMode::UefiPreferred,
                },
                instance_type: cfg.require(&config::AWS_INSTANCE_TYPE, a.instance_type)?,
                name: name(&a.common, &run_id),
                subnet_id: a.subnet_id,
                security_group_ids: a.security_group_ids,
                labels: a.common.labels.clone(),
            });
            go(
                target,
                artifact,
                &a.common,
                &run_id,
                Duration::from_secs(a.import_timeout),
            )
        }
    }
}

/// `cloud azure`: with --plan, check the VHD and print the plan (text or
/// JSON); else the full run.
fn azure(a: AzureArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let run_id = flow::new_run_id();
    let artifact = a
        .common
        .artifact
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/cloud-image/capos-azure.vhd"));
    let target = AzureTarget {
        resource_group: cfg.require(&config::AZURE_RESOURCE_GROUP, a.resource_group)?,
        location: cfg
            .value(&config::AZURE_LOCATION, a.location)
            .unwrap_or_default(),
        storage_account_id: None,
        labels: a.common.labels.clone(),
        storage_account: cfg.require(&config::AZURE_STORAGE_ACCOUNT, a.storage_account)?,
        container: cfg.require(&config::AZURE_CONTAINER, a.container)?,
        vm_size: cfg.require(&config::AZURE_SIZE, a.size)?,
        firmware: a.boot_mode,
        name: name(&a.common, &run_id),
    };
    if !a.common.plan {
        return run_target(
            Target::Azure(target),
            artifact,
            &a.common,
            &run_id,
            Duration::from_secs(3600),
        );
    }
    let plan = azure::plan(&target, &artifact)?;
    if a.common.json {
        super::outln!("{}", serde_json::to_string_pretty(&plan)?)?;
    } else {
        for line in plan.lines() {
            super::outln!("{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn name(c: &Common, run_id: &str) -> String {
    c.name.clone().unwrap_or_else(|| format!("capos-{run_id}"))
}

fn go(
    target: Target,
    artifact: PathBuf,
    c: &Common,
    run_id: &str,
    import_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    run_target(target, artifact, c, run_id, import_timeout)
}

fn run_target(
    target: Target,
    artifact: PathBuf,
    c: &Common,
    run_id: &str,
    import_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let json = c.json;
    if c.plan {
        if json {
            let plan = cloudimg_cloud::plan::plan(&target, &artifact);
            super::outln!("{}", serde_json::to_string_pretty(&plan)?)?;
        } else {
            for line in flow::plan(&target, &artifact) {
                super::outln!("{line}")?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let evidence = c.evidence.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "target/cloud-evidence/{}-{run_id}",
            target.provider().id()
        ))
    });
    let mut opts = RunOptions::new(artifact, evidence.clone(), log());
    opts.keep = c.keep;
    opts.publish = c.publish;
    opts.landmark = c.expect.clone();
    opts.boot_timeout = Duration::from_secs(c.timeout);
    opts.import_timeout = import_timeout;
    opts.poll_interval = Duration::from_secs(c.poll.max(1));
    eprintln!(
        "cloudimg: evidence and journal in {}; after a crash run `cloudimg cloud teardown --journal {}`",
        evidence.display(),
        evidence.join("resources.json").display()
    );
    let s = flow::run(&target, run_id, &opts)
        .with_context(|| format!("writing evidence to {}", evidence.display()))?;
    crate::report::write_report_logged(&evidence);
    let left = s.teardown.as_ref().map_or(0, |t| t.failed.len());
    if json {
        super::outln!("{}", serde_json::to_string_pretty(&s)?)?;
    } else if let Some(p) = &s.published {
        super::outln!(
            "PUBLISHED {}: {} booted to {:?} after {:.1} s; kept {}; remove with `cloudimg cloud teardown --journal {}`",
            p.image_id.as_deref().unwrap_or("?"),
            s.name,
            c.expect,
            s.seconds_to_landmark.unwrap_or_default(),
            p.resources.join(", "),
            p.journal.display()
        )?;
    } else if s.passed {
        super::outln!(
            "PASS {}: {} reached {:?} after {:.1} s (image {}, boot mode {}); evidence: {}",
            s.provider.id(),
            s.name,
            c.expect,
            s.seconds_to_landmark.unwrap_or_default(),
            s.image_id.as_deref().unwrap_or("?"),
            s.boot_mode,
            evidence.display()
        )?;
    }
    if left > 0 {
        bail!(
            "{left} resource(s) could not be deleted (listed above); retry with `cloudimg cloud teardown --journal {}`",
            evidence.join("resources.json").display()
        );
    }
    if s.passed {
        return Ok(ExitCode::SUCCESS);
    }
    let why = s.error.unwrap_or_else(|| "failed".into());
    match s.error_kind {
        Some(ErrorKind::Timeout) if s.instance_id.is_some() => {
            if !json {
                super::outln!(
                    "FAIL {}: {why}; evidence: {}",
                    s.provider.id(),
                    evidence.display()
                )?;
            }
            Ok(ExitCode::from(1))
        }
        Some(ErrorKind::Interrupted) => Ok(ExitCode::from(130)),
        _ => bail!("{why} (evidence: {})", evidence.display()),
    }
}

fn teardown(t: TeardownArgs) -> anyhow::Result<ExitCode> {
    let runner = Runner::new(log());
    let r = cloudimg_cloud::teardown_journal(&t.journal, &runner)?;
    if t.json {
        let doc = serde_json::json!({
            "schema": "cloudimg.teardown/1",
            "journal": t.journal,
            "deleted": r.deleted,
            "already_gone": r.already_gone,
            "failed": r.failed.iter().map(|(what, why)| serde_json::json!({"resource": what, "error": why})).collect::<Vec<_>>(),
            "clean": r.is_clean(),
        });
        super::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        for d in &r.deleted {
            super::outln!("deleted {d}")?;
        }
        for d in &r.already_gone {
            super::outln!("already gone: {d}")?;
        }
    }
    if !r.is_clean() {
        for (what, why) in &r.failed {
            eprintln!("cloudimg: could not delete {what}: {why}");
        }
        bail!(
            "{} resource(s) could not be deleted; run the teardown again once fixed",
            r.failed.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
