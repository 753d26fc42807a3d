//! SIGINT/SIGTERM/SIGHUP: kill QEMU children, remove every temporary
//! output and exit with
//! 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Start the thread that handles termination signals.
pub fn install() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
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
