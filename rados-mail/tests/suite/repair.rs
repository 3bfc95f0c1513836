//! Repair cases (issue 12): a user with planted damage of every kind goes through check,
//! a dry run (which changes nothing), the repair, and a check again (clean); nothing is
//! dropped silently (what a mailbox cannot serve any more goes to `lost+found` with a
//! report), and a repair interrupted at any write finishes when run again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rados_mail::check::{CheckReport, check_user};
use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, WriteOp};
use rados_mail::repair::{LOST_FOUND, RepairAction, RepairOptions, repair_mailbox, repair_user};
use rados_mail::{AppendOptions, Guid, MailStore, Mailbox, ModseqSteps, Transaction, User};

use super::damage::corrupt;
use super::{body, mailbox, other_process, store_pool};

/// Generates one `#[test]` per repair case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! repair_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in repair $make;
            repair_planted_damage_check_dry_run_repair_check, repair_leaves_young_leftovers_alone,
            repair_mailbox_alone_moves_its_damage, repair_defers_young_bodies_then_moves_them,
            repair_mends_index_and_map_problems, repair_removes_damaged_delivery_marks,
        );
    };
}

/// The fault sweeps of a repair (in memory: a few hundred writes per sweep).
#[macro_export]
macro_rules! repair_sweep_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in repair $make;
            repair_fault_sweep_unavailable, repair_fault_sweep_applied_but_unavailable,
        );
    };
}

fn now_options() -> RepairOptions {
    RepairOptions { dry_run: false, orphan_grace: Duration::ZERO }
}

fn guid_of(u: &User, mailbox: &str, uid: u32) -> Guid {
    Guid::from_slice(&u.open_mailbox(mailbox).unwrap().record(uid).unwrap().unwrap().mail_guid).unwrap()
}

/// Plants one damage of each kind in `user`'s INBOX and elsewhere; returns the GUIDs of the
/// body of the corrupt record (UID 2) and of the mail whose body is removed (UID 3).
fn plant(store: &MailStore, user: &str) -> (Guid, Guid) {
    let (u, m) = mailbox(store, user, "INBOX");
    for i in 1..=6 {
        m.append(format!("Subject: {i}\n\nmail {i}\n").as_bytes(), Default::default()).unwrap();
    }
    m.apply_wal().unwrap();
    let ns = u.store().clone();
    let inbox = m.info().guid;
    let (corrupt_body, gone_body) = (guid_of(&u, "INBOX", 2), guid_of(&u, "INBOX", 3));
    // A corrupt record whose body is still there.
    corrupt(&ns, &format!("mbox.{inbox}.0000"), "r/00000002");
    // Bodies are in the data pool (the index pool unless the store has another); their
    // references are xattrs in pool format v2, omap keys in v1.
    let bodies = u.body_store().unwrap();
    let xattr_refs = store.layout().unwrap().version >= 2;
    // A record whose body is gone.
    bodies.remove(&format!("mail.{gone_body}")).unwrap();
    // A reference missing from the body of UID 4; a stale one on the body of UID 5.
    let rec4 = m.record(4).unwrap().unwrap();
    let body4 = format!("mail.{}", guid_of(&u, "INBOX", 4));
    let body5 = format!("mail.{}", guid_of(&u, "INBOX", 5));
    if xattr_refs {
        let ours = format!("rm.ref.{inbox}.{:016x}", rec4.instance);
        bodies.write_op(&body4, &WriteOp::new().rm_xattr(ours)).unwrap();
        bodies.set_xattr(&body5, &format!("rm.ref.{inbox}.00000000deadbeef"), b"").unwrap();
    } else {
        bodies.omap_rm_keys(&body4, &[&format!("ref/{inbox}/{:016x}", rec4.instance)]).unwrap();
        bodies.omap_set(&body5, &[(&format!("ref/{inbox}/00000000deadbeef"), &b""[..])]).unwrap();
    }
    // An orphan body (a save that never committed) and an orphan chunk.
    bodies.write_full("mail.0123456789abcdef0123456789abcdef", b"orphan").unwrap();
    bodies.write_full("mail.fedcba9876543210fedcba9876543210.0001", b"chunk").unwrap();
    // A second mailbox with a corrupt header and a corrupt list entry.
    u.create_mailbox("Work").unwrap();
    let work = u.open_mailbox("Work").unwrap();
    work.append(&b"Subject: w\n\nwork\n"[..], Default::default()).unwrap();
    corrupt(&ns, &format!("mbox.{}", work.info().guid), "hdr");
    corrupt(&ns, "mailboxes", "mbox/Work");
    // The head of a mailbox that was never listed (a create that crashed).
    ns.write_full(&format!("mbox.{}", Guid([7; 16])), b"").unwrap();
    (corrupt_body, gone_body)
}

