//! Google Compute Engine through `gcloud` (and optionally `gsutil`):
//! the command lines of the manual custom-image import.
//!
//! Upload `disk.raw.tar.gz` to Cloud Storage, `gcloud compute images
//! create NAME --source-uri gs://... --guest-os-features=UEFI_COMPATIBLE`,
//! `gcloud compute instances create NAME --image NAME`, read the serial
//! port with `get-serial-port-output --start=N --format=json`, then
//! delete the instance, the image and the object.

use std::time::Instant;

use cloudimg_disk::vocab::{Firmware, Provider};

use crate::command::{CloudCommand, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::Target;
use crate::flow::{import_error, Session};
use crate::journal::Resource;
use crate::preflight::Identity;
use crate::provider::{ProviderFlow, Step};

/// Where and under which names a GCP run works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpTarget {
    /// The project (`--project`); empty: gcloud's configured `project`.
    pub project: String,
    /// The Cloud Storage bucket the tarball is uploaded to.
    pub bucket: String,
    /// The zone of the instance; empty: gcloud's configured
    /// `compute/zone`.
    pub zone: String,
    /// `instances create --network` (None: the project's `default`).
    pub network: Option<String>,
    /// `instances create --subnet` (None: the network's subnet in the
    /// zone's region).
    pub subnet: Option<String>,
    /// `images create --family` (for `--publish`: the image family).
    pub family: Option<String>,
    /// `images create --labels` (`KEY=VALUE`).
    pub labels: Vec<(String, String)>,
    /// The machine type.
    pub machine_type: String,
    /// Name of the image and the instance; the object is `NAME.tar.gz`.
    pub name: String,
    /// Upload and delete the object with `gsutil` instead of `gcloud storage`.
    pub gsutil: bool,
    /// UEFI: the image is marked `UEFI_COMPATIBLE`; BIOS: it is not, and
    /// boots legacy BIOS (\[U\], see the crate's documentation).
    pub firmware: Firmware,
}

/// The default machine type (UEFI-capable, small).
pub const DEFAULT_MACHINE_TYPE: &str = "e2-small";

