//! Mailbox-list behaviour of [`User`]: create, list, rename, delete, subscriptions,
//! special use, UIDVALIDITY allocation and concurrent creates.
//!
//! Every case is a plain function taking a [`MailStore`], so the same cases can run on a
//! real cluster; each works on a user of its own with a fresh name. The `#[test]`s at the
//! bottom run them on the in-memory store.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

use omap_index::keys;
use omap_index::names::MAILBOX_LIST;
use rados_mail::objstore::{MemoryStore, ObjectStore};
use rados_mail::{Config, Error, MailStore, MailboxInfo, User};

/// A user no earlier run or other case has touched.
fn fresh_user(store: &MailStore, case: &str) -> User {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("test-user-{case}-{}-{nanos}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    store.user(&name).unwrap()
}

fn names(infos: &[MailboxInfo]) -> Vec<&str> {
    infos.iter().map(|i| i.name.as_str()).collect()
}

fn listed(user: &User, pattern: &str) -> Vec<String> {
    user.list_mailboxes(pattern).unwrap().into_iter().map(|i| i.name).collect()
}

/// Created mailboxes are listed sorted, filtered by `*` and `%` patterns.
pub fn create_and_list(store: &MailStore) {
    let user = fresh_user(store, "list");
    assert_eq!(user.list_mailboxes("*").unwrap(), vec![]);
    for name in ["INBOX", "Sent", "Work", "Work/Projects", "Work/Projects/2024", "Workshop", "Ärger"] {
        let info = user.create_mailbox(name).unwrap();
        assert_eq!(info.name, name);
        assert_eq!(info.special_use, Vec::<String>::new());
        assert_eq!(user.mailbox_info(name).unwrap(), info);
    }
    let all = user.list_mailboxes("*").unwrap();
    assert_eq!(names(&all), ["INBOX", "Sent", "Work", "Work/Projects", "Work/Projects/2024", "Workshop", "Ärger"]);
    assert_eq!(listed(&user, "%"), ["INBOX", "Sent", "Work", "Workshop", "Ärger"]);
    assert_eq!(listed(&user, "Work/*"), ["Work/Projects", "Work/Projects/2024"]);
    assert_eq!(listed(&user, "Work/%"), ["Work/Projects"]);
    assert_eq!(listed(&user, "Work*"), ["Work", "Work/Projects", "Work/Projects/2024", "Workshop"]);
    assert_eq!(listed(&user, "Work%"), ["Work", "Workshop"]);
    assert_eq!(listed(&user, "%/%"), ["Work/Projects"]);
    assert_eq!(listed(&user, "*/2024"), ["Work/Projects/2024"]);
    assert_eq!(listed(&user, "Sent"), ["Sent"]);
    assert_eq!(listed(&user, "sent"), Vec::<String>::new());
    assert_eq!(listed(&user, "inbox"), ["INBOX"]);
    assert_eq!(listed(&user, "In%"), ["INBOX"]);
    assert_eq!(listed(&user, "Nothing*"), Vec::<String>::new());
    assert_eq!(listed(&user, ""), Vec::<String>::new());
    assert!(matches!(user.mailbox_info("Nothing"), Err(Error::NotFound(_))));
}

/// Creating an existing name fails with `AlreadyExists` and changes nothing.
pub fn create_duplicate(store: &MailStore) {
    let user = fresh_user(store, "dup");
    let first = user.create_mailbox("Drafts").unwrap();
    assert!(matches!(user.create_mailbox("Drafts"), Err(Error::AlreadyExists(_))));
    // Names other than INBOX are case-sensitive.
    user.create_mailbox("drafts").unwrap();
    assert_eq!(user.mailbox_info("Drafts").unwrap(), first);
    assert_eq!(listed(&user, "*"), ["Drafts", "drafts"]);
}

/// Any casing of INBOX (as the whole first level) means INBOX; other names keep their case.
pub fn inbox_is_case_insensitive(store: &MailStore) {
    let user = fresh_user(store, "inbox");
    assert_eq!(user.create_mailbox("inbox").unwrap().name, "INBOX");
    assert!(matches!(user.create_mailbox("InBox"), Err(Error::AlreadyExists(_))));
    assert_eq!(user.create_mailbox("iNbOx/Sub").unwrap().name, "INBOX/Sub");
    assert!(matches!(user.create_mailbox("INBOX/Sub"), Err(Error::AlreadyExists(_))));
    // Only a whole first level is INBOX.
    assert_eq!(user.create_mailbox("inboxes").unwrap().name, "inboxes");
    assert_eq!(user.create_mailbox("Archive/inbox").unwrap().name, "Archive/inbox");
    assert_eq!(listed(&user, "*"), ["Archive/inbox", "INBOX", "INBOX/Sub", "inboxes"]);
    assert_eq!(user.mailbox_info("Inbox/sub").ok(), None, "levels below INBOX keep their case");
    assert_eq!(user.mailbox_info("Inbox/Sub").unwrap().name, "INBOX/Sub");
    assert_eq!(listed(&user, "inbox/*"), ["INBOX/Sub"]);
    assert_eq!(listed(&user, "INBOX*"), ["INBOX", "INBOX/Sub"]);
    assert_eq!(listed(&user, "inbox*"), ["INBOX", "INBOX/Sub", "inboxes"]);
}

/// Invalid names fail with `InvalidInput` everywhere a name is taken.
pub fn invalid_names(store: &MailStore) {
    let user = fresh_user(store, "invalid");
    let long = "x".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        (&long, "256 bytes"),
        ("/Work", "leading separator"),
        ("Work/", "trailing separator"),
        ("/", "only a separator"),
        ("Work//Projects", "empty level"),
        ("Wo\nrk", "newline"),
        ("Wo\0rk", "NUL"),
        ("Wo\x7frk", "DEL"),
        ("Work*", "wildcard *"),
        ("Wo%rk", "wildcard %"),
    ];
    for &(name, why) in cases {
        let err = user.create_mailbox(name).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{why}: {name:?} gave {err:?}");
        assert!(matches!(user.mailbox_info(name), Err(Error::InvalidInput(_))), "{why}");
        assert!(matches!(user.delete_mailbox(name), Err(Error::InvalidInput(_))), "{why}");
        assert!(matches!(user.subscribe(name), Err(Error::InvalidInput(_))), "{why}");
    }
    let message = user.create_mailbox("a//b").unwrap_err().to_string();
    assert!(message.contains("\"a//b\""), "the message names the mailbox: {message}");
    // Longest valid name, and spaces, dots and non-ASCII are fine.
    for name in ["y".repeat(255).as_str(), "Sent Items", ".hidden/..", "日本語/メール"] {
        assert_eq!(user.create_mailbox(name).unwrap().name, name);
    }
    assert_eq!(listed(&user, "*").len(), 4);
}

