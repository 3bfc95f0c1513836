//! Bounds on objects whose key count grows with a user's data (docs/FORMAT.md, "Bounded
//! objects"). The per-user mailbox list `mailboxes` holds 3 omap keys per mailbox; without
//! a limit a client creating mailboxes in a loop grew it past Ceph's large-omap warning
//! (200,000 keys). `Config::max_mailboxes` bounds it: creating one more fails with
//! `TooLarge` (IMAP: NO [LIMIT]) and creates nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rados_mail::{Config, DEFAULT_MAX_MAILBOXES, Error, MailStore};

fn store(max_mailboxes: usize) -> MailStore {
    MailStore::in_memory(Config { max_mailboxes, ..Config::default() })
}

fn names(user: &rados_mail::User) -> Vec<String> {
    user.list_mailboxes("*").unwrap().into_iter().map(|m| m.name).collect()
}

#[test]
fn max_mailboxes_refuses_one_more() {
    assert_eq!(Config::default().max_mailboxes, DEFAULT_MAX_MAILBOXES);
    let alice = store(3).user("alice").unwrap();
    for name in ["INBOX", "a", "b"] {
        alice.create_mailbox(name).unwrap();
    }
    let Err(Error::TooLarge(why)) = alice.create_mailbox("c") else { panic!("a fourth mailbox was created") };
    assert!(why.contains("max_mailboxes") && why.contains("at most 3") && why.contains("\"c\""), "{why}");
    assert_eq!(names(&alice), ["INBOX", "a", "b"], "nothing was created");
    // An existing name is still "already exists", not the limit.
    assert!(matches!(alice.create_mailbox("a"), Err(Error::AlreadyExists(_))));
    // Renames keep the count; a delete makes room.
    alice.rename_mailbox("b", "b2").unwrap();
    alice.delete_mailbox("a").unwrap();
    alice.create_mailbox("c").unwrap();
    assert_eq!(names(&alice), ["INBOX", "b2", "c"]);
    assert!(matches!(alice.create_mailbox("d"), Err(Error::TooLarge(_))));
}

/// More mailboxes than one omap page (1,024): the count reads on.
#[test]
fn max_mailboxes_counts_past_one_page() {
    const MAX: usize = 1_500;
    let bob = store(MAX).user("bob").unwrap();
    for i in 0..MAX {
        bob.create_mailbox(&format!("box{i:04}")).unwrap();
    }
    assert!(matches!(bob.create_mailbox("one-more"), Err(Error::TooLarge(_))));
    assert_eq!(names(&bob).len(), MAX);
}

