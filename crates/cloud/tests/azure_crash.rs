//! Azure, against the az stand-in: the harness killed mid-run (SIGKILL,
//! no chance to clean up; see common::killed): the journal it wrote lets
//! `teardown_journal` remove everything, and a second teardown finds
//! nothing to do.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudimg_cloud::{flow, Runner, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, killed, StandIn};

/// The child's body: the Azure flow against the stand-in the parent
/// set up (common::killed); a no-op in any other process.
#[test]
fn child_flow() {
    if let Some(o) = killed::child_options() {
        let target = common::azure_target("capos-crash", Firmware::Bios);
        let _ = flow::run(&target, "crash-run", &o);
    }
}

/// Start the child, kill it once the journal shows `kind` in `state`,
/// then tear down from the journal.
fn kill_then_teardown(target: &Target, kind: &str, state: &str) {
    let si = StandIn::new("no-landmark");
    let journal = killed::run_and_kill(
        si.env(),
        &artifact_for(target),
        &si.state().join("evidence"),
        kind,
        state,
    );
    let mut runner = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    runner.env = si.env();
    runner.backoff = Duration::from_millis(50);
    killed::teardown_twice(&journal, &runner, || si.leftovers());
}

#[test]
fn azure_killed_while_vm_runs() {
    if !common::ready() {
        return;
    }
    let t = common::azure_target("capos-crash", Firmware::Bios);
    kill_then_teardown(&t, "azure-vm", "created");
}

#[test]
fn azure_killed_after_the_disk_was_made() {
    if !common::ready() {
        return;
    }
    let t = common::azure_target("capos-crash", Firmware::Bios);
    kill_then_teardown(&t, "azure-disk", "created");
}
