//! Deliveries whose outcome stayed unknown, retried by their sender (issue 13, point 2):
//! when the cluster does not answer within the resolve window, the delivery fails with a
//! temporary error (LMTP 451) although its commit may have landed; the sender's retry of
//! the same mail then finds the delivery's mark (its `DeliveryKey`) and is stored once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rados_mail::check::check_user;
use rados_mail::objstore::{FaultMode, FaultyStore};
use rados_mail::{AppendOptions, Committed, Config, DeliveryKey, MailStore, Mailbox, ModseqSteps, Transaction};

use super::ack_lost::{faulty_process_resolving, leftovers};
use super::{body, mailbox, other_process, store_pool};

/// Generates one `#[test]` per case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! ack_lost_delivery_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in ack_lost_delivery $make;
            ack_lost_delivery_retried_is_stored_once, ack_lost_delivery_that_did_not_land_is_stored_by_the_retry,
            ack_lost_delivery_costs_no_operation_more, ack_lost_delivery_keys_off_or_different,
            ack_lost_delivery_twice_at_once_is_stored_once,
        );
    };
}

/// The sweep over every write of a delivery, in every fault mode (memory).
#[macro_export]
macro_rules! ack_lost_delivery_sweep_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in ack_lost_delivery $make; ack_lost_delivery_at_every_write_is_stored_once);
    };
}

/// The mail as the sender sends it.
const MAIL: &[u8] = b"Received: from mx.example.org by relay with ESMTP id 4XyZ;\n\tTue, 1 Dec 2026 06:00:00 +0000\nFrom: a@example.org\nSubject: once\n\nonly once\n";

/// The mail as a backend's LMTP stores it: its own trace fields on top, which differ
/// between attempts.
fn as_received(attempt: &str) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <a@example.org>\nDelivered-To: b@example.org\nReceived: from relay\n\tby {attempt} with LMTP id {attempt}; Tue, 1 Dec 2026\n"
    )
    .into_bytes();
    m.extend_from_slice(MAIL);
    m
}

/// Delivers `mail` as a mail server does: streamed, the key computed from its bytes.
fn deliver(m: &Mailbox, mail: &[u8]) -> rados_mail::Result<Committed> {
    let mut app = m.appender(None);
    app.deliver(None)?;
    for piece in mail.chunks(7) {
        app.write(piece)?;
    }
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.save(app.finish()?, AppendOptions::default())?;
    m.commit(txn)
}

/// A process that cannot wait for a lost reply (resolve window 0: the outcome of a lost
/// commit stays unknown), failing as its `FaultyStore` says.
fn impatient_process(store: &MailStore) -> (FaultyStore, MailStore) {
    faulty_process_resolving(store, Duration::ZERO)
}

fn mails(store: &MailStore, user: &str) -> Vec<Vec<u8>> {
    let m = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    m.uids().unwrap().into_iter().map(|uid| body(&m, uid)).collect()
}

/// The commit landed, its reply was lost and the cluster did not answer in time: a
/// temporary failure. The sender's retry through another backend is stored once: it
/// succeeds with the UID the first attempt got, and its own body is removed.
pub fn ack_lost_delivery_retried_is_stored_once(store: &MailStore, user: &str) {
    mailbox(store, user, "INBOX");
    let (faulty, here) = impatient_process(store);
    let inbox = here.user(user).unwrap().open_mailbox("INBOX").unwrap();
    faulty.fail_after(1, FaultMode::AppliedButUnavailable); // the body passes, the commit's reply is lost
    let err = deliver(&inbox, &as_received("backend-a")).unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    faulty.heal_all();
    let stored = mails(store, user);
    assert_eq!(stored, vec![as_received("backend-a")], "the first attempt did land");

    let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    let retry = deliver(&other, &as_received("backend-b")).expect("the retry succeeds");
    assert_eq!(retry.delivered_before, vec![0]);
    let uid = other.uids().unwrap()[0];
    assert_eq!(retry.saved, vec![uid], "the UID the first attempt got");
    assert_eq!(mails(store, user), stored, "stored once, as first delivered");
    assert_eq!(leftovers(store, user), 0, "the retry's body was removed");
    // A third attempt through the process that saw the failure: the same.
    assert_eq!(deliver(&inbox, &as_received("backend-c")).unwrap().saved, vec![uid]);
    assert_eq!(mails(store, user).len(), 1);
}

/// The commit did not land and the cluster did not answer in time: the retry stores the
/// mail (once); the first attempt's body is left for `check` and `repair`.
pub fn ack_lost_delivery_that_did_not_land_is_stored_by_the_retry(store: &MailStore, user: &str) {
    mailbox(store, user, "INBOX");
    let (faulty, here) = impatient_process(store);
    let inbox = here.user(user).unwrap().open_mailbox("INBOX").unwrap();
    faulty.fail_after(1, FaultMode::Unavailable);
    assert!(deliver(&inbox, &as_received("a")).unwrap_err().is_temporary());
    faulty.heal_all();
    assert!(mails(store, user).is_empty());
    let retry = deliver(&inbox, &as_received("b")).unwrap();
    assert!(retry.delivered_before.is_empty());
    assert_eq!(mails(store, user), vec![as_received("b")]);
    assert_eq!(leftovers(store, user), 1, "the unknown attempt's body, found by check");
}