fn findings(r: &CheckReport) -> usize {
    r.orphan_bodies.len()
        + r.orphan_chunks.len()
        + r.stale_references.len()
        + r.unlisted_mailbox_objects.len()
        + r.missing_bodies.len()
        + r.missing_references.len()
        + r.corrupt.len()
        + r.index_problems.len()
}

/// The planted-damage run: check finds every kind, a dry run reports and changes nothing,
/// the repair fixes it all, the next check is clean and a second repair does nothing; the
/// rest of the mailbox is served throughout; what was damaged is in `lost+found`.
pub fn repair_planted_damage_check_dry_run_repair_check(store: &MailStore, user: &str) {
    let (corrupt_body, gone_body) = plant(store, user);
    let u = other_process(store).user(user).unwrap();
    let before = check_user(&u).unwrap();
    assert_eq!(before.orphan_bodies.len(), 2, "the planted one and UID 2's (corrupt record): {before:#?}");
    assert_eq!(before.orphan_chunks.len(), 1, "{before:#?}");
    assert_eq!(before.missing_bodies, vec![("INBOX".to_string(), 3)], "{before:#?}");
    assert_eq!(before.missing_references.len(), 1, "{before:#?}");
    assert_eq!(before.stale_references.len(), 1, "{before:#?}");
    assert_eq!(before.unlisted_mailbox_objects.len(), 1, "{before:#?}");
    let corrupt_keys: BTreeSet<String> = before.corrupt.iter().filter_map(|d| d.key.clone()).collect();
    assert_eq!(corrupt_keys, ["hdr", "mbox/Work", "r/00000002"].map(String::from).into(), "{before:#?}");

    // The rest of the mailbox is served while damaged.
    let inbox = u.open_mailbox("INBOX").unwrap();
    assert_eq!(body(&inbox, 1), b"Subject: 1\n\nmail 1\n");
    assert_eq!(body(&inbox, 6), b"Subject: 6\n\nmail 6\n");

    let dry = repair_user(&u, &RepairOptions { dry_run: true, ..now_options() }).unwrap();
    assert!(dry.dry_run && !dry.actions.is_empty(), "{dry:#?}");
    let ageless = |mut r: CheckReport| {
        r.orphan_bodies.iter_mut().for_each(|(_, age)| *age = 0);
        r
    };
    assert_eq!(ageless(check_user(&u).unwrap()), ageless(before), "a dry run writes nothing");

    let done = repair_user(&u, &now_options()).unwrap();
    assert!(done.unrepaired.is_empty(), "{done:#?}");
    let kinds: BTreeSet<&str> = done
        .actions
        .iter()
        .map(|a| match a {
            RepairAction::RemovedOrphan { .. } => "orphan",
            RepairAction::RemovedReference { .. } => "stale ref",
            RepairAction::AddedReference { .. } => "missing ref",
            RepairAction::RebuiltHead { .. } => "head",
            RepairAction::RebuiltListEntry { .. } => "list entry",
            RepairAction::RemovedUnlistedMailboxObject { .. } => "unlisted",
            RepairAction::MovedToLostFound { .. } => "lost+found",
            RepairAction::RemovedFromMailbox { .. } => "removed",
            RepairAction::WroteReport { .. } => "report",
            _ => "other",
        })
        .collect();
    let expected: BTreeSet<&str> =
        ["orphan", "stale ref", "missing ref", "head", "list entry", "unlisted", "lost+found", "removed", "report"]
            .into();
    assert_eq!(kinds, expected, "{done:#?}");
    for a in &done.actions {
        assert!(!a.to_string().is_empty());
    }
    let after = check_user(&u).unwrap();
    assert!(after.is_clean(), "{after:#?}");
    assert!(repair_user(&u, &now_options()).unwrap().is_empty(), "a second repair finds nothing");

    // INBOX keeps what it could serve; lost+found has the body of the corrupt record
    // (readable) and the report naming both damaged mails.
    let inbox = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(inbox.uids().unwrap(), vec![1, 4, 5, 6]);
    for uid in [1, 4, 5, 6] {
        assert_eq!(body(&inbox, uid), format!("Subject: {uid}\n\nmail {uid}\n").as_bytes());
    }
    let lf = u.open_mailbox(LOST_FOUND).unwrap();
    let recs = lf.records(1..=u32::MAX).unwrap();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].mail_guid, corrupt_body.0.to_vec());
    assert_eq!(body(&lf, recs[0].uid), b"Subject: 2\n\nmail 2\n");
    let report = String::from_utf8(body(&lf, recs[1].uid)).unwrap();
    assert!(report.contains("UID 2: corrupt record") && report.contains("UID 3: body missing"), "{report}");
    assert!(report.contains(&format!("mail.{gone_body}")), "{report}");
    // Work is usable again, its list entry rewritten.
    let work = u.open_mailbox("Work").unwrap();
    assert_eq!(body(&work, 1), b"Subject: w\n\nwork\n");
}