/// A rename moves the children along, keeping GUIDs, UIDVALIDITYs and mails; subscriptions
/// stay with the old names (RFC 3501 6.3.6; the balancer test found that they moved).
pub fn rename_with_children(store: &MailStore) {
    let user = fresh_user(store, "rename");
    let before: Vec<MailboxInfo> =
        ["Work", "Work/A", "Work/A/B", "Workshop"].iter().map(|n| user.create_mailbox(n).unwrap()).collect();
    for name in ["Work", "Work/A/B", "Work/Ghost", "Workshop"] {
        user.subscribe(name).unwrap();
    }
    let uid = user.open_mailbox("Work/A").unwrap().append(&b"Subject: kept\n\nbody\n"[..], Default::default()).unwrap();

    user.rename_mailbox("Work", "Jobs/Old").unwrap();

    assert_eq!(listed(&user, "*"), ["Jobs/Old", "Jobs/Old/A", "Jobs/Old/A/B", "Workshop"]);
    for (old, new) in before.iter().zip(["Jobs/Old", "Jobs/Old/A", "Jobs/Old/A/B", "Workshop"]) {
        let now = user.mailbox_info(new).unwrap();
        assert_eq!((now.guid, now.uidvalidity, now.created), (old.guid, old.uidvalidity, old.created), "{new}");
        assert_eq!(user.mailbox_by_guid(&old.guid).unwrap().name, new);
    }
    assert!(matches!(user.mailbox_info("Work"), Err(Error::NotFound(_))));
    assert_eq!(
        user.subscriptions("*").unwrap(),
        ["Work", "Work/A/B", "Work/Ghost", "Workshop"],
        "subscriptions stay with the old names"
    );
    let moved = user.open_mailbox("Jobs/Old/A").unwrap();
    assert_eq!(moved.status().unwrap().uidvalidity, before[1].uidvalidity);
    assert_eq!(moved.uids().unwrap(), [uid], "mails stay in a renamed mailbox");

    // A child can be renamed on its own, and to a level above it.
    user.rename_mailbox("Jobs/Old/A/B", "B").unwrap();
    assert_eq!(listed(&user, "*"), ["B", "Jobs/Old", "Jobs/Old/A", "Workshop"]);
    assert_eq!(user.mailbox_info("B").unwrap().guid, before[2].guid);
    // Renaming back and forth; a name freed by a rename can be taken again.
    user.rename_mailbox("B", "Jobs/Old/A/B").unwrap();
    user.create_mailbox("B").unwrap();
    assert_eq!(listed(&user, "*"), ["B", "Jobs/Old", "Jobs/Old/A", "Jobs/Old/A/B", "Workshop"]);
}

