//! `cloudimg config`: the cloud defaults in effect, from `--flag` >
//! `CLOUDIMG_*` environment > `cloudimg.toml` in the working directory >
//! the user's `config.toml` > built-in default, each with its source.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use common::ok;

/// Every variable that could leak a setting in from the test's own
/// environment.
const VARS: &[&str] = &[
    "CLOUDIMG_GCP_PROJECT",
    "CLOUDIMG_GCP_BUCKET",
    "CLOUDIMG_GCP_ZONE",
    "CLOUDIMG_GCP_MACHINE_TYPE",
    "CLOUDIMG_AWS_BUCKET",
    "CLOUDIMG_AWS_REGION",
    "CLOUDIMG_AWS_INSTANCE_TYPE",
    "CLOUDIMG_AZURE_RESOURCE_GROUP",
    "CLOUDIMG_AZURE_LOCATION",
    "CLOUDIMG_AZURE_STORAGE_ACCOUNT",
    "CLOUDIMG_AZURE_CONTAINER",
    "CLOUDIMG_AZURE_SIZE",
    "XDG_CONFIG_HOME",
];

/// `cloudimg ARGS` in `cwd` with `HOME` at `home` and only `env` set of
/// the cloudimg variables.
fn run(args: &[&str], cwd: &Path, home: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudimg"));
    c.args(args).current_dir(cwd).env("HOME", home);
    for v in VARS {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running cloudimg")
}

fn config_json(cwd: &Path, home: &Path, env: &[(&str, &str)]) -> Value {
    let out = ok(run(&["config", "--json"], cwd, home, env));
    serde_json::from_str(&out).unwrap()
}

/// A project directory and a home directory, each in the temp dir.
fn dirs(t: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cwd, home) = (t.join("project"), t.join("home"));
    fs::create_dir_all(&cwd).unwrap();
    fs::create_dir_all(home.join(".config/cloudimg")).unwrap();
    (cwd, home)
}

fn value<'a>(doc: &'a Value, key: &str) -> (&'a Value, &'a str) {
    let v = &doc["values"][key];
    (&v["value"], v["source"].as_str().unwrap())
}

/// Environment over the working directory's file over the user's file
/// over the default, key by key; the document says which file.
#[test]
fn environment_beats_project_file_beats_user_file_beats_default() {
    let t = tempfile::tempdir().unwrap();
    let (cwd, home) = dirs(t.path());
    let user = home.join(".config/cloudimg/config.toml");
    fs::write(
        &user,
        "[gcp]\nproject = \"user-p\"\nbucket = \"user-b\"\nzone = \"user-z\"\n[aws]\nregion = \"user-r\"\n",
    )
    .unwrap();
    fs::write(
        cwd.join("cloudimg.toml"),
        "[gcp]\nproject = \"proj-p\"\nzone = \"proj-z\"\n",
    )
    .unwrap();
    let doc = config_json(
        &cwd,
        &home,
        &[("CLOUDIMG_GCP_ZONE", "env-z"), ("CLOUDIMG_AWS_REGION", "")],
    );
    assert_eq!(doc["schema"], "cloudimg.config/1");
    let raw = ok(run(&["config", "--json"], &cwd, &home, &[]));
    assert!(raw.starts_with("{\n  \"schema\": "), "schema first: {raw}");
    assert_eq!(value(&doc, "gcp.zone"), (&"env-z".into(), "env"));
    assert_eq!(value(&doc, "gcp.project"), (&"proj-p".into(), "file"));
    assert_eq!(doc["values"]["gcp.project"]["file"], "cloudimg.toml");
    assert_eq!(value(&doc, "gcp.bucket"), (&"user-b".into(), "file"));
    assert_eq!(doc["values"]["gcp.bucket"]["file"], user.to_str().unwrap());
    // An empty variable is unset: the user's file decides.
    assert_eq!(value(&doc, "aws.region"), (&"user-r".into(), "file"));
    // The built-in defaults are cloudimg-cloud's constants.
    assert_eq!(
        value(&doc, "gcp.machine_type"),
        (&cloudimg_cloud::gcp::DEFAULT_MACHINE_TYPE.into(), "default")
    );
    assert_eq!(value(&doc, "azure.container"), (&Value::Null, "unset"));
    assert_eq!(doc["values"]["azure.container"]["unset"], "required");
    assert_eq!(doc["values"]["gcp.zone"]["env"], "CLOUDIMG_GCP_ZONE");
    assert_eq!(doc["values"]["gcp.zone"]["flag"], "--zone");
    let files: Vec<(&str, bool)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["found"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        files,
        [("cloudimg.toml", true), (user.to_str().unwrap(), true)]
    );

    // The table says the same.
    let text = ok(run(
        &["config"],
        &cwd,
        &home,
        &[("CLOUDIMG_GCP_ZONE", "env-z")],
    ));
    let line = |k: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .unwrap_or_else(|| panic!("{k} not in:\n{text}"))
            .to_string()
    };
    assert!(
        line("gcp.zone").contains("environment CLOUDIMG_GCP_ZONE"),
        "{text}"
    );
    assert!(line("gcp.project").contains("file cloudimg.toml"), "{text}");
    assert!(line("azure.container").contains("unset"), "{text}");
}

