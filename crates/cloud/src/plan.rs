//! `--plan`: what a run would do, without running anything: the checks
//! and the exact command lines, as text or as the JSON document
//! `cloudimg.cloud-plan/1` (docs/schema/cloud-plan.schema.json).

use std::path::Path;

use serde::Serialize;

use cloudimg_disk::disk::MIB;
use cloudimg_disk::verify::Report;
use cloudimg_disk::vocab::{Firmware, Provider};

use crate::artifact;
use crate::azure::{AzureTarget, Generation};
use crate::command::CloudCommand;
use crate::error::Result;
use crate::flow::Target;
use crate::journal::Resource;
use crate::provider::ProviderFlow;

/// The `schema` of a plan document.
pub const PLAN_SCHEMA: &str = "cloudimg.cloud-plan/1";

/// One step of a plan and the commands it runs.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// What the step does.
    pub step: String,
    /// The command lines, exactly as they would run (`<...>` for values
    /// known only at run time).
    pub commands: Vec<PlanCommand>,
}

/// One command of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanCommand {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The shell line.
    pub line: String,
}

impl From<&CloudCommand> for PlanCommand {
    fn from(c: &CloudCommand) -> Self {
        PlanCommand {
            program: c.program.clone(),
            args: c.args.clone(),
            line: c.line(),
        }
    }
}

/// What the verifier read from an Azure VHD, for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VhdFacts {
    /// File size in bytes (virtual size + 512).
    pub file_size_bytes: u64,
    /// Virtual size in bytes.
    pub virtual_size_bytes: u64,
    /// Creator application (`qem2`, `win `, ...).
    pub creator: String,
}

impl VhdFacts {
    /// The facts a verifier's report holds.
    fn of(report: &Report) -> VhdFacts {
        VhdFacts {
            file_size_bytes: report.file_size,
            virtual_size_bytes: report.virtual_size.unwrap_or_default(),
            creator: report
                .details
                .get("creator_app")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// A plan: `cloudimg.cloud-plan/1`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: &'static str,
    /// `gcp`, `aws` or `azure`.
    pub provider: Provider,
    /// The artifact, as given to the CLIs.
    pub artifact: String,
    /// The run's resource name.
    pub name: String,
    /// The boot mode as the provider names it (`UEFI_COMPATIBLE`,
    /// `uefi-preferred`, `V2`, ...).
    pub boot_mode: String,
    /// `uefi` or `bios`, where the run fixes it (GCP, Azure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// Azure: the Hyper-V generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<Generation>,
    /// Azure: what the checks read from the VHD (decoded in full).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vhd: Option<VhdFacts>,
    /// The resources a run creates, in creation order.
    pub resources: Vec<Resource>,
    /// The steps, `verify` first, teardown last.
    pub steps: Vec<PlanStep>,
}

impl Plan {
    /// The plan as text: `# step` lines, then the command lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(v), Some(g), Some(f)) = (&self.vhd, self.generation, self.firmware) {
            out.push(format!(
                "# checked {}: fixed VHD, virtual size {} bytes ({} MiB), creator {:?}; Hyper-V generation {} ({})",
                self.artifact,
                v.virtual_size_bytes,
                v.virtual_size_bytes / MIB,
                v.creator,
                g.api_name(),
                f.id()
            ));
        }
        for s in &self.steps {
            out.push(format!("# {}", s.step));
            out.extend(s.commands.iter().map(|c| c.line.clone()));
        }
        out
    }
}

/// The plan of `target` for `artifact`, unchecked (GCP, AWS: the text
/// plan of [`crate::flow::plan`] as a document).
pub fn plan(target: &Target, artifact: &Path) -> Plan {
    let flow = target.flow();
    let art = crate::command::path_arg(artifact);
    build(flow, &art, firmware(target), None, None)
}

fn firmware(target: &Target) -> Option<Firmware> {
    match target {
        Target::Gcp(g) => Some(g.firmware),
        Target::Azure(z) => Some(z.firmware),
        Target::Aws(_) => None,
    }
}

fn build(
    flow: &dyn ProviderFlow,
    art: &str,
    firmware: Option<Firmware>,
    generation: Option<Generation>,
    vhd: Option<VhdFacts>,
) -> Plan {
    let verify = CloudCommand::new("cloudimg", ["verify", art]);
    let steps = std::iter::once(("verify", vec![verify]))
        .chain(flow.steps(art))
        .map(|(name, cmds)| PlanStep {
            step: name.to_string(),
            commands: cmds.iter().map(PlanCommand::from).collect(),
        })
        .collect();
    Plan {
        schema: PLAN_SCHEMA,
        provider: flow.provider(),
        artifact: art.to_string(),
        name: flow.name().to_string(),
        boot_mode: flow.boot_mode(),
        firmware,
        generation,
        vhd,
        resources: flow.resources(),
        steps,
    }
}

/// Azure: check the names and the artifact (decoded in full by the
/// verifier, as a run does), and list the commands a run would execute.
/// Nothing is run.
pub fn azure(target: &AzureTarget, artifact: &Path) -> Result<Plan> {
    target.validate()?;
    let report = artifact::check(target, artifact)?;
    let art = crate::command::path_arg(artifact);
    Ok(build(
        target,
        &art,
        Some(target.firmware),
        Some(target.generation()),
        Some(VhdFacts::of(&report)),
    ))
}
