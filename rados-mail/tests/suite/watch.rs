//! Push cases ([`rados_mail::Watch`]), run against every backend: a commit through one
//! process wakes the watch of another, mailbox list changes set LIST, a broken watch sets
//! LOST and is established again, notifies cost one operation per head write and can be
//! turned off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rados_mail::objstore::{CountingStore, FaultyStore, ObjectStore};
use rados_mail::{Config, Events, Flags, MailStore, StoreMode};

use super::{mailbox, other_process, store_pool};

/// Generates one `#[test]` per push case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! watch_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in watch $make;
            watch_commit_wakes_another_process, watch_list_changes_set_list,
            watch_broken_watch_is_lost_then_rewatched, watch_notifies_can_be_turned_off,
            watch_failed_notify_never_fails_the_commit, watch_deleted_mailbox_is_lost,
            watch_unwatched_process_pays_nothing,
        );
    };
}

/// How long a notify may take on a loaded test machine.
const BOUND: Duration = Duration::from_secs(5);

/// Appends, flag changes and expunges through one process each set CHANGED on a watch of
/// another, within the bound; `take` clears; nothing is pending afterwards.
pub fn watch_commit_wakes_another_process(store: &MailStore, user: &str) {
    let (_, inbox) = mailbox(store, user, "INBOX");
    let b = other_process(store).user(user).unwrap();
    b.create_mailbox("Other").unwrap();
    let other = b.open_mailbox("Other").unwrap();
    let watch = b.watch().unwrap();
    watch.add_mailbox_name("INBOX").unwrap();
    watch.add_mailbox(&other).unwrap();
    assert_eq!(watch.live(), 2);
    assert_eq!(watch.take(), Events::NONE, "nothing pending at first");
    let sent = Instant::now();
    let uid = inbox.append(&b"Subject: push\n\npush\n"[..], Default::default()).unwrap();
    let got = watch.wait(BOUND);
    eprintln!("append to CHANGED: {:?}", sent.elapsed());
    assert_eq!(got, Events::CHANGED);
    assert_eq!(watch.take(), Events::NONE, "take clears");
    assert_eq!(watch.wait(Duration::from_millis(200)), Events::NONE);
    inbox.store(&[uid], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    assert_eq!(watch.wait(BOUND), Events::CHANGED, "a flag change");
    inbox.expunge(&[uid]).unwrap();
    assert_eq!(watch.wait(BOUND), Events::CHANGED, "an expunge");
    let a_other = store.user(user).unwrap().open_mailbox("Other").unwrap();
    a_other.append(&b"x"[..], Default::default()).unwrap();
    assert_eq!(watch.wait(BOUND), Events::CHANGED, "the mailbox watched by handle");
    // The commit's own process sees the other's head writes too; and `pending` peeks.
    let here = store.user(user).unwrap().watch().unwrap();
    here.add_mailbox(&inbox).unwrap();
    b.open_mailbox("INBOX").unwrap().append(&b"y"[..], Default::default()).unwrap();
    let deadline = Instant::now() + BOUND;
    while here.pending().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(here.pending(), Events::CHANGED);
    assert_eq!(here.take(), Events::CHANGED);
}

/// Creating, subscribing, renaming, setting special use and deleting each set LIST on a
/// watch of the list (which is created for a user who never had a mailbox).
pub fn watch_list_changes_set_list(store: &MailStore, user: &str) {
    let b = other_process(store).user(user).unwrap();
    let watch = b.watch().unwrap();
    watch.add_list().unwrap();
    let a = store.user(user).unwrap();
    a.create_mailbox("Box").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "create");
    a.subscribe("Box").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "subscribe");
    a.rename_mailbox("Box", "Renamed").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "rename");
    a.set_special_use("Renamed", &["\\Sent"]).unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "special use");
    a.unsubscribe("Renamed").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "unsubscribe");
    a.delete_mailbox("Renamed").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST, "delete");
    assert_eq!(watch.wait(Duration::from_millis(200)), Events::NONE);
    assert!(b.watch().unwrap().add_mailbox_name("Renamed").is_err_and(|e| matches!(e, rados_mail::Error::NotFound(_))));
}

