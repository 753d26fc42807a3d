//! Opt-in timing of the packaging phases, for performance work: with
//! `CLOUDIMG_TRACE=1` in the environment, each phase's end is printed on
//! stderr as `cloudimg: trace <seconds since start> <phase>`. Off by
//! default, and then free (one relaxed load per phase).

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<&'static Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START
        .get_or_init(|| {
            std::env::var_os("CLOUDIMG_TRACE")
                .is_some_and(|v| v != "0" && !v.is_empty())
                .then(Instant::now)
        })
        .as_ref()
}

/// Start the clock (when tracing is on). Later calls do nothing.
pub fn begin() {
    let _ = start();
}

/// Print that `what()` has happened, with the time since [`begin`], when
/// tracing is on.
pub fn phase(what: impl FnOnce() -> String) {
    if let Some(t0) = start() {
        eprintln!(
            "cloudimg: trace {:7.3} {}",
            t0.elapsed().as_secs_f64(),
            what()
        );
    }
}
