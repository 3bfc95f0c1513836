//! `\Recent` cases ([`rados_mail::Mailbox::take_recent`]), run against every backend.
//!
//! The story (issue 11, point 4): each Dovecot backend kept the first recent UID in its own
//! local index, so a new mail was `\Recent` once in a session on backend A and once more
//! in a session on backend B. The boundary now lives in RADOS and a session takes the
//! recent mails with one guarded write: every UID is handed out at most once per mailbox,
//! whichever process serves the session.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, OpCounts};
use rados_mail::{Error, MailStore, Mailbox};

use super::{mailbox, other_process, store_pool};

/// Generates one `#[test]` per `\Recent` case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! recent_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in recent $make;
            recent_is_taken_once_across_processes, recent_take_costs_one_write_or_nothing,
            recent_race_hands_out_each_uid_once, recent_fault_sweep_unavailable,
            recent_fault_sweep_applied_but_unavailable, recent_of_a_deleted_mailbox_is_not_found,
        );
    };
}

fn deliver(m: &Mailbox, n: u32) {
    for i in 0..n {
        m.append(format!("Subject: {i}\n\n{i}\n").as_bytes(), Default::default()).unwrap();
    }
}

/// What a session does at SELECT: sync, then take up to the UIDNEXT that sync saw.
fn select(m: &Mailbox) -> Range<u32> {
    m.sync().unwrap();
    m.take_recent(u32::MAX).unwrap()
}

/// A mail is recent for the first session that takes it, in whichever process; taking
/// changes no modseq; a new mail taken first by the other process is recent there only.
pub fn recent_is_taken_once_across_processes(store: &MailStore, user: &str) {
    let (_, a) = mailbox(store, user, "INBOX");
    deliver(&a, 3);
    let b = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    // Nobody took anything yet: the key is absent, read as 1 (every mail is recent).
    let c = b.changes_since(0).unwrap();
    assert_eq!((c.first_recent, c.uidnext), (1, 4));
    let hms = c.highestmodseq;
    assert_eq!(select(&b), 1..4);
    assert_eq!(b.first_recent(), 4);
    // A session in process A after that: nothing recent, and it sees the boundary.
    let c = a.changes_since(0).unwrap();
    assert_eq!(c.first_recent, 4);
    assert_eq!(a.take_recent(c.uidnext).unwrap(), 4..4);
    // Taking is no mailbox change: no modseq, no WAL entry.
    assert_eq!(c.highestmodseq, hms);
    assert!(b.changes_since(hms).unwrap().changed.is_empty());
    // A new mail taken first through A is recent there, not in B.
    deliver(&b, 1);
    assert_eq!(select(&a), 4..5);
    assert_eq!(select(&b), 5..5);
    // Taking at most up to `upto`: a session that synced to an older UIDNEXT.
    deliver(&a, 2);
    b.sync().unwrap();
    assert_eq!(b.take_recent(6).unwrap(), 5..6);
    assert_eq!(select(&a), 6..7);
    // Nothing above UIDNEXT is ever taken.
    assert_eq!(a.take_recent(u32::MAX).unwrap(), 7..7);
    assert_eq!(a.status().unwrap().highestmodseq, hms + 3, "three appends, no take, raised it");
}

/// Taking costs one write when there is something to take and nothing otherwise; a stale
/// view costs one more read (the lost race) and still hands out nothing twice.
pub fn recent_take_costs_one_write_or_nothing(store: &MailStore, user: &str) {
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let (u, m) = mailbox(&here, user, "INBOX");
    deliver(&m, 2);
    let uidnext = m.changes_since(0).unwrap().uidnext;
    let before = counting.counts();
    assert_eq!(m.take_recent(uidnext).unwrap(), 1..3);
    assert_eq!(counting.counts() - before, OpCounts { reads: 0, writes: 1, lists: 0, notifies: 0, watches: 0 });
    let before = counting.counts();
    assert_eq!(m.take_recent(uidnext).unwrap(), 3..3);
    assert_eq!(counting.counts() - before, OpCounts::default(), "nothing new: no operation");
    // Another process delivers; this view syncs, then the other process takes: this view
    // still believes 3 is the boundary.
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    deliver(&there, 1);
    m.sync().unwrap();
    assert_eq!(select(&there), 3..4);
    let before = counting.counts();
    assert_eq!(m.take_recent(u32::MAX).unwrap(), 4..4);
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 1, writes: 1, lists: 0, notifies: 0, watches: 0 },
        "lost race, re-read"
    );
    let stored = u.store().omap_get(&format!("mbox.{}", m.info().guid), &["recent"]).unwrap();
    assert_eq!(stored["recent"], b"00000004", "docs/FORMAT.md: 8 hex digits");
}