/// Leftovers younger than the grace may belong to a save in flight: left alone.
pub fn repair_leaves_young_leftovers_alone(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    m.append(&b"Subject: 1\n\n1\n"[..], Default::default()).unwrap();
    u.body_store().unwrap().write_full("mail.0123456789abcdef0123456789abcdef", b"in flight").unwrap();
    let done = repair_user(&u, &RepairOptions::default()).unwrap();
    assert!(done.is_empty(), "{done:#?}");
    assert_eq!(check_user(&u).unwrap().orphan_bodies.len(), 1);
}

/// `repair_mailbox` (what `doveadm force-resync` runs) fixes that mailbox's damage.
pub fn repair_mailbox_alone_moves_its_damage(store: &MailStore, user: &str) {
    plant(store, user);
    let u = other_process(store).user(user).unwrap();
    let done = repair_mailbox(&u, "INBOX", &RepairOptions::default()).unwrap();
    assert!(done.unrepaired.is_empty(), "{done:#?}");
    let inbox = u.open_mailbox("INBOX").unwrap();
    assert_eq!(inbox.uids().unwrap(), vec![1, 4, 5, 6]);
    assert!(inbox.damaged().unwrap().is_empty());
    let work = repair_mailbox(&u, "Work", &RepairOptions::default()).unwrap();
    assert!(work.actions.iter().any(|a| matches!(a, RepairAction::RebuiltListEntry { .. })), "{work:#?}");
}

fn sweep(store: &MailStore, user: &str, mode: FaultMode) {
    // How many writes a repair does.
    let probe = format!("{user}-probe");
    plant(store, &probe);
    let counting = CountingStore::new(store_pool(store));
    let through = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let before = counting.counts();
    repair_user(&through.user(&probe).unwrap(), &now_options()).unwrap();
    let writes = (counting.counts() - before).writes;
    assert!(writes >= 10, "{writes} writes");
    for at in 0..writes {
        let case = format!("{user}-{at}");
        plant(store, &case);
        let faulty = FaultyStore::new(store_pool(store));
        let through = MailStore::new(Arc::new(faulty.clone()), store.config().clone());
        faulty.fail_after(at, mode);
        let first = repair_user(&through.user(&case).unwrap(), &now_options());
        faulty.heal();
        let what = format!("fault at write {at} of {writes} ({mode:?}): {first:?}");
        // Run again (another process): it finishes the work.
        let u = other_process(store).user(&case).unwrap();
        let again = repair_user(&u, &now_options()).unwrap();
        assert!(again.unrepaired.is_empty(), "{what}: {again:#?}");
        let after = check_user(&u).unwrap();
        assert_eq!(findings(&after), 0, "{what}: {after:#?}");
        let inbox = u.open_mailbox("INBOX").unwrap();
        assert_eq!(inbox.uids().unwrap(), vec![1, 4, 5, 6], "{what}");
        for uid in [1, 4, 5, 6] {
            assert_eq!(body(&inbox, uid), format!("Subject: {uid}\n\nmail {uid}\n").as_bytes(), "{what}");
        }
        let lf = u.open_mailbox(LOST_FOUND).unwrap();
        let recs = lf.records(1..=u32::MAX).unwrap();
        let bodies: Vec<Vec<u8>> = recs.iter().map(|r| body(&lf, r.uid)).collect();
        let saved = bodies.iter().filter(|b| b.as_slice() == b"Subject: 2\n\nmail 2\n").count();
        assert_eq!(saved, 1, "{what}: the corrupt record's mail is in lost+found exactly once: {recs:?}");
        assert!(
            bodies.iter().any(|b| String::from_utf8_lossy(b).contains("UID 3: body missing")),
            "{what}: a report names the lost mail: {:?} first run actions: {:#?}",
            bodies.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>(),
            again
        );
        assert_eq!(body(&u.open_mailbox("Work").unwrap(), 1), b"Subject: w\n\nwork\n", "{what}");
    }
}

