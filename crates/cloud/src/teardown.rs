//! Remove what a journal lists, newest first (instance, image/AMI,
//! snapshot, import task, object; on Azure VM, NIC, vnet, disk, blob). Idempotent: a resource already gone
//! counts as removed, deleted entries are skipped, and every outcome is
//! written back to the journal.

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::aws;
use crate::azure;
use crate::command::{classify, failure_error, CloudCommand, Failure, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::gcp;
use crate::journal::{Journal, Resource, State};
use crate::names::{self, Rule};
use crate::settle;

/// Ids a CLI listed (by tag, name or description), each checked against
/// its syntax before any is given to a delete command: one that is not
/// refuses the whole list.
fn listed(ids: Vec<String>, what: &str, rule: fn(&str) -> Result<(), Rule>) -> Result<Vec<String>> {
    for id in &ids {
        if let Err(why) = rule(id) {
            return Err(Error::new(
                ErrorKind::BadOutput,
                format!("{what} listed {id:?}, which is {why}: nothing deleted from that list"),
            ));
        }
    }
    Ok(ids)
}

/// What teardown did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeardownReport {
    /// Resources it deleted.
    pub deleted: Vec<String>,
    /// Resources that were already gone.
    pub already_gone: Vec<String>,
    /// Resources it could not delete, with why.
    pub failed: Vec<(String, String)>,
}