/// A rename onto an existing name, at the top or below, fails and changes nothing.
pub fn rename_onto_existing_changes_nothing(store: &MailStore) {
    let user = fresh_user(store, "rename-exists");
    for name in ["Work", "Work/A", "Work/B", "Play", "Play/B"] {
        user.create_mailbox(name).unwrap();
    }
    user.subscribe("Work/A").unwrap();
    let before = user.list_mailboxes("*").unwrap();

    // "Work" → "Play" collides at the top; "Work" → "Fun" would not, but "Play" → "Work"
    // collides only below ("Play/B" → "Work/B").
    assert!(matches!(user.rename_mailbox("Work", "Play"), Err(Error::AlreadyExists(_))));
    assert!(matches!(user.rename_mailbox("Play", "Work"), Err(Error::AlreadyExists(_))));
    user.delete_mailbox("Work").unwrap();
    assert!(matches!(user.rename_mailbox("Play", "Work"), Err(Error::AlreadyExists(_))), "Work/B still exists");
    assert!(matches!(user.rename_mailbox("Work/A", "Work/A"), Err(Error::AlreadyExists(_))));

    let after = user.list_mailboxes("*").unwrap();
    assert_eq!(after, before.into_iter().filter(|i| i.name != "Work").collect::<Vec<_>>());
    assert_eq!(user.subscriptions("*").unwrap(), ["Work/A"]);
}

/// Renames below themselves, of INBOX itself, of missing or to invalid names fail as documented.
pub fn rename_errors(store: &MailStore) {
    let user = fresh_user(store, "rename-errors");
    for name in ["INBOX", "INBOX/Sub", "a", "a/b"] {
        user.create_mailbox(name).unwrap();
    }
    let invalid = |old: &str, new: &str| {
        let err = user.rename_mailbox(old, new).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{old:?} → {new:?}: {err:?}");
    };
    invalid("a", "a/b/c");
    invalid("a", "a/x");
    invalid("INBOX", "Old");
    invalid("inbox", "Old");
    invalid("a", "bad//name");
    invalid("a", "a*");
    assert!(matches!(user.rename_mailbox("missing", "other"), Err(Error::NotFound(_))));
    // A name would grow over 255 bytes below the renamed mailbox.
    invalid("a", &"z".repeat(254));
    // Below INBOX renames like anything else, and a mailbox can become INBOX's child.
    user.rename_mailbox("inbox/Sub", "Sub").unwrap();
    user.rename_mailbox("a", "INBOX/a").unwrap();
    assert_eq!(listed(&user, "*"), ["INBOX", "INBOX/a", "INBOX/a/b", "Sub"]);
}

