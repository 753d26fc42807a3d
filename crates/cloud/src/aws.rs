//! Amazon EC2 through the `aws` CLI: VM Import of a disk as a snapshot,
//! then an AMI registered from it.
//!
//! `aws s3 cp`, `aws ec2 import-snapshot --disk-container {...}` (Format
//! RAW/VHD/VMDK), poll `describe-import-snapshot-tasks`, `register-image`
//! with the boot mode and the root device mapping, `run-instances`,
//! `get-console-output --latest`; teardown: `terminate-instances`,
//! `deregister-image`, `delete-snapshot`, `aws s3 rm`.

use std::time::Instant;

use serde_json::json;

use cloudimg_disk::formats::Format;
use cloudimg_disk::verify::Report;
use cloudimg_disk::vocab::Provider;

use crate::command::{CloudCommand, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::Target;
use crate::flow::{ph, Session};
use crate::journal::{Resource, State};
use crate::preflight::Identity;
use crate::provider::{ProviderFlow, Step};

use crate::aws_parse::parse_json;
pub use crate::aws_parse::*;

/// The disk container format of `import-snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsFormat {
    /// `RAW`.
    Raw,
    /// `VHD`.
    Vhd,
    /// `VMDK` (stream-optimized).
    Vmdk,
}

impl AwsFormat {
    /// Every container format, in `--format` order.
    pub const ALL: [AwsFormat; 3] = [AwsFormat::Raw, AwsFormat::Vhd, AwsFormat::Vmdk];

    /// The artifact formats that import as this container format (AWS
    /// takes fixed and dynamic VHDs alike: the project's cloud-formats
    /// reference, §2).
    pub fn formats(self) -> &'static [Format] {
        match self {
            AwsFormat::Raw => &[Format::Raw],
            AwsFormat::Vhd => &[Format::VhdFixed, Format::VhdDynamic],
            AwsFormat::Vmdk => &[Format::Vmdk],
        }
    }

    /// The container format an artifact of `format` imports as; None when
    /// AWS does not take it ([`Provider::accepts`]).
    pub fn of(format: Format) -> Option<AwsFormat> {
        if !Provider::Aws.accepts(format) {
            return None;
        }
        Self::ALL
            .into_iter()
            .find(|a| a.formats().contains(&format))
    }

    /// The API's name: `RAW`, `VHD`, `VMDK`.
    pub fn api_name(self) -> &'static str {
        match self {
            AwsFormat::Raw => "RAW",
            AwsFormat::Vhd => "VHD",
            AwsFormat::Vmdk => "VMDK",
        }
    }
    /// The file extension: `raw`, `vhd`, `vmdk`.
    pub fn ext(self) -> &'static str {
        match self {
            AwsFormat::Raw => "raw",
            AwsFormat::Vhd => "vhd",
            AwsFormat::Vmdk => "vmdk",
        }
    }
}

/// `register-image --boot-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// `uefi`.
    Uefi,
    /// `legacy-bios`.
    LegacyBios,
    /// `uefi-preferred`: UEFI where the instance type supports it.
    UefiPreferred,
}

impl BootMode {
    /// The API's value.
    pub fn api_name(self) -> &'static str {
        match self {
            BootMode::Uefi => "uefi",
            BootMode::LegacyBios => "legacy-bios",
            BootMode::UefiPreferred => "uefi-preferred",
        }
    }
}

/// Where and under which names an AWS run works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTarget {
    /// The S3 bucket (in the same region).
    pub bucket: String,
    /// `--region` (None: the CLI's configuration decides).
    pub region: Option<String>,
    /// The artifact's format.
    pub format: AwsFormat,
    /// The AMI's boot mode.
    pub boot_mode: BootMode,
    /// The instance type (must support the boot mode; Nitro types do UEFI).
    pub instance_type: String,
    /// AMI name, instance `Name` tag, object key `NAME.<ext>`.
    pub name: String,
    /// `run-instances --subnet-id` (None: the default VPC's default
    /// subnet, which an account may not have).
    pub subnet_id: Option<String>,
    /// `run-instances --security-group-ids` (empty: the VPC's default
    /// group).
    pub security_group_ids: Vec<String>,
    /// Tags (`KEY=VALUE`) of the AMI and its snapshot.
    pub labels: Vec<(String, String)>,
}

/// The default instance type (Nitro: NVMe, UEFI and BIOS).
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// The root device name.
pub const ROOT_DEVICE: &str = "/dev/xvda";

