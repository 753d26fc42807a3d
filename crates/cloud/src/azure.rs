//! Microsoft Azure through the `az` CLI, by the specialized-disk route:
//! the fixed VHD uploaded as a page blob, a managed disk made from the
//! blob, one VM that attaches that disk as its OS disk, its serial
//! console read through boot diagnostics.
//!
//! Why not a managed image: `az vm create --image` treats an image as
//! generalized and waits for the guest to report provisioning through the
//! Azure agent; capOS has none, so the deployment would end in
//! `OSProvisioningTimedOut`. A VM whose OS disk is attached
//! (`--attach-os-disk`) is specialized: nothing is provisioned, no admin
//! user or SSH key is asked for.
//!
//! The commands: `az storage blob upload --type page`, `az disk create
//! --source <blob URL> --os-type Linux --hyper-v-generation V2|V1` (V2
//! boots UEFI, V1 BIOS), `az network vnet create` and `az network nic
//! create` (named here, so that teardown never has to guess what `az vm
//! create` would have made), `az vm create --attach-os-disk --nics
//! --boot-diagnostics-storage`, `az vm boot-diagnostics get-boot-log-uris`
//! and `az storage blob download --blob-url` of the serial log's SAS URI
//! until the landmark (not `get-boot-log`, which lists the storage
//! account's keys and so fails where `--auth-mode login` is the only
//! access); teardown in reverse creation order: `az vm
//! delete`, `az network nic delete`, `az network vnet delete`, `az disk
//! delete`, `az storage blob delete`. The resource group, storage account
//! and container must exist; cloudimg creates nothing else. Every name is
//! derived from the run's name, so a create retried after a lost answer
//! updates the same resource (ARM's PUT is create-or-update) instead of
//! making a second one.
//!
//! Before anything is uploaded, the artifact is decoded in full by the
//! disk crate's verifier, and its report must say: a fixed VHD (Azure
//! takes no dynamic VHD and no VHDX: `Provider::accepts`), no findings
//! (footer cookie and checksum, a file of exactly the virtual size plus
//! the 512-byte footer, ...), and a virtual size that is a whole number
//! of MiB from 20 MiB to 32 TiB ([`size_rule`]; reference §3: "All VHDs
//! on Azure must have a virtual size aligned to 1 MB"; upload sizes from
//! 20 MiB + 512 to 32 TiB + 512).
//!
//! # What was checked, and what not
//!
//! Confirmed from the `az vm boot-diagnostics` reference
//! (learn.microsoft.com/cli/azure/vm/boot-diagnostics): `get-boot-log`
//! with `--name`/`--resource-group`. Confirmed from Microsoft's own CLI
//! sample (Azure-Samples/azure-cli-samples,
//! create-vm-attach-existing-managed-os-disk.sh, used by the
//! "Create a VM by attaching a managed disk as OS disk" docs page, which
//! lists "a managed disk that was created from a specialized VHD file"):
//! `az vm create --attach-os-disk <disk> --os-type linux` with no admin
//! user, password or SSH key; and from the API reference that
//! `createOption: Attach` "is used when you are using a specialized disk".
//! The `az vm create` reference page itself was not retrieved.
//!
//! Seen only in Microsoft's how-to pages, samples and third-party
//! scripts, not in the reference pages: `az storage blob upload
//! --account-name --container-name --type page --file --name`; `az disk
//! create --source <VHD blob URL>` (sample create-managed-data-disks-from-vhd.sh)
//! with `--os-type` and `--hyper-v-generation`; `az vm create
//! --boot-diagnostics-storage <account>`.
//!
//! Issue 14: confirmed from the az reference that `az vm boot-diagnostics
//! get-boot-log-uris` exists ("Get SAS URIs for a virtual machine's boot
//! diagnostic") and from the REST reference that it is
//! `retrieveBootDiagnosticsData` ("retrieve SAS URIs for a virtual
//! machine's boot diagnostic logs", 120 minutes by default). Not
//! confirmed (\[U\]): that it answers SAS URIs for a VM whose boot
//! diagnostics use a custom storage account (the run's
//! `--boot-diagnostics-storage`), and its JSON keys
//! (`serialConsoleLogBlobUri`); `az storage blob download --blob-url`
//! with a SAS URL and no other credentials; that `get-boot-log-uris` says
//! "Please enable boot diagnostics." before a log exists (azure-cli's
//! `get-boot-log` does); that `az group show` / `az storage account show`
//! print `location` and `id` (the ARM resource shapes); the wording of
//! the region mismatch refusal the stand-in prints.
//!
//! `--overwrite` and `--auth-mode login` on the blob commands parse and
//! work with az 2.91 against Azurite's OAuth check (logged in to a local
//! Azure AD; `real_cli_azure::blob_steps_run_verbatim_with_login_against_azurite`).
//! Not confirmed (\[U\]): the Azure RBAC role `--auth-mode login` needs
//! on the account (Storage Blob Data Contributor is expected); whether `az disk
//! create --source <blob URL>` also needs `--source-storage-account-id`
//! (documented for a blob in another subscription); that `get-boot-log`
//! prints the serial log as plain text on stdout, and what it prints
//! before the VM has written any (the flow treats a `BlobNotFound` answer
//! as "nothing yet"); the exact wording of the service errors the
//! stand-in prints (`ERROR: (Code) Message` then `Code:`/`Message:`
//! lines, exit 1; `ResourceNotFound` with exit 3), and of the VHD
//! rejections by `az disk create`; whether `az vm delete` of a VM that
//! does not exist fails with `ResourceNotFound` or succeeds (both count
//! as gone); the JSON shapes of `az network vnet create` (`newVNet`) and
//! `az network nic create` (`NewNIC`) and of `az vm create` (`id`,
//! `powerState`; the parser takes `id`, else `name`, at the top or under
//! those keys); that `--nics` combines with `--attach-os-disk`; that
//! `az vm delete` waits until the VM is gone and leaves an attached OS
//! disk in place (its delete option defaults to Detach, so the disk is
//! deleted on its own, after the VM); the wording of ARM's in-use
//! refusals the stand-in applies (`NicInUse`,
//! `InUseSubnetCannotBeDeleted`, a disk attached to a VM).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use cloudimg_disk::disk::MIB;
use cloudimg_disk::verify::Report;
// Azure's size rules, stated once in the disk crate.
use cloudimg_disk::vocab::{Firmware, Provider, AZURE_MAX, AZURE_MIN, AZURE_SIZE_UNIT};