/// Creators racing in 8 threads never pass the limit together: every create's write is
/// guarded by the list counters that the count was read with.
#[test]
fn max_mailboxes_holds_under_concurrent_creates() {
    const MAX: usize = 40;
    let carol = Arc::new(store(MAX).user("carol").unwrap());
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (carol, refused) = (carol.clone(), &refused);
            s.spawn(move || {
                for i in 0..10 {
                    match carol.create_mailbox(&format!("t{t}/m{i}")) {
                        Ok(_) => {}
                        Err(Error::TooLarge(_)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(names(&carol).len(), MAX);
    assert_eq!(refused.load(Ordering::Relaxed), 80 - MAX);
}

/// Subscriptions (IMAP allows them to names that do not exist) are keys of the same
/// `mailboxes` object: a user has at most `max_mailboxes` of them.
#[test]
fn subscriptions_are_bounded_by_max_mailboxes() {
    let dave = store(3).user("dave").unwrap();
    for name in ["nowhere/a", "nowhere/b", "INBOX"] {
        dave.subscribe(name).unwrap();
    }
    let Err(Error::TooLarge(why)) = dave.subscribe("nowhere/c") else { panic!("a fourth subscription was taken") };
    assert!(why.contains("3 subscriptions") && why.contains("max_mailboxes") && why.contains("nowhere/c"), "{why}");
    assert_eq!(dave.subscriptions("*").unwrap(), ["INBOX", "nowhere/a", "nowhere/b"], "nothing was added");
    // Subscribing again to a name subscribed is no new key: fine at the bound.
    dave.subscribe("nowhere/a").unwrap();
    dave.unsubscribe("nowhere/a").unwrap();
    dave.subscribe("nowhere/c").unwrap();
    assert_eq!(dave.subscriptions("*").unwrap(), ["INBOX", "nowhere/b", "nowhere/c"]);
}

/// More subscriptions than one omap page (1,024): the count reads on.
#[test]
fn subscriptions_count_past_one_page() {
    const MAX: usize = 1_100;
    let erin = store(MAX).user("erin").unwrap();
    for i in 0..MAX {
        erin.subscribe(&format!("gone{i:04}")).unwrap();
    }
    assert!(matches!(erin.subscribe("one-more"), Err(Error::TooLarge(_))));
    assert_eq!(erin.subscriptions("*").unwrap().len(), MAX);
}

/// A private dict is one object and IMAP METADATA adds entries without limit: at most
/// `max_dict_keys` keys. A commit past it sets nothing; changing, unsetting and counting
/// keys stay possible at the bound.
#[test]
fn private_dict_keys_are_bounded() {
    use rados_mail::dict::Committed;
    let config = Config { max_dict_keys: 3, ..Config::default() };
    assert_eq!(Config::default().max_dict_keys, rados_mail::DEFAULT_MAX_DICT_KEYS);
    let frank = MailStore::in_memory(config).user("frank").unwrap();
    let dict = frank.dict();
    let mut t = dict.transaction();
    t.set("priv/quota/messages", b"0").unwrap();
    t.set("priv/m/1", b"one").unwrap();
    t.commit().unwrap();
    let mut t = dict.transaction();
    t.set("priv/m/2", b"two").unwrap();
    t.set("priv/m/3", b"three").unwrap();
    t.set("priv/m/1", b"uno").unwrap();
    let Err(Error::TooLarge(why)) = t.commit() else { panic!("a fourth key was set") };
    assert!(why.contains("max_dict_keys") && why.contains("at most 3") && why.contains("holds 2 keys"), "{why}");
    assert_eq!(dict.lookup("priv/m/2").unwrap(), None, "nothing of the commit was set");
    assert_eq!(dict.lookup("priv/m/1").unwrap().as_deref(), Some(&b"one"[..]));
    // Up to the bound; then changes of keys there, unsets, counters.
    let mut t = dict.transaction();
    t.set("priv/m/2", b"two").unwrap();
    t.commit().unwrap();
    let mut t = dict.transaction();
    t.set("priv/m/1", b"uno").unwrap();
    t.atomic_inc("priv/quota/messages", 2).unwrap();
    assert_eq!(t.commit().unwrap(), Committed::Applied);
    // An unset makes room for a set in the same commit.
    let mut t = dict.transaction();
    t.unset("priv/m/2").unwrap();
    t.set("priv/m/3", b"three").unwrap();
    t.commit().unwrap();
    assert_eq!(dict.lookup("priv/m/3").unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(dict.lookup("priv/quota/messages").unwrap().as_deref(), Some(&b"2"[..]));
    let mut t = dict.transaction();
    t.set("priv/m/4", b"four").unwrap();
    assert!(matches!(t.commit(), Err(Error::TooLarge(_))));
    // The shared dict is bounded by its sharding, not by this setting.
    let shared = MailStore::in_memory(Config { max_dict_keys: 1, ..Config::default() }).shared_dict().unwrap();
    let mut t = shared.transaction();
    for i in 0..5 {
        t.set(&format!("shared/last-login/u{i}"), b"1").unwrap();
    }
    t.commit().unwrap();
}

/// A copy that stores a new body (its body has `max_body_references` already), failed at
/// each of its writes in turn, then each write applied with its reply lost: the copy is
/// there whole or not at all, the other mails read as before, and `check` finds no damage
/// (what a failed copy leaves is an orphan, never a record without its body).
#[test]
fn copy_past_max_body_references_fault_sweep() {
    use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, MemoryStore, ObjectStore};
    let config = Config { max_body_references: 2, chunk_size: 10, ..Config::default() };
    let mail = b"Subject: swept\n\nacross four objects\n".to_vec();
    let setup = |pool: Arc<dyn ObjectStore>, user: &str| {
        let s = MailStore::new(pool, config.clone());
        let u = s.user(user).unwrap();
        for name in ["INBOX", "A", "B"] {
            u.create_mailbox(name).unwrap();
        }
        let inbox = u.open_mailbox("INBOX").unwrap();
        let uid = inbox.append(&mail[..], Default::default()).unwrap();
        inbox.copy_to(&[uid], &u.open_mailbox("A").unwrap()).unwrap();
    };
    let copy = |s: &MailStore, user: &str| {
        let u = s.user(user)?;
        u.open_mailbox("INBOX")?.copy_to(&[1], &u.open_mailbox("B")?)
    };
    let pool: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let counting = CountingStore::new(pool.clone());
    setup(pool.clone(), "probe");
    let before = counting.counts();
    copy(&MailStore::new(Arc::new(counting.clone()), config.clone()), "probe").unwrap();
    let writes = (counting.counts() - before).writes;
    assert_eq!(writes, 5, "the 4 objects of the new body (36 bytes), then the commit");
    for mode in [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable] {
        for at in 0..=writes {
            let user = format!("u-{mode:?}-{at}");
            setup(pool.clone(), &user);
            let faulty = FaultyStore::new(pool.clone());
            faulty.fail_after(at, mode);
            let result = copy(&MailStore::new(Arc::new(faulty.clone()), config.clone()), &user);
            faulty.heal();
            let what = format!("fault at write {at} of {writes} ({mode:?}): {result:?}");
            let fresh = MailStore::new(pool.clone(), config.clone());
            let u = fresh.user(&user).unwrap();
            let read = |name: &str| {
                let m = u.open_mailbox(name).unwrap();
                m.uids()
                    .unwrap()
                    .into_iter()
                    .map(|uid| {
                        let mut out = Vec::new();
                        std::io::Read::read_to_end(&mut m.open_body(uid).unwrap(), &mut out).unwrap();
                        out
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(read("INBOX"), vec![mail.clone()], "{what}");
            assert_eq!(read("A"), vec![mail.clone()], "{what}");
            let copied = read("B");
            assert!(copied.is_empty() || copied == [mail.clone()], "{what}");
            match &result {
                Ok(_) => assert_eq!(copied.len(), 1, "{what}: reported done but not there"),
                Err(e) => assert!(e.is_temporary(), "{what}"),
            }
            let report = rados_mail::check::check_user(&u).unwrap();
            assert!(!report.has_damage(), "{what}: {report:?}");
        }
    }
}