impl AwsTarget {
    /// Check names (AMI names: 3-128 of letters, digits, `()[] ./-'@_`).
    pub fn validate(&self) -> Result<()> {
        let n = &self.name;
        let ok = (3..=128).contains(&n.len())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "()[]./-'@_".contains(c));
        if !ok {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "AWS resource name {n:?} is invalid: use 3-128 letters, digits and ()[]./-'@_"
                ),
            ));
        }
        if self.bucket.is_empty() || self.bucket.contains(['/', ' ']) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("S3 bucket {:?} is invalid", self.bucket),
            ));
        }
        for id in self.subnet_id.iter() {
            crate::names::aws_subnet_id(id).map_err(|rule| {
                Error::new(ErrorKind::InvalidInput, format!("subnet {id:?} is {rule}"))
            })?;
        }
        crate::names::labels(&self.labels)?;
        for id in &self.security_group_ids {
            crate::names::aws_security_group_id(id).map_err(|rule| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("security group {id:?} is {rule}"),
                )
            })?;
        }
        crate::names::aws_instance_type(&self.instance_type).map_err(|rule| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("instance type {:?} is {rule}", self.instance_type),
            )
        })?;
        crate::journal::check_names(&self.resources())
    }

    /// Every resource a run creates, as journaled before its id is known.
    pub fn resources(&self) -> Vec<Resource> {
        let region = || self.region.clone();
        vec![
            Resource::S3Object {
                uri: self.object_uri(),
                region: region(),
            },
            Resource::AwsImportTask {
                id: None,
                description: self.name.clone(),
                region: region(),
            },
            Resource::AwsImage {
                id: None,
                name: self.name.clone(),
                region: region(),
            },
            Resource::AwsInstance {
                id: None,
                name: self.name.clone(),
                region: region(),
            },
        ]
    }

    /// The object key: `NAME.<ext>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.name, self.format.ext())
    }

    /// `s3://BUCKET/KEY`.
    pub fn object_uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key())
    }

    fn ec2(&self, op: &str, args: Vec<String>, json_out: bool) -> CloudCommand {
        ec2(op, args, self.region.as_deref(), json_out)
    }

    /// Upload the artifact. `--only-show-errors`: off a terminal `aws s3
    /// cp` still prints a progress line per part, which would fill the
    /// command log; the option ("Only errors and warnings are displayed.
    /// All other output is suppressed.", `aws s3 cp help` of awscli
    /// 1.46.3; also in v2's reference) keeps the errors cloudimg reads.
    pub fn upload(&self, artifact: &str) -> CloudCommand {
        let mut a = vec![
            "s3".to_string(),
            "cp".into(),
            artifact.to_string(),
            self.object_uri(),
            "--only-show-errors".into(),
        ];
        push_region(&mut a, self.region.as_deref());
        CloudCommand::new("aws", a)
    }

    /// Start the snapshot import.
    pub fn import_snapshot(&self) -> CloudCommand {
        let container = json!({
            "Description": self.name,
            "Format": self.format.api_name(),
            "UserBucket": {"S3Bucket": self.bucket, "S3Key": self.key()},
        });
        self.ec2(
            "import-snapshot",
            vec![
                "--description".into(),
                self.name.clone(),
                "--disk-container".into(),
                container.to_string(),
            ],
            true,
        )
    }

    /// Ask how the import task is doing.
    pub fn describe_import(&self, task_id: &str) -> CloudCommand {
        self.ec2(
            "describe-import-snapshot-tasks",
            vec!["--import-task-ids".into(), task_id.to_string()],
            true,
        )
    }

    /// Register the AMI from the snapshot.
    pub fn register_image(&self, snapshot_id: &str) -> CloudCommand {
        let bdm = json!([{
            "DeviceName": ROOT_DEVICE,
            "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": true},
        }]);
        self.ec2(
            "register-image",
            vec![
                "--name".into(),
                self.name.clone(),
                "--architecture".into(),
                "x86_64".into(),
                "--virtualization-type".into(),
                "hvm".into(),
                "--root-device-name".into(),
                ROOT_DEVICE.into(),
                "--block-device-mappings".into(),
                bdm.to_string(),
                "--ena-support".into(),
                "--boot-mode".into(),
                self.boot_mode.api_name().into(),
            ]
            .into_iter()
            .chain(self.tag_spec("image"))
            .collect(),
            true,
        )
    }

    /// `--tag-specifications` for a `kind` of resource with the labels
    /// (none without labels).
    fn tag_spec(&self, kind: &str) -> Vec<String> {
        if self.labels.is_empty() {
            return vec![];
        }
        vec![
            "--tag-specifications".into(),
            json!([{"ResourceType": kind, "Tags": self.tags_json()}]).to_string(),
        ]
    }

    fn tags_json(&self) -> serde_json::Value {
        self.labels
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect()
    }

    /// Tag the imported snapshot with the labels (`create-tags`: the
    /// snapshot is made by the import, which tags only its task).
    pub fn tag_snapshot(&self, snapshot_id: &str) -> CloudCommand {
        self.ec2(
            "create-tags",
            vec![
                flag_eq("resources", snapshot_id),
                "--tags".into(),
                self.tags_json().to_string(),
            ],
            false,
        )
    }

    /// Launch one instance, tagged `Name=NAME`, with the run's client
    /// token: "If you repeat the request with the same client token, the
    /// same response is returned" and no second instance starts (the CLI
    /// reference's `--client-token`: "Unique, case-sensitive identifier
    /// you provide to ensure the idempotency of the request ... Maximum
    /// 64 ASCII characters").
    pub fn run_instance(&self, image_id: &str, client_token: &str) -> CloudCommand {
        let tags =
            json!([{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": self.name}]}]);
        let mut a = vec![
            "--image-id".into(),
            image_id.to_string(),
            "--instance-type".into(),
            self.instance_type.clone(),
            "--count".into(),
            "1".into(),
            flag_eq("client-token", client_token),
            "--tag-specifications".into(),
            tags.to_string(),
        ];
        if let Some(subnet) = &self.subnet_id {
            a.push(flag_eq("subnet-id", subnet));
        }
        if !self.security_group_ids.is_empty() {
            // A list option: "string" "string" ... (ids checked, never
            // an option).
            a.push("--security-group-ids".into());
            a.extend(self.security_group_ids.iter().cloned());
        }
        self.ec2("run-instances", a, true)
    }

    /// Whether the instance type runs on the Nitro hypervisor: `Latest`
    /// console output "is supported on instance types that use the Nitro
    /// hypervisor" (GetConsoleOutput API reference), and
    /// `describe-instance-types` names it (`Hypervisor`: `nitro | xen`).
    pub fn describe_type(&self) -> CloudCommand {
        self.ec2(
            "describe-instance-types",
            vec![flag_eq("instance-types", &self.instance_type)],
            true,
        )
    }

    /// The instance's console output: the latest (`--latest`) where the
    /// type supports it, else the buffered output.
    pub fn console(&self, instance_id: &str, latest: bool) -> CloudCommand {
        let mut a = vec!["--instance-id".into(), instance_id.to_string()];
        if latest {
            a.push("--latest".into());
        }
        self.ec2("get-console-output", a, true)
    }
}

impl ProviderFlow for AwsTarget {
    fn provider(&self) -> Provider {
        Provider::Aws
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn boot_mode(&self) -> String {
        self.boot_mode.api_name().into()
    }

    fn validate(&self) -> Result<()> {
        AwsTarget::validate(self)
    }

    fn clis(&self) -> Vec<&'static str> {
        vec!["aws"]
    }

    fn expected_shape(&self) -> String {
        format!(
            "{} (--format {})",
            self.format.api_name(),
            self.format.ext()
        )
    }

    /// The shape `--format` names, and only that one.
    fn takes(&self, report: &Report) -> bool {
        AwsFormat::of(report.format) == Some(self.format)
    }

    fn publishes(&self, r: &Resource) -> bool {
        matches!(r, Resource::AwsImage { .. } | Resource::AwsSnapshot { .. })
    }

    fn resources(&self) -> Vec<Resource> {
        AwsTarget::resources(self)
    }

    fn steps(&self, artifact: &str) -> Vec<Step> {
        let r = self.region.as_deref();
        vec![
            (
                "preflight (version, identity)",
                vec![
                    crate::preflight::aws_version(),
                    crate::preflight::aws_identity(r),
                ],
            ),
            ("upload", vec![self.upload(artifact)]),
            (
                "import (poll the task until completed)",
                vec![
                    self.import_snapshot(),
                    self.describe_import(&ph("import-task-id")),
                ],
            ),
            (
                "register",
                if self.labels.is_empty() {
                    vec![self.register_image(&ph("snapshot-id"))]
                } else {
                    vec![
                        self.tag_snapshot(&ph("snapshot-id")),
                        self.register_image(&ph("snapshot-id")),
                    ]
                },
            ),
            (
                "boot (--latest console where the type's hypervisor is nitro)",
                vec![
                    self.describe_type(),
                    self.run_instance(&ph("image-id"), &ph("run-id-name")),
                ],
            ),
            (
                "read console (repeated; a NotFound retried while the instance propagates)",
                vec![self.console(&ph("instance-id"), true)],
            ),
            (
                "teardown (each deletion confirmed by describing)",
                vec![
                    terminate(&ph("instance-id"), r),
                    crate::settle::describe_instance(&ph("instance-id"), r),
                    deregister(&ph("image-id"), r),
                    crate::settle::describe_image(&ph("image-id"), r),
                    delete_snapshot(&ph("snapshot-id"), r),
                    crate::settle::describe_snapshot(&ph("snapshot-id"), r),
                    delete_object(&self.object_uri(), r),
                ],
            ),
        ]
    }

    fn preflight(&self, runner: &Runner) -> Result<(Identity, Option<Target>)> {
        Ok((crate::preflight::aws(runner, self.region.as_deref())?, None))
    }

    fn run(&self, s: &mut Session<'_>) -> Result<()> {
        let art = crate::command::path_arg(&s.opts.artifact);
        let obj = Resource::S3Object {
            uri: self.object_uri(),
            region: self.region.clone(),
        };
        s.create(obj, &self.upload(&art))?;
        let snapshot = self.import(s)?;
        let ami = self.register(s, &snapshot)?;
        s.summary.image_id = Some(ami.clone());
        let latest = self.nitro(s);
        let iid = self.boot(s, &ami)?;
        s.summary.instance_id = Some(iid.clone());
        let started = Instant::now();
        let console = self.console(&iid, latest);
        s.wait_landmark(started, |c| {
            let out = c.runner.run_settled(&console)?;
            parse_console(&out.stdout)
        })
    }
}

/// The steps of a run, each creating one resource whose id AWS gives.
impl AwsTarget {
    /// Start the snapshot import, journal the task with its id, wait for
    /// the snapshot and journal it. Returns the snapshot id.
    fn import(&self, s: &Session<'_>) -> Result<String> {
        let mut res = Resource::AwsImportTask {
            id: None,
            description: self.name.clone(),
            region: self.region.clone(),
        };
        let (i, out) = s.create(res.clone(), &self.import_snapshot())?;
        let task = parse_import_task(&out)?;
        if let Resource::AwsImportTask { id, .. } = &mut res {
            *id = Some(task.clone());
        }
        s.set(i, res)?;
        let snapshot = self.wait_import(s, &task)?;
        s.add(
            Resource::AwsSnapshot {
                id: snapshot.clone(),
                region: self.region.clone(),
            },
            State::Created,
        )?;
        s.log(&format!("imported snapshot {snapshot}"));
        if !self.labels.is_empty() {
            s.runner.run_settled(&self.tag_snapshot(&snapshot))?;
        }
        Ok(snapshot)
    }

    /// Poll import task `task` until it has made its snapshot.
    fn wait_import(&self, s: &Session<'_>, task: &str) -> Result<String> {
        let deadline = Instant::now() + s.opts.import_timeout;
        loop {
            s.check_interrupt()?;
            let st = parse_import_status(&s.runner.run(&self.describe_import(task))?.stdout)?;
            match st.status.as_str() {
                "completed" => {
                    return st.snapshot_id.ok_or_else(|| {
                        Error::new(
                            ErrorKind::BadOutput,
                            format!("import task {task} completed without a SnapshotId"),
                        )
                    })
                }
                "deleting" | "deleted" => return Err(self.import_rejected(task, st.message)),
                other => s.log(&format!(
                    "import {task}: {other} {}% {}",
                    st.progress.as_deref().unwrap_or("?"),
                    st.message.as_deref().unwrap_or("")
                )),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "import task {task} did not complete within {} s",
                        s.opts.import_timeout.as_secs()
                    ),
                ));
            }
            std::thread::sleep(s.opts.poll_interval);
        }
    }

    /// The error for an import task AWS gave up on: a permission problem
    /// when it names the `vmimport` role.
    fn import_rejected(&self, task: &str, message: Option<String>) -> Error {
        let why = message.unwrap_or_else(|| "no StatusMessage".into());
        let kind = if why.contains("vmimport") {
            ErrorKind::Permission
        } else {
            ErrorKind::ImportFailed
        };
        Error::new(
            kind,
            format!(
                "AWS rejected the import ({task}, {} {}): {why}",
                self.format.api_name(),
                self.object_uri()
            ),
        )
    }

    /// Register the AMI from `snapshot`, journaled with its id.
    fn register(&self, s: &Session<'_>, snapshot: &str) -> Result<String> {
        let mut img = Resource::AwsImage {
            id: None,
            name: self.name.clone(),
            region: self.region.clone(),
        };
        let (i, out) = s.create_settled(img.clone(), &self.register_image(snapshot))?;
        let ami = parse_image_id(&out)?;
        if let Resource::AwsImage { id, .. } = &mut img {
            *id = Some(ami.clone());
        }
        s.set(i, img)?;
        Ok(ami)
    }

    /// Whether to read the console with `--latest`: the instance type's
    /// hypervisor is `nitro`. A describe that fails (permissions) means
    /// the plain, buffered output.
    fn nitro(&self, s: &Session<'_>) -> bool {
        match s.runner.run(&self.describe_type()) {
            Ok(out) => {
                let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
                let h = v["InstanceTypes"][0]["Hypervisor"].as_str().unwrap_or("");
                s.log(&format!(
                    "instance type {}: hypervisor {h:?}; console read {}",
                    self.instance_type,
                    if h == "nitro" {
                        "with --latest"
                    } else {
                        "buffered (no --latest)"
                    }
                ));
                h == "nitro"
            }
            Err(e) => {
                s.log(&format!(
                    "describe-instance-types: {e}; console read buffered"
                ));
                false
            }
        }
    }

    /// Launch the instance from `ami`, journaled with its id. The client
    /// token is the run's (unique per run, the same on every retry).
    fn boot(&self, s: &Session<'_>, ami: &str) -> Result<String> {
        let mut inst = Resource::AwsInstance {
            id: None,
            name: self.name.clone(),
            region: self.region.clone(),
        };
        let token = client_token(&s.summary.run_id, &self.name);
        let (i, out) = s.create_settled(inst.clone(), &self.run_instance(ami, &token))?;
        let iid = parse_instance_id(&out)?;
        if let Resource::AwsInstance { id, .. } = &mut inst {
            *id = Some(iid.clone());
        }
        s.set(i, inst)?;
        Ok(iid)
    }
}

