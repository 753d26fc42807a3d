//! `cloudimg boot` as a development tool (issue 15): `--json`
//! (`cloudimg.boot/1`, checked against docs/schema/boot.schema.json by
//! python's `jsonschema`), `--console`, `--fail-on`, `--memory`, the
//! countdown on a terminal only, firmware files and their errors, and the
//! firmware's log of a failed BIOS boot. Few real boots: each is slow
//! under TCG.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{cloudimg, require_tool};

/// Check `doc` against the `cloudimg.boot/1` schema (or, with `def`, one
/// of its `$defs`) with python's `jsonschema` (an oracle we did not
/// write). False when the module is missing and oracles are not required.
fn valid_against_schema(doc: &serde_json::Value, def: Option<&str>) -> bool {
    if !require_tool("python3") {
        return false;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema/boot.schema.json");
    let script = r##"
import json, sys
try:
    import jsonschema
except ImportError:
    sys.exit(77)
schema = json.load(open(sys.argv[1]))
if sys.argv[2]:
    schema = {"$ref": "#/$defs/" + sys.argv[2], "$defs": schema["$defs"]}
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.Draft202012Validator(schema).validate(json.load(sys.stdin))
"##;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(&schema)
        .arg(def.unwrap_or(""))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), doc).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(77) {
        assert!(
            !common::strict(),
            "python3-jsonschema is missing: scripts/setup.sh"
        );
        eprintln!("SKIP: python3 jsonschema not found");
        return false;
    }
    assert!(
        out.status.success(),
        "{doc:#}\ndoes not match the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn code_and_stderr(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One boot of the demo image exercising the options together: the
/// kernel's "capos demo kernel" line is a --fail-on text, so the boot
/// fails at once (exit 1) with the line recorded; the console was streamed
/// to stderr, cleaned; memory is as asked; stdout is one schema-valid
/// document; no countdown off a terminal.
#[test]
fn fail_on_console_memory_and_json_together() {
    if !(require_tool("qemu-system-x86_64") && require_tool("grub-mkimage")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::ok(cloudimg(&["image", "build", "-o", "img.raw"], d));
    let out = cloudimg(
        &[
            "boot",
            "img.raw",
            "--firmware",
            "bios",
            "--json",
            "--console",
            "--memory",
            "200",
            "--fail-on",
            "never printed",
            "--fail-on",
            "demo kernel",
            "--log",
            "ev",
        ],
        d,
    );
    let (code, err) = code_and_stderr(&out);
    assert_eq!(code, Some(1), "{err}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("{\n  \"schema\": \"cloudimg.boot/1\","),
        "the schema comes first: {stdout}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    valid_against_schema(&doc, None);
    assert_eq!(doc["passed"], false);
    assert_eq!(doc["format"], "raw");
    let rec = &doc["boots"][0];
    assert_eq!(doc["boots"].as_array().unwrap().len(), 1);
    assert_eq!(rec["firmware"], "bios");
    assert_eq!(rec["passed"], false);
    assert_eq!(rec["fail_on_match"]["pattern"], "demo kernel");
    assert_eq!(
        rec["fail_on_match"]["line"],
        "capos demo kernel: firmware=bios"
    );
    assert_eq!(
        rec["failure"],
        "serial output matched --fail-on \"demo kernel\": capos demo kernel: firmware=bios"
    );
    assert_eq!(rec["memory_bytes"], 200u64 << 20);
    let cmd: Vec<&str> = rec["qemu_command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(cmd.windows(2).any(|w| w == ["-m", "200"]), "{cmd:?}");
    // The live console went to stderr, without escape sequences or CRs.
    assert!(err.contains("capos demo kernel: firmware=bios\n"), "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(
        !err.contains("s left"),
        "no countdown off a terminal: {err}"
    );
    // The evidence record is the same, and matches its part of the schema.
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("ev/boot-bios-virtio.json")).unwrap()).unwrap();
    assert_eq!(&saved, rec);
    valid_against_schema(&saved, Some("boot_record"));
    let serial = fs::read_to_string(d.join("ev/boot-bios-virtio.serial.log")).unwrap();
    assert!(
        serial.contains("capos demo kernel: firmware=bios"),
        "{serial}"
    );
}

/// A BIOS boot of a disk with nothing to boot: the guest prints nothing on
/// the serial console, but SeaBIOS's debug port is kept as the firmware
/// log, and the (empty) serial log is written too. Run on a pseudo
/// terminal (`script`), the wait shows a countdown.
#[test]
fn failed_bios_boot_keeps_the_firmware_log() {
    if !(require_tool("qemu-system-x86_64") && require_tool("script")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("blank.raw"), vec![0u8; 1 << 20]).unwrap();
    let bin = env!("CARGO_BIN_EXE_cloudimg");
    let line = format!("{bin} boot blank.raw --firmware bios --timeout 6 --log ev");
    let out = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .current_dir(d)
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{tty}");
    assert!(
        tty.contains("waiting for \"capos kernel starting\": ") && tty.contains(" s left"),
        "{tty}"
    );
    assert!(
        tty.contains("FAIL bios virtio: timed out after 6 s"),
        "{tty}"
    );
    assert!(tty.contains("serial console empty; firmware log"), "{tty}");
    let serial = fs::read(d.join("ev/boot-bios-virtio.serial.log")).unwrap();
    assert!(serial.is_empty(), "{}", String::from_utf8_lossy(&serial));
    let fw = fs::read_to_string(d.join("ev/boot-bios-virtio.firmware.log")).unwrap();
    assert!(fw.contains("SeaBIOS (version"), "{fw}");
    assert!(fw.contains("Booting from Hard Disk"), "{fw}");
    let rec: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("ev/boot-bios-virtio.json")).unwrap()).unwrap();
    assert!(
        rec["firmware_tail"]
            .as_str()
            .unwrap()
            .contains("Booting from Hard Disk"),
        "{rec}"
    );
}

