//! `cloud teardown --journal` reads a file anyone may have written. A
//! journal whose names are wildcards (`*`), options (`-x`, `--dry-run`),
//! padded (` i-...`), overlong, or that has unknown fields, is refused
//! whole: no CLI runs and the cloud is unchanged. A valid one is still
//! torn down, and only what it names.
//!
//! The clouds hold real resources, made with the real CLIs against the
//! local emulators (standin/api): two AMIs and two running instances (of
//! a 1 MiB disk whose boot sector halts, so nothing boots for long), two
//! S3 objects, two Cloud Storage objects; one of each is "ours", the other
//! someone else's. Azure (no compute emulator) is the stand-in
//! standin/bin/az with a disk and a blob of each. The real `gcloud
//! storage` expands `*` in object names itself, and EC2 filters take `*`:
//! a wildcard that got through would reach someone else's resources, as
//! [`the_real_clis_would_expand_a_wildcard`] shows.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudimg_cloud::{ErrorKind, Runner};
use common::calls::{which, Calls};
use common::real::{ready_aws, ready_gcloud, venv_bin, AwsEmu, GcpEmu};
use common::seed::{aws_json, import_snapshot, register, run_instance};
use common::{standin_bin, StandIn};
use serde_json::json;

fn write_json(p: &Path, v: serde_json::Value) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Every file of a stand-in's state with its bytes.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// Our resources and someone else's in the three clouds, and the CLIs
/// cloudimg runs behind wrappers that log every call.
struct World {
    aws: AwsEmu,
    gcp: GcpEmu,
    azure: StandIn,
    calls: Calls,
    our_ami: String,
    their_ami: String,
    our_instance: String,
    their_instance: String,
}

impl World {
    fn new() -> World {
        let aws = AwsEmu::start("");
        let gcp = GcpEmu::start("");
        let azure = StandIn::new("");
        // AWS: one snapshot behind two AMIs, an instance of each.
        let snap = import_snapshot(&aws);
        let our_ami = register(&aws, &snap, "capos-mine");
        let their_ami = register(&aws, &snap, "prod-web");
        let our_instance = run_instance(&aws, &our_ami, "capos-mine");
        let their_instance = run_instance(&aws, &their_ami, "prod-web");
        aws_json(&aws, &["ec2", "describe-instances"]); // pending -> running
                                                        // Objects in S3 and Cloud Storage.
        let file = aws.dir().join("object");
        std::fs::write(&file, "someone's bytes").unwrap();
        let file = file.to_str().unwrap();
        for key in ["capos-mine.raw", "prod-web.raw"] {
            let cp = aws.aws(&["s3", "cp", file, &format!("s3://bkt/{key}")]);
            assert!(cp.status.success(), "{cp:?}");
        }
        for key in ["capos-mine.tar.gz", "prod-web.tar.gz"] {
            let cp = gcp.gcloud(&["storage", "cp", file, &format!("gs://bkt/{key}")]);
            assert!(cp.status.success(), "{cp:?}");
        }
        // Azure, as the stand-in keeps it.
        let s = azure.state();
        for f in [
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
        let calls = Calls::new(
            aws.dir(),
            &[
                ("aws", Some(venv_bin().join("aws"))),
                ("gcloud", which("gcloud")),
                ("gsutil", which("gsutil")),
                ("az", Some(standin_bin().join("az"))),
            ],
        );
        World {
            aws,
            gcp,
            azure,
            calls,
            our_ami,
            their_ami,
            our_instance,
            their_instance,
        }
    }

    /// The real aws and gcloud pointed at the emulators, the Azure
    /// stand-in's state, all behind the logging wrappers.
    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env = self.gcp.env();
        env.extend(self.azure.env().into_iter().filter(|(k, _)| k != "PATH"));
        env.extend(self.aws.env());
        self.calls.wrap(env)
    }

    fn runner(&self) -> Runner {
        let mut r = Runner::new(Arc::new(|s: &str| eprintln!("{s}")));
        r.env = self.env();
        r.backoff = Duration::from_millis(50);
        r.poll = Duration::from_millis(200);
        r
    }

    /// What the clouds hold, asked of the emulators (AWS, GCP) and read
    /// from the Azure stand-in's state.
    fn held(&self) -> (Vec<String>, Vec<String>, Files) {
        let mut aws = self.aws.leftovers();
        aws.sort();
        let mut gcp = self.gcp.leftovers();
        gcp.sort();
        (aws, gcp, snapshot(self.azure.state()))
    }
}

