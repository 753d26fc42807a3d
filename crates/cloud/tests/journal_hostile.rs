//! `cloud teardown --journal` reads a file anyone may have written. A
//! journal whose names are wildcards (`*`), options (`-x`, `--dry-run`),
//! padded (` i-...`), overlong, or that has unknown fields, is refused
//! whole: no CLI runs and the stand-in cloud is unchanged. A valid one is
//! still torn down, and only what it names.
//!
//! The stand-in state is built here by hand (no import, no QEMU): two
//! AMIs, two instances, two S3 objects, two GCS objects, an Azure disk
//! and blob; one of each is "ours", the other someone else's. The
//! stand-ins apply EC2's filter wildcards and gcloud's object wildcards,
//! as the real services do, so a `*` that got through would show.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cloudimg_cloud::{ErrorKind, Runner};
use common::StandIn;
use serde_json::json;

const OUR_AMI: &str = "ami-0123456789abcdef0";
const THEIR_AMI: &str = "ami-0fedcba987654321f";
const OUR_INSTANCE: &str = "i-0123456789abcdef0";
const THEIR_INSTANCE: &str = "i-0fedcba987654321f";

fn write_json(p: &Path, v: serde_json::Value) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Our resources and someone else's, as the stand-ins keep them.
fn populate(si: &StandIn) {
    let s = si.state();
    for (ami, name) in [(OUR_AMI, "capos-mine"), (THEIR_AMI, "prod-web")] {
        write_json(
            &s.join(format!("aws/images/{ami}.json")),
            json!({"ImageId": ami, "Name": name, "RootDeviceName": "/dev/xvda",
                   "BlockDeviceMappings": [], "BootMode": "uefi", "State": "available"}),
        );
    }
    for (iid, name) in [(OUR_INSTANCE, "capos-mine"), (THEIR_INSTANCE, "prod-web")] {
        write_json(
            &s.join(format!("aws/instances/{iid}/instance.json")),
            json!({"InstanceId": iid, "State": {"Code": 16, "Name": "running"},
                   "Tags": [{"Key": "Name", "Value": name}],
                   "standin": {"pid": null, "firmware": "uefi", "disk": "nvme"}}),
        );
    }
    for f in [
        "s3/bkt/capos-mine.raw",
        "s3/bkt/prod-web.raw",
        "gcs/bkt/capos-mine.tar.gz",
        "gcs/bkt/prod-web.tar.gz",
        "blob/caposimages/vhds/capos-mine.vhd",
        "blob/caposimages/vhds/prod-web.vhd",
    ] {
        std::fs::write(s.join(f), f).unwrap();
    }
    for name in ["capos-mine-osdisk", "prod-web-osdisk"] {
        write_json(
            &s.join(format!("azure/capos-rg/disks/{name}.json")),
            json!({"name": name}),
        );
    }
}

