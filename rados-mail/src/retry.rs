//! The one retry policy of the crate. A guarded write that loses a race (another process
//! changed the object first) re-reads and tries again at once, then after a random, growing
//! pause, at most
//! [`crate::Config::max_attempts`] times; then the operation fails with
//! [`Error::Conflict`], never silently. Every lost race and every exhausted operation is
//! counted ([`RetryCounts`], part of [`crate::Stats`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{Error, Result};

/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_millis(128);

/// Counters of the retry policy, for [`crate::MailStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryCounts {
    /// Guarded writes refused because another process had changed the object first
    /// (a failed `omap_cmp`, version or exclusive-create guard). Each is followed by a
    /// retry, or counted in `exhausted` too.
    pub guard_failures: u64,
    /// Operations that gave up with `Conflict` after `max_attempts` attempts.
    pub exhausted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    guard_failures: AtomicU64,
    exhausted: AtomicU64,
}

/// How many attempts an operation gets, and where its lost races are counted. Cheap to
/// clone; clones share the counters.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    max_attempts: u32,
    counters: Arc<Counters>,
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts (at least 1) with counters of its own.
    pub(crate) fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts: max_attempts.max(1), counters: Arc::default() }
    }

    /// The counters so far.
    pub(crate) fn counts(&self) -> RetryCounts {
        RetryCounts {
            guard_failures: self.counters.guard_failures.load(Ordering::Relaxed),
            exhausted: self.counters.exhausted.load(Ordering::Relaxed),
        }
    }

    /// The state of one operation's attempts.
    pub(crate) fn start(&self) -> Retry<'_> {
        Retry { policy: self, lost: 0 }
    }
}

/// The attempts of one operation ([`RetryPolicy::start`]).
pub(crate) struct Retry<'a> {
    policy: &'a RetryPolicy,
    lost: u32,
}

impl Retry<'_> {
    /// Records a lost race. Waits before the next attempt and returns `Ok`, or, when every
    /// attempt is used up, returns [`Error::Conflict`] naming `what` was being done.
    pub(crate) fn lost(&mut self, what: impl FnOnce() -> String) -> Result<()> {
        if let Some(pause) = self.lost_pause(what)? {
            std::thread::sleep(pause);
        }
        Ok(())
    }

    /// [`Retry::lost`] for async code: the pause is a tokio timer, no thread waits.
    pub(crate) async fn lost_async(&mut self, what: impl FnOnce() -> String) -> Result<()> {
        if let Some(pause) = self.lost_pause(what)? {
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Counts a lost race; the pause before the next attempt (none for the first retry),
    /// or [`Error::Conflict`] when every attempt is used up.
    fn lost_pause(&mut self, what: impl FnOnce() -> String) -> Result<Option<Duration>> {
        self.policy.counters.guard_failures.fetch_add(1, Ordering::Relaxed);
        self.lost += 1;
        if self.lost >= self.policy.max_attempts {
            self.policy.counters.exhausted.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Conflict(format!("{} (gave up after {} attempts)", what(), self.lost)));
        }
        // The first retry goes at once: the caller re-reads first, which is a pause of one
        // round trip already; later ones wait.
        Ok((self.lost > 1).then(|| backoff(self.lost - 2)))
    }
}

/// The one backoff curve: a random pause of 0.1 ms up to 1, 2, 4, … ms, growing with the
/// number of races lost so far beyond the first, at most [`MAX_BACKOFF`].
pub(crate) fn backoff(lost_before: u32) -> Duration {
    let cap_us = (1000u64 << lost_before.min(7)).min(MAX_BACKOFF.as_micros() as u64);
    Duration::from_micros(rand::rng().random_range(100..=cap_us))
}

/// The pause before the next attempt to establish a broken watch again
/// ([`crate::watch::Watch`]): 50 ms, then doubling up to 5 s, each with up to a quarter
/// of random jitter, so that many processes whose watches broke together (an OSD restart)
/// do not all come back at the same instant.
pub(crate) fn rewatch_pause(attempt: u32) -> Duration {
    let base = (50u64 << attempt.min(7)).min(5_000);
    Duration::from_millis(base + rand::rng().random_range(0..=base / 4))
}

/// After a write whose reply was lost (sent at `started`): asks `ask` whether it landed
/// until it answers, with pauses of 20 ms doubling to 1 s while the cluster does not,
/// until `window` has passed since the write was sent (so a write that timed out after
/// the whole window is not followed by more waiting). `None`: unknown — no time left, a
/// permanent error, or `ask` itself could not tell.
pub(crate) fn resolve_lost_reply(
    started: Instant,
    window: Duration,
    mut ask: impl FnMut() -> Result<Option<bool>>,
) -> Option<bool> {
    let mut lost = LostReply::new(started, window);
    loop {
        if lost.out_of_time() {
            return None;
        }
        match lost.step(ask()) {
            Step::Done(answer) => return answer,
            Step::Wait(pause) => std::thread::sleep(pause),
        }
    }
}

/// [`resolve_lost_reply`] for async code: `ask` is a future, the pauses tokio timers.
pub(crate) async fn resolve_lost_reply_async<F: Future<Output = Result<Option<bool>>>>(
    started: Instant,
    window: Duration,
    mut ask: impl FnMut() -> F,
) -> Option<bool> {
    let mut lost = LostReply::new(started, window);
    loop {
        if lost.out_of_time() {
            return None;
        }
        match lost.step(ask().await) {
            Step::Done(answer) => return answer,
            Step::Wait(pause) => tokio::time::sleep(pause).await,
        }
    }
}

/// The schedule of [`resolve_lost_reply`], shared by its blocking and async forms.
struct LostReply {
    deadline: Instant,
    pause: Duration,
}

/// What to do after one question ([`LostReply::step`]).
enum Step {
    /// The answer (`None`: unknown).
    Done(Option<bool>),
    /// Ask again after this pause.
    Wait(Duration),
}

impl LostReply {
    fn new(started: Instant, window: Duration) -> LostReply {
        LostReply { deadline: started.checked_add(window).unwrap_or(started), pause: Duration::from_millis(20) }
    }

    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// What comes after `answer`, the reply to one question asked within the window.
    fn step(&mut self, answer: Result<Option<bool>>) -> Step {
        match answer {
            Ok(answer) => Step::Done(answer),
            Err(e) if e.is_temporary() && Instant::now() + self.pause < self.deadline => {
                let pause = self.pause;
                self.pause = (self.pause * 2).min(Duration::from_secs(1));
                Step::Wait(pause)
            }
            Err(_) => Step::Done(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausting_the_attempts_is_a_counted_conflict() {
        let policy = RetryPolicy::new(3);
        let mut retry = policy.start();
        assert!(retry.lost(|| "x".into()).is_ok());
        assert!(retry.lost(|| "x".into()).is_ok());
        match retry.lost(|| "doing x".into()) {
            Err(Error::Conflict(m)) => assert!(m.contains("doing x") && m.contains("3 attempts"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(policy.counts(), RetryCounts { guard_failures: 3, exhausted: 1 });
        // Clones share the counters.
        let _ = policy.clone().start().lost(|| "y".into());
        assert_eq!(policy.counts().guard_failures, 4);
    }
}
