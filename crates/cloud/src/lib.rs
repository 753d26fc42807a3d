//! cloudimg-cloud: take a verified artifact to a real cloud and prove it
//! boots, through the providers' own CLIs (`gcloud`/`gsutil`, `aws`,
//! `az`).
//!
//! A run ([`run`]) verifies the artifact, uploads it, imports it (GCP
//! `images create`; AWS `import-snapshot` + `register-image`; Azure `disk
//! create` from a page blob, attached as a specialized OS disk), boots an
//! instance, waits for the landmark on the serial console and tears
//! everything down. Every resource is written to a journal
//! (`resources.json`) before it is created, so [`teardown_journal`]
//! finishes the job after a crash, and [`cleanup`] (for the CLI's signal
//! handler) tears down the run in progress. [`plan`] prints the command
//! lines without running anything.
//!
//! Every name and id that reaches a CLI has its provider's syntax
//! ([`names`], with the rules' sources): checked when a target is
//! validated, when a resource is journaled, when `cloud teardown
//! --journal` opens a journal (which is refused whole, unknown fields
//! included, before anything runs) and when a CLI lists ids to delete.
//! Ids go to the AWS CLI as `--flag=value`. The journal and the evidence
//! files are owner-only, created exclusively and never written through a
//! symlink.
//!
//! The flow never matches on the provider: each provider's target
//! (`GcpTarget`, `AwsTarget`, `AzureTarget`) implements one trait
//! (`provider::ProviderFlow`: names, accepted shape and rules, plan
//! steps, run), registered once in `Target::flow`. The artifact is
//! judged by the disk crate's verifier report (format, findings, virtual
//! size) against `vocab::Provider::accepts` and the provider's rules,
//! never re-parsed here.
//!
//! # What was checked against the providers' documentation, and what not
//!
//! Confirmed from the CLI references: `get-serial-port-output --port/--start`;
//! the `describe-import-snapshot-tasks` JSON shape; the `register-image
//! --boot-mode` values; `get-console-output --latest` (the CLI decodes
//! `Output`); the GCP image resource fields; "URLs matched no objects"
//! (`gcloud storage`) and "No URLs matched" (`gsutil`).
//!
//! Not confirmed from a primary source (the parsers are lenient and the
//! stand-ins follow these assumptions): that `gcloud ... create
//! --format=json` prints a list (a list or a single object is accepted);
//! that `get-serial-port-output --format=json` has `contents`/`next`; that
//! AWS CLI v2 exits 254 on service errors; the exact wording of the
//! `vmimport` role error, of GCP quota errors, of the AWS import
//! `StatusMessage`s ("Unsupported specified file format", "Unsupported VMDK
//! File Format", "Unsupported VHD Footer", "Invalid S3 source location"), of
//! GCP's "disk.raw must be a multiple of 1 GB", of `IncorrectState` from
//! `cancel-import-task` and `InvalidAMIID.NotFound`; and that a GCP image
//! without `UEFI_COMPATIBLE` boots legacy BIOS.
//!
//! Azure: what is confirmed and what is not is listed in [`azure`]'s
//! documentation (in short: the specialized-disk route without admin
//! credentials is from Microsoft's CLI sample, the blob/disk/boot-log
//! command shapes from how-to pages; the error wordings, exit statuses and
//! the `get-boot-log` output format are the stand-in's assumptions).
//!
//! The console is read with `get-console-output --output json` (the text
//! output puts the instance id and timestamp on the same lines as the
//! console text), with `--latest` only where the instance type's
//! hypervisor is `nitro` (`describe-instance-types`; GetConsoleOutput:
//! "This option is supported on instance types that use the Nitro
//! hypervisor").
//!
//! Issue 14: before anything is created the CLI's version and identity
//! are checked ([`preflight`]); `run-instances` carries the run's client
//! token; a NotFound right after a create is retried for a bounded time,
//! and AWS deletions are confirmed by describing ([`settle`]); a timed-out
//! CLI is ended with the processes it started; `--publish` keeps the image
//! (journal state `kept`); plans and summaries are the JSON documents
//! `cloudimg.cloud-plan/1` ([`plan`]) and `cloudimg.cloud-run/1`.
#![deny(missing_docs)]

mod artifact;
pub mod aws;
mod aws_parse;
pub mod azure;
mod azure_run;
pub mod command;
pub mod error;
pub mod flow;
pub mod gcp;
pub mod journal;
pub mod names;
pub mod plan;
pub mod preflight;
mod provider;
pub mod settle;
pub mod teardown;

pub use aws::{AwsFormat, AwsTarget, BootMode};
pub use azure::{AzureTarget, Generation};
pub use command::{CloudCommand, Log, Runner};
pub use error::{Error, ErrorKind, Result};
pub use flow::{cleanup, new_run_id, plan, run, RunOptions, Summary, Target};
pub use gcp::GcpTarget;
pub use journal::{Journal, Resource, State};
pub use preflight::Identity;
pub use teardown::{teardown_journal, TeardownReport};
