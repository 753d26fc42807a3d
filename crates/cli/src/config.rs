//! Defaults for the cloud options, so they need not be typed on every
//! run: from `--flag`, else a `CLOUDIMG_*` environment variable, else a
//! configuration file, else the built-in default.
//!
//! Files, in order (a key in the first wins over the same key in the
//! second):
//! 1. `cloudimg.toml` in the working directory (a project's settings);
//! 2. the user's: `$XDG_CONFIG_HOME/cloudimg/config.toml`, or
//!    `~/.config/cloudimg/config.toml` when `XDG_CONFIG_HOME` is unset or
//!    not absolute (XDG Base Directory Specification 0.8: "If
//!    $XDG_CONFIG_HOME is either not set or empty, a default equal to
//!    $HOME/.config should be used"; relative paths are invalid).
//!
//! Both are TOML, one table per provider, keys named as the options are
//! (dashes as underscores):
//!
//! ```toml
//! [gcp]
//! project = "my-project"
//! bucket = "my-images"
//! zone = "europe-west1-b"
//!
//! [aws]
//! bucket = "my-images"
//! region = "eu-west-1"
//!
//! [azure]
//! resource_group = "images"
//! storage_account = "myimages"
//! container = "vhds"
//! ```
//!
//! A key or table cloudimg does not know, or a value that is not a
//! string, is an error naming the file and the key (a typo must not
//! silently fall back to a default). The environment variable of
//! `gcp.project` is `CLOUDIMG_GCP_PROJECT` (upper case, `.` as `_`); an
//! empty one counts as unset.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use cloudimg_cloud::aws::DEFAULT_INSTANCE_TYPE;
use cloudimg_cloud::azure::DEFAULT_VM_SIZE;
use cloudimg_cloud::gcp::DEFAULT_MACHINE_TYPE;

/// The name of the configuration file in the working directory.
pub const PROJECT_FILE: &str = "cloudimg.toml";

/// The largest configuration file read: a few hundred bytes is usual.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One setting.
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    /// `table.key` as in the file.
    pub name: &'static str,
    /// The command-line option it is the default of.
    pub flag: &'static str,
    /// The built-in default, if any.
    pub default: Option<&'static str>,
    /// What happens with no value at all (shown by `cloudimg config`).
    pub unset: &'static str,
}

impl Key {
    /// The environment variable: `CLOUDIMG_` and the name in upper case,
    /// `.` as `_` (`CLOUDIMG_GCP_PROJECT`).
    pub fn env(&self) -> String {
        format!("CLOUDIMG_{}", self.name.replace('.', "_").to_uppercase())
    }

    const fn new(name: &'static str, flag: &'static str, default: Option<&'static str>) -> Self {
        Key {
            name,
            flag,
            default,
            unset: "required",
        }
    }

    const fn optional(name: &'static str, flag: &'static str, unset: &'static str) -> Self {
        Key {
            name,
            flag,
            default: None,
            unset,
        }
    }
}

/// `cloud gcp --project`.
pub const GCP_PROJECT: Key =
    Key::optional("gcp.project", "--project", "gcloud's configured project");
/// `cloud gcp --bucket`.
pub const GCP_BUCKET: Key = Key::new("gcp.bucket", "--bucket", None);
/// `cloud gcp --zone`.
pub const GCP_ZONE: Key = Key::optional("gcp.zone", "--zone", "gcloud's configured compute/zone");
/// `cloud gcp --machine-type`.
pub const GCP_MACHINE_TYPE: Key = Key::new(
    "gcp.machine_type",
    "--machine-type",
    Some(DEFAULT_MACHINE_TYPE),
);
/// `cloud aws --bucket`.
pub const AWS_BUCKET: Key = Key::new("aws.bucket", "--bucket", None);
/// `cloud aws --region`: unset leaves it to the AWS CLI's configuration.
pub const AWS_REGION: Key =
    Key::optional("aws.region", "--region", "the AWS CLI's own configuration");
