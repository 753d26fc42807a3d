//! Microsoft Azure through the `az` CLI: a fixed VHD uploaded as a page
//! blob, a managed image made from it, one VM booted from the image, its
//! serial console read through boot diagnostics.
//!
//! `az storage blob upload --type page`, `az image create --source <blob
//! URL> --os-type Linux --hyper-v-generation V2|V1`, `az vm create --image
//! --boot-diagnostics-storage`, `az vm boot-diagnostics get-boot-log`;
//! teardown in reverse: `az vm delete`, `az network nic delete`, `az
//! network vnet delete`, `az disk delete` (the OS disk), `az image delete`,
//! `az storage blob delete`. The resource group, storage account and
//! container must exist; cloudimg creates nothing else.
//!
//! Before anything is uploaded, [`check_artifact`] reads the VHD footer:
//! a fixed VHD (Azure takes no dynamic VHD and no VHDX), a valid footer
//! checksum, a file of exactly the virtual size plus the 512-byte footer,
//! and a virtual size that is a whole number of MiB and at least 20 MiB
//! (reference §3: "All VHDs on Azure must have a virtual size aligned to 1
//! MB"; upload sizes from 20 MiB + 512).
//!
//! # What was checked, and what not
//!
//! Confirmed from the `az vm boot-diagnostics` reference
//! (learn.microsoft.com/cli/azure/vm/boot-diagnostics): `get-boot-log`
//! with `--name`/`--resource-group`.
//!
//! Seen only in Microsoft's older how-to pages and third-party scripts,
//! not in the reference pages themselves: `az storage blob upload
//! --account-name --container-name --type page --file --name`; `az image
//! create --resource-group --name --os-type Linux --hyper-v-generation V2
//! --source <VHD blob URL>`; `az vm create --boot-diagnostics-storage
//! <account>` (the CLI changelog: "Added `--boot-diagnostics-storage` to
//! `vm create` to capture boot log").
//!
//! Not confirmed [U]: `--auth-mode login` on the blob commands (the
//! alternative is an account key in the environment); that `az vm create`
//! names the NIC it creates `<vm>VMNic`; that `--public-ip-address ""` and
//! `--nsg ""` create none; `--os-disk-name`; that `get-boot-log` prints
//! the serial log as plain text; and, importantly, how `az vm create`
//! behaves with an image whose guest runs no Azure agent: Azure waits for
//! the guest to report provisioning and may fail the deployment with
//! `OSProvisioningTimedOut` while the VM still runs. A specialized OS disk
//! (`az disk create --source <blob URL> --hyper-v-generation`, then `az vm
//! create --attach-os-disk`) would avoid that wait and the admin
//! credentials; it is not what this plan does.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use cloudimg_disk::formats::vhd::reader::read_footer;
use cloudimg_disk::formats::vhd::wire::{
    checksum, off, DISK_TYPE_DYNAMIC, DISK_TYPE_FIXED, FOOTER_COOKIE, FOOTER_SIZE,
};

use crate::command::CloudCommand;
use crate::error::{Error, ErrorKind, Result};

/// One MiB: Azure's alignment for a VHD's virtual size.
pub const MIB: u64 = 1 << 20;
/// The smallest virtual size accepted (an upload of 20 MiB + 512 bytes).
pub const MIN_VIRTUAL_SIZE: u64 = 20 * MIB;
/// The default VM size (Gen1 and Gen2).
pub const DEFAULT_VM_SIZE: &str = "Standard_B1s";
/// The default location.
pub const DEFAULT_LOCATION: &str = "eastus";
/// The admin user `az vm create` insists on for a Linux image.
pub const ADMIN_USER: &str = "capos";

/// The Hyper-V generation: Gen2 boots UEFI, Gen1 BIOS.
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
    /// The firmware it boots: `bios` or `uefi`.
    pub fn boot_mode(self) -> &'static str {
        match self {
            Generation::V1 => "bios",
            Generation::V2 => "uefi",
        }
    }
}

/// Where and under which names an Azure run works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureTarget {
    /// The resource group (exists).
    pub resource_group: String,
    /// The location of the image and the VM (the storage account's).
    pub location: String,
    /// The storage account (exists; also holds boot diagnostics).
    pub storage_account: String,
    /// The blob container (exists).
    pub container: String,
    /// The VM size.
    pub vm_size: String,
    /// UEFI (V2) or BIOS (V1).
    pub generation: Generation,
    /// Image and VM name; the blob is `NAME.vhd`, the OS disk
    /// `NAME-osdisk`, the network `NAME-vnet`.
    pub name: String,
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