impl GcpTarget {
    /// Check names against GCE's rules (`[a-z]([-a-z0-9]{0,61}[a-z0-9])?`).
    /// A project or zone left to gcloud's configuration (empty) is
    /// checked once the preflight has filled it in.
    pub fn validate(&self) -> Result<()> {
        if self.project.is_empty() || self.zone.is_empty() {
            let mut t = self.clone();
            if t.project.is_empty() {
                t.project = "unset-project".into();
            }
            if t.zone.is_empty() {
                t.zone = "us-central1-a".into();
            }
            return t.validate();
        }
        crate::names::labels(&self.labels)?;
        for (what, v) in [
            ("network", &self.network),
            ("subnet", &self.subnet),
            ("image family", &self.family),
        ] {
            if let Some(v) = v {
                crate::names::gce_name(v).map_err(|rule| {
                    Error::new(ErrorKind::InvalidInput, format!("{what} {v:?} is {rule}"))
                })?;
            }
        }
        let n = &self.name;
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && !n.ends_with('-')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("GCP resource name {n:?} is invalid: use 1-63 lowercase letters, digits and '-', starting with a letter"),
            ));
        }
        for (what, v) in [
            ("project", &self.project),
            ("bucket", &self.bucket),
            ("zone", &self.zone),
        ] {
            if v.is_empty() || v.contains(['/', ' ']) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("GCP {what} {v:?} is invalid"),
                ));
            }
        }
        crate::names::gce_machine_type(&self.machine_type).map_err(|rule| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("machine type {:?} is {rule}", self.machine_type),
            )
        })?;
        crate::journal::check_names(&self.resources())
    }

    /// Every resource a run creates, in creation order (object, image,
    /// instance), as journaled.
    pub fn resources(&self) -> Vec<Resource> {
        vec![
            Resource::GcsObject {
                uri: self.object_uri(),
                project: self.project.clone(),
                gsutil: self.gsutil,
            },
            Resource::GcpImage {
                name: self.name.clone(),
                project: self.project.clone(),
            },
            Resource::GcpInstance {
                name: self.name.clone(),
                zone: self.zone.clone(),
                project: self.project.clone(),
            },
        ]
    }

    fn project_flag(&self) -> String {
        format!("--project={}", self.project)
    }

    fn zone_flag(&self) -> String {
        format!("--zone={}", self.zone)
    }

    /// `gs://BUCKET/NAME.tar.gz`.
    pub fn object_uri(&self) -> String {
        format!("gs://{}/{}.tar.gz", self.bucket, self.name)
    }

    /// Upload the tarball.
    pub fn upload(&self, artifact: &str) -> CloudCommand {
        if self.gsutil {
            CloudCommand::new(
                "gsutil",
                ["cp".to_string(), artifact.to_string(), self.object_uri()],
            )
        } else {
            CloudCommand::new(
                "gcloud",
                [
                    "storage".to_string(),
                    "cp".into(),
                    artifact.to_string(),
                    self.object_uri(),
                    self.project_flag(),
                ],
            )
        }
    }

    /// Create the image from the uploaded tarball.
    pub fn create_image(&self) -> CloudCommand {
        let mut a = vec![
            "compute".to_string(),
            "images".into(),
            "create".into(),
            self.name.clone(),
            self.project_flag(),
            format!("--source-uri={}", self.object_uri()),
        ];
        if self.firmware == Firmware::Uefi {
            a.push("--guest-os-features=UEFI_COMPATIBLE".into());
        }
        if let Some(f) = &self.family {
            a.push(format!("--family={f}"));
        }
        if !self.labels.is_empty() {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            a.push(format!("--labels={}", l.join(",")));
        }
        a.push("--format=json".into());
        CloudCommand::new("gcloud", a)
    }

    /// Boot an instance from the image, with no external IP address
    /// (`--no-address`: "the instances are not assigned external IP
    /// addresses"; the serial port is read through the API, so none is
    /// needed, and an organization policy may forbid one).
    pub fn create_instance(&self) -> CloudCommand {
        let mut a = vec![
            "compute".to_string(),
            "instances".into(),
            "create".into(),
            self.name.clone(),
            self.project_flag(),
            self.zone_flag(),
            format!("--image={}", self.name),
            format!("--machine-type={}", self.machine_type),
            "--no-address".into(),
        ];
        if let Some(n) = &self.network {
            a.push(format!("--network={n}"));
        }
        if let Some(n) = &self.subnet {
            a.push(format!("--subnet={n}"));
        }
        a.push("--format=json".into());
        CloudCommand::new("gcloud", a)
    }

    /// This target with gcloud's configured project and zone where none
    /// was given; an error naming the flag and the `gcloud config set`
    /// command when neither has one.
    pub fn with_config(&self, identity: &Identity) -> Result<GcpTarget> {
        let mut t = self.clone();
        if t.project.is_empty() {
            t.project = identity.account.clone();
        }
        if t.zone.is_empty() {
            t.zone = identity.zone.clone().unwrap_or_default();
        }
        for (what, v, key) in [
            ("project", &t.project, "project PROJECT"),
            ("zone", &t.zone, "compute/zone ZONE"),
        ] {
            if v.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "no GCP {what}: give --{what}, or set one with `gcloud config set {key}`"
                    ),
                ));
            }
        }
        Ok(t)
    }

    /// For a plan: a project or zone left to gcloud's configuration
    /// shown as `<gcloud config project>` / `<gcloud config compute/zone>`.
    fn shown(&self) -> GcpTarget {
        let mut t = self.clone();
        if t.project.is_empty() {
            t.project = crate::flow::ph("gcloud config project");
        }
        if t.zone.is_empty() {
            t.zone = crate::flow::ph("gcloud config compute/zone");
        }
        t
    }

    /// Serial port 1 output from byte `start`.
    pub fn serial(&self, start: u64) -> CloudCommand {
        CloudCommand::new(
            "gcloud",
            [
                "compute".to_string(),
                "instances".into(),
                "get-serial-port-output".into(),
                self.name.clone(),
                self.project_flag(),
                self.zone_flag(),
                "--port=1".into(),
                format!("--start={start}"),
                "--format=json".into(),
            ],
        )
    }
}

impl ProviderFlow for GcpTarget {
    fn provider(&self) -> Provider {
        Provider::Gcp
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn boot_mode(&self) -> String {
        match self.firmware {
            Firmware::Uefi => "UEFI_COMPATIBLE".into(),
            Firmware::Bios => "legacy-bios".into(),
        }
    }

    fn validate(&self) -> Result<()> {
        GcpTarget::validate(self)
    }

    fn clis(&self) -> Vec<&'static str> {
        if self.gsutil {
            vec!["gcloud", "gsutil"]
        } else {
            vec!["gcloud"]
        }
    }

    fn expected_shape(&self) -> String {
        "a GCP disk.raw.tar.gz".into()
    }

    fn preflight(&self, runner: &Runner) -> Result<(Identity, Option<Target>)> {
        let id = crate::preflight::gcloud(runner)?;
        let t = self.with_config(&id)?;
        Ok((id, Some(Target::Gcp(t))))
    }

    fn publishes(&self, r: &Resource) -> bool {
        matches!(r, Resource::GcpImage { .. })
    }