use crate::command::{CloudCommand, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::Session;
use crate::flow::{ph, Target};
use crate::journal::Resource;
use crate::preflight::Identity;
use crate::provider::{ProviderFlow, Step};

/// The default VM size (Gen1 and Gen2).
pub const DEFAULT_VM_SIZE: &str = "Standard_B1s";
/// The Hyper-V generation, Azure's name for the firmware: Gen2 boots
/// UEFI, Gen1 BIOS (reference §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Generation {
    /// `V1`: BIOS.
    V1,
    /// `V2`: UEFI.
    V2,
}

impl Generation {
    /// `V1` or `V2`.
    pub fn api_name(self) -> &'static str {
        match self {
            Generation::V1 => "V1",
            Generation::V2 => "V2",
        }
    }
    /// The generation that boots `firmware`.
    pub fn of(firmware: Firmware) -> Generation {
        match firmware {
            Firmware::Bios => Generation::V1,
            Firmware::Uefi => Generation::V2,
        }
    }
    /// The firmware it boots.
    pub fn firmware(self) -> Firmware {
        match self {
            Generation::V1 => Firmware::Bios,
            Generation::V2 => Firmware::Uefi,
        }
    }
}

/// Where and under which names an Azure run works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureTarget {
    /// The resource group (exists).
    pub resource_group: String,
    /// The location of the disk, network and VM; empty: the resource
    /// group's (`az group show`). It must be the storage account's:
    /// Azure makes a disk only from a blob in its own region.
    pub location: String,
    /// The storage account's resource id, for `disk create
    /// --source-storage-account-id` (None until the preflight has read it
    /// with `az storage account show`).
    pub storage_account_id: Option<String>,
    /// The storage account (exists; also holds boot diagnostics).
    pub storage_account: String,
    /// The blob container (exists).
    pub container: String,
    /// The VM size.
    pub vm_size: String,
    /// UEFI (Hyper-V generation V2) or BIOS (V1).
    pub firmware: Firmware,
    /// Tags (`KEY=VALUE`) of the managed disk (`--publish` keeps it).
    pub labels: Vec<(String, String)>,
    /// The VM's name; the blob is `NAME.vhd`, the OS disk `NAME-osdisk`,
    /// the network `NAME-vnet` and `NAME-nic`.
    pub name: String,
}