/// Firmware files, QEMU and options that cannot work are one clear line
/// each, exit 2, before any boot.
#[test]
fn bad_firmware_qemu_and_options_are_one_line_errors() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::write(d.join("tiny.raw"), vec![0u8; 1 << 16]).unwrap();
    let cases: [(&[&str], &[&str]); 7] = [
        (
            // Refused before the BIOS boot would run.
            &[
                "--firmware",
                "both",
                "--ovmf",
                "/nonexistent/OVMF_CODE.fd",
                "--log",
                "ev",
            ],
            &[
                "/nonexistent/OVMF_CODE.fd is missing",
                "ovmf package",
                "edk2-ovmf",
            ],
        ),
        (
            &[
                "--firmware",
                "uefi",
                "--ovmf",
                "/nonexistent/C.fd,/nonexistent/V.fd",
            ],
            &["/nonexistent/C.fd is missing"],
        ),
        (
            &["--firmware", "uefi", "--ovmf", "/nonexistent/OVMF.fd"],
            &["--ovmf /nonexistent/OVMF.fd", "CODE,VARS"],
        ),
        (
            &["--firmware", "bios", "--bios", "/nonexistent/bios.bin"],
            &["/nonexistent/bios.bin is missing", "seabios"],
        ),
        (
            &["--firmware", "bios", "--qemu", "/nonexistent/qemu"],
            &["starting /nonexistent/qemu"],
        ),
        (&["--memory", "1"], &["--memory"]),
        (&["--fail-on", ""], &["--fail-on"]),
    ];
    for (args, want) in cases {
        let mut all = vec!["boot", "tiny.raw"];
        all.extend_from_slice(args);
        let (code, err) = code_and_stderr(&cloudimg(&all, d));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        for w in want {
            assert!(first.contains(w), "{args:?}: {err}");
        }
    }
    assert!(!d.join("ev").exists(), "no boot was tried");
}
