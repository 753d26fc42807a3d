//! `resources.json`: every cloud resource a run creates, written the
//! moment it is about to be created (state `creating`) and again once it
//! exists (`created`, with its id), so that `cloud teardown --journal`
//! can remove everything after a crash. Each write goes to a temporary
//! file that is fsynced and renamed over the journal.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// A cloud resource cloudimg created (or was creating).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Resource {
    /// An uploaded Cloud Storage object.
    GcsObject {
        /// `gs://bucket/key`.
        uri: String,
        /// The project.
        project: String,
        /// Deleted with `gsutil rm` rather than `gcloud storage rm`.
        #[serde(default)]
        gsutil: bool,
    },
    /// A Compute Engine image.
    GcpImage {
        /// Image name.
        name: String,
        /// The project.
        project: String,
    },
    /// A Compute Engine instance.
    GcpInstance {
        /// Instance name.
        name: String,
        /// Its zone.
        zone: String,
        /// The project.
        project: String,
    },
    /// An uploaded S3 object.
    S3Object {
        /// `s3://bucket/key`.
        uri: String,
        /// The region (None: the CLI's configured one).
        region: Option<String>,
    },
    /// A VM Import snapshot task (id unknown while it is being started).
    AwsImportTask {
        /// `import-snap-...`, once known.
        id: Option<String>,
        /// Its `--description` (the run's unique name), to find it when
        /// the id is unknown.
        #[serde(default)]
        description: String,
        /// The region.
        region: Option<String>,
    },
    /// An EBS snapshot.
    AwsSnapshot {
        /// `snap-...`.
        id: String,
        /// The region.
        region: Option<String>,
    },
    /// A registered AMI (id unknown while registering).
    AwsImage {
        /// `ami-...`, once known.
        id: Option<String>,
        /// The AMI name (to find it when the id is unknown).
        name: String,
        /// The region.
        region: Option<String>,
    },
    /// An EC2 instance (id unknown while launching).
    AwsInstance {
        /// `i-...`, once known.
        id: Option<String>,
        /// Its `Name` tag (to find it when the id is unknown).
        name: String,
        /// The region.
        region: Option<String>,
    },
    /// An uploaded Azure page blob.
    AzureBlob {
        /// Storage account.
        account: String,
        /// Container.
        container: String,
        /// Blob name.
        name: String,
    },
    /// An Azure managed disk (the VM's specialized OS disk).
    AzureDisk {
        /// Resource group.
        resource_group: String,
        /// Disk name.
        name: String,
    },
    /// An Azure virtual network.
    AzureVnet {
        /// Resource group.
        resource_group: String,
        /// VNet name.
        name: String,
    },
    /// An Azure network interface.
    AzureNic {
        /// Resource group.
        resource_group: String,
        /// NIC name.
        name: String,
    },
    /// An Azure VM.
    AzureVm {
        /// Resource group.
        resource_group: String,
        /// VM name.
        name: String,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::GcsObject { uri, .. } => write!(f, "object {uri}"),
            Resource::GcpImage { name, project } => {
                write!(f, "GCP image {name} (project {project})")
            }
            Resource::GcpInstance { name, zone, .. } => {
                write!(f, "GCP instance {name} (zone {zone})")
            }
            Resource::S3Object { uri, .. } => write!(f, "object {uri}"),
            Resource::AwsImportTask { id: Some(id), .. } => write!(f, "import task {id}"),
            Resource::AwsImportTask {
                id: None,
                description,
                ..
            } => write!(f, "import task described {description}"),
            Resource::AwsSnapshot { id, .. } => write!(f, "snapshot {id}"),
            Resource::AwsImage { id: Some(id), .. } => write!(f, "AMI {id}"),
            Resource::AwsImage { id: None, name, .. } => write!(f, "AMI named {name}"),
            Resource::AwsInstance { id: Some(id), .. } => write!(f, "instance {id}"),
            Resource::AwsInstance { id: None, name, .. } => {
                write!(f, "instance tagged Name={name}")
            }
            Resource::AzureBlob {
                account,
                container,
                name,
            } => write!(
                f,
                "blob https://{account}.blob.core.windows.net/{container}/{name}"
            ),
            Resource::AzureDisk {
                resource_group,
                name,
            } => write!(f, "Azure disk {name} (resource group {resource_group})"),
            Resource::AzureVnet {
                resource_group,
                name,
            } => write!(f, "Azure vnet {name} (resource group {resource_group})"),
            Resource::AzureNic {
                resource_group,
                name,
            } => write!(f, "Azure NIC {name} (resource group {resource_group})"),
            Resource::AzureVm {
                resource_group,
                name,
            } => write!(f, "Azure VM {name} (resource group {resource_group})"),
        }
    }
}

