//! Before anything is created: the CLI answers, its version is one
//! cloudimg knows to work, and it is logged in; who it acts as is
//! printed and recorded (`identity.json`, the summary's `identity`).
//! A failure here creates nothing, so nothing can be left behind, and
//! its message says what to run (`aws configure`, `gcloud auth login`,
//! `az login`) (issue 14, item 6).
//!
//! The commands: `aws --version` (`aws-cli/X.Y.Z Python/...` on stdout,
//! seen from the installed awscli 1.45), `aws sts get-caller-identity`
//! (`UserId`, `Account`, `Arn`: the CLI reference's example); `gcloud
//! version --format=json` (an object with `"Google Cloud SDK":
//! "528.0.0"`, seen from the installed SDK) and `gcloud config get-value
//! account|project|compute/zone` (the value on stdout, nothing but
//! `(unset)` on stderr when unset: seen from the installed SDK); `az
//! version --output json` (`"azure-cli": "2.x"`) and `az account show`
//! (`id`, `name`, `user.name`: the az reference) \[U\] for az, whose
//! outputs were not run here.

use serde::Serialize;

use crate::command::{CloudCommand, Runner};
use crate::error::{Error, ErrorKind, Result};

/// Who the CLI acts as, and with which CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The CLI (`aws`, `gcloud`, `az`).
    pub cli: String,
    /// Its version as it reports it.
    pub version: String,
    /// The principal: an ARN, a Google account, an Azure user.
    pub principal: String,
    /// The AWS account, the GCP project, the Azure subscription.
    pub account: String,
    /// GCP: `compute/zone` from gcloud's configuration, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Identity {
    /// One line for the log.
    pub fn line(&self) -> String {
        format!(
            "{} {} acting as {} (account {})",
            self.cli, self.version, self.principal, self.account
        )
    }
}

/// Oldest versions cloudimg accepts \[U\]: chosen, not derived from a
/// changelog, as releases from after the features the flows use
/// (`register-image --boot-mode uefi-preferred`, `describe-instance-types`
/// `Hypervisor`; gcloud `--guest-os-features`, `--no-address`; az
/// `disk create --source-storage-account-id`, `vm boot-diagnostics
/// get-boot-log-uris`). The tested versions are newer (awscli 1.45,
/// Google Cloud SDK 528).
pub const MIN_AWS_V1: (u32, u32) = (1, 29);
/// Oldest AWS CLI v2 accepted \[U\].
pub const MIN_AWS_V2: (u32, u32) = (2, 13);
/// Oldest Google Cloud SDK accepted \[U\].
pub const MIN_GCLOUD: (u32, u32) = (450, 0);
/// Oldest Azure CLI accepted \[U\].
pub const MIN_AZ: (u32, u32) = (2, 50);

/// `major.minor` of a dotted version.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// The version in `aws --version`'s `aws-cli/1.45.11 Python/...`.
pub fn parse_aws_version(stdout: &str) -> Option<String> {
    let first = stdout.split_whitespace().next()?;
    first.strip_prefix("aws-cli/").map(str::to_string)
}

fn too_old(cli: &str, version: &str, min: (u32, u32)) -> Error {
    Error::new(
        ErrorKind::MissingCli,
        format!(
            "{cli} {version} is older than the oldest version cloudimg works with ({}.{}): upgrade it",
            min.0, min.1
        ),
    )
}

fn not_logged_in(cli: &str, why: &str, run: &str) -> Error {
    Error::new(
        ErrorKind::Permission,
        format!("{cli} is not logged in ({why}): run `{run}`; nothing was created"),
    )
}

fn json(stdout: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(stdout).map_err(|e| {
        Error::new(
            ErrorKind::BadOutput,
            format!("`{what}` printed no JSON: {e}"),
        )
    })
}

/// A command's stdout, or the not-logged-in error with its reason.
fn ask(runner: &Runner, cmd: &CloudCommand, cli: &str, run: &str) -> Result<String> {
    let out = runner.run_raw(cmd)?;
    if !out.success() {
        return Err(not_logged_in(
            cli,
            &crate::command::reason(&out.stderr),
            run,
        ));
    }
    Ok(out.stdout)
}

/// `aws --version`.
pub fn aws_version() -> CloudCommand {
    CloudCommand::new("aws", ["--version"])
}

/// `aws sts get-caller-identity`.
pub fn aws_identity(region: Option<&str>) -> CloudCommand {
    let mut args = vec!["sts", "get-caller-identity", "--output", "json"];
    if let Some(r) = region {
        args.extend(["--region", r]);
    }
    CloudCommand::new("aws", args)
}

/// `gcloud version --format=json`.
pub fn gcloud_version() -> CloudCommand {
    CloudCommand::new("gcloud", ["version", "--format=json"])
}

/// `az version`.
pub fn az_version() -> CloudCommand {
    CloudCommand::new("az", ["version", "--output", "json"])
}