/// The run's `run-instances` client token: `RUNID-NAME`, cut to the 64
/// ASCII characters EC2 takes (run ids and names are ASCII).
pub fn client_token(run_id: &str, name: &str) -> String {
    let mut t = format!("{run_id}-{name}");
    t.truncate(64);
    t
}

fn push_region(a: &mut Vec<String>, region: Option<&str>) {
    if let Some(r) = region {
        a.push("--region".into());
        a.push(r.to_string());
    }
}

/// `aws ec2 OP ARGS [--region R] [--output json]`.
pub fn ec2(op: &str, args: Vec<String>, region: Option<&str>, json_out: bool) -> CloudCommand {
    let mut a = vec!["ec2".to_string(), op.to_string()];
    a.extend(args);
    push_region(&mut a, region);
    if json_out {
        a.push("--output".into());
        a.push("json".into());
    }
    CloudCommand::new("aws", a)
}

/// `--NAME=VALUE`: one argument, so that the CLI (Python argparse, which
/// takes `--option=value` for every long option) can never read VALUE as
/// an option of its own, whatever it holds. The ids teardown passes are
/// also checked against their syntax first ([`crate::names`]); this is
/// the second line.
fn flag_eq(name: &str, value: &str) -> String {
    format!("--{name}={value}")
}

