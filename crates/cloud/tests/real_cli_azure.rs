//! Azure through the real `az` (azure-cli from .venv/cloud). Azure
//! compute has no emulator, so every command line cloudimg plans is run
//! through az's own argument parser, not logged in: each must get past
//! parsing to az's login error. The blob steps (page blob upload, delete,
//! the boot-log download) run for real against Azurite: once with the
//! account's connection string in place of `--auth-mode login`, and once
//! verbatim, logged in to a local Azure AD whose tokens Azurite checks
//! (`azure_emulator.py --login`).

mod common;

use std::path::Path;

use cloudimg_cloud::azure::{self, AzureTarget};
use cloudimg_cloud::Target;
use cloudimg_disk::vocab::Firmware;
use common::real::{az_env, require_installed, venv_bin, AzureEmu};
use common::{artifact_for, azure_target};

/// What az prints when a command that got past its parser needs an
/// account and none is logged in (azure-cli's
/// `azure/cli/core/_profile.py`, "Please run 'az login' to setup
/// account.").
const LOGIN_ERROR: &str = "Please run 'az login' to setup account.";

fn ready() -> bool {
    common::ready() && require_installed(&venv_bin().join("az"))
}

fn target(firmware: Firmware) -> AzureTarget {
    match azure_target("capos-az", firmware) {
        Target::Azure(a) => a,
        _ => unreachable!(),
    }
}

/// Every `az` line of the plan, as program arguments.
fn planned_az_lines(t: &AzureTarget, artifact: &Path) -> Vec<Vec<String>> {
    let plan = azure::plan(t, artifact).expect("the plan");
    plan.steps
        .iter()
        .flat_map(|s| s.commands.iter())
        .filter(|c| c.program == "az")
        .map(|c| c.args.clone())
        .collect()
}

#[test]
fn every_planned_az_line_gets_past_the_parser_to_the_login_error() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for fw in [Firmware::Uefi, Firmware::Bios] {
        let t = target(fw);
        let artifact = artifact_for(&Target::Azure(t.clone()));
        for args in planned_az_lines(&t, &artifact) {
            let out = std::process::Command::new(venv_bin().join("az"))
                .args(&args)
                .env_clear()
                .envs(az_env(dir.path()))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // `az version` (preflight) needs no login: it answers.
            if args.first().map(String::as_str) == Some("version") {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                if !out.status.success() || !v["azure-cli"].is_string() {
                    wrong.push(format!("az {}: {:?}: {err}", args.join(" "), out.status));
                }
                checked += 1;
                continue;
            }
            // az exits 2 on a usage error, 1 on the login error.
            if out.status.code() != Some(1) || !err.contains(LOGIN_ERROR) {
                wrong.push(format!("az {}: {:?}: {err}", args.join(" "), out.status));
            }
            checked += 1;
        }
    }
    assert!(checked >= 16, "{checked} lines");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn blob_steps_run_against_azurite() {
    if !ready() || !require_installed(&common::real::npm_bin().join("azurite-blob")) {
        return;
    }
    let emu = AzureEmu::start();
    let t = target(Firmware::Uefi);
    let artifact = artifact_for(&Target::Azure(t.clone()));
    // The planned lines, less `--auth-mode login`: the account key comes
    // from AZURE_STORAGE_CONNECTION_STRING (the lines verbatim, with a
    // login: blob_steps_run_verbatim_with_login_against_azurite).
    let upload = without_login(&t.upload(artifact.to_str().unwrap()).args);
    let out = emu.az(&upload.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{out:?}");
    // Azurite holds a page blob of the file's size and bytes.
    let show = emu.az(&[
        "storage",
        "blob",
        "show",
        "--container-name",
        "vhds",
        "--name",
        &t.blob_name(),
    ]);
    assert!(show.status.success(), "{show:?}");
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["properties"]["blobType"], "PageBlob", "{v}");
    let len = std::fs::metadata(&artifact).unwrap().len();
    assert_eq!(v["properties"]["contentLength"], len, "{v}");
    let back = emu.emu.dir.path().join("back.vhd");
    let dl = emu.az(&[
        "storage",
        "blob",
        "download",
        "--container-name",
        "vhds",
        "--name",
        &t.blob_name(),
        "--file",
        back.to_str().unwrap(),
    ]);
    assert!(dl.status.success(), "{dl:?}");
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&artifact).unwrap());
    // The planned delete, then Azurite lists nothing.
    let del = azure::delete(&t.blob_resource()).unwrap();
    let del = without_login(&del.args);
    let out = emu.az(&del.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{out:?}");
    let list = emu.az(&[
        "storage",
        "blob",
        "list",
        "--container-name",
        "vhds",
        "--query",
        "[].name",
    ]);
    assert!(list.status.success(), "{list:?}");
    let names: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(names, serde_json::json!([]));
}

/// `args` without the `--auth-mode login` pair.
fn without_login(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--auth-mode" {
            it.next();
            continue;
        }
        out.push(a.clone());
    }
    assert_ne!(out.len(), args.len(), "no --auth-mode in {args:?}");
    out
}