/// `az account show`.
pub fn az_account() -> CloudCommand {
    CloudCommand::new("az", ["account", "show", "--output", "json"])
}

/// `aws --version`, then `aws sts get-caller-identity`.
pub fn aws(runner: &Runner, region: Option<&str>) -> Result<Identity> {
    let cmd = aws_version();
    let out = runner.run(&cmd)?;
    // AWS CLI v1 printed its version on stderr before 1.18 (\[U\]).
    let text = if out.stdout.trim().is_empty() {
        &out.stderr
    } else {
        &out.stdout
    };
    let version = parse_aws_version(text).ok_or_else(|| {
        Error::new(
            ErrorKind::BadOutput,
            format!(
                "`aws --version` printed {:?}, not aws-cli/X.Y.Z",
                text.trim()
            ),
        )
    })?;
    let min = if version.starts_with("1.") {
        MIN_AWS_V1
    } else {
        MIN_AWS_V2
    };
    if major_minor(&version).is_none_or(|v| v < min) {
        return Err(too_old("aws-cli", &version, min));
    }
    let mut args = vec!["sts", "get-caller-identity", "--output", "json"];
    if let Some(r) = region {
        args.extend(["--region", r]);
    }
    let who = json(
        &ask(
            runner,
            &CloudCommand::new("aws", args),
            "aws",
            "aws configure",
        )?,
        "aws sts get-caller-identity",
    )?;
    Ok(Identity {
        cli: "aws".into(),
        version,
        principal: who["Arn"].as_str().unwrap_or_default().to_string(),
        account: who["Account"].as_str().unwrap_or_default().to_string(),
        zone: None,
    })
}

/// `gcloud config get-value KEY` (empty when unset).
pub fn gcloud_config(key: &str) -> CloudCommand {
    CloudCommand::new("gcloud", ["config", "get-value", key])
}

/// `gcloud version --format=json`, then the active account, project and
/// zone from gcloud's configuration. An access token given through
/// `CLOUDSDK_AUTH_ACCESS_TOKEN_FILE` counts as logged in.
pub fn gcloud(runner: &Runner) -> Result<Identity> {
    let v = json(&runner.run(&gcloud_version())?.stdout, "gcloud version")?;
    let version = v["Google Cloud SDK"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if major_minor(&version).is_none_or(|v| v < MIN_GCLOUD) {
        return Err(too_old("Google Cloud SDK", &version, MIN_GCLOUD));
    }
    let get = |key: &str| -> Result<String> {
        Ok(
            ask(runner, &gcloud_config(key), "gcloud", "gcloud auth login")?
                .trim()
                .to_string(),
        )
    };
    let mut principal = get("account")?;
    if principal.is_empty() {
        let token_file = runner
            .env
            .iter()
            .any(|(k, _)| k == "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
            || std::env::var_os("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE").is_some();
        if !token_file {
            return Err(not_logged_in(
                "gcloud",
                "no active account in its configuration",
                "gcloud auth login",
            ));
        }
        principal = "the access token in CLOUDSDK_AUTH_ACCESS_TOKEN_FILE".into();
    }
    let zone = get("compute/zone")?;
    Ok(Identity {
        cli: "gcloud".into(),
        version,
        principal,
        account: get("project")?,
        zone: (!zone.is_empty()).then_some(zone),
    })
}

/// `az version`, then `az account show`.
pub fn az(runner: &Runner) -> Result<Identity> {
    let v = json(&runner.run(&az_version())?.stdout, "az version")?;
    let version = v["azure-cli"].as_str().unwrap_or_default().to_string();
    if major_minor(&version).is_none_or(|v| v < MIN_AZ) {
        return Err(too_old("azure-cli", &version, MIN_AZ));
    }
    let who = json(
        &ask(runner, &az_account(), "az", "az login")?,
        "az account show",
    )?;
    Ok(Identity {
        cli: "az".into(),
        version,
        principal: who["user"]["name"].as_str().unwrap_or_default().to_string(),
        account: format!(
            "{} ({})",
            who["name"].as_str().unwrap_or_default(),
            who["id"].as_str().unwrap_or_default()
        ),
        zone: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_the_clis_print_them() {
        assert_eq!(
            parse_aws_version("aws-cli/1.45.11 Python/3.11.7 Linux/6.18 botocore/1.43.11\n")
                .as_deref(),
            Some("1.45.11")
        );
        assert_eq!(
            parse_aws_version("aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12")
                .as_deref(),
            Some("2.15.30")
        );
        assert_eq!(parse_aws_version("oops"), None);
        assert_eq!(major_minor("528.0.0"), Some((528, 0)));
        assert_eq!(major_minor("2.57"), Some((2, 57)));
        assert_eq!(major_minor("x"), None);
        assert!(major_minor("1.28.9").unwrap() < MIN_AWS_V1);
    }
}