/// Terminate an instance.
pub fn terminate(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "terminate-instances",
        vec![flag_eq("instance-ids", id)],
        region,
        true,
    )
}

/// Find instances by `Name` tag that are not terminated.
pub fn find_instances(name: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-instances",
        vec![
            "--filters".into(),
            format!("Name=tag:Name,Values={name}"),
            "Name=instance-state-name,Values=pending,running,stopping,stopped".into(),
        ],
        region,
        true,
    )
}

/// Find own AMIs by name.
pub fn find_images(name: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-images",
        vec![
            "--owners".into(),
            "self".into(),
            "--filters".into(),
            format!("Name=name,Values={name}"),
        ],
        region,
        true,
    )
}

/// Deregister an AMI.
pub fn deregister(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "deregister-image",
        vec![flag_eq("image-id", id)],
        region,
        false,
    )
}

/// Delete a snapshot.
pub fn delete_snapshot(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "delete-snapshot",
        vec![flag_eq("snapshot-id", id)],
        region,
        false,
    )
}

/// Cancel an import task.
pub fn cancel_import(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "cancel-import-task",
        vec![flag_eq("import-task-id", id)],
        region,
        true,
    )
}

/// Describe an import task (for teardown).
pub fn describe_import(id: &str, region: Option<&str>) -> CloudCommand {
    ec2(
        "describe-import-snapshot-tasks",
        vec![flag_eq("import-task-ids", id)],
        region,
        true,
    )
}