#[test]
fn blob_steps_run_verbatim_with_login_against_azurite() {
    if !ready() || !require_installed(&common::real::npm_bin().join("azurite-blob")) {
        return;
    }
    // Azurite over HTTPS checking Bearer tokens, a local Azure AD that
    // issues them, az logged in to it (see AzureEmu::start_login).
    let emu = AzureEmu::start_login();
    let t = target(Firmware::Uefi);
    let artifact = artifact_for(&Target::Azure(t.clone()));
    let bytes = std::fs::read(&artifact).unwrap();
    // The planned upload, verbatim.
    let upload = t.upload(artifact.to_str().unwrap()).args;
    assert!(has_login(&upload), "{upload:?}");
    let out = emu.az(&strs(&upload));
    assert!(out.status.success(), "{out:?}");
    // Azurite holds a page blob of the file's size.
    let show = emu.az(&[
        "storage",
        "blob",
        "show",
        "--account-name",
        &t.storage_account,
        "--container-name",
        &t.container,
        "--name",
        &t.blob_name(),
        "--auth-mode",
        "login",
    ]);
    assert!(show.status.success(), "{show:?}");
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["properties"]["blobType"], "PageBlob", "{v}");
    assert_eq!(v["properties"]["contentLength"], bytes.len(), "{v}");
    // Both shapes of the planned boot-log download read the blob back:
    // a plain URL with the login, a SAS URL (signed offline with the
    // account key) with nothing else.
    let login = emu.emu.urls["login"].clone();
    let url = format!(
        "https://{}.blob.{}/{}/{}",
        t.storage_account,
        login["storage_suffix"].as_str().unwrap(),
        t.container,
        t.blob_name()
    );
    let sas = emu.az(&[
        "storage",
        "blob",
        "generate-sas",
        "--account-name",
        &t.storage_account,
        "--account-key",
        &emu.emu.url("key"),
        "--container-name",
        &t.container,
        "--name",
        &t.blob_name(),
        "--permissions",
        "r",
        "--expiry",
        "2099-01-01T00:00Z",
        "--https-only",
        "--full-uri",
        "--output",
        "tsv",
    ]);
    assert!(sas.status.success(), "{sas:?}");
    let sas_url = String::from_utf8(sas.stdout).unwrap().trim().to_string();
    assert!(sas_url.starts_with(&format!("{url}?")), "{sas_url}");
    for (i, u) in [&url, &sas_url].into_iter().enumerate() {
        let back = emu.emu.dir.path().join(format!("back{i}.vhd"));
        let dl = AzureTarget::download_log(u, back.to_str().unwrap()).args;
        assert_eq!(has_login(&dl), i == 0, "{dl:?}");
        let out = emu.az(&strs(&dl));
        assert!(out.status.success(), "{out:?}");
        assert!(std::fs::read(&back).unwrap() == bytes, "{u}");
    }
    // Azurite's token check is on: the blob read with no token or with
    // a token for another audience is refused (403), with one for
    // storage served (200).
    assert_eq!(bearer_statuses(&emu, &t), "403 403 200");
    // The planned delete, verbatim; then Azurite lists nothing.
    let del = azure::delete(&t.blob_resource()).unwrap().args;
    assert!(has_login(&del), "{del:?}");
    let out = emu.az(&strs(&del));
    assert!(out.status.success(), "{out:?}");
    let list = emu.az(&[
        "storage",
        "blob",
        "list",
        "--account-name",
        &t.storage_account,
        "--container-name",
        &t.container,
        "--auth-mode",
        "login",
        "--query",
        "[].name",
    ]);
    assert!(list.status.success(), "{list:?}");
    let names: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(names, serde_json::json!([]));
}

/// `args` holds the pair `--auth-mode login`.
fn has_login(args: &[String]) -> bool {
    args.windows(2).any(|w| w == ["--auth-mode", "login"])
}

/// `args` as `&str`s.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The HTTP statuses of Azurite's answers to a read of the test blob
/// (straight at its path-style HTTPS URL, with Python's urllib) with no
/// Authorization, with a Bearer token for ARM, and with one for storage
/// (tokens minted by the emulator's own `token()`).
fn bearer_statuses(emu: &AzureEmu, t: &AzureTarget) -> String {
    const PY: &str = r#"
import ssl, sys, urllib.error, urllib.request
sys.path.insert(0, sys.argv[1])
from azure_emulator import token
url, cafile = sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
out = []
for aud in (None, "https://management.azure.com/", "https://storage.azure.com"):
    h = {"x-ms-version": "2021-08-06"}
    if aud:
        h["Authorization"] = "Bearer " + token(aud)
    try:
        out.append(urllib.request.urlopen(urllib.request.Request(url, headers=h), context=ctx).status)
    except urllib.error.HTTPError as e:
        out.append(e.code)
print(*out)
"#;
    let url = format!("{}/{}/{}", emu.emu.url("blob"), t.container, t.blob_name());
    let out = std::process::Command::new(common::real::venv_bin().join("python"))
        .args(["-c", PY])
        .arg(common::real::api_dir())
        .arg(url)
        .arg(emu.emu.urls["login"]["ca_bundle"].as_str().unwrap())
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