impl AzureTarget {
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
        for (what, v) in [("location", &self.location), ("VM size", &self.vm_size)] {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!("Azure {what} {v:?} is invalid")));
            }
        }
        Ok(())
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

    /// The VM's OS disk: `NAME-osdisk`.
    pub fn os_disk(&self) -> String {
        format!("{}-osdisk", self.name)
    }

    /// The virtual network `az vm create` makes: `NAME-vnet`.
    pub fn vnet(&self) -> String {
        format!("{}-vnet", self.name)
    }

    /// The NIC `az vm create` makes: `NAMEVMNic` [U].
    pub fn nic(&self) -> String {
        format!("{}VMNic", self.name)
    }

    fn rg(&self) -> [String; 2] {
        ["--resource-group".into(), self.resource_group.clone()]
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
                "--auth-mode",
                "login",
                "--output",
                "json",
            ],
        )
    }

    /// Make the managed image from the blob.
    pub fn create_image(&self) -> CloudCommand {
        let mut a: Vec<String> = ["image", "create"].map(String::from).to_vec();
        a.extend(self.rg());
        a.extend(
            [
                "--name",
                &self.name,
                "--location",
                &self.location,
                "--source",
                &self.blob_url(),
                "--os-type",
                "Linux",
                "--hyper-v-generation",
                self.generation.api_name(),
                "--output",
                "json",
            ]
            .map(String::from),
        );
        CloudCommand::new("az", a)
    }

    /// Boot a VM from the image, with boot diagnostics in the storage
    /// account, no public IP and no NSG.
    pub fn create_vm(&self) -> CloudCommand {
        let mut a: Vec<String> = ["vm", "create"].map(String::from).to_vec();
        a.extend(self.rg());
        a.extend(
            [
                "--name",
                &self.name,
                "--location",
                &self.location,
                "--image",
                &self.name,
                "--size",
                &self.vm_size,
                "--os-disk-name",
                &self.os_disk(),
                "--vnet-name",
                &self.vnet(),
                "--subnet",
                "default",
                "--public-ip-address",
                "",
                "--nsg",
                "",
                "--boot-diagnostics-storage",
                &self.storage_account,
                "--admin-username",
                ADMIN_USER,
                "--generate-ssh-keys",
                "--output",
                "json",
            ]
            .map(String::from),
        );
        CloudCommand::new("az", a)
    }

    /// The serial log captured by boot diagnostics.
    pub fn boot_log(&self) -> CloudCommand {
        let mut a: Vec<String> = ["vm", "boot-diagnostics", "get-boot-log"]
            .map(String::from)
            .to_vec();
        a.extend(self.rg());
        a.extend(["--name".to_string(), self.name.clone()]);
        CloudCommand::new("az", a)
    }

    /// Every resource a run creates, in creation order.
    pub fn resources(&self) -> Vec<AzureResource> {
        let rg = self.resource_group.clone();
        vec![
            AzureResource::AzureBlob {
                account: self.storage_account.clone(),
                container: self.container.clone(),
                name: self.blob_name(),
            },
            AzureResource::AzureImage {
                resource_group: rg.clone(),
                name: self.name.clone(),
            },
            AzureResource::AzureVnet {
                resource_group: rg.clone(),
                name: self.vnet(),
            },
            AzureResource::AzureNic {
                resource_group: rg.clone(),
                name: self.nic(),
            },
            AzureResource::AzureDisk {
                resource_group: rg.clone(),
                name: self.os_disk(),
            },
            AzureResource::AzureVm {
                resource_group: rg,
                name: self.name.clone(),
            },
        ]
    }

    /// The teardown commands: the VM, then what depends on nothing any
    /// more, the blob last.
    pub fn teardown(&self) -> Vec<CloudCommand> {
        let mut r = self.resources();
        // Creation order is blob, image, vnet, nic, disk, vm; the NIC
        // must go before its vnet.
        r.reverse();
        let order = |x: &AzureResource| match x {
            AzureResource::AzureVm { .. } => 0,
            AzureResource::AzureNic { .. } => 1,
            AzureResource::AzureVnet { .. } => 2,
            AzureResource::AzureDisk { .. } => 3,
            AzureResource::AzureImage { .. } => 4,
            AzureResource::AzureBlob { .. } => 5,
        };
        r.sort_by_key(order);
        r.iter().map(AzureResource::delete).collect()
    }
}