/// A delivery costs exactly the RADOS operations of a plain save: its mark rides in the
/// commit's own write.
pub fn ack_lost_delivery_costs_no_operation_more(store: &MailStore, user: &str) {
    // A process of its own: the stats of `store` count what other tests running at the
    // same time do too.
    let store = &other_process(store);
    let (_, m) = mailbox(store, user, "INBOX");
    let plain = |m: &Mailbox, n: u32| {
        let mut app = m.appender(None);
        app.write(format!("Subject: plain {n}\n\nx\n").as_bytes()).unwrap();
        let mut txn = Transaction::new(ModseqSteps::Dovecot);
        txn.save(app.finish().unwrap(), AppendOptions::default()).unwrap();
        m.commit(txn).unwrap();
    };
    plain(&m, 0);
    let before = store.stats().rados;
    plain(&m, 1);
    let plain_ops = store.stats().rados - before;
    let before = store.stats().rados;
    deliver(&m, &as_received("x")).unwrap();
    let delivery_ops = store.stats().rados - before;
    assert_eq!(delivery_ops, plain_ops);
    // A retry of a stored delivery: its guarded write fails, then two reads (the marks,
    // then the head again) and no commit.
    let before = store.stats().rados;
    deliver(&m, &as_received("y")).unwrap();
    let retry_ops = store.stats().rados - before;
    assert_eq!(retry_ops.reads, plain_ops.reads + 2, "the marks, then the head again: {retry_ops:?}");
}

/// With delivery keys off (`delivery_window` 0) the same mail is stored each time it is
/// delivered; different mails, or the same mail in another mailbox, are stored each.
pub fn ack_lost_delivery_keys_off_or_different(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    u.create_mailbox("Other").unwrap();
    let other = u.open_mailbox("Other").unwrap();
    assert!(deliver(&m, &as_received("a")).unwrap().delivered_before.is_empty());
    assert!(deliver(&other, &as_received("a")).unwrap().delivered_before.is_empty());
    let mut changed = MAIL.to_vec();
    changed.extend_from_slice(b"changed\n");
    assert!(deliver(&m, &changed).unwrap().delivered_before.is_empty());
    let off = MailStore::new(store_pool(store), Config { delivery_window: Duration::ZERO, ..store.config().clone() });
    let m_off = off.user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert!(deliver(&m_off, &as_received("b")).unwrap().delivered_before.is_empty());
    assert_eq!(mails(store, user).len(), 3);
    // A key given by the caller.
    let key = Some(DeliveryKey::from_id(b"queue-id 4XyZ"));
    let a = m.append(&b"Subject: k\n\n1\n"[..], AppendOptions { delivery: key, ..Default::default() }).unwrap();
    let b = m.append(&b"Subject: k\n\n2\n"[..], AppendOptions { delivery: key, ..Default::default() }).unwrap();
    assert_eq!(a, b);
    assert_eq!(mails(store, user).len(), 4);
}

/// The same delivery from several threads of one process at once (one group commit) and
/// from another process: stored once, every attempt told the same UID.
pub fn ack_lost_delivery_twice_at_once_is_stored_once(store: &MailStore, user: &str) {
    let (u, _) = mailbox(store, user, "INBOX");
    let m = Arc::new(u.open_mailbox_to_append("INBOX").unwrap());
    let uids: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let m = m.clone();
                s.spawn(move || deliver(&m, &as_received(&format!("t{i}"))).unwrap().saved[0])
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let far = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    let again = deliver(&far, &as_received("far")).unwrap().saved[0];
    assert!(uids.iter().all(|u| *u == again), "{uids:?} vs {again}");
    assert_eq!(mails(store, user).len(), 1);
    assert_eq!(leftovers(store, user), 0);
}

/// Every write of a delivery in turn fails in each mode (applied or not, the cluster away
/// for a while after); the sender retries through a fresh process until it succeeds. The
/// mail is then stored exactly once, under the UID the successful attempt reports.
pub fn ack_lost_delivery_at_every_write_is_stored_once(store: &MailStore, user: &str) {
    let modes = [
        FaultMode::AppliedButUnavailable,
        FaultMode::Unavailable,
        FaultMode::AppliedThenDown(2),
        FaultMode::DownFor(2),
    ];
    for (n, mode) in modes.into_iter().enumerate() {
        for at in 0..4u64 {
            let who = format!("{user}-{n}-{at}");
            mailbox(store, &who, "INBOX");
            let (faulty, here) = impatient_process(store);
            let inbox = here.user(&who).unwrap().open_mailbox("INBOX").unwrap();
            faulty.fail_after(at, mode);
            let first = deliver(&inbox, &as_received("first"));
            faulty.heal_all();
            let what = format!("{mode:?} at write {at}: {first:?}");
            let mut outcome = first;
            for attempt in 0..3 {
                if outcome.is_ok() {
                    break;
                }
                assert!(outcome.as_ref().unwrap_err().is_temporary(), "{what}");
                let again = other_process(store).user(&who).unwrap().open_mailbox("INBOX").unwrap();
                outcome = deliver(&again, &as_received(&format!("retry {attempt}")));
            }
            let done = outcome.unwrap_or_else(|e| panic!("{what}: retries failed: {e:?}"));
            let m = other_process(store).user(&who).unwrap().open_mailbox("INBOX").unwrap();
            let uids = m.uids().unwrap();
            assert_eq!(uids.len(), 1, "{what}: stored {} times", uids.len());
            assert_eq!(done.saved, uids, "{what}");
            let distinct: BTreeSet<Vec<u8>> = uids.iter().map(|u| body(&m, *u)).collect();
            assert_eq!(distinct.len(), 1);
            let r = check_user(&other_process(store).user(&who).unwrap()).unwrap();
            assert!(!r.has_damage(), "{what}: {r:#?}");
        }
    }
}