/// A parent that is no mailbox itself (IMAP `\NoSelect`) renames its children in one update,
/// keeping their GUIDs; once the parent is created, renaming moves it along.
pub fn rename_noselect_parent(store: &MailStore) {
    let user = fresh_user(store, "rename-noselect");
    let b = user.create_mailbox("p/b").unwrap();
    let c = user.create_mailbox("p/b/c").unwrap();
    user.subscribe("p/b").unwrap();
    user.rename_mailbox("p", "q").unwrap();
    assert_eq!(listed(&user, "*"), ["q/b", "q/b/c"]);
    assert_eq!((user.mailbox_info("q/b").unwrap().guid, user.mailbox_info("q/b/c").unwrap().guid), (b.guid, c.guid));
    assert_eq!(user.subscriptions("*").unwrap(), ["p/b"], "subscriptions stay (RFC 3501 6.3.6)");
    assert!(matches!(user.rename_mailbox("p", "r"), Err(Error::NotFound(_))));
    user.create_mailbox("q").unwrap();
    user.rename_mailbox("q", "r").unwrap();
    assert_eq!(listed(&user, "*"), ["r", "r/b", "r/b/c"]);
}

/// Deleting removes the mailbox and its mails; children and subscriptions stay; a new one is fresh.
pub fn delete(store: &MailStore) {
    let user = fresh_user(store, "delete");
    let parent = user.create_mailbox("Old").unwrap();
    user.create_mailbox("Old/Child").unwrap();
    user.subscribe("Old").unwrap();
    let mailbox = user.open_mailbox("Old").unwrap();
    mailbox.append(&b"Subject: gone\n\nbody\n"[..], Default::default()).unwrap();

    user.delete_mailbox("Old").unwrap();

    assert!(matches!(user.mailbox_info("Old"), Err(Error::NotFound(_))));
    assert!(matches!(user.open_mailbox("Old"), Err(Error::NotFound(_))));
    assert!(matches!(user.mailbox_by_guid(&parent.guid), Err(Error::NotFound(_))));
    assert!(matches!(user.delete_mailbox("Old"), Err(Error::NotFound(_))));
    assert_eq!(listed(&user, "*"), ["Old/Child"], "children stay");
    assert_eq!(user.subscriptions("*").unwrap(), ["Old"], "subscriptions stay");

    let again = user.create_mailbox("Old").unwrap();
    assert_ne!(again.guid, parent.guid);
    assert!(again.uidvalidity > parent.uidvalidity);
    let reopened = user.open_mailbox("Old").unwrap();
    assert_eq!(reopened.status().unwrap().messages, 0, "a recreated mailbox starts empty");
    assert!(matches!(user.delete_mailbox("Never"), Err(Error::NotFound(_))));
}

/// Subscribing, unsubscribing (both idempotent) and listing subscriptions with patterns.
pub fn subscriptions(store: &MailStore) {
    let user = fresh_user(store, "subs");
    assert_eq!(user.subscriptions("*").unwrap(), Vec::<String>::new());
    user.unsubscribe("Nothing").unwrap();
    user.create_mailbox("Lists").unwrap();
    for name in ["Lists", "Lists/rust", "Lists/ceph/dev", "inbox", "Not/Created"] {
        user.subscribe(name).unwrap();
    }
    user.subscribe("Lists").unwrap();
    assert_eq!(user.subscriptions("*").unwrap(), ["INBOX", "Lists", "Lists/ceph/dev", "Lists/rust", "Not/Created"]);
    assert_eq!(user.subscriptions("Lists/%").unwrap(), ["Lists/rust"]);
    assert_eq!(user.subscriptions("%").unwrap(), ["INBOX", "Lists"]);
    assert_eq!(user.subscriptions("Inbox").unwrap(), ["INBOX"]);
    assert_eq!(user.subscriptions("").unwrap(), Vec::<String>::new());
    user.unsubscribe("Lists/rust").unwrap();
    user.unsubscribe("Lists/rust").unwrap();
    user.unsubscribe("INBOX").unwrap();
    assert_eq!(user.subscriptions("*").unwrap(), ["Lists", "Lists/ceph/dev", "Not/Created"]);
    // Subscriptions are not mailboxes.
    assert_eq!(listed(&user, "*"), ["Lists"]);
}