/// Every file of the stand-in's state with its bytes (the call log
/// aside: it is checked on its own).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                walk(&p, out);
            } else if p.file_name().unwrap() != "calls.log" {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn runner(si: &StandIn) -> Runner {
    let mut r = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
    r.env = si.env();
    r.backoff = Duration::from_millis(10);
    r
}

fn journal(dir: &Path, provider: &str, resources: Vec<serde_json::Value>) -> PathBuf {
    let p = dir.join("resources.json");
    let entries: Vec<_> = resources
        .into_iter()
        .map(|r| json!({"resource": r, "state": "created", "updated_unix": 1_700_000_000u64}))
        .collect();
    write_json(
        &p,
        json!({"version": 1, "provider": provider, "run_id": "r1", "resources": entries}),
    );
    p
}

fn aws_image(id: serde_json::Value, name: &str) -> serde_json::Value {
    json!({"kind": "aws-image", "id": id, "name": name, "region": "us-east-1"})
}

fn aws_instance(id: serde_json::Value, name: &str) -> serde_json::Value {
    json!({"kind": "aws-instance", "id": id, "name": name, "region": "us-east-1"})
}

/// Each hostile journal, the provider it claims, and what the one-line
/// error must say after the journal's path.
fn hostile() -> Vec<(&'static str, Vec<serde_json::Value>, String)> {
    let long = "a".repeat(129);
    vec![
        (
            "aws",
            vec![aws_image(json!(null), "*"), aws_instance(json!(null), "*")],
            // The newest entry is checked like every other: the first bad
            // one is named.
            "resources[0].resource.name \"*\" is not an AMI name".into(),
        ),
        (
            "aws",
            vec![aws_instance(json!("-x"), "capos-mine")],
            "resources[0].resource.id \"-x\" is not an EC2 instance id".into(),
        ),
        (
            "aws",
            // A valid entry before the bad one: nothing runs for it either.
            vec![
                aws_image(json!(OUR_AMI), "capos-mine"),
                aws_instance(json!("--dry-run"), "capos-mine"),
            ],
            "resources[1].resource.id \"--dry-run\" is not an EC2 instance id".into(),
        ),
        (
            "aws",
            vec![aws_instance(json!(" i-123"), "capos-mine")],
            "resources[0].resource.id \" i-123\" is not an EC2 instance id".into(),
        ),
        (
            "aws",
            vec![aws_image(json!(null), &long)],
            format!("resources[0].resource.name \"{long}\" is not an AMI name"),
        ),
        (
            "aws",
            vec![
                json!({"kind": "aws-image", "id": OUR_AMI, "name": "capos-mine",
                        "region": "us-east-1", "owners": "all"}),
            ],
            "is not a cloudimg resource journal: unknown field `owners`".into(),
        ),
        (
            "aws",
            vec![json!({"kind": "s3-object", "uri": "s3://bkt/--recursive", "region": null})],
            "resources[0].resource.uri \"s3://bkt/--recursive\" is not an S3 key".into(),
        ),
        (
            "gcp",
            vec![
                json!({"kind": "gcs-object", "uri": "gs://bkt/*", "project": "capos-proj", "gsutil": false}),
            ],
            "resources[0].resource.uri \"gs://bkt/*\" is not a Cloud Storage object".into(),
        ),
        (
            "gcp",
            vec![json!({"kind": "gcp-image", "name": "--quiet", "project": "capos-proj"})],
            "resources[0].resource.name \"--quiet\" is not a Compute Engine name".into(),
        ),
        (
            "azure",
            vec![json!({"kind": "azure-disk", "resource_group": "capos-rg", "name": "--yes"})],
            "resources[0].resource.name \"--yes\" is not an Azure disk name".into(),
        ),
        (
            "azure",
            vec![
                json!({"kind": "azure-blob", "account": "caposimages", "container": "vhds", "name": "*"}),
            ],
            "resources[0].resource.name \"*\" is not an Azure blob".into(),
        ),
    ]
}

#[test]
fn hostile_journals_change_nothing() {
    if !common::require_tool("python3") {
        return;
    }
    let si = StandIn::new("");
    populate(&si);
    let before = snapshot(si.state());
    let ev = tempfile::tempdir().unwrap();
    for (provider, resources, want) in hostile() {
        let p = journal(ev.path(), provider, resources);
        let e = cloudimg_cloud::teardown_journal(&p, &runner(&si)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        let msg = e.message.clone();
        assert!(
            msg.starts_with(&p.display().to_string()) && msg.contains(&want),
            "{msg}\nwant: {want}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            !si.state().join("calls.log").exists(),
            "no CLI may run for a refused journal ({want})"
        );
        assert_eq!(snapshot(si.state()), before, "{want}");
    }
}

#[test]
fn the_standins_expand_wildcards_as_the_providers_do() {
    if !common::require_tool("python3") {
        return;
    }
    // What the `*` journal would have reached had it not been refused:
    // every own AMI, every running instance.
    let si = StandIn::new("");
    populate(&si);
    let run = |args: &[&str]| {
        let out = Command::new("aws")
            .args(args)
            .envs(si.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let images = run(&[
        "ec2",
        "describe-images",
        "--owners",
        "self",
        "--filters",
        "Name=name,Values=*",
    ]);
    assert!(
        images.contains(OUR_AMI) && images.contains(THEIR_AMI),
        "{images}"
    );
    let one = run(&[
        "ec2",
        "describe-images",
        "--filters",
        "Name=name,Values=capos-mine",
    ]);
    assert!(one.contains(OUR_AMI) && !one.contains(THEIR_AMI), "{one}");
    let instances = run(&[
        "ec2",
        "describe-instances",
        "--filters",
        "Name=tag:Name,Values=*",
    ]);
    assert!(
        instances.contains(OUR_INSTANCE) && instances.contains(THEIR_INSTANCE),
        "{instances}"
    );
}

#[test]
fn a_valid_journal_is_torn_down_and_only_what_it_names() {
    if !common::require_tool("python3") {
        return;
    }
    let si = StandIn::new("");
    populate(&si);
    let ev = tempfile::tempdir().unwrap();
    let s = si.state();
    // AWS: the AMI by id, the instance found by its Name tag, the object.
    let p = journal(
        ev.path(),
        "aws",
        vec![
            json!({"kind": "s3-object", "uri": "s3://bkt/capos-mine.raw", "region": "us-east-1"}),
            aws_image(json!(OUR_AMI), "capos-mine"),
            aws_instance(json!(null), "capos-mine"),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &runner(&si)).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.deleted,
        [
            "instance tagged Name=capos-mine",
            &format!("AMI {OUR_AMI}"),
            "object s3://bkt/capos-mine.raw"
        ]
    );
    assert!(!s.join(format!("aws/images/{OUR_AMI}.json")).exists());
    // EC2 keeps a terminated instance's record for a while.
    let ours: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.join(format!("aws/instances/{OUR_INSTANCE}/instance.json")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ours["State"]["Name"], "terminated", "{ours}");
    assert!(!s.join("s3/bkt/capos-mine.raw").exists());
    assert!(s.join(format!("aws/images/{THEIR_AMI}.json")).exists());
    let theirs =
        std::fs::read_to_string(s.join(format!("aws/instances/{THEIR_INSTANCE}/instance.json")))
            .unwrap();
    assert!(!theirs.contains("terminated"), "{theirs}");
    assert!(s.join("s3/bkt/prod-web.raw").exists());
    // The ids were passed as `--flag=value`.
    let calls = std::fs::read_to_string(s.join("calls.log")).unwrap();
    assert!(
        calls.contains(&format!("\"--image-id={OUR_AMI}\"")),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("\"--instance-ids={OUR_INSTANCE}\"")),
        "{calls}"
    );

    // GCP and Azure.
    let p = journal(
        ev.path(),
        "gcp",
        vec![
            json!({"kind": "gcs-object", "uri": "gs://bkt/capos-mine.tar.gz", "project": "capos-proj", "gsutil": false}),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &runner(&si)).unwrap();
    assert_eq!(r.deleted, ["object gs://bkt/capos-mine.tar.gz"], "{r:?}");
    assert!(s.join("gcs/bkt/prod-web.tar.gz").exists());
    let p = journal(
        ev.path(),
        "azure",
        vec![
            json!({"kind": "azure-blob", "account": "caposimages", "container": "vhds", "name": "capos-mine.vhd"}),
            json!({"kind": "azure-disk", "resource_group": "capos-rg", "name": "capos-mine-osdisk"}),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &runner(&si)).unwrap();
    assert!(r.is_clean() && r.deleted.len() == 2, "{r:?}");
    assert!(!s
        .join("azure/capos-rg/disks/capos-mine-osdisk.json")
        .exists());
    assert!(s.join("azure/capos-rg/disks/prod-web-osdisk.json").exists());
    assert!(s.join("blob/caposimages/vhds/prod-web.vhd").exists());
    assert!(!s.join("blob/caposimages/vhds/capos-mine.vhd").exists());
}
