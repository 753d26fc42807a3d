//! The demo image boots under SeaBIOS and OVMF on every disk interface;
//! broken images and a kernel without the landmark fail, with evidence.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use cloudimg_boot::{boot, BootOptions, BootRecord, DiskInterface, Firmware};
use cloudimg_image::{build_image, demo_kernel_without_landmark, ImageOptions, LANDMARK};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";

/// Scratch directory for the images of this test binary, emptied at
/// the start of each run (under target/tmp, so nothing piles up in /tmp).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot_demo");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn opts(seed: u64) -> ImageOptions {
    ImageOptions {
        source_date_epoch: 1_700_000_000,
        seed,
        ..ImageOptions::new()
    }
}

/// The demo image, built once.
fn demo_image() -> &'static Path {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        build_image(&opts(1), &scratch().join("demo.raw"))
            .unwrap()
            .path
    })
}

fn ready(firmware: Firmware) -> bool {
    common::require_tool("qemu-system-x86_64")
        && common::require_grub()
        && (firmware == Firmware::Bios || common::require_file(OVMF_CODE))
}

fn boot_with(img: &Path, firmware: Firmware, disk: DiskInterface, timeout_s: u64) -> BootRecord {
    let o = BootOptions {
        disk,
        timeout: Duration::from_secs(timeout_s),
        ..BootOptions::new(firmware)
    };
    boot(img, &o).expect("boot runs")
}

fn assert_passes(firmware: Firmware, disk: DiskInterface) {
    if !ready(firmware) {
        return;
    }
    let img = demo_image();
    let before = cloudimg_disk::io::sha256_file(img).unwrap();
    let r = boot_with(img, firmware, disk, 120);
    assert!(r.passed, "{}\n{}", r.summary(), r.serial_tail);
    assert!(r.seconds_to_landmark.unwrap() > 0.0);
    assert!(
        r.serial_tail
            .contains(&format!("capos demo kernel: firmware={}", firmware.id())),
        "{}",
        r.serial_tail
    );
    assert_eq!(
        cloudimg_disk::io::sha256_file(img).unwrap(),
        before,
        "the artifact is never modified"
    );
}

#[test]
fn demo_boots_under_seabios_virtio() {
    assert_passes(Firmware::Bios, DiskInterface::Virtio);
}

#[test]
fn demo_boots_under_seabios_nvme() {
    assert_passes(Firmware::Bios, DiskInterface::Nvme);
}

#[test]
fn demo_boots_under_seabios_scsi() {
    assert_passes(Firmware::Bios, DiskInterface::Scsi);
}

#[test]
fn demo_boots_under_seabios_ide() {
    assert_passes(Firmware::Bios, DiskInterface::Ide);
}

#[test]
fn demo_boots_under_ovmf_virtio() {
    assert_passes(Firmware::Uefi, DiskInterface::Virtio);
}

#[test]
fn demo_boots_under_ovmf_nvme() {
    assert_passes(Firmware::Uefi, DiskInterface::Nvme);
}

#[test]
fn demo_boots_under_ovmf_scsi() {
    assert_passes(Firmware::Uefi, DiskInterface::Scsi);
}

#[test]
fn kernel_without_landmark_times_out_with_log_tail() {
    if !ready(Firmware::Bios) {
        return;
    }
    let img = build_image(
        &ImageOptions {
            kernel: demo_kernel_without_landmark().to_vec(),
            ..opts(2)
        },
        &scratch().join("nolandmark.raw"),
    )
    .unwrap()
    .path;
    let r = boot_with(&img, Firmware::Bios, DiskInterface::Virtio, 10);
    assert!(!r.passed);
    assert_eq!(
        r.failure.as_deref(),
        Some("timed out after 10 s waiting for \"capos kernel starting\"")
    );
    assert!(
        r.serial_tail
            .contains("capos test kernel: no landmark here"),
        "{}",
        r.serial_tail
    );
    assert!(
        r.serial_tail.contains("capos demo kernel: firmware=bios"),
        "{}",
        r.serial_tail
    );
}

/// A copy of the demo image with `range` zeroed.
fn damaged_copy(name: &str, range: std::ops::Range<u64>) -> PathBuf {
    let built = build_image(&opts(3), &scratch().join(name)).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&built.path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &f,
        &vec![0u8; (range.end - range.start) as usize],
        range.start,
    )
    .unwrap();
    built.path
}

#[test]
fn zeroed_mbr_boot_code_fails_bios_boot() {
    if !ready(Firmware::Bios) {
        return;
    }
    let img = damaged_copy("no-mbr-code.raw", 0..440);
    let r = boot_with(&img, Firmware::Bios, DiskInterface::Virtio, 6);
    assert!(!r.passed, "{}", r.serial_tail);
    assert!(!r.serial_tail.contains(LANDMARK));
    let f = r.failure.unwrap();
    assert!(
        f.starts_with("timed out after 6 s") || f.starts_with("QEMU exited"),
        "{f}"
    );
    // The serial console is empty, but SeaBIOS said what it did on its
    // debug port.
    assert!(
        r.firmware_tail.contains("Booting from Hard Disk"),
        "{}",
        r.firmware_tail
    );
}

