//! Deletions confirmed by looking, not by the delete's answer (issue 14):
//! AWS instances, AMIs and snapshots; GCP instances and images.
//!
//! AWS documents that its API is eventually consistent, and that a
//! NotFound is not proof of absence: "If you get an
//! `InvalidInstanceID.NotFound` error after running `TerminateInstances`,
//! this does not mean that the instance is or will be terminated. Your
//! instance could still be running", hence "confirm the state of the
//! instance first using `DescribeInstances`"
//! (docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
//! So teardown deletes, then describes until the resource is seen gone
//! (an instance `terminated`; an AMI or snapshot no longer described),
//! deleting again while it is still there, for at most
//! [`Runner::settle`]. A NotFound from the describe is believed only once
//! the delete was accepted, or once the resource is older than the settle
//! window (then it is not a new resource that has not propagated yet, but
//! one that is gone). An EC2 instance is the exception: a terminated
//! instance stays described `terminated` for a while, so right after an
//! accepted terminate only `terminated` confirms it (or not being
//! described for the whole settle window): see [`Afterwards`]. What
//! cannot be confirmed is an error: teardown reports it LEFT BEHIND.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::{self, ec2};
use crate::command::{classify, failure_error, reason, CloudCommand, Failure, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::teardown::Outcome;

/// What a describe showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Described in a final state (an instance `terminated`).
    Ended,
    /// Not described at all (NotFound, or an empty list).
    Absent,
    /// On its way out (`shutting-down`): wait, do not delete again.
    Going(String),
    /// Still there, in this state: delete again.
    Present(String),
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a resource shows its deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Afterwards {
    /// Deleted, it is no longer described (an AMI, a snapshot, a GCP
    /// resource): not described after an accepted delete = gone.
    Vanishes,
    /// Deleted, it stays described in a final state for a while (an EC2
    /// instance: "Recently terminated instances might appear in the
    /// returned results. This interval is usually less than one hour.",
    /// DescribeInstances, EC2 API reference). Not being described right
    /// after an accepted terminate is then the eventual consistency AWS
    /// warns of, not proof: only `terminated` confirms, or not being
    /// described for the whole settle window.
    StaysDescribed,
}

/// Delete with `delete` and look with `look` until the resource is seen
/// gone, within [`Runner::settle`]. `created_unix`: when the journal
/// recorded it created (0: unknown, long ago). `what` names it in
/// messages.
pub(crate) fn confirm(
    runner: &Runner,
    what: &str,
    created_unix: u64,
    afterwards: Afterwards,
    delete: &CloudCommand,
    look: &dyn Fn(&Runner) -> Result<Seen>,
) -> Result<Outcome> {
    let deadline = Instant::now() + runner.settle;
    let settled = || now_unix() >= created_unix.saturating_add(runner.settle.as_secs());
    let mut accepted = false;
    let mut absent_since_accepted = false;
    let mut last: String;
    let mut refused = String::new();
    let mut delete_next = true;
    loop {
        if delete_next {
            let out = runner.run_raw(delete)?;
            if out.success() {
                accepted = true;
            } else if out.stderr.contains(".InUse") {
                // A snapshot stays in use until the AMI's deregistration
                // has propagated: ask again.
                refused = format!("; the delete said: {}", reason(&out.stderr));
            } else if classify(&out.stderr) != Failure::NotFound {
                return Err(failure_error(delete, &out));
            }
        }
        delete_next = true;
        match look(runner)? {
            Seen::Ended => {
                return Ok(if accepted {
                    Outcome::Deleted
                } else {
                    Outcome::Gone
                })
            }
            Seen::Absent if accepted && afterwards == Afterwards::StaysDescribed => {
                last = "not described since its deletion was accepted (not proof: \
                        it should be described as ended for a while)"
                    .into();
                delete_next = false;
                absent_since_accepted = true;
            }
            Seen::Absent if accepted || settled() => {
                return Ok(if accepted {
                    Outcome::Deleted
                } else {
                    Outcome::Gone
                })
            }
            Seen::Absent => {
                last = "not described yet (a new resource may not have propagated)".into()
            }
            Seen::Going(s) => {
                last = s;
                delete_next = false;
                absent_since_accepted = false;
            }
            Seen::Present(s) => {
                last = s;
                absent_since_accepted = false;
            }
        }
        if Instant::now() >= deadline && absent_since_accepted {
            // Accepted, then not described for the whole window AWS
            // gives its eventual consistency: gone.
            (runner.log)(&format!(
                "teardown: {what}: not described for {} s after its deletion was accepted: gone",
                runner.settle.as_secs()
            ));
            return Ok(Outcome::Deleted);
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::CommandFailed,
                format!(
                    "{what} not confirmed gone within {} s (last seen: {last}{refused})",
                    runner.settle.as_secs()
                ),
            ));
        }
        (runner.log)(&format!("teardown: {what}: {last}; looking again"));
        runner.pause(runner.poll.min(Duration::from_secs(15)))?;
    }
}