    fn resources(&self) -> Vec<Resource> {
        GcpTarget::resources(self)
    }

    fn steps(&self, artifact: &str) -> Vec<Step> {
        let this = self.shown();
        let this = &this;
        use crate::preflight::{gcloud_config, gcloud_version};
        vec![
            (
                "preflight (version, account, project, zone)",
                vec![
                    gcloud_version(),
                    gcloud_config("account"),
                    gcloud_config("compute/zone"),
                    gcloud_config("project"),
                ],
            ),
            ("upload", vec![this.upload(artifact)]),
            ("import", vec![this.create_image()]),
            ("boot", vec![this.create_instance()]),
            (
                "read serial (repeated, --start=<next>)",
                vec![this.serial(0)],
            ),
            (
                "teardown (instance and image deletions confirmed by describing)",
                vec![
                    delete_instance(&this.name, &this.zone, &this.project),
                    crate::settle::gcp_describe_instance(&this.name, &this.zone, &this.project),
                    delete_image(&this.name, &this.project),
                    crate::settle::gcp_describe_image(&this.name, &this.project),
                    delete_object(&this.object_uri(), &this.project, this.gsutil),
                ],
            ),
        ]
    }

    fn run(&self, s: &mut Session<'_>) -> Result<()> {
        let art = crate::command::path_arg(&s.opts.artifact);
        let obj = Resource::GcsObject {
            uri: self.object_uri(),
            project: self.project.clone(),
            gsutil: self.gsutil,
        };
        s.create(obj, &self.upload(&art))?;
        let img = Resource::GcpImage {
            name: self.name.clone(),
            project: self.project.clone(),
        };
        let (_, out) = s
            .create(img, &self.create_image())
            .map_err(|e| import_error("GCP", e))?;
        let (name, id) = parse_created(&out, "images")?;
        s.summary.image_id = Some(if id.is_empty() {
            name
        } else {
            format!("{name} ({id})")
        });
        let inst = Resource::GcpInstance {
            name: self.name.clone(),
            zone: self.zone.clone(),
            project: self.project.clone(),
        };
        let (_, out) = s.create(inst, &self.create_instance())?;
        let (iname, _) = parse_created(&out, "instances")?;
        s.summary.instance_id = Some(iname);
        let started = Instant::now();
        let mut next = 0u64;
        let mut text = String::new();
        s.wait_landmark(started, |c| {
            let out = c.runner.run(&self.serial(next))?;
            let (more, n) = parse_serial(&out.stdout, next)?;
            text.push_str(&more);
            next = n;
            Ok(text.clone())
        })
    }
}

/// Delete an instance.
pub fn delete_instance(name: &str, zone: &str, project: &str) -> CloudCommand {
    CloudCommand::new(
        "gcloud",
        [
            "compute".to_string(),
            "instances".into(),
            "delete".into(),
            name.to_string(),
            format!("--project={project}"),
            format!("--zone={zone}"),
            "--quiet".into(),
        ],
    )
}

/// Delete an image.
pub fn delete_image(name: &str, project: &str) -> CloudCommand {
    CloudCommand::new(
        "gcloud",
        [
            "compute".to_string(),
            "images".into(),
            "delete".into(),
            name.to_string(),
            format!("--project={project}"),
            "--quiet".into(),
        ],
    )
}

/// Delete an object.
pub fn delete_object(uri: &str, project: &str, gsutil: bool) -> CloudCommand {
    if gsutil {
        CloudCommand::new("gsutil", ["rm", uri])
    } else {
        CloudCommand::new(
            "gcloud",
            [
                "storage".to_string(),
                "rm".into(),
                uri.to_string(),
                format!("--project={project}"),
            ],
        )
    }
}

/// Parse `gcloud compute images create --format=json` (a list of the
/// created images): name and numeric id.
pub fn parse_created(stdout: &str, what: &str) -> Result<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("gcloud {what} create printed no JSON list: {e}"),
        )
    })?;
    let first = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
    let name = first["name"].as_str().unwrap_or_default().to_string();
    let id = match &first["id"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::BadOutput,
            format!("gcloud {what} create output has no name"),
        ));
    }
    Ok((name, id))
}

/// Parse `get-serial-port-output --format=json`: the new contents and the
/// offset to ask for next.
pub fn parse_serial(stdout: &str, start: u64) -> Result<(String, u64)> {
    let v: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("get-serial-port-output printed no JSON: {e}"),
        )
    })?;
    let contents = v["contents"].as_str().unwrap_or_default().to_string();
    let next = match &v["next"] {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .unwrap_or(start + contents.len() as u64);
    Ok((contents, next))
}