/// Special-use attributes are validated, stored canonically, survive renames, can be cleared.
pub fn special_use(store: &MailStore) {
    let user = fresh_user(store, "special");
    user.create_mailbox("Sent Items").unwrap();
    user.create_mailbox("Bin").unwrap();
    user.set_special_use("Sent Items", &["\\sent"]).unwrap();
    user.set_special_use("Bin", &["\\TRASH", "\\Junk", "\\trash"]).unwrap();
    assert_eq!(user.mailbox_info("Sent Items").unwrap().special_use, ["\\Sent"]);
    assert_eq!(user.mailbox_info("Bin").unwrap().special_use, ["\\Junk", "\\Trash"]);
    let listed = user.list_mailboxes("*").unwrap();
    assert_eq!(listed[0].special_use, ["\\Junk", "\\Trash"], "list shows special use");

    for bad in ["Sent", "\\Important", "\\Sentx", ""] {
        let err = user.set_special_use("Bin", &[bad]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(user.mailbox_info("Bin").unwrap().special_use, ["\\Junk", "\\Trash"], "unchanged by bad input");
    assert!(matches!(user.set_special_use("Missing", &["\\All"]), Err(Error::NotFound(_))));

    // Survives a rename; the empty list clears it.
    user.rename_mailbox("Bin", "Trash").unwrap();
    assert_eq!(user.mailbox_info("Trash").unwrap().special_use, ["\\Junk", "\\Trash"]);
    user.set_special_use("Trash", &[]).unwrap();
    assert_eq!(user.mailbox_info("Trash").unwrap().special_use, Vec::<String>::new());
    let all = ["\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"];
    user.set_special_use("Trash", &all.iter().rev().copied().collect::<Vec<_>>()).unwrap();
    assert_eq!(user.mailbox_info("Trash").unwrap().special_use, all);
}

/// UIDVALIDITYs increase strictly, even for many creates within one second.
pub fn uidvalidity_strictly_increases(store: &MailStore) {
    let user = fresh_user(store, "uidvalidity");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
    let mut last = 0;
    // Far more creates than seconds pass: they cannot all use the clock.
    for i in 0..30 {
        let info = user.create_mailbox(&format!("box{i}")).unwrap();
        assert!(info.uidvalidity > last, "{} after {last}", info.uidvalidity);
        assert!(info.uidvalidity >= now);
        last = info.uidvalidity;
        if i % 3 == 0 {
            user.delete_mailbox(&format!("box{i}")).unwrap();
            let again = user.create_mailbox(&format!("box{i}")).unwrap();
            assert!(again.uidvalidity > last);
            last = again.uidvalidity;
        }
    }
}

/// Mailboxes are found by GUID, only in their own user.
pub fn mailbox_by_guid(store: &MailStore) {
    let user = fresh_user(store, "guid");
    let info = user.create_mailbox("Somewhere").unwrap();
    assert_eq!(user.mailbox_by_guid(&info.guid).unwrap(), info);
    let mut other = info.guid;
    other.0[0] ^= 1;
    assert!(matches!(user.mailbox_by_guid(&other), Err(Error::NotFound(_))));
    // Another user does not see it.
    let stranger = fresh_user(store, "guid-stranger");
    assert!(matches!(stranger.mailbox_by_guid(&info.guid), Err(Error::NotFound(_))));
    assert_eq!(stranger.list_mailboxes("*").unwrap(), vec![]);
}

/// Opening a listed mailbox gives the mailbox with the listed info.
pub fn open_mailbox(store: &MailStore) {
    let user = fresh_user(store, "open");
    let info = user.create_mailbox("inbox").unwrap();
    let mailbox = user.open_mailbox("INBOX").unwrap();
    assert_eq!(mailbox.info(), &info);
    let status = mailbox.status().unwrap();
    assert_eq!((status.messages, status.uidvalidity), (0, info.uidvalidity));
    assert!(matches!(user.open_mailbox("Other"), Err(Error::NotFound(_))));
}

/// 8 threads create 20 mailboxes each, all at once, on the same user.
pub fn concurrent_creates(store: &MailStore) {
    const THREADS: usize = 8;
    const EACH: usize = 20;
    let user = fresh_user(store, "concurrent");
    let start = Barrier::new(THREADS);
    let created: Vec<MailboxInfo> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (user, start) = (user.clone(), &start);
                s.spawn(move || {
                    start.wait();
                    (0..EACH).map(|i| user.create_mailbox(&format!("t{t}/m{i:02}")).unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let listed = user.list_mailboxes("*").unwrap();
    assert_eq!(listed.len(), THREADS * EACH);
    let mut created_sorted = created.clone();
    created_sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed, created_sorted, "the list holds exactly what the creates returned");
    assert_eq!(listed.iter().map(|i| i.guid).collect::<HashSet<_>>().len(), THREADS * EACH, "GUIDs distinct");
    assert_eq!(
        listed.iter().map(|i| i.uidvalidity).collect::<HashSet<_>>().len(),
        THREADS * EACH,
        "UIDVALIDITYs distinct"
    );
    for info in &listed {
        assert_eq!(&user.mailbox_by_guid(&info.guid).unwrap(), info);
    }
}

/// 8 threads create the same mailbox at once: exactly one wins.
pub fn concurrent_creates_of_one_name(store: &MailStore) {
    const THREADS: usize = 8;
    let user = fresh_user(store, "same-name");
    let start = Barrier::new(THREADS);
    let results: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (user, start) = (user.clone(), &start);
                s.spawn(move || {
                    start.wait();
                    user.create_mailbox("Contended")
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let winners: Vec<&MailboxInfo> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(Error::AlreadyExists(_)))), "{results:?}");
    assert_eq!(&user.mailbox_info("Contended").unwrap(), winners[0]);
    assert_eq!(user.mailbox_by_guid(&winners[0].guid).unwrap().name, "Contended");
}

/// Renames and creates race on one user: every mailbox ends up exactly once, under its
/// old or its new name, with its GUID.
pub fn concurrent_renames_and_creates(store: &MailStore) {
    let user = fresh_user(store, "rename-race");
    let originals: Vec<MailboxInfo> = (0..10).map(|i| user.create_mailbox(&format!("r{i}")).unwrap()).collect();
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let (renamer, creator) = (user.clone(), user.clone());
        let start = &start;
        s.spawn(move || {
            start.wait();
            (0..10).for_each(|i| renamer.rename_mailbox(&format!("r{i}"), &format!("moved/r{i}")).unwrap());
        });
        s.spawn(move || {
            start.wait();
            (0..10).for_each(|i| drop(creator.create_mailbox(&format!("c{i}")).unwrap()));
        });
    });
    assert_eq!(listed(&user, "r*"), Vec::<String>::new());
    assert_eq!(listed(&user, "c%").len(), 10);
    for (i, old) in originals.iter().enumerate() {
        let now = user.mailbox_info(&format!("moved/r{i}")).unwrap();
        assert_eq!((now.guid, now.uidvalidity), (old.guid, old.uidvalidity));
    }
}

// ---- The cases on the in-memory store. ----

fn memory() -> MailStore {
    MailStore::in_memory(Config::default())
}

#[test]
fn memory_create_and_list() {
    create_and_list(&memory());
}
#[test]
fn memory_create_duplicate() {
    create_duplicate(&memory());
}
#[test]
fn memory_inbox_is_case_insensitive() {
    inbox_is_case_insensitive(&memory());
}
#[test]
fn memory_invalid_names() {
    invalid_names(&memory());
}
#[test]
fn memory_rename_with_children() {
    rename_with_children(&memory());
}
#[test]
fn memory_rename_onto_existing_changes_nothing() {
    rename_onto_existing_changes_nothing(&memory());
}
#[test]
fn memory_rename_errors() {
    rename_errors(&memory());
}
#[test]
fn memory_rename_noselect_parent() {
    rename_noselect_parent(&memory());
}
#[test]
fn memory_delete() {
    delete(&memory());
}
#[test]
fn memory_subscriptions() {
    subscriptions(&memory());
}
#[test]
fn memory_special_use() {
    special_use(&memory());
}
#[test]
fn memory_uidvalidity_strictly_increases() {
    uidvalidity_strictly_increases(&memory());
}
#[test]
fn memory_mailbox_by_guid() {
    mailbox_by_guid(&memory());
}
#[test]
fn memory_open_mailbox() {
    open_mailbox(&memory());
}
#[test]
fn memory_concurrent_creates() {
    concurrent_creates(&memory());
}
#[test]
fn memory_concurrent_creates_of_one_name() {
    concurrent_creates_of_one_name(&memory());
}
#[test]
fn memory_concurrent_renames_and_creates() {
    concurrent_renames_and_creates(&memory());
}

/// A damaged list entry (issue 12) is recovered from the GUID map and the head, so the
/// mailbox stays usable; when that is impossible too, it is reported as `Corrupted` naming
/// the object and key, never a panic, and the other entries stay usable. (In memory only:
/// it writes the raw object.)
#[test]
fn memory_corrupted_entries_are_recovered_or_confined() {
    let pool: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let store = MailStore::new(pool.clone(), Config::default());
    let user = store.user("damaged").unwrap();
    let good = user.create_mailbox("Good").unwrap();
    let bad = user.create_mailbox("Bad").unwrap();
    let lost = user.create_mailbox("Lost").unwrap();
    let raw = pool.with_namespace("damaged").unwrap();
    let bad_key = keys::mailbox("Bad");
    raw.omap_set(MAILBOX_LIST, &[(&bad_key, b"\x01garbage")]).unwrap();
    assert_eq!(user.mailbox_info("Bad").unwrap().guid, bad.guid);
    user.set_special_use("Bad", &["\\Junk"]).unwrap();
    assert_eq!(user.mailbox_info("Bad").unwrap().special_use, ["\\Junk"], "the write replaced the damaged entry");

    // Entry and GUID map both damaged: only that mailbox is affected.
    let lost_key = keys::mailbox("Lost");
    raw.omap_set(MAILBOX_LIST, &[(&lost_key, b"\x01garbage")]).unwrap();
    raw.omap_set(MAILBOX_LIST, &[(&keys::mailbox_guid(&lost.guid), b"elsewhere")]).unwrap();
    match user.mailbox_info("Lost").unwrap_err() {
        Error::Corrupted { object, key, .. } => {
            assert_eq!((object.as_str(), key.as_deref()), (MAILBOX_LIST, Some(lost_key.as_str())));
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
    let names: Vec<String> = user.list_mailboxes("*").unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["Bad", "Good"]);
    assert!(matches!(user.delete_mailbox("Lost"), Err(Error::Corrupted { .. })));
    assert!(matches!(user.rename_mailbox("Lost", "Worse"), Err(Error::Corrupted { .. })));
    assert_eq!(user.list_mailboxes("Good").unwrap(), vec![good.clone()]);

    raw.omap_set(MAILBOX_LIST, &[(keys::COUNTERS, b"\x01\0\0\0\0\x08")]).unwrap();
    let new = user.create_mailbox("New").unwrap();
    assert!(new.uidvalidity > bad.uidvalidity, "damaged counters are recovered from the entries");
    raw.omap_set(MAILBOX_LIST, &[(&keys::mailbox_guid(&good.guid), &[0xff, 0xfe][..])]).unwrap();
    assert!(matches!(user.mailbox_by_guid(&good.guid), Err(Error::Corrupted { .. })));
}

mod common;

/// The cases whose outcome depends on real concurrency and guards, on the real cluster.
mod on_cluster {
    use super::common;

    #[test]
    fn cluster_create_and_list() {
        super::create_and_list(&common::cluster_store());
    }
    #[test]
    fn cluster_rename_with_children() {
        super::rename_with_children(&common::cluster_store());
    }
    #[test]
    fn cluster_rename_noselect_parent() {
        super::rename_noselect_parent(&common::cluster_store());
    }
    #[test]
    fn cluster_rename_onto_existing_changes_nothing() {
        super::rename_onto_existing_changes_nothing(&common::cluster_store());
    }
    #[test]
    fn cluster_delete() {
        super::delete(&common::cluster_store());
    }
    #[test]
    fn cluster_uidvalidity_strictly_increases() {
        super::uidvalidity_strictly_increases(&common::cluster_store());
    }
    #[test]
    fn cluster_concurrent_creates() {
        super::concurrent_creates(&common::cluster_store());
    }
    #[test]
    fn cluster_concurrent_creates_of_one_name() {
        super::concurrent_creates_of_one_name(&common::cluster_store());
    }
    #[test]
    fn cluster_concurrent_renames_and_creates() {
        super::concurrent_renames_and_creates(&common::cluster_store());
    }
}