/// `XDG_CONFIG_HOME` names the user's directory when absolute; a relative
/// one is ignored (XDG Base Directory Specification).
#[test]
fn xdg_config_home_is_the_users_directory_when_absolute() {
    let t = tempfile::tempdir().unwrap();
    let (cwd, home) = dirs(t.path());
    fs::write(
        home.join(".config/cloudimg/config.toml"),
        "[azure]\nlocation = \"home\"\n",
    )
    .unwrap();
    let xdg = t.path().join("xdg");
    fs::create_dir_all(xdg.join("cloudimg")).unwrap();
    fs::write(
        xdg.join("cloudimg/config.toml"),
        "[azure]\nlocation = \"xdg\"\n",
    )
    .unwrap();
    let doc = config_json(&cwd, &home, &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())]);
    assert_eq!(value(&doc, "azure.location"), (&"xdg".into(), "file"));
    let doc = config_json(&cwd, &home, &[("XDG_CONFIG_HOME", "relative/dir")]);
    assert_eq!(value(&doc, "azure.location"), (&"home".into(), "file"));
    let doc = config_json(&cwd, &t.path().join("nowhere"), &[]);
    assert_eq!(value(&doc, "azure.location"), (&Value::Null, "unset"));
}

/// A key cloudimg does not know, a value of the wrong type or broken
/// TOML: one line naming the file and the key (or line), exit 2.
#[test]
fn unknown_key_is_an_error_naming_file_and_key() {
    let t = tempfile::tempdir().unwrap();
    let (cwd, home) = dirs(t.path());
    let user = home.join(".config/cloudimg/config.toml");
    let cases = [
        (&user, "[gcp]\nprojet = \"p\"\n", "unknown key gcp.projet"),
        (&user, "[gpc]\nproject = \"p\"\n", "unknown key gpc.project"),
        (&user, "zone = \"z\"\n", "unknown key zone"),
        (&user, "[aws]\nregion = 1\n", "aws.region must be a string"),
        (
            &user,
            "[aws]\nregion = \"r\"\n[aws\n",
            "line 3: invalid TOML",
        ),
    ];
    for (file, text, want) in cases {
        fs::write(file, text).unwrap();
        let out = run(&["config"], &cwd, &home, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{}: {want}", file.display())),
            "{text}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    // The project file is named as the user typed nothing: cloudimg.toml.
    fs::remove_file(&user).unwrap();
    fs::write(cwd.join("cloudimg.toml"), "[azure]\nsku = \"x\"\n").unwrap();
    let out = run(&["config", "--json"], &cwd, &home, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cloudimg.toml: unknown key azure.sku"),
        "{err}"
    );
}

/// The `--zone=` of `cloud gcp --plan`'s instance command.
fn planned_zone(cwd: &Path, home: &Path, flag: Option<&str>, env: &[(&str, &str)]) -> String {
    let mut args = vec!["cloud", "gcp", "--plan", "--bucket", "b"];
    if let Some(z) = flag {
        args.extend(["--zone", z]);
    }
    let plan = ok(run(&args, cwd, home, env));
    let line = plan
        .lines()
        .find(|l| l.contains("instances create"))
        .unwrap_or_else(|| panic!("no instance in the plan:\n{plan}"));
    // The value ends at the closing quote of a quoted word, else at a space.
    let at = line
        .find("--zone=")
        .unwrap_or_else(|| panic!("no --zone in {line}"));
    let rest = &line[at + "--zone=".len()..];
    let end = if line[..at].ends_with('\'') {
        '\''
    } else {
        ' '
    };
    rest.split(end).next().unwrap().to_string()
}

/// `cloud gcp` takes its options from the same places, flag first.
#[test]
fn cloud_options_come_from_flag_then_env_then_file_then_default() {
    let t = tempfile::tempdir().unwrap();
    let (cwd, home) = dirs(t.path());
    let user = home.join(".config/cloudimg/config.toml");
    fs::write(&user, "[gcp]\nproject = \"p\"\n").unwrap();
    // No zone anywhere: the run asks gcloud's configuration.
    let default = "<gcloud config compute/zone>";
    assert_eq!(planned_zone(&cwd, &home, None, &[]), default);
    fs::write(&user, "[gcp]\nproject = \"p\"\nzone = \"file-z\"\n").unwrap();
    assert_eq!(planned_zone(&cwd, &home, None, &[]), "file-z");
    let env = [("CLOUDIMG_GCP_ZONE", "env-z")];
    assert_eq!(planned_zone(&cwd, &home, None, &env), "env-z");
    assert_eq!(planned_zone(&cwd, &home, Some("flag-z"), &env), "flag-z");

    // The help names the built-in default cloudimg-cloud defines.
    let help = ok(run(&["cloud", "gcp", "--help"], &cwd, &home, &[]));
    let machine = cloudimg_cloud::gcp::DEFAULT_MACHINE_TYPE;
    assert!(help.contains(&format!("[default: {machine}")), "{help}");

    // Nothing anywhere for a required option: one line saying where to
    // give it, exit 2, nothing run.
    fs::remove_file(&user).unwrap();
    let out = run(&["cloud", "gcp", "--plan"], &cwd, &home, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--bucket is required") && err.contains("CLOUDIMG_GCP_BUCKET"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
