//! `--publish` on Azure (issue 14, item 7), against the az stand-in: the
//! boot is proven, the test VM and everything temporary go, the managed
//! disk stays with its tags, recorded as kept in the journal, from which
//! `cloud teardown --journal` removes it later. (GCP and AWS: real_cli_gcp.rs,
//! real_cli_aws.rs.)

mod common;

use cloudimg_cloud::{flow, Summary, Target};
use cloudimg_disk::vocab::Firmware;
use common::{artifact_for, azure_target, options, StandIn};

fn publish(target: &Target, si: &StandIn) -> (Summary, tempfile::TempDir) {
    let ev = tempfile::Builder::new()
        .prefix("evidence-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut o = options(artifact_for(target), ev.path().join("ev"), si);
    o.publish = true;
    let s = flow::run(target, "publish-run", &o).unwrap();
    (s, ev)
}

fn labels() -> Vec<(String, String)> {
    vec![
        ("os".into(), "capos".into()),
        ("release".into(), "v1-2".into()),
    ]
}

/// Publish, check what stayed, then remove it from the journal.
fn published_then_removed(target: Target, kept: &[&str], check: impl Fn(&StandIn, &Summary)) {
    let si = StandIn::new("");
    let (s, _ev) = publish(&target, &si);
    assert!(s.passed, "{s:#?}");
    let p = s.published.clone().expect("published");
    assert_eq!(p.image_id, s.image_id);
    assert_eq!(p.resources.len(), kept.len(), "{p:?}");
    for (r, k) in p.resources.iter().zip(kept) {
        assert!(r.starts_with(k), "{r} is not {k}");
    }
    let td = s.teardown.as_ref().unwrap();
    assert!(td.is_clean(), "{td:?}");
    check(&si, &s);
    // The journal says kept; the summary says published.
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p.journal).unwrap()).unwrap();
    let states: Vec<&str> = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "kept").count(),
        kept.len(),
        "{states:?}"
    );
    let sum: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.evidence_dir.join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sum["schema"], "cloudimg.cloud-run/1");
    assert_eq!(sum["published"]["image_id"], s.image_id.clone().unwrap());
    // Only the image is left, and no QEMU runs.
    assert!(!si.leftovers().is_empty());
    assert!(common::qemus_in(si.state()).is_empty());
    // Later: the journal removes it.
    let mut runner = cloudimg_cloud::Runner::new(cloudimg_cloud::command::quiet());
    runner.env = si.env();
    let r = cloudimg_cloud::teardown_journal(&p.journal, &runner).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.deleted.len(), kept.len(), "{r:?}");
    assert_eq!(si.leftovers(), Vec::<String>::new());
}

fn read(p: std::path::PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn azure_publishes_the_managed_disk_with_tags() {
    if !common::ready() {
        return;
    }
    let mut t = azure_target("capos-pub", Firmware::Bios);
    if let Target::Azure(z) = &mut t {
        z.labels = labels();
    }
    published_then_removed(t, &["Azure disk capos-pub-osdisk"], |si, _| {
        let d = read(
            si.state()
                .join("azure/capos-rg/disks/capos-pub-osdisk.json"),
        );
        assert_eq!(d["tags"]["os"], "capos", "{d}");
        assert_eq!(d["diskState"], "Unattached", "{d}");
        assert!(!si.state().join("azure/capos-rg/vms/capos-pub").exists());
        assert!(!si
            .state()
            .join("blob/caposimages/vhds/capos-pub.vhd")
            .exists());
    });
}
