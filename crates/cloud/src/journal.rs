//! `resources.json`: every cloud resource a run creates, written the
//! moment it is about to be created (state `creating`) and again once it
//! exists (`created`, with its id), so that `cloud teardown --journal`
//! can remove everything after a crash. Each write goes to a new
//! owner-only temporary file (created exclusively, never through a
//! symlink) that is fsynced and renamed over the journal; the first
//! write refuses a journal that already exists.
//!
//! A journal is input: `cloud teardown --journal` reads one that anyone
//! may have written. [`Journal::open`] refuses unknown fields, and every
//! name and id must match its provider's syntax ([`crate::names`]), so
//! that nothing in it reaches a CLI as a wildcard or an option; a
//! journal that fails is refused whole, before any command runs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use cloudimg_disk::io::OutputFile;

use crate::error::{Error, ErrorKind, Result};
use crate::names::{self, Rule};

/// A cloud resource cloudimg created (or was creating).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
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

/// A journal field that breaks its provider's syntax: which field, its
/// value, and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// The field's name (`id`, `name`, `uri`, ...).
    pub field: &'static str,
    /// The value as found.
    pub value: String,
    /// The rule it breaks (`not an EC2 instance id (...)`).
    pub rule: Rule,
}

impl std::fmt::Display for BadField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} is {}", self.field, self.value, self.rule)
    }
}

fn field(
    name: &'static str,
    value: &str,
    rule: fn(&str) -> Result<(), Rule>,
) -> Result<(), BadField> {
    rule(value).map_err(|rule| BadField {
        field: name,
        value: value.to_string(),
        rule,
    })
}

fn optional(
    name: &'static str,
    value: &Option<String>,
    rule: fn(&str) -> Result<(), Rule>,
) -> Result<(), BadField> {
    value.as_deref().map_or(Ok(()), |v| field(name, v, rule))
}

