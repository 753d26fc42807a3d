//! Azure through the real `az` (azure-cli from .venv/cloud). Azure
//! compute has no emulator, so every command line cloudimg plans is run
//! through az's own argument parser, not logged in: each must get past
//! parsing to az's login error. The blob steps (page blob upload, delete)
//! run for real against Azurite.

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
    // The planned lines, less `--auth-mode login`: login needs an Azure
    // AD token, which Azurite only checks over HTTPS (`--oauth basic`);
    // here the account key comes from AZURE_STORAGE_CONNECTION_STRING.
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