#[test]
fn damaged_esp_fails_uefi_boot() {
    if !ready(Firmware::Uefi) {
        return;
    }
    // The ESP starts at LBA 4096: wipe its boot sector, FSInfo, backup
    // boot sector and the start of both FATs.
    let esp = 4096 * 512;
    let img = damaged_copy("no-esp.raw", esp..esp + 64 * 1024);
    let r = boot_with(&img, Firmware::Uefi, DiskInterface::Virtio, 20);
    assert!(!r.passed, "{}", r.serial_tail);
    assert!(!r.serial_tail.contains(LANDMARK));
}

#[test]
fn vhd_artifact_boots_through_qemu_vpc_driver() {
    if !(ready(Firmware::Bios) && common::require_tool("qemu-img")) {
        return;
    }
    let vhd = scratch().join("demo.vhd");
    common::run(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc"])
            .arg(demo_image())
            .arg(&vhd),
    );
    let r = boot_with(&vhd, Firmware::Bios, DiskInterface::Virtio, 60);
    assert!(r.passed, "{}\n{}", r.summary(), r.serial_tail);
    assert_eq!(r.artifact_format, "vhd-dynamic");
    assert!(
        r.qemu_command.iter().any(|a| a.contains(",format=vpc,")),
        "{:?}",
        r.qemu_command
    );
}

#[test]
fn evidence_lands_in_the_log_dir() {
    if !ready(Firmware::Bios) {
        return;
    }
    let logs = scratch().join("evidence");
    let o = BootOptions {
        log_dir: Some(logs.clone()),
        ..BootOptions::new(Firmware::Bios)
    };
    let r = boot(demo_image(), &o).unwrap();
    assert!(r.passed, "{}", r.serial_tail);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(logs.join("boot-bios-virtio.json")).unwrap())
            .unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["firmware"], "bios");
    assert_eq!(json["disk_interface"], "virtio");
    assert_eq!(json["landmark"], LANDMARK);
    assert_eq!(
        json["artifact_sha256"],
        cloudimg_disk::io::sha256_file(demo_image())
            .unwrap()
            .to_string()
    );
    assert!(json["seconds_to_landmark"].as_f64().unwrap() > 0.0);
    assert_eq!(json["qemu_command"][0], "qemu-system-x86_64");
    let serial = std::fs::read_to_string(logs.join("boot-bios-virtio.serial.log")).unwrap();
    assert!(serial.contains("capos kernel starting"), "{serial}");
    let fw_log = logs.join("boot-bios-virtio.firmware.log");
    assert_eq!(json["firmware_log"], fw_log.to_str().unwrap());
    let fw = std::fs::read_to_string(&fw_log).unwrap();
    assert!(fw.contains("SeaBIOS (version"), "{fw}");
    assert_eq!(json["memory_bytes"], 256u64 << 20);
    assert_eq!(json["fail_on"], serde_json::json!([]));
    assert_eq!(json["fail_on_match"], serde_json::Value::Null);
}

#[test]
fn missing_firmware_is_an_error() {
    let mut o = BootOptions::new(Firmware::Uefi);
    o.firmware_paths.ovmf_code = "/nonexistent/OVMF_CODE.fd".into();
    let img = scratch().join("tiny.raw");
    std::fs::write(&img, vec![0u8; 4096]).unwrap();
    let err = boot(&img, &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "firmware file /nonexistent/OVMF_CODE.fd is missing: install the ovmf package \
         (Debian, Ubuntu) or edk2-ovmf (Fedora, Arch), or name the files with --ovmf CODE,VARS"
    );
}

#[test]
fn demo_boots_under_ovmf_ide() {
    assert_passes(Firmware::Uefi, DiskInterface::Ide);
}

/// A `--fail-on` text printed after the landmark (the demo kernel's last
/// line) still fails the boot, with the line recorded.
#[test]
fn fail_on_text_after_the_landmark_fails_the_boot() {
    if !ready(Firmware::Bios) {
        return;
    }
    let o = BootOptions {
        fail_on: vec!["powering off".into()],
        timeout: Duration::from_secs(120),
        ..BootOptions::new(Firmware::Bios)
    };
    let r = boot(demo_image(), &o).unwrap();
    assert!(!r.passed, "{}", r.serial_tail);
    assert!(r.serial_tail.contains(LANDMARK), "{}", r.serial_tail);
    let m = r.fail_on_match.unwrap();
    assert_eq!(m.pattern, "powering off");
    assert_eq!(m.line, "capos demo kernel: powering off");
    assert_eq!(
        r.failure.as_deref(),
        Some("serial output matched --fail-on \"powering off\": capos demo kernel: powering off")
    );
}