/// Every file of the Azure stand-in's state with its bytes (its call
/// log aside: the wrappers log every call).
fn snapshot(dir: &Path) -> Files {
    fn walk(d: &Path, out: &mut Files) {
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
fn hostile(our_ami: &str) -> Vec<(&'static str, Vec<serde_json::Value>, String)> {
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
                aws_image(json!(our_ami), "capos-mine"),
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
                json!({"kind": "aws-image", "id": our_ami, "name": "capos-mine",
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

fn ready() -> bool {
    ready_aws() && ready_gcloud()
}

#[test]
fn hostile_journals_change_nothing() {
    if !ready() {
        return;
    }
    let w = World::new();
    let before = w.held();
    let ev = tempfile::tempdir().unwrap();
    for (provider, resources, want) in hostile(&w.our_ami) {
        let p = journal(ev.path(), provider, resources);
        let e = cloudimg_cloud::teardown_journal(&p, &w.runner()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        let msg = e.message.clone();
        assert!(
            msg.starts_with(&p.display().to_string()) && msg.contains(&want),
            "{msg}\nwant: {want}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(
            w.calls.lines(),
            Vec::<String>::new(),
            "no CLI may run for a refused journal ({want})"
        );
        assert_eq!(w.held(), before, "{want}");
    }
    the_real_clis_would_expand_a_wildcard(&w);
}

/// What the `*` journals would have reached had they not been refused,
/// through the real CLIs: every AMI and every instance by EC2's filter
/// wildcards, and every Cloud Storage object by `gcloud storage rm`'s own
/// expansion (it lists the bucket and deletes each match).
fn the_real_clis_would_expand_a_wildcard(w: &World) {
    let images = aws_json(
        &w.aws,
        &[
            "ec2",
            "describe-images",
            "--owners",
            "self",
            "--filters",
            "Name=name,Values=*",
        ],
    )
    .to_string();
    assert!(
        images.contains(&w.our_ami) && images.contains(&w.their_ami),
        "{images}"
    );
    let one = aws_json(
        &w.aws,
        &[
            "ec2",
            "describe-images",
            "--filters",
            "Name=name,Values=capos-mine",
        ],
    )
    .to_string();
    assert!(
        one.contains(&w.our_ami) && !one.contains(&w.their_ami),
        "{one}"
    );
    let instances = aws_json(
        &w.aws,
        &[
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag:Name,Values=*",
        ],
    )
    .to_string();
    assert!(
        instances.contains(&w.our_instance) && instances.contains(&w.their_instance),
        "{instances}"
    );
    let rm = w.gcp.gcloud(&["storage", "rm", "gs://bkt/*"]);
    assert!(rm.status.success(), "{rm:?}");
    let gcs: Vec<String> = w
        .gcp
        .leftovers()
        .into_iter()
        .filter(|l| l.contains("gs://"))
        .collect();
    assert_eq!(gcs, Vec::<String>::new(), "ours and theirs deleted");
}

#[test]
fn a_valid_journal_is_torn_down_and_only_what_it_names() {
    if !ready() {
        return;
    }
    let w = World::new();
    let ev = tempfile::tempdir().unwrap();
    let (our_ami, our_instance) = (w.our_ami.as_str(), w.our_instance.as_str());
    // AWS: the AMI by id, the instance found by its Name tag, the object.
    let p = journal(
        ev.path(),
        "aws",
        vec![
            json!({"kind": "s3-object", "uri": "s3://bkt/capos-mine.raw", "region": "us-east-1"}),
            aws_image(json!(our_ami), "capos-mine"),
            aws_instance(json!(null), "capos-mine"),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &w.runner()).unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.deleted,
        [
            "instance tagged Name=capos-mine",
            &format!("AMI {our_ami}"),
            "object s3://bkt/capos-mine.raw"
        ]
    );
    // Asked of the emulator: theirs is all that is left (their running
    // instance and its QEMU, their AMI, the snapshot behind it, their
    // object).
    let left = w.aws.leftovers();
    let mut kinds: Vec<&str> = left.iter().map(|l| l.split(' ').next().unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["image", "instance", "qemu", "s3", "snapshot"],
        "{left:?}"
    );
    for want in [
        format!("image {}", w.their_ami),
        format!("instance {} running", w.their_instance),
        "s3 object s3://bkt/prod-web.raw".to_string(),
    ] {
        assert!(left.contains(&want), "{want} missing from {left:?}");
    }
    // EC2 keeps a terminated instance's record for a while.
    let ours = aws_json(
        &w.aws,
        &["ec2", "describe-instances", "--instance-ids", our_instance],
    );
    assert_eq!(
        ours["Reservations"][0]["Instances"][0]["State"]["Name"], "terminated",
        "{ours}"
    );
    // The ids were passed as `--flag=value`.
    let calls = w.calls.lines();
    for want in [
        format!("\t--image-id={our_ami}"),
        format!("\t--instance-ids={our_instance}"),
    ] {
        assert!(
            calls
                .iter()
                .any(|l| l.starts_with("aws\t") && l.contains(&want)),
            "{want}: {calls:#?}"
        );
    }

    // GCP and Azure.
    let p = journal(
        ev.path(),
        "gcp",
        vec![
            json!({"kind": "gcs-object", "uri": "gs://bkt/capos-mine.tar.gz", "project": "capos-proj", "gsutil": false}),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &w.runner()).unwrap();
    assert_eq!(r.deleted, ["object gs://bkt/capos-mine.tar.gz"], "{r:?}");
    let gcs: Vec<String> = w
        .gcp
        .leftovers()
        .into_iter()
        .filter(|l| l.contains("gs://"))
        .collect();
    assert_eq!(gcs.len(), 1, "{gcs:?}");
    assert!(gcs[0].ends_with("gs://bkt/prod-web.tar.gz"), "{gcs:?}");
    let p = journal(
        ev.path(),
        "azure",
        vec![
            json!({"kind": "azure-blob", "account": "caposimages", "container": "vhds", "name": "capos-mine.vhd"}),
            json!({"kind": "azure-disk", "resource_group": "capos-rg", "name": "capos-mine-osdisk"}),
        ],
    );
    let r = cloudimg_cloud::teardown_journal(&p, &w.runner()).unwrap();
    assert!(r.is_clean() && r.deleted.len() == 2, "{r:?}");
    let s = w.azure.state();
    assert!(!s
        .join("azure/capos-rg/disks/capos-mine-osdisk.json")
        .exists());
    assert!(s.join("azure/capos-rg/disks/prod-web-osdisk.json").exists());
    assert!(s.join("blob/caposimages/vhds/prod-web.vhd").exists());
    assert!(!s.join("blob/caposimages/vhds/capos-mine.vhd").exists());
}
