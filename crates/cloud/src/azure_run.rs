//! The Azure run's steps that talk back and forth with `az`: reading
//! the defaults (location, storage account id), importing the disk, and
//! reading the serial log through boot diagnostics.

use std::path::Path;

use crate::azure::{invalid, parse_generation, parse_id, parse_json, AzureTarget};
use crate::command::{CloudCommand, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{import_error, Session};
use crate::journal::Resource;

/// `az boot-diagnostics` answers that mean "no log yet", not failure:
/// before the VM has written any, the CLI says "Please enable boot
/// diagnostics." (azure-cli's `get_boot_log` raises it when the instance
/// view has no serial log URI yet) \[U\] for get-boot-log-uris.
const NOT_YET: [&str; 3] = [
    "Please enable boot diagnostics",
    "ErrorCode:BlobNotFound",
    "No console log available",
];

impl AzureTarget {
    /// One look at the serial log: its text, or None when there is none
    /// yet.
    pub(crate) fn read_boot_log(&self, s: &Session<'_>, file: &Path) -> Result<Option<String>> {
        let cmd = self.boot_log_uris();
        let out = s.runner.run_raw(&cmd)?;
        let not_yet = |stderr: &str| NOT_YET.iter().any(|p| stderr.contains(p));
        if !out.success() {
            if not_yet(&out.stderr) {
                return Ok(None);
            }
            return Err(crate::command::failure_error(&cmd, &out));
        }
        let v = parse_json(&out.stdout, "vm boot-diagnostics get-boot-log-uris")?;
        let Some(url) = v["serialConsoleLogBlobUri"]
            .as_str()
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let dl = Self::download_log(url, &file.display().to_string());
        let out = s.runner.run_raw(&dl)?;
        if !out.success() {
            if not_yet(&out.stderr) {
                return Ok(None);
            }
            return Err(crate::command::failure_error(&dl, &out));
        }
        let bytes = std::fs::read(file).map_err(|e| Error::io("reading", file, e))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// `az group show` (its location is the run's default).
    pub fn group_show(&self) -> CloudCommand {
        CloudCommand::new(
            "az",
            [
                "group",
                "show",
                "--name",
                &self.resource_group,
                "--output",
                "json",
            ],
        )
    }

    /// `az storage account show` (its id and location).
    pub fn account_show(&self) -> CloudCommand {
        CloudCommand::new(
            "az",
            [
                "storage",
                "account",
                "show",
                "--name",
                &self.storage_account,
                "--output",
                "json",
            ],
        )
    }

    /// This target with the resource group's location where none was
    /// given and the storage account's id, both read with az; the
    /// storage account must be in that location (Azure makes a disk only
    /// from a blob in its region).
    pub fn with_group(&self, runner: &Runner) -> Result<AzureTarget> {
        let mut t = self.clone();
        let group = self.group_show();
        let g = parse_json(&runner.run(&group)?.stdout, "group show")?;
        if t.location.is_empty() {
            t.location = g["location"].as_str().unwrap_or_default().to_string();
        }
        let acct = self.account_show();
        let a = parse_json(&runner.run(&acct)?.stdout, "storage account show")?;
        t.storage_account_id = a["id"].as_str().map(str::to_string);
        let at = a["location"].as_str().unwrap_or_default();
        if !at.is_empty() && !at.eq_ignore_ascii_case(&t.location) {
            return Err(invalid(format!(
                "storage account {} is in {at}, the run's location is {}: Azure makes a disk only from a blob in its own region; give --location {at} or use a storage account in {}",
                self.storage_account, t.location, t.location
            )));
        }
        Ok(t)
    }

    /// Make the managed disk from the blob (journaled as `disk`) and
    /// check it is of the generation asked for. Returns its id.
    pub(crate) fn import(&self, s: &Session<'_>, disk: Resource) -> Result<String> {
        let (_, out) = s
            .create(disk, &self.create_disk())
            .map_err(|e| import_error("Azure", e))?;
        let disk_id = parse_id(&out, "disk create")?;
        let want = self.generation().api_name();
        match parse_generation(&out) {
            Some(g) if g != want => Err(Error::new(
                ErrorKind::BadOutput,
                format!("az disk create made a {g} disk, {want} was asked for"),
            )),
            _ => Ok(disk_id),
        }
    }
}
