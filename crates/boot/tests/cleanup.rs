//! `cleanup` kills a running QEMU (in its own test binary: it kills every
//! QEMU this process started).

mod common;

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudimg_boot::{boot, cleanup, BootOptions, BootWatcher, Firmware};
use cloudimg_image::{build_image, demo_kernel_without_landmark, ImageOptions};

/// Says once that the boot is waiting for its landmark: QEMU is running.
#[derive(Debug)]
struct Started(Mutex<Option<Sender<()>>>);

impl BootWatcher for Started {
    fn waiting(&self, _left: Duration) {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

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
    let (tx, rx) = channel();
    let t = std::thread::spawn(move || {
        let o = BootOptions {
            timeout: Duration::from_secs(600),
            watcher: Some(Arc::new(Started(Mutex::new(Some(tx))))),
            ..BootOptions::new(Firmware::Bios)
        };
        boot(&img, &o).unwrap()
    });
    // Wait for QEMU to run (however loaded the machine), not a fixed time.
    rx.recv_timeout(Duration::from_secs(300))
        .expect("the boot starts QEMU");
    assert_eq!(cleanup(), 1, "one QEMU was running");
    let r = t.join().unwrap();
    assert!(!r.passed);
    // It ended because QEMU was killed, not at its timeout.
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