pub(crate) fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

impl AzureTarget {
    /// The Hyper-V generation that boots the target's firmware.
    pub fn generation(&self) -> Generation {
        Generation::of(self.firmware)
    }

    /// Check names against Azure's rules.
    pub fn validate(&self) -> Result<()> {
        let n = &self.name;
        let ok = (1..=64).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_alphabetic())
            && !n.ends_with('-')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(invalid(format!(
                "Azure resource name {n:?} is invalid: use 1-64 letters, digits and '-', starting with a letter"
            )));
        }
        let a = &self.storage_account;
        if !(3..=24).contains(&a.len())
            || !a
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(invalid(format!(
                "Azure storage account {a:?} is invalid: use 3-24 lowercase letters and digits"
            )));
        }
        let c = &self.container;
        if !(3..=63).contains(&c.len())
            || !c
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || c.starts_with('-')
            || c.ends_with('-')
            || c.contains("--")
        {
            return Err(invalid(format!(
                "Azure container {c:?} is invalid: use 3-63 lowercase letters, digits and single '-'"
            )));
        }
        let g = &self.resource_group;
        if g.is_empty()
            || g.len() > 90
            || g.ends_with('.')
            || !g
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
        {
            return Err(invalid(format!(
                "Azure resource group {g:?} is invalid: use 1-90 letters, digits and -_.() not ending in '.'"
            )));
        }
        let location = if self.location.is_empty() {
            "unset" // the resource group's, checked once read
        } else {
            &self.location
        };
        for (what, v) in [("location", location), ("VM size", &self.vm_size)] {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!("Azure {what} {v:?} is invalid")));
            }
        }
        crate::names::labels(&self.labels)?;
        crate::journal::check_names(&self.resources())
    }

    /// `NAME.vhd`.
    pub fn blob_name(&self) -> String {
        format!("{}.vhd", self.name)
    }

    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME.vhd`.
    pub fn blob_url(&self) -> String {
        format!(
            "https://{}.blob.core.windows.net/{}/{}",
            self.storage_account,
            self.container,
            self.blob_name()
        )
    }

    /// The managed OS disk: `NAME-osdisk`.
    pub fn os_disk(&self) -> String {
        format!("{}-osdisk", self.name)
    }

    /// The virtual network: `NAME-vnet` (subnet `default`).
    pub fn vnet(&self) -> String {
        format!("{}-vnet", self.name)
    }

    /// The network interface: `NAME-nic`.
    pub fn nic(&self) -> String {
        format!("{}-nic", self.name)
    }

    fn group_cmd(&self, what: &[&str], rest: &[&str]) -> CloudCommand {
        let mut a: Vec<String> = what.iter().map(|s| s.to_string()).collect();
        a.extend(
            ["--resource-group", &self.resource_group]
                .iter()
                .chain(rest)
                .map(|s| s.to_string()),
        );
        a.extend(["--output".to_string(), "json".to_string()]);
        CloudCommand::new("az", a)
    }

    /// Upload the VHD as a page blob.
    pub fn upload(&self, artifact: &str) -> CloudCommand {
        CloudCommand::new(
            "az",
            [
                "storage",
                "blob",
                "upload",
                "--account-name",
                &self.storage_account,
                "--container-name",
                &self.container,
                "--name",
                &self.blob_name(),
                "--file",
                artifact,
                "--type",
                "page",
                "--overwrite",
                "--auth-mode",
                "login",
                "--output",
                "json",
            ],
        )
    }

    /// Make the managed OS disk from the blob (the import). The storage
    /// account is named by its id: without `--source-storage-account-id`
    /// az takes the account to be in the disk's resource group (the az
    /// reference: "Required when source blob is in a different
    /// subscription"; \[U\] for a different group of the same one).
    pub fn create_disk(&self) -> CloudCommand {
        let account_id = self
            .storage_account_id
            .clone()
            .unwrap_or_else(|| crate::flow::ph("storage account id"));
        self.group_cmd(
            &["disk", "create"],
            &[
                "--name",
                &self.os_disk(),
                "--location",
                &self.location,
                "--source",
                &self.blob_url(),
                "--source-storage-account-id",
                &account_id,
                "--os-type",
                "Linux",
                "--hyper-v-generation",
                self.generation().api_name(),
            ],
        )
        .with_tags(&self.labels)
    }

    /// The virtual network with one subnet, `default`.
    pub fn create_vnet(&self) -> CloudCommand {
        self.group_cmd(
            &["network", "vnet", "create"],
            &[
                "--name",
                &self.vnet(),
                "--location",
                &self.location,
                "--address-prefixes",
                "10.0.0.0/16",
                "--subnet-name",
                "default",
                "--subnet-prefixes",
                "10.0.0.0/24",
            ],
        )
    }

    /// The NIC in that subnet: no public IP, no NSG.
    pub fn create_nic(&self) -> CloudCommand {
        self.group_cmd(
            &["network", "nic", "create"],
            &[
                "--name",
                &self.nic(),
                "--location",
                &self.location,
                "--vnet-name",
                &self.vnet(),
                "--subnet",
                "default",
            ],
        )
    }

    /// Boot the VM with the disk attached as its (specialized) OS disk,
    /// boot diagnostics in the storage account.
    pub fn create_vm(&self) -> CloudCommand {
        self.group_cmd(
            &["vm", "create"],
            &[
                "--name",
                &self.name,
                "--location",
                &self.location,
                "--attach-os-disk",
                &self.os_disk(),
                "--os-type",
                "Linux",
                "--size",
                &self.vm_size,
                "--nics",
                &self.nic(),
                "--boot-diagnostics-storage",
                &self.storage_account,
            ],
        )
    }

    /// The URIs of the boot diagnostics logs: the ARM operation
    /// `retrieveBootDiagnosticsData` ("retrieve SAS URIs for a virtual
    /// machine's boot diagnostic logs"). Unlike `get-boot-log`, which
    /// lists the storage account's keys, it needs only the VM's read
    /// permission, so it works where `--auth-mode login` is the only
    /// access to storage.
    pub fn boot_log_uris(&self) -> CloudCommand {
        self.group_cmd(
            &["vm", "boot-diagnostics", "get-boot-log-uris"],
            &["--name", &self.name],
        )
    }

    /// Download the serial log at `url` to `file`: a SAS URL carries its
    /// own authorization, any other is read with the login's (`--auth-mode
    /// login`) \[U\] (`az storage blob download --blob-url`).
    pub fn download_log(url: &str, file: &str) -> CloudCommand {
        let mut a = vec![
            "storage",
            "blob",
            "download",
            "--blob-url",
            url,
            "--file",
            file,
        ];
        if !url.contains('?') {
            a.extend(["--auth-mode", "login"]);
        }
        a.extend(["--output", "none"]);
        CloudCommand::new("az", a)
    }

    /// The blob, as journaled.
    pub fn blob_resource(&self) -> Resource {
        Resource::AzureBlob {
            account: self.storage_account.clone(),
            container: self.container.clone(),
            name: self.blob_name(),
        }
    }

    /// Every resource a run creates, in creation order (blob, disk, vnet,
    /// NIC, VM).
    pub fn resources(&self) -> Vec<Resource> {
        let rg = || self.resource_group.clone();
        vec![
            self.blob_resource(),
            Resource::AzureDisk {
                resource_group: rg(),
                name: self.os_disk(),
            },
            Resource::AzureVnet {
                resource_group: rg(),
                name: self.vnet(),
            },
            Resource::AzureNic {
                resource_group: rg(),
                name: self.nic(),
            },
            Resource::AzureVm {
                resource_group: rg(),
                name: self.name.clone(),
            },
        ]
    }

    /// The teardown commands, in reverse creation order.
    pub fn teardown(&self) -> Vec<CloudCommand> {
        self.resources().iter().rev().filter_map(delete).collect()
    }
}