/// Each write of a repair fails (not applied); a second run finishes the work.
pub fn repair_fault_sweep_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::WritesUnavailable);
}

/// Each write of a repair is applied but reported failed; a second run finishes the work.
pub fn repair_fault_sweep_applied_but_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::AppliedButUnavailable);
}

/// Found by the Dovecot damage tests: a mail lost with a corrupt WAL entry, and the body of
/// a corrupt record, are younger than the grace right after the damage. A repair then
/// leaves them (they could be saves in flight) *and* keeps the head's `damaged/` markers,
/// so that a later repair still knows to look for them; it moves them to `lost+found`.
pub fn repair_defers_young_bodies_then_moves_them(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    for i in 1..=3 {
        m.append(format!("Subject: {i}\n\nmail {i}\n").as_bytes(), Default::default()).unwrap();
    }
    m.apply_wal().unwrap();
    m.append(&b"Subject: 4\n\nmail 4\n"[..], Default::default()).unwrap(); // in the WAL only
    let ns = u.store().clone();
    let head = format!("mbox.{}", m.info().guid);
    corrupt(&ns, &format!("{head}.0000"), "r/00000002");
    let last_wal = ns.omap_all(&head, "w/").unwrap().pop().unwrap().0;
    corrupt(&ns, &head, &last_wal);
    let u = other_process(store).user(user).unwrap();
    assert_eq!(u.open_mailbox("INBOX").unwrap().uids().unwrap(), vec![1, 2, 3], "UID 4's entry was lost");

    let first = repair_mailbox(&u, "INBOX", &RepairOptions::default()).unwrap();
    let deferred = first.actions.iter().filter(|a| matches!(a, RepairAction::Deferred { .. })).count();
    assert_eq!(deferred, 2, "{first:#?}");
    assert!(first.unrepaired.is_empty(), "{first:#?}");
    let pending = check_user(&u).unwrap();
    assert_eq!(pending.orphan_bodies.len(), 2, "{pending:#?}");
    assert!(pending.index_problems.iter().any(|p| p.contains("damaged/")), "{pending:#?}");

    let later = repair_user(&u, &now_options()).unwrap();
    let moved = later.actions.iter().filter(|a| matches!(a, RepairAction::MovedToLostFound { .. })).count();
    assert_eq!(moved, 2, "{later:#?}");
    assert!(check_user(&u).unwrap().is_clean());
    let lf = u.open_mailbox(LOST_FOUND).unwrap();
    let mut bodies: Vec<Vec<u8>> = lf.uids().unwrap().into_iter().map(|uid| body(&lf, uid)).collect();
    bodies.retain(|b| b.starts_with(b"Subject: ") && b.len() < 20);
    bodies.sort();
    assert_eq!(bodies, vec![b"Subject: 2\n\nmail 2\n".to_vec(), b"Subject: 4\n\nmail 4\n".to_vec()]);
    assert_eq!(u.open_mailbox("INBOX").unwrap().uids().unwrap(), vec![1, 3]);
}