/// List every import snapshot task (to find one by description).
pub fn list_imports(region: Option<&str>) -> CloudCommand {
    ec2("describe-import-snapshot-tasks", vec![], region, true)
}

/// The ids of the tasks whose description is `description`.
pub fn parse_import_ids(stdout: &str, description: &str) -> Result<Vec<String>> {
    let v = parse_json(stdout, "describe-import-snapshot-tasks")?;
    Ok(v["ImportSnapshotTasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["Description"].as_str() == Some(description)
                || t["SnapshotTaskDetail"]["Description"].as_str() == Some(description)
        })
        .filter_map(|t| t["ImportTaskId"].as_str().map(str::to_string))
        .collect())
}

/// Delete an object.
pub fn delete_object(uri: &str, region: Option<&str>) -> CloudCommand {
    let mut a = vec!["s3".to_string(), "rm".into(), uri.to_string()];
    push_region(&mut a, region);
    CloudCommand::new("aws", a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_import_task_shapes_parse() {
        // The AWS CLI reference's examples for describe-import-snapshot-tasks.
        let active = r#"{ "ImportSnapshotTasks": [ { "Description": "My server VMDK", "ImportTaskId": "import-snap-1234567890abcdef0", "SnapshotTaskDetail": { "Description": "My server VMDK", "DiskImageSize": "705638400.0", "Format": "VMDK", "Progress": "42", "Status": "active", "StatusMessage": "downloading/converting", "UserBucket": { "S3Bucket": "my-import-bucket", "S3Key": "vms/my-server-vm.vmdk" } } } ] }"#;
        let s = parse_import_status(active).unwrap();
        assert_eq!(s.status, "active");
        assert_eq!(s.progress.as_deref(), Some("42"));
        let done = r#"{ "ImportSnapshotTasks": [ { "ImportTaskId": "import-snap-1", "SnapshotTaskDetail": { "Format": "VMDK", "SnapshotId": "snap-1234567890abcdef0", "Status": "completed" } } ] }"#;
        let s = parse_import_status(done).unwrap();
        assert_eq!(s.snapshot_id.as_deref(), Some("snap-1234567890abcdef0"));
        assert!(parse_import_status("{}").is_err());
    }

    #[test]
    fn targets_refuse_names_their_journal_would_refuse() {
        let good = AwsTarget {
            bucket: "capos-images".into(),
            region: Some("us-east-1".into()),
            format: AwsFormat::Raw,
            boot_mode: BootMode::Uefi,
            instance_type: DEFAULT_INSTANCE_TYPE.into(),
            name: "capos-test".into(),
            subnet_id: None,
            security_group_ids: vec![],
            labels: vec![],
        };
        assert!(good.validate().is_ok());
        let with = |f: &dyn Fn(&mut AwsTarget)| {
            let mut t = good.clone();
            f(&mut t);
            t.validate().unwrap_err().message
        };
        assert_eq!(
            with(&|t| t.name = "--dry-run".into()),
            "S3 object s3://capos-images/--dry-run.raw: uri \"s3://capos-images/--dry-run.raw\" is not an S3 key cloudimg writes (1-1024 letters, digits and ()[]./-'@_, not starting with '-' or '/')"
                .replace("S3 object", "object")
        );
        assert!(with(&|t| t.region = Some("*".into()))
            .contains("region \"*\" is not an AWS region code"));
        assert!(with(&|t| t.bucket = "Capos".into()).contains("is not an S3 bucket name"));
        assert!(with(&|t| t.instance_type = "--dry-run".into())
            .starts_with("instance type \"--dry-run\" is not an EC2 instance type"));
    }

    #[test]
    fn container_formats_cover_what_aws_accepts() {
        for f in AwsFormat::ALL {
            for &format in f.formats() {
                assert!(Provider::Aws.accepts(format), "{format}");
                assert_eq!(AwsFormat::of(format), Some(f));
            }
        }
        assert_eq!(AwsFormat::of(Format::VhdDynamic), Some(AwsFormat::Vhd));
        assert_eq!(AwsFormat::of(Format::Qcow2), None);
        assert_eq!(AwsFormat::of(Format::Gzip), None);
    }
}
