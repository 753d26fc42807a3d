//! `cloudimg config`: the cloud defaults in effect and where each came
//! from (see [`crate::config`] for the files and variables read).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use serde::Serialize;

use crate::config::{Config, Source, KEYS};

/// `cloudimg config ...`
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
The cloud commands take each option from, in order: --flag, a CLOUDIMG_*
environment variable (CLOUDIMG_GCP_PROJECT for gcp.project; empty = unset),
cloudimg.toml in the working directory, the user's file
($XDG_CONFIG_HOME/cloudimg/config.toml, by default
~/.config/cloudimg/config.toml), cloudimg's built-in default. The files are
TOML, one table per provider:
  [gcp]    project, bucket, zone, machine_type
  [aws]    bucket, region, instance_type
  [azure]  resource_group, location, storage_account, container, size
An unknown key is an error naming the file and the key.

Examples:
  cloudimg config --json
  printf '[gcp]\\nproject = \"my-project\"\\n' > cloudimg.toml
  CLOUDIMG_GCP_BUCKET=my-images cloudimg config

Exit codes: 0 shown; 2 error (a configuration file cloudimg cannot use).")]
pub struct Args {
    /// Print a JSON document (schema cloudimg.config/1) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run `cloudimg config`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = Config::load()?;
    if args.json {
        super::outln!("{}", serde_json::to_string_pretty(&document(&cfg))?)?;
    } else {
        table(&cfg)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `cloudimg.config/1` document (docs/schema/config.schema.json).
#[derive(Serialize)]
struct Document {
    schema: &'static str,
    files: Vec<FileDoc>,
    values: BTreeMap<&'static str, ValueDoc>,
}

/// A file looked for.
#[derive(Serialize)]
struct FileDoc {
    path: PathBuf,
    found: bool,
}

/// One setting in effect: its value, where it came from (`flag`, `env`,
/// `file`, `default`, `unset`), the file when from one, what an unset
/// value means, and the option and environment variable that set it.
#[derive(Serialize)]
struct ValueDoc {
    value: Option<String>,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unset: Option<&'static str>,
    flag: &'static str,
    env: String,
}

fn document(cfg: &Config) -> Document {
    let values = KEYS
        .iter()
        .map(|key| {
            let r = cfg.resolve(key, None);
            let doc = ValueDoc {
                value: r.value,
                source: r.source.id(),
                file: match &r.source {
                    Source::File(p) => Some(p.clone()),
                    _ => None,
                },
                unset: (r.source == Source::Unset).then_some(key.unset),
                flag: key.flag,
                env: key.env(),
            };
            (key.name, doc)
        })
        .collect();
    Document {
        schema: "cloudimg.config/1",
        files: cfg
            .files
            .iter()
            .map(|f| FileDoc {
                path: f.path.clone(),
                found: f.found,
            })
            .collect(),
        values,
    }
}

/// The text table: key, value, source.
fn table(cfg: &Config) -> anyhow::Result<()> {
    let rows: Vec<[String; 3]> = KEYS
        .iter()
        .map(|key| {
            let r = cfg.resolve(key, None);
            let source = match r.source {
                Source::Unset => format!("unset: {}", key.unset),
                s => s.to_string(),
            };
            [
                key.name.to_string(),
                r.value.unwrap_or_else(|| "-".into()),
                source,
            ]
        })
        .collect();
    let head = ["KEY".to_string(), "VALUE".into(), "SOURCE".into()];
    let w0 = rows
        .iter()
        .chain([&head])
        .map(|r| r[0].len())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .chain([&head])
        .map(|r| r[1].len())
        .max()
        .unwrap_or(0);
    for r in [&head].into_iter().chain(&rows) {
        super::outln!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2])?;
    }
    for f in &cfg.files {
        let state = if f.found { "read" } else { "not found" };
        super::outln!("file {}: {state}", f.path.display())?;
    }
    Ok(())
}