impl CloudCommand {
    /// `--tags KEY=VALUE ...` before the trailing `--output json`, when
    /// there are tags (az's space-separated tag list).
    fn with_tags(mut self, tags: &[(String, String)]) -> Self {
        if !tags.is_empty() {
            let at = self.args.len().saturating_sub(2);
            let mut t = vec!["--tags".to_string()];
            t.extend(tags.iter().map(|(k, v)| format!("{k}={v}")));
            self.args.splice(at..at, t);
        }
        self
    }
}

/// The command that deletes an Azure resource (None for the other
/// providers' resources).
pub fn delete(r: &Resource) -> Option<CloudCommand> {
    let in_group = |what: &[&str], rg: &str, name: &str, yes: bool| {
        let mut a: Vec<String> = what.iter().map(|s| s.to_string()).collect();
        a.extend(
            ["--resource-group", rg, "--name", name]
                .iter()
                .map(|s| s.to_string()),
        );
        if yes {
            a.push("--yes".into());
        }
        CloudCommand::new("az", a)
    };
    Some(match r {
        Resource::AzureBlob {
            account,
            container,
            name,
        } => CloudCommand::new(
            "az",
            [
                "storage",
                "blob",
                "delete",
                "--account-name",
                account,
                "--container-name",
                container,
                "--name",
                name,
                "--auth-mode",
                "login",
            ],
        ),
        Resource::AzureDisk {
            resource_group,
            name,
        } => in_group(&["disk", "delete"], resource_group, name, true),
        Resource::AzureVnet {
            resource_group,
            name,
        } => in_group(&["network", "vnet", "delete"], resource_group, name, false),
        Resource::AzureNic {
            resource_group,
            name,
        } => in_group(&["network", "nic", "delete"], resource_group, name, false),
        Resource::AzureVm {
            resource_group,
            name,
        } => in_group(&["vm", "delete"], resource_group, name, true),
        _ => return None,
    })
}