/// Four processes take recent mails over and over while a fifth delivers: each UID is
/// handed out exactly once.
pub fn recent_race_hands_out_each_uid_once(store: &MailStore, user: &str) {
    const MAILS: u32 = 30;
    let (_, deliverer) = mailbox(store, user, "INBOX");
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    let takers: Vec<_> = (0..4)
        .map(|_| {
            let (other, user) = (other_process(store), user.to_string());
            let (done, start) = (done.clone(), start.clone());
            std::thread::spawn(move || {
                let m = other.user(&user).unwrap().open_mailbox("INBOX").unwrap();
                let mut got = Vec::new();
                start.wait();
                loop {
                    let last = done.load(Ordering::SeqCst);
                    got.extend(select(&m));
                    if last {
                        return got;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        })
        .collect();
    start.wait();
    deliver(&deliverer, MAILS);
    done.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    let mut sessions_with_some = 0;
    for t in takers {
        let got = t.join().unwrap();
        sessions_with_some += usize::from(!got.is_empty());
        all.extend(got);
    }
    let unique: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a UID handed out twice: {all:?}");
    assert_eq!(unique, (1..=MAILS).collect(), "every UID handed out once");
    assert!(sessions_with_some >= 1);
}

/// The scenario of the fault sweep: mails 1..=4; this process's view believes the
/// boundary is 1 while another process took 1..3, so the take loses one race (write 1),
/// re-reads and takes 3..5 (write 2).
struct FaultCase {
    user: String,
}

impl FaultCase {
    fn new(store: &MailStore, user: String) -> FaultCase {
        let (_, m) = mailbox(store, &user, "INBOX");
        deliver(&m, 2);
        FaultCase { user }
    }

    /// Runs the take through `through`; returns what it handed out.
    fn run(&self, store: &MailStore, through: &MailStore) -> rados_mail::Result<Range<u32>> {
        let m = through.user(&self.user)?.open_mailbox("INBOX")?;
        let other = other_process(store).user(&self.user).unwrap().open_mailbox("INBOX").unwrap();
        deliver(&other, 2);
        other.sync().unwrap();
        assert_eq!(other.take_recent(3).unwrap(), 1..3);
        // No sync: the view is the one of the open (UIDNEXT 3, boundary 1).
        m.take_recent(u32::MAX)
    }
}

fn sweep(store: &MailStore, user: &str, mode: FaultMode) {
    let counting = CountingStore::new(store_pool(store));
    let probe = FaultCase::new(store, format!("{user}-probe"));
    let through = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let before = counting.counts();
    assert_eq!(probe.run(store, &through).unwrap(), 3..5);
    let writes = (counting.counts() - before).writes;
    assert!(writes >= 2, "{writes} writes: the take must lose a race first");
    let (mut failed, mut lost_any) = (0, 0);
    for at in 0..=writes {
        let case = FaultCase::new(store, format!("{user}-{at}"));
        let faulty = FaultyStore::new(store_pool(store));
        let through = MailStore::new(Arc::new(faulty.clone()), store.config().clone());
        // The other process's writes go around the faulty store: only the take's count.
        faulty.fail_after(at, mode);
        let result = case.run(store, &through);
        faulty.heal();
        let what = format!("fault at write {at} of {writes} ({mode:?}): {result:?}");
        let mut handed: Vec<u32> = (1..3).collect();
        if let Ok(r) = &result {
            handed.extend(r.clone());
        } else if let Err(e) = &result {
            assert!(e.is_temporary(), "{what}");
        }
        // The failed session's retry, then a session elsewhere.
        let retry = through.user(&case.user).unwrap().open_mailbox("INBOX").unwrap();
        handed.extend(select(&retry));
        handed.extend(select(&other_process(store).user(&case.user).unwrap().open_mailbox("INBOX").unwrap()));
        let unique: BTreeSet<u32> = handed.iter().copied().collect();
        assert_eq!(unique.len(), handed.len(), "{what}: a UID handed out twice: {handed:?}");
        let lost = 4 - unique.len();
        match (mode, &result) {
            (_, Ok(_)) => assert_eq!(lost, 0, "{what}"),
            // Not applied: the UIDs are still there for the next session.
            (FaultMode::WritesUnavailable, Err(_)) => assert_eq!(lost, 0, "{what}: {handed:?}"),
            // Applied but reported failed: taken by nobody (RFC 3501 allows losing \Recent).
            (_, Err(_)) => assert!(lost <= 2, "{what}: {handed:?}"),
        }
        if lost == 0 {
            assert_eq!(unique, (1..=4).collect(), "{what}");
        }
        failed += usize::from(result.is_err());
        lost_any += usize::from(lost > 0);
    }
    // The sweep hit something: every write but the last sweep point failed the take; with a
    // lost reply, the write that did take (the last one) lost its two mails' \Recent.
    assert_eq!(failed as u64, writes, "{mode:?}: a fault at each write fails the take");
    let expect_lost = usize::from(mode == FaultMode::AppliedButUnavailable);
    assert_eq!(lost_any, expect_lost, "{mode:?}");
}

/// The cluster goes away at each write of a take in turn.
pub fn recent_fault_sweep_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::WritesUnavailable);
}

/// Each write of a take is applied but its reply is lost.
pub fn recent_fault_sweep_applied_but_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::AppliedButUnavailable);
}

/// Taking the recent mails of a mailbox deleted meanwhile is `NotFound`, and does not
/// bring its head object back.
pub fn recent_of_a_deleted_mailbox_is_not_found(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "Gone");
    deliver(&m, 1);
    other_process(store).user(user).unwrap().delete_mailbox("Gone").unwrap();
    match m.take_recent(u32::MAX) {
        Err(Error::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
    let head = format!("mbox.{}", m.info().guid);
    assert!(u.store().stat(&head).is_err(), "the head came back");
}
