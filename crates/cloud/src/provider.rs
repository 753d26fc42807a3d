//! What the flow needs of a cloud: one trait, implemented once per
//! provider (`gcp.rs`, `aws.rs`, `azure.rs`), so that the flow
//! ([`crate::flow`]) never matches on the provider.
//!
//! Adding a provider: a file whose target type implements
//! [`ProviderFlow`], a variant of [`crate::Target`] and its arm in
//! `Target::flow` (the one registration), its resources in
//! [`crate::journal::Resource`] with their delete commands in
//! [`crate::teardown`], a `vocab::Provider` with its accepted shapes
//! (`Provider::accepts`) in the disk crate, and a local endpoint in
//! `standin/api/` for its real CLI to talk to (a CLI stand-in in
//! `standin/bin/` only where no emulator exists, as for Azure compute).

use cloudimg_disk::verify::Report;
use cloudimg_disk::vocab::Provider;

use crate::command::{CloudCommand, Runner};
use crate::error::Result;
use crate::flow::Session;
use crate::flow::Target;
use crate::journal::Resource;
use crate::preflight::Identity;

/// One step of a plan: what it does, and the commands it runs.
pub(crate) type Step = (&'static str, Vec<CloudCommand>);

/// A provider's part of a run: its names, its artifact rules, its
/// commands and how it drives them.
pub(crate) trait ProviderFlow {
    /// Which provider (one of [`Provider::CLOUDS`]).
    fn provider(&self) -> Provider;

    /// The run's resource name (image, instance, object).
    fn name(&self) -> &str;

    /// The boot mode as the provider names it (`UEFI_COMPATIBLE`,
    /// `legacy-bios`, `uefi-preferred`, `V2`, ...).
    fn boot_mode(&self) -> String;

    /// Check the names and options against the provider's rules.
    fn validate(&self) -> Result<()>;

    /// The CLIs the run needs on PATH.
    fn clis(&self) -> Vec<&'static str>;

    /// What the artifact must be, for messages: `a fixed VHD (cloudimg
    /// package --azure)`.
    fn expected_shape(&self) -> String;

    /// Whether a verified artifact of this report is the shape this run
    /// imports. By default, what [`Provider::accepts`] says; a provider
    /// whose run asks for one shape (AWS `--format`) narrows it.
    fn takes(&self, report: &Report) -> bool {
        self.provider().accepts(report.format)
    }

    /// The provider's own rules that a sound artifact of the right shape
    /// may still break (Azure's sizes): `Err` is the problem, to follow
    /// the artifact's name.
    fn check_rules(&self, _report: &Report) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Whether `--publish` keeps `r` (the image and what it needs).
    fn publishes(&self, r: &Resource) -> bool;

    /// Every resource a run creates, in creation order, as journaled
    /// before its id is known.
    fn resources(&self) -> Vec<Resource>;

    /// The steps after `verify`, with the exact commands (`<...>` for
    /// values known only at run time), teardown last.
    fn steps(&self, artifact: &str) -> Vec<Step>;

    /// Before anything is created: the CLI's version and who it acts as
    /// ([`crate::preflight`]), and the target with the defaults the CLI's
    /// configuration gives (GCP project and zone, Azure location), if
    /// any were left to it.
    fn preflight(&self, runner: &Runner) -> Result<(Identity, Option<Target>)>;

    /// Upload, import, boot and wait for the landmark, journaling every
    /// resource through `s` before it is created.
    fn run(&self, s: &mut Session<'_>) -> Result<()>;
}
