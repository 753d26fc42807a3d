//! `cleanup` kills a running QEMU (in its own test binary: it kills every
//! QEMU this process started).

mod common;

use std::time::{Duration, Instant};

use cloudimg_boot::{boot, cleanup, BootOptions, Firmware};
use cloudimg_image::{build_image, demo_kernel_without_landmark, ImageOptions};

#[test]
fn cleanup_kills_a_running_boot() {
    if !(common::require_tool("qemu-system-x86_64") && common::require_grub()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = build_image(
        &ImageOptions {
            kernel: demo_kernel_without_landmark().to_vec(),
            ..ImageOptions::new()
        },
        &dir.path().join("hang.raw"),
    )
    .unwrap()
    .path;
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        let o = BootOptions {
            timeout: Duration::from_secs(60),
            ..BootOptions::new(Firmware::Bios)
        };
        boot(&img, &o).unwrap()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cleanup(), 1, "one QEMU was running");
    let r = t.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(!r.passed);
    assert!(
        r.failure
            .as_deref()
            .unwrap_or("")
            .starts_with("QEMU exited"),
        "{:?}",
        r.failure
    );
    assert_eq!(cleanup(), 0, "nothing left to kill");
}