impl Resource {
    /// The provider whose CLI removes it (`gcp`, `aws` or `azure`).
    pub fn provider(&self) -> &'static str {
        match self {
            Resource::GcsObject { .. }
            | Resource::GcpImage { .. }
            | Resource::GcpInstance { .. } => "gcp",
            Resource::S3Object { .. }
            | Resource::AwsImportTask { .. }
            | Resource::AwsSnapshot { .. }
            | Resource::AwsImage { .. }
            | Resource::AwsInstance { .. } => "aws",
            Resource::AzureBlob { .. }
            | Resource::AzureDisk { .. }
            | Resource::AzureVnet { .. }
            | Resource::AzureNic { .. }
            | Resource::AzureVm { .. } => "azure",
        }
    }

    /// Check every name and id against its provider's syntax
    /// ([`crate::names`]): what passes can be given to the CLIs as it
    /// is, and is neither a wildcard nor an option.
    pub fn check(&self) -> Result<(), BadField> {
        use names::*;
        match self {
            Resource::GcsObject { uri, project, .. } => {
                field("uri", uri, gcs_uri)?;
                field("project", project, gcp_project)
            }
            Resource::GcpImage { name, project } => {
                field("name", name, gce_name)?;
                field("project", project, gcp_project)
            }
            Resource::GcpInstance {
                name,
                zone,
                project,
            } => {
                field("name", name, gce_name)?;
                field("zone", zone, gcp_zone)?;
                field("project", project, gcp_project)
            }
            Resource::S3Object { uri, region } => {
                field("uri", uri, s3_uri)?;
                optional("region", region, aws_region)
            }
            Resource::AwsImportTask {
                id,
                description,
                region,
            } => {
                optional("id", id, aws_import_task_id)?;
                // Teardown lists tasks by it: it must be the run's name.
                field("description", description, aws_image_name)?;
                optional("region", region, aws_region)
            }
            Resource::AwsSnapshot { id, region } => {
                field("id", id, aws_snapshot_id)?;
                optional("region", region, aws_region)
            }
            Resource::AwsImage { id, name, region } => {
                optional("id", id, aws_image_id)?;
                field("name", name, aws_image_name)?;
                optional("region", region, aws_region)
            }
            Resource::AwsInstance { id, name, region } => {
                optional("id", id, aws_instance_id)?;
                field("name", name, aws_image_name)?;
                optional("region", region, aws_region)
            }
            Resource::AzureBlob {
                account,
                container,
                name,
            } => {
                field("account", account, azure_storage_account)?;
                field("container", container, azure_container)?;
                field("name", name, azure_blob)
            }
            Resource::AzureDisk {
                resource_group,
                name,
            } => {
                field("resource_group", resource_group, azure_resource_group)?;
                field("name", name, azure_disk)
            }
            Resource::AzureVnet {
                resource_group,
                name,
            } => {
                field("resource_group", resource_group, azure_resource_group)?;
                field("name", name, azure_vnet)
            }
            Resource::AzureNic {
                resource_group,
                name,
            } => {
                field("resource_group", resource_group, azure_resource_group)?;
                field("name", name, azure_nic)
            }
            Resource::AzureVm {
                resource_group,
                name,
            } => {
                field("resource_group", resource_group, azure_resource_group)?;
                field("name", name, azure_vm)
            }
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
    /// Published (`--publish`): the run's teardown leaves it, `cloud
    /// teardown --journal` removes it.
    Kept,
}

/// One journal entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// The file exists (written by this process, or opened).
    created: bool,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Journal {
    /// Start a journal at `path` (written at once; an existing file is
    /// refused).
    pub fn create(path: &Path, provider: &str, run_id: &str) -> Result<Self> {
        names::run_id(run_id).map_err(|rule| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("run id {run_id:?} is {rule}"),
            )
        })?;
        let mut j = Journal {
            path: path.to_path_buf(),
            data: JournalData {
                version: 1,
                provider: provider.to_string(),
                run_id: run_id.to_string(),
                resources: Vec::new(),
            },
            created: false,
        };
        j.save()?;
        j.created = true;
        Ok(j)
    }

    /// Read the journal at `path` and check it whole: no unknown field,
    /// a known provider, and every name and id in its provider's syntax.
    /// Nothing is run before this passes; the error names the file, the
    /// field and the value.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |what: String| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{}: {what}", path.display()),
            )
        };
        let text = read_bounded(path)?;
        let data: JournalData = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a cloudimg resource journal: {e}", path.display()),
            )
        })?;
        if data.version != 1 {
            return Err(bad(format!("unsupported journal version {}", data.version)));
        }
        if !["gcp", "aws", "azure"].contains(&data.provider.as_str()) {
            return Err(bad(format!(
                "provider {:?} is not one of gcp, aws, azure",
                data.provider
            )));
        }
        if let Err(rule) = names::run_id(&data.run_id) {
            return Err(bad(format!("run_id {:?} is {rule}", data.run_id)));
        }
        for (i, e) in data.resources.iter().enumerate() {
            let kind = e.resource.provider();
            if kind != data.provider {
                return Err(bad(format!(
                    "resources[{i}].resource.kind: a {kind} resource in a {} journal",
                    data.provider
                )));
            }
            if let Err(f) = e.resource.check() {
                return Err(bad(format!("resources[{i}].resource.{f}")));
            }
        }
        Ok(Journal {
            path: path.to_path_buf(),
            data,
            created: true,
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

    /// Record `resource` in `state`; returns its index. A resource
    /// whose names break its provider's syntax is refused (so a journal
    /// cloudimg writes always passes [`Journal::open`]).
    pub fn add(&mut self, resource: Resource, state: State) -> Result<usize> {
        refuse_bad(&resource)?;
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
        refuse_bad(&resource)?;
        if let Some(e) = self.data.resources.get_mut(index) {
            e.resource = resource;
            e.state = state;
            e.error = error;
            e.updated_unix = now_unix();
        }
        self.save()
    }

    /// Mark entry `index` kept (published).
    pub fn keep(&mut self, index: usize) -> Result<()> {
        if let Some(e) = self.data.resources.get_mut(index) {
            e.state = State::Kept;
            e.updated_unix = now_unix();
        }
        self.save()
    }

    /// Entries not yet deleted (kept ones included).
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
        let mut text = serde_json::to_string_pretty(&self.data)
            .map_err(|e| Error::new(ErrorKind::Io, format!("encoding the journal: {e}")))?;
        text.push('\n');
        let write = || -> std::io::Result<()> {
            // A new owner-only temporary file (exclusive, no symlink
            // followed), renamed over the journal: the rename replaces
            // whatever has the name, a symlink included, and never writes
            // through it. The first write refuses an existing journal
            // (another run's record).
            let out = OutputFile::create(&self.path)?;
            out.file().write_all(text.as_bytes())?;
            if self.created {
                out.commit()?;
            } else {
                out.commit_new()?;
            }
            let dir = match self.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| Error::io("writing the journal", &self.path, e))
    }
}

