//! Before anything is created (issue 14, items 3, 4 and 6): who the CLI
//! acts as is checked, printed and recorded; a CLI that is not logged in
//! creates nothing and leaves nothing to report; Azure's location comes
//! from the resource group, the storage account is named by id, and "no
//! boot log yet" is waited out. These run against the az stand-in; AWS
//! and GCP run through the real CLIs (real_cli_aws.rs, real_cli_gcp.rs,
//! gcp_flow.rs).

mod common;

use cloudimg_cloud::{flow, ErrorKind, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, azure_target, options, StandIn};

fn run_in(si: &StandIn, target: &Target) -> (Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let o = options(artifact_for(target), ev.path().join("ev"), si);
    let s = flow::run(target, "preflight-run", &o).unwrap();
    (s, ev)
}

/// The argv of every stand-in call.
fn calls(si: &StandIn) -> Vec<Vec<String>> {
    std::fs::read_to_string(si.state().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn not_logged_in_creates_nothing_and_says_what_to_run() {
    if !common::ready() {
        return;
    }
    // AWS and GCP: real_cli_aws::no_credentials_fails_the_preflight_and_creates_nothing,
    // real_cli_gcp::not_logged_in_fails_the_preflight_and_creates_nothing.
    for (target, run) in [(azure_target("capos-p1", Firmware::Bios), "az login")] {
        let si = StandIn::new("not-logged-in");
        let (s, _ev) = run_in(&si, &target);
        assert!(!s.passed);
        assert_eq!(s.error_kind, Some(ErrorKind::Permission), "{s:#?}");
        let msg = s.error.clone().unwrap();
        assert!(
            msg.ends_with(&format!("run `{run}`; nothing was created")),
            "{msg}"
        );
        // No journal, no teardown, nothing to report left behind.
        assert!(s.teardown.is_none(), "{s:#?}");
        assert!(!s.evidence_dir.join("resources.json").exists());
        assert_eq!(si.leftovers(), Vec::<String>::new());
        // Only the read-only preflight ran.
        for argv in calls(&si) {
            let line = argv.join(" ");
            assert!(
                line.contains("--version")
                    || line.contains(" version")
                    || line.contains("get-caller-identity")
                    || line.contains("config get-value")
                    || line.contains("account show"),
                "{line}"
            );
        }
    }
}

#[test]
fn azure_location_from_the_group_account_by_id_and_no_log_yet_waited_out() {
    if !common::ready() {
        return;
    }
    // The storage account lives in another resource group; the boot log
    // is "not enabled" for the first three looks.
    let si = StandIn::new("no-boot-log-yet=3");
    std::fs::write(
        si.state().join("blob/caposimages/account.json"),
        r#"{"resourceGroup": "storage-rg", "location": "northeurope"}"#,
    )
    .unwrap();
    std::fs::write(
        si.state().join("azure/capos-rg/group.json"),
        r#"{"location": "northeurope"}"#,
    )
    .unwrap();
    let mut t = azure_target("capos-p4", Firmware::Bios);
    if let Target::Azure(z) = &mut t {
        z.location = String::new();
    }
    let (s, _ev) = run_in(&si, &t);
    assert!(s.passed, "{s:#?}");
    assert!(s.teardown.as_ref().unwrap().is_clean());
    assert_eq!(si.leftovers(), Vec::<String>::new());
    let disk = calls(&si)
        .into_iter()
        .find(|a| a.get(1..3) == Some(&["disk", "create"].map(String::from)[..]))
        .unwrap();
    let after = |flag: &str| disk[disk.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(after("--location"), "northeurope");
    assert!(
        after("--source-storage-account-id").ends_with(
            "/resourceGroups/storage-rg/providers/Microsoft.Storage/storageAccounts/caposimages"
        ),
        "{disk:?}"
    );
    let looks = calls(&si)
        .into_iter()
        .filter(|a| a.get(3).map(String::as_str) == Some("get-boot-log-uris"))
        .count();
    assert!(looks >= 4, "{looks}");

    // A location other than the storage account's is refused first.
    let si = StandIn::new("");
    let mut t = azure_target("capos-p5", Firmware::Bios);
    if let Target::Azure(z) = &mut t {
        z.location = "eastus".into();
    }
    let (s, _ev) = run_in(&si, &t);
    assert_eq!(s.error_kind, Some(ErrorKind::InvalidInput), "{s:#?}");
    assert!(
        s.error.as_deref().unwrap().starts_with(
            "storage account caposimages is in westeurope, the run's location is eastus"
        ),
        "{s:#?}"
    );
    assert!(!s.evidence_dir.join("resources.json").exists());
}
