//! cloudimg-cloud: take a verified artifact to a real cloud and prove it
//! boots, through the providers' own CLIs (`gcloud`/`gsutil`, `aws`).
//!
//! A run ([`run`]) verifies the artifact, uploads it, imports it (GCP
//! `images create`; AWS `import-snapshot` + `register-image`), boots an
//! instance, waits for the landmark on the serial console and tears
//! everything down. Every resource is written to a journal
//! (`resources.json`) before it is created, so [`teardown_journal`]
//! finishes the job after a crash, and [`cleanup`] (for the CLI's signal
//! handler) tears down the run in progress. [`plan`] prints the command
//! lines without running anything.
#![deny(missing_docs)]

pub mod aws;
pub mod command;
pub mod error;
pub mod flow;
pub mod gcp;
pub mod journal;
pub mod teardown;

pub use aws::{AwsFormat, AwsTarget, BootMode};
pub use command::{CloudCommand, Log, Runner};
pub use error::{Error, ErrorKind, Result};
pub use flow::{cleanup, new_run_id, plan, run, RunOptions, Summary, Target};
pub use gcp::GcpTarget;
pub use journal::{Journal, Resource, State};
pub use teardown::{teardown_journal, TeardownReport};