/// An Azure resource a run creates, in the shape of the journal's
/// entries (for the lead to add to `journal::Resource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AzureResource {
    /// The uploaded page blob.
    AzureBlob {
        /// Storage account.
        account: String,
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// The managed image.
    AzureImage {
        /// Resource group.
        resource_group: String,
        /// Image name.
        name: String,
    },
    /// The virtual network `az vm create` made.
    AzureVnet {
        /// Resource group.
        resource_group: String,
        /// VNet name.
        name: String,
    },
    /// The NIC `az vm create` made.
    AzureNic {
        /// Resource group.
        resource_group: String,
        /// NIC name.
        name: String,
    },
    /// The VM's OS disk.
    AzureDisk {
        /// Resource group.
        resource_group: String,
        /// Disk name.
        name: String,
    },
    /// The VM.
    AzureVm {
        /// Resource group.
        resource_group: String,
        /// VM name.
        name: String,
    },
}

impl AzureResource {
    /// The command that deletes it.
    pub fn delete(&self) -> CloudCommand {
        let rg_cmd = |what: &[&str], rg: &str, name: &str, yes: bool| {
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
        match self {
            AzureResource::AzureBlob {
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
            AzureResource::AzureImage {
                resource_group,
                name,
            } => rg_cmd(&["image", "delete"], resource_group, name, false),
            AzureResource::AzureVnet {
                resource_group,
                name,
            } => rg_cmd(&["network", "vnet", "delete"], resource_group, name, false),
            AzureResource::AzureNic {
                resource_group,
                name,
            } => rg_cmd(&["network", "nic", "delete"], resource_group, name, false),
            AzureResource::AzureDisk {
                resource_group,
                name,
            } => rg_cmd(&["disk", "delete"], resource_group, name, true),
            AzureResource::AzureVm {
                resource_group,
                name,
            } => rg_cmd(&["vm", "delete"], resource_group, name, true),
        }
    }
}

/// What [`check_artifact`] read from the VHD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VhdFacts {
    /// File size in bytes (virtual size + 512).
    pub file_size: u64,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Creator application (`qem2`, `win `, ...).
    pub creator: String,
}

fn artifact_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Artifact, format!("{}: {msg}", path.display()))
}

/// Check, before any upload, that `path` is a fixed VHD Azure accepts:
/// footer cookie and checksum, disk type fixed, file size = virtual size +
/// 512, virtual size a whole number of MiB and at least 20 MiB.
pub fn check_artifact(path: &Path) -> Result<VhdFacts> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => artifact_err(
            path,
            "does not exist (run `cloudimg package --azure` first)",
        ),
        _ => artifact_err(path, format!("cannot be opened: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| artifact_err(path, format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(artifact_err(path, "is not a regular file"));
    }
    let len = meta.len();
    let at = read_footer(&file).map_err(|e| artifact_err(path, e.message()))?;
    let f = &at.footer;
    if f.cookie != FOOTER_COOKIE {
        return Err(artifact_err(
            path,
            "is not a VHD: no \"conectix\" footer in its last 512 bytes",
        ));
    }
    if at.offset == 0 && len > FOOTER_SIZE || f.disk_type == DISK_TYPE_DYNAMIC {
        return Err(artifact_err(
            path,
            "is a dynamic VHD; Azure takes fixed VHDs only",
        ));
    }
    if f.disk_type != DISK_TYPE_FIXED {
        return Err(artifact_err(
            path,
            format!("is a VHD of disk type {}, not fixed (2)", f.disk_type),
        ));
    }
    let want = checksum(&at.bytes, off::CHECKSUM);
    if f.checksum != want {
        return Err(artifact_err(
            path,
            format!(
                "VHD footer checksum is {:#010x}, expected {want:#010x}",
                f.checksum
            ),
        ));
    }
    let size = f.virtual_size();
    if size.checked_add(FOOTER_SIZE) != Some(len) {
        return Err(artifact_err(
            path,
            format!("file is {len} bytes but the footer's virtual size is {size} (+ 512)"),
        ));
    }
    if size % MIB != 0 {
        return Err(artifact_err(
            path,
            format!("virtual size {size} bytes is not a whole number of MiB, which Azure requires"),
        ));
    }
    if size < MIN_VIRTUAL_SIZE {
        return Err(artifact_err(
            path,
            format!("virtual size {size} bytes is less than Azure's minimum of 20 MiB"),
        ));
    }
    Ok(VhdFacts {
        file_size: len,
        virtual_size: size,
        creator: String::from_utf8_lossy(&f.creator_app).into_owned(),
    })
}

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