/// `cloud aws --instance-type`.
pub const AWS_INSTANCE_TYPE: Key = Key::new(
    "aws.instance_type",
    "--instance-type",
    Some(DEFAULT_INSTANCE_TYPE),
);
/// `cloud azure --resource-group`.
pub const AZURE_RESOURCE_GROUP: Key = Key::new("azure.resource_group", "--resource-group", None);
/// `cloud azure --location`.
pub const AZURE_LOCATION: Key = Key::optional(
    "azure.location",
    "--location",
    "the resource group's location",
);
/// `cloud azure --storage-account`.
pub const AZURE_STORAGE_ACCOUNT: Key = Key::new("azure.storage_account", "--storage-account", None);
/// `cloud azure --container`.
pub const AZURE_CONTAINER: Key = Key::new("azure.container", "--container", None);
/// `cloud azure --size`.
pub const AZURE_SIZE: Key = Key::new("azure.size", "--size", Some(DEFAULT_VM_SIZE));

/// Every setting, in the order `cloudimg config` shows them.
pub const KEYS: &[&Key] = &[
    &GCP_PROJECT,
    &GCP_BUCKET,
    &GCP_ZONE,
    &GCP_MACHINE_TYPE,
    &AWS_BUCKET,
    &AWS_REGION,
    &AWS_INSTANCE_TYPE,
    &AZURE_RESOURCE_GROUP,
    &AZURE_LOCATION,
    &AZURE_STORAGE_ACCOUNT,
    &AZURE_CONTAINER,
    &AZURE_SIZE,
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// This configuration file.
    File(PathBuf),
    /// cloudimg's built-in default.
    Default,
    /// Nowhere: no value.
    Unset,
}

impl Source {
    /// `flag`, `env`, `file`, `default` or `unset` (the JSON `source`).
    pub fn id(&self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env(_) => "env",
            Source::File(_) => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("command line"),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Default => f.write_str("built-in default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The value (None when unset).
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// A configuration file looked for.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its path.
    pub path: PathBuf,
    /// Whether it was there (and read).
    pub found: bool,
    values: BTreeMap<&'static str, String>,
}

/// The settings of the environment and the configuration files, read
/// once; [`Config::resolve`] adds the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The files looked for, first one winning.
    pub files: Vec<ConfigFile>,
    env: BTreeMap<&'static str, (String, String)>,
}

impl Config {
    /// Read the configuration of this process: `cloudimg.toml` in the
    /// working directory, the user's file, the `CLOUDIMG_*` environment.
    pub fn load() -> anyhow::Result<Config> {
        Config::load_from(Path::new("."), &|k| std::env::var_os(k))
    }