pub(crate) fn parse_json(stdout: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(stdout).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("az {what} printed no JSON: {e}"),
        )
    })
}

/// The resource id (else the name) from the JSON `az disk create`, `az
/// vm create` and the network commands print.
pub fn parse_id(stdout: &str, what: &str) -> Result<String> {
    let v = parse_json(stdout, what)?;
    // `az network vnet create` wraps it in `newVNet`, `nic create` in
    // `NewNIC`.
    let obj = ["newVNet", "NewNIC"]
        .iter()
        .find_map(|k| v.get(*k))
        .unwrap_or(&v);
    obj["id"]
        .as_str()
        .or_else(|| obj["name"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::new(ErrorKind::BadOutput, format!("az {what} output has no id")))
}

/// The disk's `hyperVGeneration` from `az disk create` (None if absent).
pub fn parse_generation(stdout: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(stdout)
        .ok()?
        .get("hyperVGeneration")?
        .as_str()
        .map(str::to_string)
}

/// size (footer excluded) that is a whole number of MiB, from 20 MiB to
/// 32 TiB. `Err` says which part is broken.
pub fn size_rule(virtual_size: Option<u64>) -> std::result::Result<(), String> {
    let Some(size) = virtual_size else {
        return Err("the verifier could not tell its virtual size".into());
    };
    if size % AZURE_SIZE_UNIT != 0 {
        return Err(format!(
            "virtual size {size} bytes is not a whole number of MiB, which Azure requires"
        ));
    }
    if size < AZURE_MIN {
        return Err(format!(
            "virtual size {size} bytes is less than Azure's minimum of {} MiB",
            AZURE_MIN / MIB
        ));
    }
    if size > AZURE_MAX {
        return Err(format!(
            "virtual size {size} bytes is more than Azure's maximum of {} TiB",
            AZURE_MAX >> 40
        ));
    }
    Ok(())
}

impl ProviderFlow for AzureTarget {
    fn provider(&self) -> Provider {
        Provider::Azure
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn boot_mode(&self) -> String {
        self.generation().api_name().into()
    }

    fn validate(&self) -> Result<()> {
        AzureTarget::validate(self)
    }

    fn clis(&self) -> Vec<&'static str> {
        vec!["az"]
    }

    fn expected_shape(&self) -> String {
        "a fixed VHD (cloudimg package --azure)".into()
    }

    fn check_rules(&self, report: &Report) -> std::result::Result<(), String> {
        size_rule(report.virtual_size)
    }

    fn publishes(&self, r: &Resource) -> bool {
        matches!(r, Resource::AzureDisk { .. })
    }

    fn resources(&self) -> Vec<Resource> {
        AzureTarget::resources(self)
    }

    fn steps(&self, artifact: &str) -> Vec<Step> {
        if self.location.is_empty() {
            let mut shown = self.clone();
            shown.location = ph("resource group location");
            return shown.steps(artifact);
        }
        vec![
            (
                "preflight (version, identity, location, storage account id)",
                vec![
                    crate::preflight::az_version(),
                    crate::preflight::az_account(),
                    self.group_show(),
                    self.account_show(),
                ],
            ),
            ("upload (page blob)", vec![self.upload(artifact)]),
            (
                "import (managed disk from the blob)",
                vec![self.create_disk()],
            ),
            ("network", vec![self.create_vnet(), self.create_nic()]),
            ("boot (OS disk attached)", vec![self.create_vm()]),
            (
                "read serial (repeated; \"Please enable boot diagnostics.\" means not yet)",
                vec![
                    self.boot_log_uris(),
                    Self::download_log(
                        &ph("serialConsoleLogBlobUri"),
                        &ph("evidence/boot-log.download"),
                    ),
                ],
            ),
            ("teardown", self.teardown()),
        ]
    }

    fn run(&self, s: &mut Session<'_>) -> Result<()> {
        let art = crate::command::path_arg(&s.opts.artifact);
        let [blob, disk, vnet, nic, vm] = <[Resource; 5]>::try_from(self.resources())
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "internal: Azure resource list"))?;
        s.create(blob, &self.upload(&art))?;
        let disk_id = self.import(s, disk)?;
        s.log(&format!("imported disk {disk_id}"));
        s.summary.image_id = Some(disk_id);
        s.create(vnet, &self.create_vnet())?;
        s.create(nic, &self.create_nic())?;
        let (_, out) = s.create(vm, &self.create_vm())?;
        s.summary.instance_id = Some(parse_id(&out, "vm create")?);
        let started = Instant::now();
        let file = s.opts.evidence_dir.join("boot-log.download");
        let mut text = String::new();
        let result = s.wait_landmark(started, |c| {
            if let Some(t) = self.read_boot_log(c, &file)? {
                text = t;
            }
            Ok(text.clone())
        });
        let _ = std::fs::remove_file(&file);
        result
    }

    fn preflight(&self, runner: &Runner) -> Result<(Identity, Option<Target>)> {
        let id = crate::preflight::az(runner)?;
        let t = self.with_group(runner)?;
        Ok((id, Some(Target::Azure(t))))
    }
}