/// Where a resource stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The create command was started; it may or may not exist.
    Creating,
    /// It exists.
    Created,
    /// Teardown removed it (or found it gone).
    Deleted,
    /// Teardown could not remove it.
    DeleteFailed,
}

/// One journal entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The resource.
    pub resource: Resource,
    /// Its state.
    pub state: State,
    /// Unix seconds of the last change.
    pub updated_unix: u64,
    /// Why a delete failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The journal's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalData {
    /// Format version (1).
    pub version: u32,
    /// `gcp`, `aws` or `azure`.
    pub provider: String,
    /// The run's id.
    pub run_id: String,
    /// Resources in creation order.
    pub resources: Vec<Entry>,
}

/// The journal file and its content.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    data: JournalData,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Journal {
    /// Start a journal at `path` (written at once).
    pub fn create(path: &Path, provider: &str, run_id: &str) -> Result<Self> {
        let j = Journal {
            path: path.to_path_buf(),
            data: JournalData {
                version: 1,
                provider: provider.to_string(),
                run_id: run_id.to_string(),
                resources: Vec::new(),
            },
        };
        j.save()?;
        Ok(j)
    }

    /// Read the journal at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).map_err(|e| Error::io("reading the journal", path, e))?;
        let data: JournalData = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a cloudimg resource journal: {e}", path.display()),
            )
        })?;
        if data.version != 1 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: unsupported journal version {}",
                    path.display(),
                    data.version
                ),
            ));
        }
        Ok(Journal {
            path: path.to_path_buf(),
            data,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content.
    pub fn data(&self) -> &JournalData {
        &self.data
    }

    /// Record `resource` in `state`; returns its index.
    pub fn add(&mut self, resource: Resource, state: State) -> Result<usize> {
        self.data.resources.push(Entry {
            resource,
            state,
            updated_unix: now_unix(),
            error: None,
        });
        self.save()?;
        Ok(self.data.resources.len() - 1)
    }

    /// Update entry `index`.
    pub fn update(
        &mut self,
        index: usize,
        resource: Resource,
        state: State,
        error: Option<String>,
    ) -> Result<()> {
        if let Some(e) = self.data.resources.get_mut(index) {
            e.resource = resource;
            e.state = state;
            e.error = error;
            e.updated_unix = now_unix();
        }
        self.save()
    }

    /// Entries not yet deleted.
    pub fn live(&self) -> Vec<(usize, Resource)> {
        self.data
            .resources
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state != State::Deleted)
            .map(|(i, e)| (i, e.resource.clone()))
            .collect()
    }

    fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.data)
            .map_err(|e| Error::new(ErrorKind::Io, format!("encoding the journal: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| Error::io("writing the journal", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_and_survives_reopen() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("resources.json");
        let mut j = Journal::create(&p, "aws", "run1").unwrap();
        let i = j
            .add(
                Resource::AwsImage {
                    id: None,
                    name: "n".into(),
                    region: None,
                },
                State::Creating,
            )
            .unwrap();
        j.update(
            i,
            Resource::AwsImage {
                id: Some("ami-1".into()),
                name: "n".into(),
                region: None,
            },
            State::Created,
            None,
        )
        .unwrap();
        let k = Journal::open(&p).unwrap();
        assert_eq!(k.data().resources.len(), 1);
        assert_eq!(k.data().resources[0].state, State::Created);
        assert_eq!(k.live()[0].1.to_string(), "AMI ami-1");
        assert!(!t.path().join("resources.json.tmp").exists());
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"kind\": \"aws-image\""), "{text}");
    }

    #[test]
    fn not_a_journal_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.json");
        fs::write(&p, "{}").unwrap();
        let e = Journal::open(&p).unwrap_err();
        assert!(
            e.message.contains("is not a cloudimg resource journal"),
            "{e}"
        );
    }
}
