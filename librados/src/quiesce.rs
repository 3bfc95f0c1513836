//! Waiting, before the process exits, until librados works on nothing of ours.
//!
//! A process that leaves while librados still works on one of its operations, or while a
//! thread of ours is inside `rados_shutdown`, may crash in librados' own exit handlers
//! (seen: `boost::bad_get` thrown from an imap process that exited right after a commit,
//! about once in 16,000 tests). Every piece of work librados may still be doing holds a
//! [`Busy`] token, declared as the *last* field of its owner so that it is released only
//! after everything else the owner holds, including the last reference of an I/O context
//! and so the cluster's `rados_shutdown`, has been dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Work of this process that librados may still be doing.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// How many waits of [`quiesce`] ran out with work left.
static RAN_OUT: AtomicU64 = AtomicU64::new(0);

/// One piece of work in flight: counted from creation until dropped.
#[derive(Debug)]
pub(crate) struct Busy(());

impl Busy {
    /// Counts one more piece of work.
    pub(crate) fn new() -> Busy {
        BUSY.fetch_add(1, Ordering::SeqCst);
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long [`quiesce`] waits at most by default: a notify ends after
/// [`crate::NOTIFY_TIMEOUT`], an operation after the connection's operation timeout; this
/// leaves room for both on a loaded machine.
pub const QUIESCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until librados works on nothing of this process (operations, notifies,
/// unwatches, and the shutdowns they may end with), for at most `timeout`; returns whether
/// nothing is left. Call it after dropping the last store and before the process exits.
/// A wait that runs out logs a warning and is counted ([`quiesce_ran_out`]).
pub fn quiesce(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let busy = BUSY.load(Ordering::SeqCst);
        if busy == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            RAN_OUT.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(busy, "librados still works on {busy} operation(s) of this process after {timeout:?}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pieces of work librados may still be doing for this process now.
pub fn busy() -> usize {
    BUSY.load(Ordering::SeqCst)
}

/// How many [`quiesce`] waits of this process ran out with work left.
pub fn quiesce_ran_out() -> u64 {
    RAN_OUT.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiesce_waits_for_a_token_dropped_by_another_thread() {
        let token = Busy::new();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(token);
        });
        assert!(quiesce(Duration::from_secs(10)));
        t.join().unwrap();
        let held = Busy::new();
        let before = quiesce_ran_out();
        assert!(!quiesce(Duration::from_millis(5)));
        assert!(quiesce_ran_out() > before);
        drop(held);
    }
}
