//! SIGINT/SIGTERM/SIGHUP: kill QEMU children, remove every temporary
//! output and exit with
//! 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).
//!
//! The handler runs on its own thread while the command goes on. Killing
//! QEMU or deleting a temporary file makes the command fail on the main
//! thread, which could then exit with its own status before the handler
//! exits with the signal's: [`settle`] keeps the main thread from
//! finishing once a signal is being handled.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set by the handler before it touches anything the command uses.
static HANDLING: AtomicBool = AtomicBool::new(false);

/// Start the thread that handles termination signals.
pub fn install() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            HANDLING.store(true, Ordering::SeqCst);
            // Cloud resources first (they cost money), then local ones.
            let removed = cloudimg_cloud::cleanup()
                + cloudimg_disk::io::cleanup_registered()
                + cloudimg_boot::cleanup();
            let name = match sig {
                SIGINT => "interrupted",
                SIGTERM => "terminated",
                _ => "hung up",
            };
            eprintln!(
                "cloudimg: {name}; cleaned up {removed} temporary file{} and process(es)",
                if removed == 1 { "" } else { "s" }
            );
            std::process::exit(128 + sig);
        }
    });
}

/// Called by the main thread when the command has finished, before it
/// reports anything: if a signal is being handled, the command's result is
/// the handler's doing, so wait for the handler to exit the process with
/// the signal's status instead.
pub fn settle() {
    if HANDLING.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}
