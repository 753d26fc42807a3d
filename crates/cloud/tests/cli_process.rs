//! The runner's handling of a CLI process that does not end: the whole
//! process group goes, grandchildren included (issue 14, item 5).

mod common;

use std::time::Duration;

use cloudimg_cloud::{CloudCommand, ErrorKind, Runner};
use common::StandIn;

/// Whether process `pid` is alive (not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[test]
fn a_timed_out_cli_is_ended_with_its_grandchildren() {
    if !common::require_tool("python3") {
        return;
    }
    // gsutil is a wrapper: the stand-in forks a grandchild that keeps
    // stdout and stderr open, and both hang.
    let si = StandIn::new("grandchild-hang=gsutil");
    let mut r = Runner::new(cloudimg_cloud::command::quiet());
    r.env = si.env();
    r.timeout = Duration::from_secs(3);
    r.retries = 0;
    let e = r
        .run(&CloudCommand::new("gsutil", ["cp", "x", "gs://bkt/x"]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(
        e.message,
        "`gsutil cp x gs://bkt/x` did not finish within 3 s"
    );
    // The runner returned (its output readers did not wait on the
    // grandchild's pipes), and the grandchild is gone.
    let pid: i32 = std::fs::read_to_string(si.state().join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !alive(pid)
    });
    assert!(gone, "grandchild {pid} still runs");
}
