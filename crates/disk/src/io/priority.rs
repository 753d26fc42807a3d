//! Thread priorities for the packaging pass.
//!
//! Packaging has one piece of work that cannot be split: the SHA-256 of
//! the input and of the grown disk, two sequential streams over the whole
//! virtual size (holes included), interleaved on one thread. Everything
//! else (compressing, writing, verifying) is spread over many threads.
//! Under the default scheduler each runnable thread gets an equal share,
//! so with six or more busy workers on two cores the hashing thread gets a
//! third of a core, falls behind, and ends up running alone at the end
//! while the other core idles (measured on the 10 GiB benchmark fixture:
//! 1.5 s alone out of 12.5 s). The workers therefore run [`WORKER_NICE`]
//! steps below the process's priority; the hashing thread keeps it.
//! Threads inherit their creator's priority, so a worker's compression
//! pool and verification threads are lowered too.

/// How many nice steps the workers run below the hashing thread. At 5 a
/// worker has a third of the hashing thread's weight under Linux's
/// scheduler, enough for the hash to keep pace with six busy workers on
/// two cores, and not so low that cloudimg gives way to every other
/// process on a shared machine.
pub const WORKER_NICE: i32 = 5;

/// Lower the calling thread's priority by [`WORKER_NICE`] (never past 19,
/// the lowest). On Linux a priority set for "this process" with
/// `setpriority(PRIO_PROCESS, 0)` applies to the calling thread only.
/// Best effort: a failure leaves the priority as it was.
pub fn lower_this_thread() {
    if let Ok(now) = rustix::process::getpriority_process(None) {
        let _ = rustix::process::setpriority_process(None, (now + WORKER_NICE).min(19));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread_and_its_children() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let (mine, child) = std::thread::spawn(|| {
            lower_this_thread();
            let mine = rustix::process::getpriority_process(None).unwrap();
            let child = std::thread::spawn(|| rustix::process::getpriority_process(None).unwrap())
                .join()
                .unwrap();
            (mine, child)
        })
        .join()
        .unwrap();
        let want = (before + WORKER_NICE).min(19);
        assert_eq!(mine, want);
        assert_eq!(child, want, "threads inherit their creator's priority");
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