    /// Read the configuration with `cwd` as the working directory and
    /// `env` as the environment.
    pub fn load_from(cwd: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> anyhow::Result<Config> {
        let mut paths = vec![if cwd == Path::new(".") {
            PathBuf::from(PROJECT_FILE)
        } else {
            cwd.join(PROJECT_FILE)
        }];
        paths.extend(user_file(env));
        let files = paths
            .into_iter()
            .map(read_file)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut vars = BTreeMap::new();
        for key in KEYS {
            let var = key.env();
            if let Some(v) = env(&var) {
                let v = v
                    .into_string()
                    .map_err(|_| anyhow!("environment variable {var} is not valid UTF-8"))?;
                if !v.is_empty() {
                    vars.insert(key.name, (var, v));
                }
            }
        }
        Ok(Config { files, env: vars })
    }

    /// The value of `key`: `flag` when given, else the environment, else
    /// the first file that sets it, else the built-in default.
    pub fn resolve(&self, key: &Key, flag: Option<&str>) -> Resolved {
        let found = |value: &str, source| Resolved {
            value: Some(value.to_string()),
            source,
        };
        if let Some(v) = flag {
            return found(v, Source::Flag);
        }
        if let Some((var, v)) = self.env.get(key.name) {
            return found(v, Source::Env(var.clone()));
        }
        for f in &self.files {
            if let Some(v) = f.values.get(key.name) {
                return found(v, Source::File(f.path.clone()));
            }
        }
        match key.default {
            Some(d) => found(d, Source::Default),
            None => Resolved {
                value: None,
                source: Source::Unset,
            },
        }
    }

    /// The value of an option that may be left unset (`--region`).
    pub fn value(&self, key: &Key, flag: Option<String>) -> Option<String> {
        self.resolve(key, flag.as_deref()).value
    }

    /// The value of an option that must have one: an error saying the
    /// three ways to give it when none does.
    pub fn require(&self, key: &Key, flag: Option<String>) -> anyhow::Result<String> {
        self.value(key, flag).ok_or_else(|| {
            anyhow!(
                "{} is required: give it, or set {}, or {} in {} or {}",
                key.flag,
                key.env(),
                key.name,
                PROJECT_FILE,
                user_file_display()
            )
        })
    }
}

/// The user's configuration file, if a home or config directory is known.
fn user_file(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let xdg = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let dir = xdg.or_else(|| {
        env("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(dir.join("cloudimg").join("config.toml"))
}

/// The user's file as the docs name it.
fn user_file_display() -> &'static str {
    "~/.config/cloudimg/config.toml"
}

/// Read one configuration file (absent is fine; anything else wrong is
/// an error naming it).
fn read_file(path: PathBuf) -> anyhow::Result<ConfigFile> {
    use std::io::Read;
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigFile {
                path,
                found: false,
                values: BTreeMap::new(),
            })
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{}: larger than 1 MiB, not a cloudimg configuration",
            path.display()
        );
    }
    let values = parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(ConfigFile {
        path,
        found: true,
        values,
    })
}

/// The settings in a file's text; the error names the key (or the line
/// of a TOML syntax error).
fn parse(text: &str) -> Result<BTreeMap<&'static str, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        format!("{at}invalid TOML: {}", e.message().replace('\n', " "))
    })?;
    let mut out = BTreeMap::new();
    for (section, value) in &table {
        let toml::Value::Table(inner) = value else {
            return Err(unknown(section));
        };
        for (k, v) in inner {
            let name = format!("{section}.{k}");
            let key = KEYS
                .iter()
                .find(|key| key.name == name)
                .ok_or_else(|| unknown(&name))?;
            let toml::Value::String(s) = v else {
                return Err(format!(
                    "{name} must be a string in quotes (found a TOML {})",
                    v.type_str()
                ));
            };
            out.insert(key.name, s.clone());
        }
    }
    Ok(out)
}

fn unknown(name: &str) -> String {
    let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    format!("unknown key {name} (known: {})", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_keys() {
        assert_eq!(GCP_PROJECT.env(), "CLOUDIMG_GCP_PROJECT");
        assert_eq!(
            AZURE_STORAGE_ACCOUNT.env(),
            "CLOUDIMG_AZURE_STORAGE_ACCOUNT"
        );
    }

    #[test]
    fn parse_names_what_is_wrong() {
        assert_eq!(
            parse("[gcp]\nzone = \"z\"\n").unwrap()["gcp.zone"],
            "z".to_string()
        );
        assert!(parse("[gcp]\nprojet = \"p\"\n")
            .unwrap_err()
            .starts_with("unknown key gcp.projet"));
        assert!(parse("zone = \"z\"\n")
            .unwrap_err()
            .starts_with("unknown key zone"));
        assert_eq!(
            parse("[aws]\nregion = 3\n").unwrap_err(),
            "aws.region must be a string in quotes (found a TOML integer)"
        );
        assert!(parse("[gcp]\nzone = \n")
            .unwrap_err()
            .starts_with("line 2: invalid TOML"));
    }
}
