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