/// The plan of an Azure run (see [`crate::plan`]).
pub type AzurePlan = crate::plan::Plan;
pub use crate::plan::{PlanCommand, PlanStep, VhdFacts};

/// Check the names and the artifact and list the commands a run would
/// execute ([`crate::plan::azure`]). Nothing is run.
pub fn plan(target: &AzureTarget, artifact: &Path) -> Result<AzurePlan> {
    crate::plan::azure(target, artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AzureTarget {
        AzureTarget {
            resource_group: "capos-rg".into(),
            location: "westeurope".into(),
            storage_account: "caposimages".into(),
            storage_account_id: None,
            labels: vec![],
            container: "vhds".into(),
            vm_size: DEFAULT_VM_SIZE.into(),
            firmware: Firmware::Uefi,
            name: "capos-test".into(),
        }
    }

    #[test]
    fn commands_are_exact() {
        let mut t = target();
        t.storage_account_id = Some(
            "/subscriptions/s/resourceGroups/other-rg/providers/Microsoft.Storage/storageAccounts/caposimages".into(),
        );
        assert_eq!(
            t.upload("cloud/capos-azure.vhd").line(),
            "az storage blob upload --account-name caposimages --container-name vhds --name capos-test.vhd --file cloud/capos-azure.vhd --type page --overwrite --auth-mode login --output json"
        );
        assert_eq!(
            t.create_disk().line(),
            "az disk create --resource-group capos-rg --name capos-test-osdisk --location westeurope --source https://caposimages.blob.core.windows.net/vhds/capos-test.vhd --source-storage-account-id /subscriptions/s/resourceGroups/other-rg/providers/Microsoft.Storage/storageAccounts/caposimages --os-type Linux --hyper-v-generation V2 --output json"
        );
        assert_eq!(
            t.create_vnet().line(),
            "az network vnet create --resource-group capos-rg --name capos-test-vnet --location westeurope --address-prefixes 10.0.0.0/16 --subnet-name default --subnet-prefixes 10.0.0.0/24 --output json"
        );
        assert_eq!(
            t.create_nic().line(),
            "az network nic create --resource-group capos-rg --name capos-test-nic --location westeurope --vnet-name capos-test-vnet --subnet default --output json"
        );
        assert_eq!(
            t.create_vm().line(),
            "az vm create --resource-group capos-rg --name capos-test --location westeurope --attach-os-disk capos-test-osdisk --os-type Linux --size Standard_B1s --nics capos-test-nic --boot-diagnostics-storage caposimages --output json"
        );
        assert_eq!(
            t.boot_log_uris().line(),
            "az vm boot-diagnostics get-boot-log-uris --resource-group capos-rg --name capos-test --output json"
        );
        assert_eq!(
            AzureTarget::download_log("https://a.blob.core.windows.net/c/b.log?sv=1&sig=x", "ev/f").line(),
            "az storage blob download --blob-url 'https://a.blob.core.windows.net/c/b.log?sv=1&sig=x' --file ev/f --output none"
        );
        assert_eq!(
            AzureTarget::download_log("https://a.blob.core.windows.net/c/b.log", "ev/f").line(),
            "az storage blob download --blob-url https://a.blob.core.windows.net/c/b.log --file ev/f --auth-mode login --output none"
        );
        let down: Vec<String> = t.teardown().iter().map(CloudCommand::line).collect();
        assert_eq!(
            down,
            [
                "az vm delete --resource-group capos-rg --name capos-test --yes",
                "az network nic delete --resource-group capos-rg --name capos-test-nic",
                "az network vnet delete --resource-group capos-rg --name capos-test-vnet",
                "az disk delete --resource-group capos-rg --name capos-test-osdisk --yes",
                "az storage blob delete --account-name caposimages --container-name vhds --name capos-test.vhd --auth-mode login",
            ]
        );
    }

    #[test]
    fn ids_parse_from_the_documented_shapes() {
        let disk = r#"{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d", "name": "d", "hyperVGeneration": "V2"}"#;
        assert!(parse_id(disk, "disk create").unwrap().ends_with("/disks/d"));
        assert_eq!(parse_generation(disk).as_deref(), Some("V2"));
        let vnet = r#"{"newVNet": {"id": "/x/virtualNetworks/v", "name": "v"}}"#;
        assert_eq!(
            parse_id(vnet, "network vnet create").unwrap(),
            "/x/virtualNetworks/v"
        );
        let nic = r#"{"NewNIC": {"name": "n"}}"#;
        assert_eq!(parse_id(nic, "network nic create").unwrap(), "n");
        assert_eq!(
            parse_id("{}", "vm create").unwrap_err().message,
            "az vm create output has no id"
        );
        assert!(parse_id("oops", "vm create").is_err());
    }

    #[test]
    fn sizes_follow_azures_rule() {
        assert_eq!(size_rule(Some(AZURE_MIN)), Ok(()));
        assert_eq!(size_rule(Some(AZURE_MAX)), Ok(()));
        assert_eq!(
            size_rule(Some(AZURE_MAX + MIB)).unwrap_err(),
            format!(
                "virtual size {} bytes is more than Azure's maximum of 32 TiB",
                AZURE_MAX + MIB
            )
        );
        assert_eq!(
            size_rule(Some(19 * MIB)).unwrap_err(),
            "virtual size 19922944 bytes is less than Azure's minimum of 20 MiB"
        );
        assert!(size_rule(Some(AZURE_MIN + 512)).is_err());
        assert!(size_rule(None).is_err());
    }

    #[test]
    fn generation_names_the_firmware() {
        for fw in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(Generation::of(fw).firmware(), fw);
        }
        assert_eq!(Generation::of(Firmware::Uefi).api_name(), "V2");
    }

    #[test]
    fn names_are_checked() {
        let mut t = target();
        t.storage_account = "Capos_Images".into();
        assert_eq!(
            t.validate().unwrap_err().message,
            "Azure storage account \"Capos_Images\" is invalid: use 3-24 lowercase letters and digits"
        );
        let mut t = target();
        t.name = "-x".into();
        assert!(t.validate().is_err());
        let mut t = target();
        t.container = "a--b".into();
        assert!(t.validate().is_err());
        assert!(target().validate().is_ok());
    }
}