/// What check reports repair mends too (else `check` would exit 1 forever after a repair):
/// a damaged shard `applied` mark, a header whose counts disagree with the index, a damaged
/// `guid/` value, a `guid/` entry of a mailbox whose list entry was lost (it is listed
/// again, its mails kept) and one of a mailbox that is gone.
pub fn repair_mends_index_and_map_problems(store: &MailStore, user: &str) {
    use omap_index::frame;
    use omap_index::records::MailboxHeader;
    let (u, m) = mailbox(store, user, "INBOX");
    for i in 1..=3 {
        m.append(format!("Subject: {i}\n\nmail {i}\n").as_bytes(), Default::default()).unwrap();
    }
    m.apply_wal().unwrap();
    u.create_mailbox("Lost").unwrap();
    u.open_mailbox("Lost").unwrap().append(&b"Subject: kept\n\nkept\n"[..], Default::default()).unwrap();
    let ns = u.store().clone();
    let head = format!("mbox.{}", m.info().guid);
    ns.omap_set(&format!("{head}.0000"), &[("applied", b"zz")]).unwrap();
    let mut hdr: MailboxHeader = frame::decode(&ns.omap_get(&head, &["hdr"]).unwrap()["hdr"]).unwrap();
    hdr.messages = 99;
    ns.omap_set(&head, &[("hdr", &frame::encode(&hdr))]).unwrap();
    ns.omap_set("mailboxes", &[(&format!("guid/{}", Guid([1; 16])), &[0xff, 0xfe][..])]).unwrap();
    ns.omap_set("mailboxes", &[(&format!("guid/{}", Guid([2; 16])), &b"Ghost"[..])]).unwrap();
    ns.omap_rm_keys("mailboxes", &["mbox/Lost"]).unwrap();

    let u = other_process(store).user(user).unwrap();
    let before = check_user(&u).unwrap();
    assert_eq!(before.corrupt.len(), 2, "{before:#?}");
    assert_eq!(before.index_problems.len(), 3, "{before:#?}");
    let done = repair_user(&u, &now_options()).unwrap();
    assert!(done.unrepaired.is_empty(), "{done:#?}");
    let after = check_user(&u).unwrap();
    assert!(after.is_clean(), "{after:#?}");
    let names: Vec<String> = u.list_mailboxes("*").unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["INBOX", "Lost"]);
    assert_eq!(body(&u.open_mailbox("Lost").unwrap(), 1), b"Subject: kept\n\nkept\n");
    let inbox = u.open_mailbox("INBOX").unwrap();
    assert_eq!(inbox.status().unwrap().messages, 3);
    inbox.append(&b"Subject: 4\n\nmail 4\n"[..], Default::default()).unwrap();
    inbox.apply_wal().unwrap();
    assert_eq!(inbox.uids().unwrap(), vec![1, 2, 3, 4]);
}

/// Delivers `mail` with its delivery key (as LMTP does); the UIDs it got.
fn deliver_keyed(m: &Mailbox, mail: &[u8]) -> rados_mail::Result<Vec<u32>> {
    let mut app = m.appender(None);
    app.deliver(None)?;
    app.write(mail)?;
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.save(app.finish()?, AppendOptions::default())?;
    Ok(m.commit(txn)?.saved)
}

/// A damaged delivery mark (issue 13 left it unchecked): the commit's guard finds its key
/// present and the read finds no intact mark, so every retry of that delivery failed until
/// the mark's bucket expired (up to 28 hours) while `check` said nothing. Now `check`
/// reports it with its key and `repair` removes it (only it: the header is not rebuilt).
pub fn repair_removes_damaged_delivery_marks(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    let mail = b"From: a@example.org\nSubject: keyed\n\nonce\n";
    let uid = deliver_keyed(&m, mail).unwrap();
    let ns = u.store().clone();
    let head = format!("mbox.{}", m.info().guid);
    let marks: Vec<String> =
        ns.omap_all(&head, "").unwrap().into_iter().map(|(k, _)| k).filter(|k| k.starts_with("dlv/")).collect();
    assert_eq!(marks.len(), 1, "one mark: {marks:?}");
    corrupt(&ns, &head, &marks[0]);
    let hdr_before = ns.omap_get(&head, &["hdr"]).unwrap();

    let report = check_user(&other_process(store).user(user).unwrap()).unwrap();
    assert!(report.has_damage());
    assert_eq!(
        report.corrupt.iter().map(|d| (d.object.as_str(), d.key.as_deref())).collect::<Vec<_>>(),
        vec![(head.as_str(), Some(marks[0].as_str()))],
        "{report:?}"
    );
    // Before the repair the retry cannot be stored: the mark's key blocks it.
    let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    let err = deliver_keyed(&other, mail).expect_err("a damaged mark blocks its delivery");
    assert!(err.is_temporary(), "{err:?}");

    let done = repair_user(&other_process(store).user(user).unwrap(), &now_options()).unwrap();
    assert!(
        done.actions.iter().any(|a| matches!(a, RepairAction::RebuiltHead { detail, .. }
            if detail.starts_with("1 damaged delivery mark(s) removed"))),
        "{done:?}"
    );
    assert!(check_user(&other_process(store).user(user).unwrap()).unwrap().is_clean());
    assert!(ns.omap_get(&head, &[&marks[0]]).unwrap().is_empty(), "the mark is gone");
    assert_eq!(ns.omap_get(&head, &["hdr"]).unwrap(), hdr_before, "the header is not rewritten");
    // A retry is stored again now (the mark that recognised it is gone), under a new UID.
    let again = deliver_keyed(&other, mail).unwrap();
    assert_ne!(again, uid);
    assert_eq!(other.uids().unwrap().len(), 2);
}