/// A broken watch (injected) sets LOST at once, is established again in the background
/// (LOST again then), and a later commit's notify arrives through the new watch.
pub fn watch_broken_watch_is_lost_then_rewatched(store: &MailStore, user: &str) {
    let (_, inbox) = mailbox(store, user, "INBOX");
    let faulty = FaultyStore::new(store_pool(store));
    let b = MailStore::new(Arc::new(faulty.clone()), store.config().clone());
    let watch = b.user(user).unwrap().watch().unwrap();
    watch.add_mailbox_name("INBOX").unwrap();
    watch.add_list().unwrap();
    faulty.fail_watches(2); // the first two attempts to watch again fail: backoff
    assert_eq!(faulty.break_watches(), 2);
    assert!(watch.take().contains(Events::LOST), "LOST is set at once");
    let deadline = Instant::now() + BOUND;
    while watch.live() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(watch.live(), 2, "both watches established again");
    assert!(watch.take().contains(Events::LOST), "LOST again once watched again");
    let push = b.stats().push;
    assert_eq!((push.watch_errors, push.rewatches), (2, 2), "{push:?}");
    inbox.append(&b"after"[..], Default::default()).unwrap();
    assert_eq!(watch.wait(BOUND), Events::CHANGED, "a notify through the new watch");
    store.user(user).unwrap().create_mailbox("New").unwrap();
    assert_eq!(watch.wait(BOUND), Events::LIST);
}

/// With `notify` off a commit sends nothing and the watch hears nothing.
pub fn watch_notifies_can_be_turned_off(store: &MailStore, user: &str) {
    let quiet = MailStore::new(store_pool(store), Config { notify: false, ..store.config().clone() });
    let (_, inbox) = mailbox(&quiet, user, "INBOX");
    let watch = store.user(user).unwrap().watch().unwrap();
    watch.add_mailbox_name("INBOX").unwrap();
    watch.add_list().unwrap();
    inbox.append(&b"quiet"[..], Default::default()).unwrap();
    quiet.user(user).unwrap().create_mailbox("Quiet").unwrap();
    assert_eq!(watch.wait(Duration::from_millis(300)), Events::NONE);
    assert_eq!(quiet.stats().push.notifies, 0);
    assert_eq!(quiet.stats().rados.notifies, 0);
}

/// A notify that fails is counted; the commit succeeds.
pub fn watch_failed_notify_never_fails_the_commit(store: &MailStore, user: &str) {
    let faulty = FaultyStore::new(store_pool(store));
    let a = MailStore::new(Arc::new(faulty.clone()), store.config().clone());
    let (_, inbox) = mailbox(&a, user, "INBOX");
    let before = a.stats().push;
    faulty.fail_notifies(true);
    inbox.append(&b"x"[..], Default::default()).unwrap();
    let push = a.stats().push;
    assert_eq!((push.notifies - before.notifies, push.notify_failures - before.notify_failures), (1, 1));
    faulty.fail_notifies(false);
    assert_eq!(inbox.uids().unwrap(), vec![1]);
}

/// Deleting a watched mailbox breaks its watch (LOST); it is not watched again.
pub fn watch_deleted_mailbox_is_lost(store: &MailStore, user: &str) {
    let (u, _) = mailbox(store, user, "Doomed");
    let watch = other_process(store).user(user).unwrap().watch().unwrap();
    watch.add_mailbox_name("Doomed").unwrap();
    u.delete_mailbox("Doomed").unwrap();
    assert!(watch.wait(BOUND).contains(Events::LOST));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(watch.live(), 0, "a deleted mailbox is not watched again");
}

/// A process that makes no `Watch` registers no watch; each head write costs exactly one
/// notify.
pub fn watch_unwatched_process_pays_nothing(store: &MailStore, user: &str) {
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let (_, inbox) = mailbox(&here, user, "INBOX");
    let before = counting.counts();
    inbox.append(&b"x"[..], Default::default()).unwrap();
    inbox.store(&[1], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    let cost = counting.counts() - before;
    assert_eq!((cost.notifies, cost.watches), (2, 0), "{cost:?}");
    let _: &dyn ObjectStore = &counting;
}