/// The journal's text: a regular file of at most [`MAX_JOURNAL_BYTES`]
/// (a FIFO would block, a huge file exhaust memory).
fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::io("reading the journal", path, e);
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{}: not a regular file", path.display()),
        ));
    }
    let mut text = String::new();
    f.take(MAX_JOURNAL_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{}: larger than {MAX_JOURNAL_BYTES} bytes, not a cloudimg resource journal",
                path.display()
            ),
        ));
    }
    Ok(text)
}

/// A run journals a handful of resources in a few KiB; 1 MiB is far
/// beyond any journal cloudimg writes.
const MAX_JOURNAL_BYTES: u64 = 1 << 20;

/// A target's check: every resource its run would journal passes
/// [`Resource::check`], so the journal it writes can always be torn down.
pub(crate) fn check_names(resources: &[Resource]) -> Result<()> {
    for r in resources {
        r.check()
            .map_err(|f| Error::new(ErrorKind::InvalidInput, format!("{r}: {f}")))?;
    }
    Ok(())
}

fn refuse_bad(resource: &Resource) -> Result<()> {
    resource.check().map_err(|f| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("refusing to journal {resource}: {f}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const AMI: &str = "ami-0123456789abcdef0";

    fn aws_image(id: Option<&str>) -> Resource {
        Resource::AwsImage {
            id: id.map(str::to_string),
            name: "capos-test".into(),
            region: Some("us-east-1".into()),
        }
    }

    #[test]
    fn journal_round_trips_and_survives_reopen() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("resources.json");
        let mut j = Journal::create(&p, "aws", "run1").unwrap();
        let i = j.add(aws_image(None), State::Creating).unwrap();
        j.update(i, aws_image(Some(AMI)), State::Created, None)
            .unwrap();
        let k = Journal::open(&p).unwrap();
        assert_eq!(k.data().resources.len(), 1);
        assert_eq!(k.data().resources[0].state, State::Created);
        assert_eq!(k.live()[0].1.to_string(), format!("AMI {AMI}"));
        // Only the journal: no temporary file left beside it.
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["resources.json"]);
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

    /// A journal of one entry whose resource is `resource` (JSON).
    fn journal_with(dir: &Path, provider: &str, resource: serde_json::Value) -> PathBuf {
        let p = dir.join("resources.json");
        let v = serde_json::json!({
            "version": 1, "provider": provider, "run_id": "r1",
            "resources": [{"resource": resource, "state": "created", "updated_unix": 1}],
        });
        fs::write(&p, v.to_string()).unwrap();
        p
    }

    #[test]
    fn hostile_names_are_refused_naming_file_field_and_value() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (
                serde_json::json!({"kind": "aws-image", "id": null, "name": "*", "region": null}),
                "resources[0].resource.name \"*\" is not an AMI name",
            ),
            (
                serde_json::json!({"kind": "aws-instance", "id": "--dry-run", "name": "capos-x", "region": null}),
                "resources[0].resource.id \"--dry-run\" is not an EC2 instance id",
            ),
            (
                serde_json::json!({"kind": "aws-instance", "id": " i-0123456789abcdef0", "name": "capos-x", "region": null}),
                "resources[0].resource.id \" i-0123456789abcdef0\" is not an EC2 instance id",
            ),
            (
                serde_json::json!({"kind": "aws-snapshot", "id": "snap-0123456789abcdef0", "region": "-x"}),
                "resources[0].resource.region \"-x\" is not an AWS region code",
            ),
            (
                serde_json::json!({"kind": "s3-object", "uri": "s3://bkt/*", "region": null}),
                "resources[0].resource.uri \"s3://bkt/*\" is not an S3 key",
            ),
            (
                serde_json::json!({"kind": "aws-import-task", "id": null, "description": "", "region": null}),
                "resources[0].resource.description \"\" is not an AMI name",
            ),
            (
                serde_json::json!({"kind": "aws-image", "id": null, "name": "a".repeat(129), "region": null}),
                "resources[0].resource.name \"aaaa",
            ),
        ];
        for (r, want) in cases {
            let p = journal_with(t.path(), "aws", r);
            let e = Journal::open(&p).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(
                e.message.starts_with(&format!("{}: {want}", p.display())),
                "{e}"
            );
            assert!(!e.message.contains('\n'), "one line: {e}");
        }
        let p = journal_with(
            t.path(),
            "gcp",
            serde_json::json!({"kind": "gcp-instance", "name": "capos\nx", "zone": "us-central1-a", "project": "capos-proj"}),
        );
        assert_eq!(
            Journal::open(&p).unwrap_err().message,
            format!("{}: resources[0].resource.name \"capos\\nx\" is not a Compute Engine name ([a-z]([-a-z0-9]{{0,61}}[a-z0-9])?)", p.display())
        );
        let p = journal_with(
            t.path(),
            "azure",
            serde_json::json!({"kind": "azure-vm", "resource_group": "rg", "name": "-x"}),
        );
        assert!(Journal::open(&p)
            .unwrap_err()
            .message
            .contains("resources[0].resource.name \"-x\" is not an Azure VM name"));
    }

    #[test]
    fn unknown_fields_and_foreign_kinds_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = journal_with(
            t.path(),
            "aws",
            serde_json::json!({"kind": "aws-image", "id": AMI, "name": "capos-x", "region": null, "filters": "*"}),
        );
        let e = Journal::open(&p).unwrap_err();
        assert!(e.message.contains("unknown field `filters`"), "{e}");
        // At the top and in an entry, too.
        for (at, v) in [
            (
                "top",
                serde_json::json!({"version": 1, "provider": "aws", "run_id": "r", "resources": [], "extra": 1}),
            ),
            (
                "entry",
                serde_json::json!({"version": 1, "provider": "aws", "run_id": "r", "resources": [
                {"resource": {"kind": "aws-image", "id": AMI, "name": "capos-x", "region": null},
                 "state": "created", "updated_unix": 1, "force": true}]}),
            ),
        ] {
            fs::write(&p, v.to_string()).unwrap();
            let e = Journal::open(&p).unwrap_err();
            assert!(e.message.contains("unknown field"), "{at}: {e}");
        }
        let p = journal_with(
            t.path(),
            "aws",
            serde_json::json!({"kind": "gcp-image", "name": "capos-x", "project": "capos-proj"}),
        );
        assert!(Journal::open(&p)
            .unwrap_err()
            .message
            .ends_with("resources[0].resource.kind: a gcp resource in a aws journal"));
        let p = journal_with(
            t.path(),
            "aws",
            serde_json::json!({"kind": "aws-image", "id": AMI, "name": "capos-x", "region": "us-east-1"}),
        );
        assert!(Journal::open(&p).is_ok());
    }

    #[test]
    fn bad_resources_are_never_journaled() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("resources.json");
        let mut j = Journal::create(&p, "aws", "r").unwrap();
        let e = j.add(aws_image(Some("*")), State::Creating).unwrap_err();
        assert!(e.message.contains("\"*\" is not an AMI id"), "{e}");
        let i = j.add(aws_image(None), State::Creating).unwrap();
        assert!(j
            .update(i, aws_image(Some("-x")), State::Created, None)
            .is_err());
        assert!(Journal::open(&p).unwrap().data().resources[0].resource == aws_image(None));
        assert!(Journal::create(&t.path().join("j2.json"), "aws", "--x").is_err());
    }

    #[test]
    fn journal_is_owner_only_new_and_never_written_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        let p = t.path().join("resources.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        // The name is taken (by a symlink): a new journal is refused.
        assert!(Journal::create(&p, "aws", "r").is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        fs::remove_file(&p).unwrap();
        let mut j = Journal::create(&p, "aws", "r").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A symlink planted over it is replaced on the next write, not
        // written through.
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        j.add(aws_image(None), State::Creating).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(Journal::open(&p).unwrap().data().resources.len(), 1);
    }

    #[test]
    fn fifo_and_huge_journals_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("big.json");
        fs::write(&p, vec![b' '; (MAX_JOURNAL_BYTES + 1) as usize]).unwrap();
        assert!(Journal::open(&p)
            .unwrap_err()
            .message
            .contains("larger than"));
        let d = t.path().join("dir.json");
        fs::create_dir(&d).unwrap();
        assert!(Journal::open(&d).is_err());
        let fifo = t.path().join("fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(
            Journal::open(&fifo).unwrap_err().message,
            format!("{}: not a regular file", fifo.display())
        );
    }
}