impl TeardownReport {
    /// Nothing left behind.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

/// How a resource left.
pub(crate) enum Outcome {
    /// Deleted now.
    Deleted,
    /// Already gone.
    Gone,
}

/// Run a delete; NotFound means already gone.
fn delete(runner: &Runner, cmd: &CloudCommand) -> Result<Outcome> {
    let out = runner.run_raw(cmd)?;
    if out.success() {
        return Ok(Outcome::Deleted);
    }
    if classify(&out.stderr) == Failure::NotFound {
        return Ok(Outcome::Gone);
    }
    Err(failure_error(cmd, &out))
}

/// Each of `ids` removed by `one`: Deleted if any was.
fn each(ids: &[String], mut one: impl FnMut(&str) -> Result<Outcome>) -> Result<Outcome> {
    let mut any = false;
    for id in ids {
        if let Outcome::Deleted = one(id)? {
            any = true;
        }
    }
    Ok(if any { Outcome::Deleted } else { Outcome::Gone })
}

/// Remove `r`, journaled created at `created_unix` (AWS and GCP
/// deletions are confirmed by describing: [`crate::settle`]).
fn remove(
    runner: &Runner,
    r: &Resource,
    created_unix: u64,
    journaled_snapshots: &[String],
) -> Result<Outcome> {
    if let Some(cmd) = azure::delete(r) {
        return delete(runner, &cmd);
    }
    match r {
        Resource::GcpInstance {
            name,
            zone,
            project,
        } => settle::gcp_instance(runner, name, zone, project),
        Resource::GcpImage { name, project } => settle::gcp_image(runner, name, project),
        Resource::GcsObject {
            uri,
            project,
            gsutil,
        } => delete(runner, &gcp::delete_object(uri, project, *gsutil)),
        Resource::S3Object { uri, region } => {
            delete(runner, &aws::delete_object(uri, region.as_deref()))
        }
        Resource::AwsSnapshot { id, region } => {
            settle::snapshot(runner, id, region.as_deref(), created_unix)
        }
        Resource::AwsInstance { id, name, region } => {
            let region = region.as_deref();
            // Also by tag: a launch retried after a transient error may
            // have started a second instance.
            let mut ids: Vec<String> = id.iter().cloned().collect();
            let out = runner.run(&aws::find_instances(name, region))?.stdout;
            for found in listed(
                aws::parse_instance_ids(&out)?,
                "aws ec2 describe-instances",
                names::aws_instance_id,
            )? {
                if !ids.contains(&found) {
                    ids.push(found);
                }
            }
            each(&ids, |i| settle::instance(runner, i, region, created_unix))
        }
        Resource::AwsImage { id, name, region } => {
            let region = region.as_deref();
            let ids = match id {
                Some(id) => vec![id.clone()],
                None => listed(
                    aws::parse_image_ids(&runner.run(&aws::find_images(name, region))?.stdout)?,
                    "aws ec2 describe-images",
                    names::aws_image_id,
                )?,
            };
            each(&ids, |i| settle::image(runner, i, region, created_unix))
        }
        Resource::AwsImportTask {
            id,
            description,
            region,
        } => {
            let region = region.as_deref();
            // Also by description: a retried import-snapshot may have
            // started a second task.
            let mut ids: Vec<String> = id.iter().cloned().collect();
            let tasks = runner.run(&aws::list_imports(region))?.stdout;
            for found in listed(
                aws::parse_import_ids(&tasks, description)?,
                "aws ec2 describe-import-snapshot-tasks",
                names::aws_import_task_id,
            )? {
                if !ids.contains(&found) {
                    ids.push(found);
                }
            }
            let mut any = false;
            for id in ids {
                if let Outcome::Deleted = remove_import(runner, &id, region, journaled_snapshots)? {
                    any = true;
                }
            }
            Ok(if any { Outcome::Deleted } else { Outcome::Gone })
        }
        Resource::AzureBlob { .. }
        | Resource::AzureDisk { .. }
        | Resource::AzureVnet { .. }
        | Resource::AzureNic { .. }
        | Resource::AzureVm { .. } => Ok(Outcome::Gone), // handled above
    }
}

/// Cancel an import task, or delete the snapshot it made.
fn remove_import(
    runner: &Runner,
    id: &str,
    region: Option<&str>,
    journaled_snapshots: &[String],
) -> Result<Outcome> {
    // The task may finish between the describe and the cancel (the
    // provider keeps working after a crash): look again.
    for _ in 0..2 {
        let Some(st) = import_status(runner, id, region)? else {
            return Ok(Outcome::Gone);
        };
        match st.status.as_str() {
            // Still running: cancel it (it then leaves no snapshot).
            "active" | "pending" => match delete(runner, &aws::cancel_import(id, region)) {
                Ok(o) => return Ok(o),
                Err(e) if e.message.contains("IncorrectState") => continue,
                Err(e) => return Err(e),
            },
            // Done: the snapshot may not be journaled yet (crash just
            // after completion), so delete it from here too.
            "completed" => {
                return match st.snapshot_id {
                    // Its own journal entry deals with it.
                    Some(s) if journaled_snapshots.contains(&s) => Ok(Outcome::Gone),
                    Some(s) => {
                        let s = listed(
                            vec![s],
                            "aws ec2 describe-import-snapshot-tasks",
                            names::aws_snapshot_id,
                        )?;
                        settle::snapshot(runner, &s[0], region, 0)
                    }
                    None => Ok(Outcome::Gone),
                };
            }
            _ => return Ok(Outcome::Gone),
        }
    }
    Err(Error::new(
        ErrorKind::CommandFailed,
        format!("import task {id} could neither be cancelled nor found completed"),
    ))
}

/// The task's status, or None if it does not exist.
fn import_status(
    runner: &Runner,
    id: &str,
    region: Option<&str>,
) -> Result<Option<aws::ImportStatus>> {
    let cmd = aws::describe_import(id, region);
    let out = runner.run_raw(&cmd)?;
    if !out.success() {
        if classify(&out.stderr) == Failure::NotFound {
            return Ok(None);
        }
        return Err(failure_error(&cmd, &out));
    }
    aws::parse_import_status(&out.stdout).map(Some)
}

/// Tear down every live resource of `journal` but the kept
/// (published) ones, newest first, holding the journal's lock throughout
/// (so a concurrent run cannot add to it).
pub fn teardown(journal: &Mutex<Journal>, runner: &Runner) -> TeardownReport {
    teardown_with(journal, runner, false)
}

fn teardown_with(journal: &Mutex<Journal>, runner: &Runner, kept_too: bool) -> TeardownReport {
    let mut j = journal.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = TeardownReport::default();
    let journaled_snapshots: Vec<String> = j
        .data()
        .resources
        .iter()
        .filter_map(|e| match &e.resource {
            Resource::AwsSnapshot { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mut live = j.live();
    if !kept_too {
        live.retain(|(i, _)| j.data().resources[*i].state != State::Kept);
    }
    live.reverse();
    for (index, resource) in live {
        let name = resource.to_string();
        let created_unix = j.data().resources[index].updated_unix;
        (runner.log)(&format!("teardown: deleting {name}"));
        // Checked when journaled and when the journal was opened; once
        // more here, next to the commands.
        let removed = resource
            .check()
            .map_err(|f| Error::new(ErrorKind::InvalidInput, format!("refused: {f}")))
            .and_then(|()| remove(runner, &resource, created_unix, &journaled_snapshots));
        let (state, err) = match removed {
            Ok(Outcome::Deleted) => {
                report.deleted.push(name);
                (State::Deleted, None)
            }
            Ok(Outcome::Gone) => {
                report.already_gone.push(name);
                (State::Deleted, None)
            }
            Err(e) => {
                (runner.log)(&format!("teardown: could not delete {name}: {e}"));
                report.failed.push((name, e.message.clone()));
                (State::DeleteFailed, Some(e.message))
            }
        };
        if let Err(e) = j.update(index, resource, state, err) {
            (runner.log)(&format!("teardown: {e}"));
        }
    }
    report
}

/// Finish the teardown recorded in the journal at `path` (after a crash).
/// The journal is checked whole first ([`Journal::open`]): one that fails
/// is an error and nothing is run.
pub fn teardown_journal(path: &Path, runner: &Runner) -> Result<TeardownReport, Error> {
    let j = Mutex::new(Journal::open(path)?);
    Ok(teardown_with(&j, runner, true))
}

/// The commands that would remove each live resource of a journal, for
/// `--keep` instructions.
pub fn removal_commands(journal: &Journal) -> Vec<String> {
    let mut live = journal.live();
    live.reverse();
    // A completed import task leaves only its (journaled) snapshot.
    let has_snapshot = live
        .iter()
        .any(|(_, r)| matches!(r, Resource::AwsSnapshot { .. }));
    live.iter()
        .filter(|(_, r)| !(has_snapshot && matches!(r, Resource::AwsImportTask { .. })))
        .map(|(_, r)| match r {
            Resource::GcpInstance {
                name,
                zone,
                project,
            } => gcp::delete_instance(name, zone, project).line(),
            Resource::GcpImage { name, project } => gcp::delete_image(name, project).line(),
            Resource::GcsObject {
                uri,
                project,
                gsutil,
            } => gcp::delete_object(uri, project, *gsutil).line(),
            Resource::S3Object { uri, region } => aws::delete_object(uri, region.as_deref()).line(),
            Resource::AwsSnapshot { id, region } => {
                aws::delete_snapshot(id, region.as_deref()).line()
            }
            Resource::AwsInstance {
                id: Some(id),
                region,
                ..
            } => aws::terminate(id, region.as_deref()).line(),
            Resource::AwsInstance {
                id: None,
                name,
                region,
            } => aws::find_instances(name, region.as_deref()).line(),
            Resource::AwsImage {
                id: Some(id),
                region,
                ..
            } => aws::deregister(id, region.as_deref()).line(),
            Resource::AwsImage {
                id: None,
                name,
                region,
            } => aws::find_images(name, region.as_deref()).line(),
            Resource::AwsImportTask {
                id: Some(id),
                region,
                ..
            } => aws::cancel_import(id, region.as_deref()).line(),
            Resource::AwsImportTask {
                id: None, region, ..
            } => aws::list_imports(region.as_deref()).line(),
            r => azure::delete(r).map(|c| c.line()).unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_azure_resources_are_removed_newest_first() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::create(&t.path().join("resources.json"), "azure", "r").unwrap();
        let target = crate::azure::AzureTarget {
            resource_group: "rg".into(),
            location: "eastus".into(),
            storage_account: "acct".into(),
            storage_account_id: None,
            labels: vec![],
            container: "vhds".into(),
            vm_size: "Standard_B1s".into(),
            firmware: cloudimg_disk::vocab::Firmware::Bios,
            name: "n".into(),
        };
        for r in target.resources() {
            j.add(r, State::Created).unwrap();
        }
        assert_eq!(
            removal_commands(&j),
            [
                "az vm delete --resource-group rg --name n --yes",
                "az network nic delete --resource-group rg --name n-nic",
                "az network vnet delete --resource-group rg --name n-vnet",
                "az disk delete --resource-group rg --name n-osdisk --yes",
                "az storage blob delete --account-name acct --container-name vhds --name n.vhd --auth-mode login",
            ]
        );
        assert_eq!(
            j.live()[0].1.to_string(),
            "blob https://acct.blob.core.windows.net/vhds/n.vhd"
        );
    }
}
