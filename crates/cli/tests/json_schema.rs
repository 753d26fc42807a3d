//! Every `--json` document validates against its schema in docs/schema/
//! (JSON Schema draft 2020-12, checked by Python's `jsonschema`, a
//! validator we did not write), names its kind first, and is listed in
//! docs/json.md.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{cloudimg, docs, require_grub, require_validator, validate};

/// The JSON on stdout of a run (checking the exit status and that
/// `"schema"` is its first key, on the text: serde_json's map sorts
/// keys).
fn json_of(out: &Output, code: i32, what: &str) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(code), "{what}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_start()
            .starts_with("{\n  \"schema\": \"cloudimg."),
        "{what}: does not start with its schema: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_command_prints_a_valid_document() {
    if !require_validator() || !require_grub() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let built = cloudimg(
        &[
            "image",
            "build",
            "-o",
            "demo.raw",
            "--size",
            "64M",
            "--esp-size",
            "40M",
            "--json",
        ],
        d,
    );
    validate(
        "image",
        &json_of(&built, 0, "image build"),
        "image build --json",
    );

    let pkg = cloudimg(&["package", "demo.raw", "--all", "-o", "out", "--json"], d);
    let doc = json_of(&pkg, 0, "package");
    validate("package", &doc, "package --json");
    assert_eq!(doc["artifacts"].as_array().unwrap().len(), 8, "{doc:#}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/manifest.json")).unwrap()).unwrap();
    let text = std::fs::read_to_string(d.join("out/manifest.json")).unwrap();
    assert!(
        text.starts_with("{\n  \"schema\": \"cloudimg.manifest/1\""),
        "{text}"
    );
    validate("manifest", &manifest, "out/manifest.json");

    // Every artifact, the manifest and SHA256SUMS through `verify DIR/*`.
    let mut args = vec!["verify".to_string(), "--json".to_string()];
    let mut names: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| format!("out/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    args.extend(names);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = json_of(&cloudimg(&args, d), 0, "verify out/*");
    validate("verify", &v, "verify --json out/*");
    assert_eq!(v["results"].as_array().unwrap().len(), 9, "{v:#}");
    // A report with defects, and an artifact that cannot be decoded.
    std::fs::write(d.join("junk.vhd"), b"conectix").unwrap();
    let v = json_of(
        &cloudimg(&["verify", "--json", "demo.raw", "junk.vhd"], d),
        2,
        "verify junk",
    );
    validate("verify", &v, "verify --json with an error");
    assert_eq!(v["ok"], false);

    for f in [
        "demo.raw",
        "out/capos.qcow2",
        "out/disk.raw.tar.gz",
        "out/capos.ova",
    ] {
        let v = json_of(&cloudimg(&["inspect", "--json", f], d), 0, f);
        validate("inspect", &v, &format!("inspect --json {f}"));
        let v = json_of(&cloudimg(&["check", "--json", f], d), 0, f);
        validate("check", &v, &format!("check --json {f}"));
    }
    boot_and_cloud(d);
}

/// `boot --json`, the cloud plans and `config --json`.
fn boot_and_cloud(d: &Path) {
    {
        let out = cloudimg(
            &[
                "boot",
                "out/capos.qcow2",
                "--firmware",
                "uefi",
                "--json",
                "--log",
                "boot",
            ],
            d,
        );
        validate("boot", &json_of(&out, 0, "boot"), "boot --json");
    }
    {
        let plans: [&[&str]; 3] = [
            &[
                "cloud",
                "gcp",
                "--project",
                "p",
                "--bucket",
                "b",
                "--artifact",
                "out/disk.raw.tar.gz",
            ],
            &[
                "cloud",
                "aws",
                "--bucket",
                "b",
                "--region",
                "us-east-1",
                "--artifact",
                "out/capos-aws.vmdk",
            ],
            &[
                "cloud",
                "azure",
                "--resource-group",
                "rg",
                "--storage-account",
                "caposimages",
                "--container",
                "vhds",
                "--location",
                "westeurope",
                "--artifact",
                "out/capos-azure.vhd",
            ],
        ];
        for p in plans {
            let mut args = p.to_vec();
            args.extend(["--plan", "--json"]);
            let out = cloudimg(&args, d);
            validate("cloud-plan", &json_of(&out, 0, p[1]), &args.join(" "));
        }
    }
    let out = cloudimg(&["config", "--json"], d);
    validate("config", &json_of(&out, 0, "config"), "config --json");
}

/// docs/json.md names every schema file in docs/schema/, and each file
/// is a valid draft 2020-12 schema whose `"schema"` is its kind.
#[test]
fn every_schema_is_listed_and_valid() {
    let listing = std::fs::read_to_string(docs().join("json.md")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(docs().join("schema")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(kind) = name.strip_suffix(".schema.json") else {
            continue;
        };
        n += 1;
        assert!(
            listing.contains(&format!("(schema/{name})")),
            "docs/json.md does not list {name}"
        );
        assert!(
            listing.contains(&format!("`cloudimg.{kind}/1`")),
            "docs/json.md does not name cloudimg.{kind}/1"
        );
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(docs().join("schema").join(&name)).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(
            s["properties"]["schema"]["const"],
            format!("cloudimg.{kind}/1"),
            "{name}"
        );
    }
    assert!(n >= 6, "{n} schema files");
    if require_validator() {
        let out = Command::new("python3")
            .args([
                "-c",
                "import json, sys, jsonschema\nfor f in sys.argv[1:]:\n    jsonschema.Draft202012Validator.check_schema(json.load(open(f)))",
            ])
            .args(
                std::fs::read_dir(docs().join("schema"))
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