/// Run a describe: its JSON, or None on NotFound.
fn describe(runner: &Runner, cmd: &CloudCommand) -> Result<Option<serde_json::Value>> {
    let out = runner.run_raw(cmd)?;
    if !out.success() {
        if classify(&out.stderr) == Failure::NotFound {
            return Ok(None);
        }
        return Err(failure_error(cmd, &out));
    }
    serde_json::from_str(&out.stdout).map(Some).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("`{}` printed no JSON: {e}", cmd.name()),
        )
    })
}

/// `aws ec2 describe-instances --instance-ids=ID`.
pub fn describe_instance(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-instances",
        vec![format!("--instance-ids={id}")],
        region,
        true,
    )
}

/// `aws ec2 describe-images --image-ids=ID`.
pub fn describe_image(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-images",
        vec![format!("--image-ids={id}")],
        region,
        true,
    )
}

/// `aws ec2 describe-snapshots --snapshot-ids=ID`.
pub fn describe_snapshot(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-snapshots",
        vec![format!("--snapshot-ids={id}")],
        region,
        true,
    )
}

/// An instance's `State.Name` from `describe-instances` (documented
/// values: pending, running, shutting-down, terminated, stopping,
/// stopped).
fn instance_seen(v: Option<serde_json::Value>) -> Seen {
    let Some(v) = v else { return Seen::Absent };
    let state = v["Reservations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["Instances"].as_array().into_iter().flatten())
        .find_map(|i| i["State"]["Name"].as_str().map(str::to_string));
    match state.as_deref() {
        None => Seen::Absent,
        Some("terminated") => Seen::Ended,
        Some("shutting-down") => Seen::Going("shutting-down".into()),
        Some(s) => Seen::Present(s.to_string()),
    }
}

/// Terminate instance `id` and see it `terminated`.
pub(crate) fn instance(
    runner: &Runner,
    id: &str,
    region: Option<&str>,
    created_unix: u64,
) -> Result<Outcome> {
    let look = |r: &Runner| describe(r, &describe_instance(id, region)).map(instance_seen);
    confirm(
        runner,
        &format!("instance {id}"),
        created_unix,
        Afterwards::StaysDescribed,
        &aws::terminate(id, region),
        &look,
    )
}

/// Deregister AMI `id` and see it no longer described.
pub(crate) fn image(
    runner: &Runner,
    id: &str,
    region: Option<&str>,
    created_unix: u64,
) -> Result<Outcome> {
    let look = |r: &Runner| {
        Ok(match describe(r, &describe_image(id, region))? {
            None => Seen::Absent,
            Some(v) => match v["Images"].as_array().and_then(|a| a.first()) {
                None => Seen::Absent,
                Some(i) => match i["State"].as_str().unwrap_or("available") {
                    "deregistered" => Seen::Ended,
                    s => Seen::Present(s.to_string()),
                },
            },
        })
    };
    confirm(
        runner,
        &format!("AMI {id}"),
        created_unix,
        Afterwards::Vanishes,
        &aws::deregister(id, region),
        &look,
    )
}

/// Delete snapshot `id` and see it no longer described.
pub(crate) fn snapshot(
    runner: &Runner,
    id: &str,
    region: Option<&str>,
    created_unix: u64,
) -> Result<Outcome> {
    let look = |r: &Runner| {
        Ok(match describe(r, &describe_snapshot(id, region))? {
            None => Seen::Absent,
            Some(v) => match v["Snapshots"].as_array().and_then(|a| a.first()) {
                None => Seen::Absent,
                Some(s) => Seen::Present(s["State"].as_str().unwrap_or("present").to_string()),
            },
        })
    };
    confirm(
        runner,
        &format!("snapshot {id}"),
        created_unix,
        Afterwards::Vanishes,
        &aws::delete_snapshot(id, region),
        &look,
    )
}

// ------------------------------------------------------------- GCP ----
//
// Compute Engine deletions are long-running operations; gcloud waits
// for the operation, but the resource can still be described while it
// goes (an instance `STOPPING`, an image `DELETING`: the `status` values
// of the Compute API's Instance and Image resources). Teardown describes
// until the describe answers NotFound. Google documents no eventual
// consistency that would make a NotFound untrustworthy \[U\], so a
// NotFound is believed at once (the resource is journaled with time 0);
// what confirmation adds is that an accepted delete is followed by
// seeing the resource gone.

/// `gcloud compute instances describe NAME --format=json`.
pub fn gcp_describe_instance(name: &str, zone: &str, project: &str) -> CloudCommand {
    CloudCommand::new(
        "gcloud",
        [
            "compute".to_string(),
            "instances".into(),
            "describe".into(),
            name.to_string(),
            format!("--project={project}"),
            format!("--zone={zone}"),
            "--format=json".into(),
        ],
    )
}

/// `gcloud compute images describe NAME --format=json`.
pub fn gcp_describe_image(name: &str, project: &str) -> CloudCommand {
    CloudCommand::new(
        "gcloud",
        [
            "compute".to_string(),
            "images".into(),
            "describe".into(),
            name.to_string(),
            format!("--project={project}"),
            "--format=json".into(),
        ],
    )
}

/// A described GCP resource's `status`: `going` (STOPPING, DELETING)
/// means its deletion is under way (wait, do not delete again).
fn gcp_seen(v: Option<serde_json::Value>, going: &str) -> Seen {
    let Some(v) = v else { return Seen::Absent };
    match v["status"].as_str().unwrap_or("present") {
        s if s == going => Seen::Going(s.to_string()),
        s => Seen::Present(s.to_string()),
    }
}

/// Delete instance `name` and see it no longer described.
pub(crate) fn gcp_instance(
    runner: &Runner,
    name: &str,
    zone: &str,
    project: &str,
) -> Result<Outcome> {
    let look = |r: &Runner| {
        describe(r, &gcp_describe_instance(name, zone, project)).map(|v| gcp_seen(v, "STOPPING"))
    };
    confirm(
        runner,
        &format!("instance {name}"),
        0,
        Afterwards::Vanishes,
        &crate::gcp::delete_instance(name, zone, project),
        &look,
    )
}

/// Delete image `name` and see it no longer described.
pub(crate) fn gcp_image(runner: &Runner, name: &str, project: &str) -> Result<Outcome> {
    let look = |r: &Runner| {
        describe(r, &gcp_describe_image(name, project)).map(|v| gcp_seen(v, "DELETING"))
    };
    confirm(
        runner,
        &format!("image {name}"),
        0,
        Afterwards::Vanishes,
        &crate::gcp::delete_image(name, project),
        &look,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_states_read_as_documented() {
        let v = |s: &str| {
            Some(
                serde_json::json!({"Reservations": [{"Instances": [{"InstanceId": "i-1", "State": {"Code": 48, "Name": s}}]}]}),
            )
        };
        assert_eq!(instance_seen(v("terminated")), Seen::Ended);
        assert_eq!(
            instance_seen(v("shutting-down")),
            Seen::Going("shutting-down".into())
        );
        assert_eq!(instance_seen(v("running")), Seen::Present("running".into()));
        assert_eq!(instance_seen(None), Seen::Absent);
        let g = |s: &str| Some(serde_json::json!({"name": "x", "status": s}));
        assert_eq!(
            gcp_seen(g("STOPPING"), "STOPPING"),
            Seen::Going("STOPPING".into())
        );
        assert_eq!(
            gcp_seen(g("RUNNING"), "STOPPING"),
            Seen::Present("RUNNING".into())
        );
        assert_eq!(gcp_seen(None, "DELETING"), Seen::Absent);
        assert_eq!(
            instance_seen(Some(serde_json::json!({"Reservations": []}))),
            Seen::Absent
        );
    }
}