/// A checked plan: the artifact's facts and the commands, in order.
#[derive(Debug, Clone, Serialize)]
pub struct AzurePlan {
    /// `azure`.
    pub provider: &'static str,
    /// The artifact.
    pub artifact: String,
    /// What the checks read from it.
    pub vhd: VhdFacts,
    /// `V1` or `V2`.
    pub generation: Generation,
    /// `bios` or `uefi`.
    pub boot_mode: &'static str,
    /// The resources a run creates, in creation order.
    pub resources: Vec<AzureResource>,
    /// The steps.
    pub steps: Vec<PlanStep>,
}

impl AzurePlan {
    /// The plan as text: `# step` lines, then the command lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "# checked {}: fixed VHD, virtual size {} bytes ({} MiB), creator {:?}; Hyper-V generation {} ({})",
            self.artifact,
            self.vhd.virtual_size,
            self.vhd.virtual_size / MIB,
            self.vhd.creator,
            self.generation.api_name(),
            self.boot_mode
        )];
        for s in &self.steps {
            out.push(format!("# {}", s.step));
            out.extend(s.commands.iter().map(|c| c.line.clone()));
        }
        out
    }
}

/// Check the artifact and the names, and list the commands a run would
/// execute. Nothing is run.
pub fn plan(target: &AzureTarget, artifact: &Path) -> Result<AzurePlan> {
    target.validate()?;
    let vhd = check_artifact(artifact)?;
    let art = artifact.display().to_string();
    let step = |name: &str, cmds: &[CloudCommand]| PlanStep {
        step: name.to_string(),
        commands: cmds.iter().map(PlanCommand::from).collect(),
    };
    let verify = CloudCommand::new("cloudimg", ["verify", art.as_str()]);
    Ok(AzurePlan {
        provider: "azure",
        artifact: art.clone(),
        vhd,
        generation: target.generation,
        boot_mode: target.generation.boot_mode(),
        resources: target.resources(),
        steps: vec![
            step("verify", &[verify]),
            step("upload (page blob)", &[target.upload(&art)]),
            step("import", &[target.create_image()]),
            step("boot", &[target.create_vm()]),
            step("read serial (repeated)", &[target.boot_log()]),
            step("teardown", &target.teardown()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AzureTarget {
        AzureTarget {
            resource_group: "capos-rg".into(),
            location: "westeurope".into(),
            storage_account: "caposimages".into(),
            container: "vhds".into(),
            vm_size: DEFAULT_VM_SIZE.into(),
            generation: Generation::V2,
            name: "capos-test".into(),
        }
    }

    #[test]
    fn commands_are_exact() {
        let t = target();
        assert_eq!(
            t.upload("cloud/capos-azure.vhd").line(),
            "az storage blob upload --account-name caposimages --container-name vhds --name capos-test.vhd --file cloud/capos-azure.vhd --type page --auth-mode login --output json"
        );
        assert_eq!(
            t.create_image().line(),
            "az image create --resource-group capos-rg --name capos-test --location westeurope --source https://caposimages.blob.core.windows.net/vhds/capos-test.vhd --os-type Linux --hyper-v-generation V2 --output json"
        );
        assert!(t
            .create_vm()
            .line()
            .contains("--public-ip-address '' --nsg '' --boot-diagnostics-storage caposimages"));
        assert_eq!(
            t.boot_log().line(),
            "az vm boot-diagnostics get-boot-log --resource-group capos-rg --name capos-test"
        );
        let down: Vec<String> = t.teardown().iter().map(CloudCommand::line).collect();
        assert_eq!(
            down,
            [
                "az vm delete --resource-group capos-rg --name capos-test --yes",
                "az network nic delete --resource-group capos-rg --name capos-testVMNic",
                "az network vnet delete --resource-group capos-rg --name capos-test-vnet",
                "az disk delete --resource-group capos-rg --name capos-test-osdisk --yes",
                "az image delete --resource-group capos-rg --name capos-test",
                "az storage blob delete --account-name caposimages --container-name vhds --name capos-test.vhd --auth-mode login",
            ]
        );
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
