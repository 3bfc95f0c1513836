//! Transaction cases ([`rados_mail::Transaction`]), run against every backend like the rest
//! of the suite: one commit for everything a mail server's transaction changes, modseqs
//! numbered as Dovecot's log counts them, no lost update between processes, and a fault
//! sweep over every write of a transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, ObjectStore, OpCounts};
use rados_mail::{AppendOptions, Config, Error, Flags, MailStore, Mailbox, ModseqSteps, StoreMode, Transaction};

use super::{body, mailbox, other_process, store_pool};

/// Generates one `#[test]` per transaction case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! txn_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in txn $make;
            txn_commits_everything_in_one_write, txn_dovecot_modseq_steps, txn_unchanged_since_per_mail,
            txn_appender_streams_without_spooling, txn_keyword_replace_race_between_processes,
            txn_delivery_to_a_cached_view_reads_the_list_only, txn_group_commit_of_waiting_saves,
            txn_copy_and_expunge_references_in_parallel, txn_fault_sweep_unavailable,
            txn_fault_sweep_applied_but_unavailable, txn_fault_sweep_new_mails_only,
        );
    };
}

fn save(m: &Mailbox, data: &[u8]) -> rados_mail::SavedMail {
    let mut app = m.appender(None);
    for piece in data.chunks(7) {
        app.write(piece).unwrap();
    }
    app.finish().unwrap()
}

fn kw(m: &Mailbox, uid: u32) -> Vec<String> {
    m.record(uid).unwrap().unwrap().keywords
}

/// Saves, a copy in, flag and keyword changes and an expunge: one write on the head.
pub fn txn_commits_everything_in_one_write(store: &MailStore, user: &str) {
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let (u, inbox) = mailbox(&here, user, "INBOX");
    u.create_mailbox("Other").unwrap();
    let other = u.open_mailbox("Other").unwrap();
    let a = inbox
        .append(&b"Subject: a\n\na\n"[..], AppendOptions { keywords: vec!["$x".into()], ..Default::default() })
        .unwrap();
    let b = inbox.append(&b"Subject: b\n\nb\n"[..], Default::default()).unwrap();
    let c = inbox.append(&b"Subject: c\n\nc\n"[..], Default::default()).unwrap();
    let o = other.append(&b"Subject: o\n\no\n"[..], Default::default()).unwrap();
    let before_hms = inbox.status().unwrap().highestmodseq;

    let mut txn = Transaction::new(ModseqSteps::One);
    let mail = save(&inbox, b"Subject: new\n\nnew\n");
    txn.save(mail, AppendOptions { flags: Flags::SEEN, keywords: vec!["$k".into()], ..Default::default() }).unwrap();
    assert!(txn.copy(&other, o, None, None).unwrap());
    assert!(!txn.copy(&other, 999, None, None).unwrap(), "a UID not in the source");
    txn.update_flags(&[a, b], StoreMode::Add, Flags::FLAGGED);
    txn.update_keywords(&[a], StoreMode::Replace, &["$y"]).unwrap();
    txn.expunge(&[c, 12345]);
    let before = counting.counts();
    let done = inbox.commit(txn).unwrap();
    let cost = counting.counts() - before;
    // The copy's body: its references read (max_body_references), 1 added; 1 head write and
    // its notify; 2 ops to drop the expunged mail's body.
    assert_eq!(cost, OpCounts { reads: 2, writes: 3, lists: 0, notifies: 1, watches: 0 }, "{done:?}");
    assert_eq!(done.saved, vec![c + 1]);
    assert_eq!(done.copied, vec![Some((o, c + 2))]);
    assert_eq!(done.changed, vec![a, b]);
    assert_eq!(done.expunged, vec![c]);
    assert_eq!((done.first_modseq, done.last_modseq), (before_hms + 1, before_hms + 1));

    // Another process sees all of it.
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![a, b, c + 1, c + 2]);
    let new = there.record(c + 1).unwrap().unwrap();
    assert_eq!((new.flags, new.keywords.clone()), (Flags::SEEN.bits(), vec!["$k".to_string()]));
    assert_eq!(body(&there, c + 1), b"Subject: new\n\nnew\n");
    assert_eq!(body(&there, c + 2), b"Subject: o\n\no\n");
    assert_eq!(kw(&there, a), vec!["$y"]);
    assert_eq!(there.record(b).unwrap().unwrap().flags, Flags::FLAGGED.bits());
    let status = there.status().unwrap();
    assert_eq!((status.messages, status.highestmodseq), (4, before_hms + 1));
    assert!(rados_mail::check::check_user(&u).unwrap().is_clean());
}

/// Dovecot numbering: the new mails, the flags, each keyword added, each removed, the
/// expunges: one modseq (one WAL entry) each, in one write.
pub fn txn_dovecot_modseq_steps(store: &MailStore, user: &str) {
    let (_u, m) = mailbox(store, user, "INBOX");
    let a = m.append(&b"a"[..], AppendOptions { keywords: vec!["$old".into()], ..Default::default() }).unwrap();
    let b = m.append(&b"b"[..], Default::default()).unwrap();
    let base = m.status().unwrap().highestmodseq;
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    let mail = save(&m, b"new");
    txn.save(
        mail,
        AppendOptions { flags: Flags::SEEN, keywords: vec!["$a".into(), "$b".into()], ..Default::default() },
    )
    .unwrap();
    txn.update_flags(&[a], StoreMode::Add, Flags::ANSWERED);
    txn.update_keywords(&[a], StoreMode::Replace, &["$a"]).unwrap();
    txn.expunge(&[b]);
    let done = m.commit(txn).unwrap();
    let new = done.saved[0];
    // append; flags; $a added (a, new); $b added (new); $old removed (a); expunge.
    assert_eq!((done.first_modseq, done.last_modseq), (base + 1, base + 6));
    let rec_a = m.record(a).unwrap().unwrap();
    assert_eq!(
        (rec_a.modseq, rec_a.keywords.clone(), rec_a.flags),
        (base + 5, vec!["$a".to_string()], Flags::ANSWERED.bits())
    );
    // The keyword steps share one WAL entry (issue 14: one entry per keyword made keyword
    // batches quadratic), at the last of their modseqs: every mail a keyword step changed
    // has that modseq (no one could see the steps in between: the commit is atomic).
    let rec_new = m.record(new).unwrap().unwrap();
    assert_eq!((rec_new.modseq, rec_new.keywords.clone()), (base + 5, vec!["$a".to_string(), "$b".to_string()]));
    // Every step is visible to QRESYNC: changes since the step before it.
    let since = m.changes_since(base + 4).unwrap();
    assert_eq!(since.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), vec![a, new]);
    assert_eq!(since.expunged, vec![b]);
    assert_eq!(since.highestmodseq, base + 6);
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.record(new).unwrap(), Some(rec_new));
    assert_eq!(there.status().unwrap().highestmodseq, base + 6);
}

/// UNCHANGEDSINCE leaves alone exactly the mails changed after it, for flags and keywords.
pub fn txn_unchanged_since_per_mail(store: &MailStore, user: &str) {
    let (_u, m) = mailbox(store, user, "INBOX");
    let a = m.append(&b"a"[..], Default::default()).unwrap();
    let b = m.append(&b"b"[..], Default::default()).unwrap();
    let seen = m.status().unwrap().highestmodseq;
    m.store(&[b], StoreMode::Add, Flags::DRAFT, &[], None).unwrap();
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.update_flags(&[a, b], StoreMode::Add, Flags::SEEN);
    txn.update_keywords(&[a, b], StoreMode::Add, &["$k"]).unwrap();
    txn.unchanged_since(seen);
    let done = m.commit(txn).unwrap();
    assert_eq!(done.modified, vec![b]);
    assert_eq!(done.changed, vec![a]);
    assert_eq!(m.record(b).unwrap().unwrap().flags, Flags::DRAFT.bits());
    assert_eq!(kw(&m, a), vec!["$k"]);
    assert!(kw(&m, b).is_empty());
    // Nothing left to change: no write, no modseq.
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.update_flags(&[b], StoreMode::Add, Flags::SEEN);
    txn.unchanged_since(seen);
    let done = m.commit(txn).unwrap();
    assert_eq!((done.modified, done.last_modseq), (vec![b], 0));
}

/// The push-style appender writes chunks as they fill; dropped unfinished, or over the
/// size limit, it leaves nothing behind.
pub fn txn_appender_streams_without_spooling(store: &MailStore, user: &str) {
    let config = Config { chunk_size: 1000, max_mail_size: 10_000, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (u, m) = mailbox(&small, user, "INBOX");
    let data: Vec<u8> = (0..3500u32).map(|i| b"abcdefghij\n"[i as usize % 11]).collect();
    let mut app = m.appender(Some(1_000_000));
    for piece in data.chunks(333) {
        app.write(piece).unwrap();
    }
    assert_eq!(app.len(), 3500);
    let mut txn = Transaction::new(ModseqSteps::One);
    txn.save(app.finish().unwrap(), AppendOptions::default()).unwrap();
    let uid = m.commit(txn).unwrap().saved[0];
    assert_eq!(body(&m, uid), data);
    assert_eq!(m.record(uid).unwrap().unwrap().received, 1_000_000);
    // Abandoned, too large, or finished but never committed: nothing stays.
    let mut app = m.appender(None);
    app.write(&data).unwrap();
    drop(app);
    let mut app = m.appender(None);
    app.write(&data).unwrap();
    assert!(matches!(app.write(&vec![b'x'; 7000]), Err(Error::TooLarge(_))));
    drop(app);
    let mut app = m.appender(None);
    app.write(&data).unwrap();
    drop(app.finish().unwrap());
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Backend A replaces the keywords of the mails while backend B adds one, 100 rounds, at
/// the same time: whichever commits second sees the first's change; nothing is lost.
pub fn txn_keyword_replace_race_between_processes(store: &MailStore, user: &str) {
    let (_u, a) = mailbox(store, user, "INBOX");
    let uids: Vec<u32> = (0..5).map(|i| a.append(format!("m{i}").as_bytes(), Default::default()).unwrap()).collect();
    let b = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    for round in 0..100 {
        let (ka, kb) = (format!("a{round}"), format!("b{round}"));
        let (ma, mb) = std::thread::scope(|s| {
            let ta = s.spawn(|| {
                let mut txn = Transaction::new(ModseqSteps::Dovecot);
                txn.update_keywords(&uids, StoreMode::Replace, &[ka.as_str()]).unwrap();
                a.commit(txn).unwrap().last_modseq
            });
            let tb = s.spawn(|| {
                let mut txn = Transaction::new(ModseqSteps::Dovecot);
                txn.update_keywords(&uids, StoreMode::Add, &[kb.as_str()]).unwrap();
                b.commit(txn).unwrap().last_modseq
            });
            (ta.join().unwrap(), tb.join().unwrap())
        });
        a.sync().unwrap();
        b.sync().unwrap();
        let want: BTreeSet<String> = if mb > ma { [ka.clone(), kb.clone()].into() } else { [ka.clone()].into() };
        for uid in &uids {
            let (ra, rb) = (a.record(*uid).unwrap().unwrap(), b.record(*uid).unwrap().unwrap());
            assert_eq!(ra, rb, "round {round}: the backends disagree");
            assert_eq!(ra.keywords.iter().cloned().collect::<BTreeSet<_>>(), want, "round {round} (A {ma}, B {mb})");
        }
    }
}

/// A delivery into a mailbox this process has its view of: a read of the mailbox list, the
/// body, the commit. When another process changed the mailbox meanwhile, the guard fails,
/// the head is read and the commit tried again: nothing is lost or doubled.
pub fn txn_delivery_to_a_cached_view_reads_the_list_only(store: &MailStore, user: &str) {
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let (u, m) = mailbox(&here, user, "INBOX");
    m.append(&b"first"[..], Default::default()).unwrap();
    drop(m);
    let deliver = |text: &[u8]| {
        let m = u.open_mailbox_to_append("INBOX").unwrap();
        let mut app = m.appender(None);
        app.write(text).unwrap();
        let mut txn = Transaction::new(ModseqSteps::Dovecot);
        txn.save(app.finish().unwrap(), AppendOptions::default()).unwrap();
        m.commit(txn).unwrap().saved[0]
    };
    let before = counting.counts();
    assert_eq!(deliver(b"second"), 2);
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 1, writes: 2, lists: 0, notifies: 1, watches: 0 },
        "list, body, commit and its notify"
    );
    other_process(store)
        .user(user)
        .unwrap()
        .open_mailbox("INBOX")
        .unwrap()
        .append(&b"elsewhere"[..], Default::default())
        .unwrap();
    let before = counting.counts();
    assert_eq!(deliver(b"third"), 4, "the UID after the other process's");
    // list, body, a failed commit, the head, the commit and its notify (one: the failed
    // commit notifies nobody).
    assert_eq!(counting.counts() - before, OpCounts { reads: 2, writes: 3, lists: 0, notifies: 1, watches: 0 });
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(body(&there, 4), b"third");
}

/// A store whose writes on mailbox heads take a while: while one commit is in flight,
/// the other threads' transactions queue up.
#[derive(Debug)]
pub(super) struct SlowHeads(pub(super) Arc<dyn ObjectStore>, pub(super) Arc<std::sync::atomic::AtomicU64>);

impl ObjectStore for SlowHeads {
    fn namespace(&self) -> &str {
        self.0.namespace()
    }
    fn with_namespace(&self, ns: &str) -> rados_mail::objstore::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(SlowHeads(self.0.with_namespace(ns)?, self.1.clone())))
    }
    fn write_op(&self, oid: &str, op: &rados_mail::objstore::WriteOp) -> rados_mail::objstore::Result<u64> {
        if oid.starts_with("mbox.") && oid.matches('.').count() == 1 {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        self.0.write_op(oid, op)
    }
    fn read_op(
        &self,
        oid: &str,
        op: &rados_mail::objstore::ReadOp,
    ) -> rados_mail::objstore::Result<rados_mail::objstore::ReadResult> {
        self.0.read_op(oid, op)
    }
    fn write_op_async(
        &self,
        oid: &str,
        op: rados_mail::objstore::WriteOp,
    ) -> rados_mail::objstore::BoxFuture<'static, rados_mail::objstore::Result<u64>> {
        self.0.write_op_async(oid, op)
    }
    fn read_op_async(
        &self,
        oid: &str,
        op: rados_mail::objstore::ReadOp,
    ) -> rados_mail::objstore::BoxFuture<'static, rados_mail::objstore::Result<rados_mail::objstore::ReadResult>> {
        self.0.read_op_async(oid, op)
    }
    fn list_objects(&self) -> rados_mail::objstore::Result<rados_mail::objstore::ObjectIter<'_>> {
        self.0.list_objects()
    }
    fn list_namespaces(&self) -> rados_mail::objstore::Result<Vec<String>> {
        self.0.list_namespaces()
    }
    fn watch(
        &self,
        oid: &str,
        callback: rados_mail::objstore::WatchCallback,
    ) -> rados_mail::objstore::Result<Box<dyn rados_mail::objstore::WatchHandle>> {
        self.0.watch(oid, callback)
    }
    fn notify(&self, oid: &str, payload: &[u8], done: Option<rados_mail::objstore::NotifyDone>) {
        self.0.notify(oid, payload, done)
    }
}

/// Group commit: 8 threads of one process save a mail each into one mailbox while a commit
/// is in flight; the 7 that wait go to RADOS in one write, each with its own UID and modseq
/// steps, as if committed one after the other.
pub fn txn_group_commit_of_waiting_saves(store: &MailStore, user: &str) {
    let slow = Arc::new(SlowHeads(store_pool(store), Default::default()));
    let here = MailStore::new(slow.clone(), store.config().clone());
    let (_u, m) = mailbox(&here, user, "INBOX");
    let base = m.status().unwrap().highestmodseq;
    let writes_before = slow.1.load(std::sync::atomic::Ordering::SeqCst);
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<rados_mail::Committed> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (m, barrier) = (&m, &barrier);
                s.spawn(move || {
                    let mut app = m.appender(None);
                    app.write(format!("Subject: {i}\n\nmail {i}\n").as_bytes()).unwrap();
                    let mail = app.finish().unwrap();
                    let mut txn = Transaction::new(ModseqSteps::Dovecot);
                    let options = AppendOptions { keywords: vec![format!("$k{i}")], ..Default::default() };
                    txn.save(mail, options).unwrap();
                    barrier.wait();
                    if i > 0 {
                        // Thread 0's commit is in flight (150 ms) when the others commit.
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    m.commit(txn).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let head_writes = slow.1.load(std::sync::atomic::Ordering::SeqCst) - writes_before;
    assert_eq!(head_writes, 2, "thread 0's commit, then the other 7 in one write");
    let mut uids: Vec<u32> = results.iter().map(|c| c.saved[0]).collect();
    uids.sort_unstable();
    assert_eq!(uids, (1..=8).collect::<Vec<u32>>());
    // Every transaction has its own two modseqs (the mail, its keyword), none shared.
    let mut ranges: Vec<(u64, u64)> = results.iter().map(|c| (c.first_modseq, c.last_modseq)).collect();
    ranges.sort_unstable();
    assert_eq!(ranges, (0..8).map(|i| (base + 1 + 2 * i, base + 2 + 2 * i)).collect::<Vec<_>>());
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    for (i, c) in results.iter().enumerate() {
        let rec = there.record(c.saved[0]).unwrap().unwrap();
        assert_eq!((rec.keywords.clone(), rec.modseq), (vec![format!("$k{i}")], c.last_modseq));
        assert_eq!(body(&there, c.saved[0]), format!("Subject: {i}\n\nmail {i}\n").as_bytes());
    }
    assert_eq!(there.status().unwrap().highestmodseq, base + 16);
}

/// COPY and EXPUNGE of N mails: N reference reads and writes (in flight together) and one
/// head write for a copy; one head write and two ops per body for an expunge.
pub fn txn_copy_and_expunge_references_in_parallel(store: &MailStore, user: &str) {
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(Arc::new(counting.clone()), store.config().clone());
    let (u, inbox) = mailbox(&here, user, "INBOX");
    u.create_mailbox("Archive").unwrap();
    let archive = u.open_mailbox("Archive").unwrap();
    let uids: Vec<u32> =
        (0..20).map(|i| inbox.append(format!("m{i}").as_bytes(), Default::default()).unwrap()).collect();
    // A mailbox's records are read on first use, by block of UIDs (one read here: the view
    // knows the WAL entries it wrote, no need to read the head); appends need none.
    let before = counting.counts();
    assert_eq!(inbox.uids().unwrap(), uids);
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 1, writes: 0, lists: 0, notifies: 0, watches: 0 },
        "records on first use"
    );
    let before = counting.counts();
    let pairs = inbox.copy_to(&uids, &archive).unwrap();
    assert_eq!(pairs.len(), 20);
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 20, writes: 21, lists: 0, notifies: 1, watches: 0 },
        "copy of 20: each body's references read (max_body_references), 20 added, the head and its notify"
    );
    let before = counting.counts();
    assert_eq!(inbox.expunge(&uids).unwrap(), uids);
    // Each body keeps the archive's reference: read + drop our key.
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 20, writes: 21, lists: 0, notifies: 1, watches: 0 },
        "expunge of 20"
    );
    let moved: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    assert_eq!(archive.uids().unwrap(), moved);
    let before = counting.counts();
    archive.expunge(&moved).unwrap();
    // The last references: read + remove the body.
    assert_eq!(
        counting.counts() - before,
        OpCounts { reads: 20, writes: 21, lists: 0, notifies: 1, watches: 0 },
        "expunge of the last copies"
    );
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean() && report.bodies == 0, "{report:?}");
}

/// The transaction of the sweeps: a save, a copy in, flag and keyword changes, an expunge.
struct Sweep {
    store: MailStore,
    user: String,
    /// Only the save and the copy: a transaction of new mails (the group-commit path).
    appends_only: bool,
}

impl Sweep {
    /// A fresh user with INBOX (2 mails) and Other (1 mail) on `pool`.
    fn new(pool: Arc<dyn ObjectStore>, config: Config, user: String, appends_only: bool) -> Sweep {
        let store = MailStore::new(pool, config);
        let u = store.user(&user).unwrap();
        u.create_mailbox("INBOX").unwrap();
        u.create_mailbox("Other").unwrap();
        let inbox = u.open_mailbox("INBOX").unwrap();
        inbox.append(&b"one"[..], Default::default()).unwrap();
        inbox.append(&b"two"[..], Default::default()).unwrap();
        u.open_mailbox("Other").unwrap().append(&b"other"[..], Default::default()).unwrap();
        Sweep { store, user, appends_only }
    }

    /// Runs the transaction through `store` (the faulty one).
    fn run(&self, store: &MailStore) -> rados_mail::Result<rados_mail::Committed> {
        let u = store.user(&self.user)?;
        let inbox = u.open_mailbox("INBOX")?;
        let other = u.open_mailbox("Other")?;
        let mut app = inbox.appender(None);
        app.write(b"Subject: swept\n\nbody\n")?;
        let mut txn = Transaction::new(ModseqSteps::Dovecot);
        txn.save(app.finish()?, AppendOptions { keywords: vec!["$s".into()], ..Default::default() })?;
        txn.copy(&other, 1, None, None)?;
        if !self.appends_only {
            txn.update_flags(&[1], StoreMode::Add, Flags::SEEN);
            txn.update_keywords(&[1], StoreMode::Replace, &["$r"])?;
            txn.expunge(&[2]);
        }
        inbox.commit(txn)
    }

    /// All of the transaction is visible, or none of it; nothing is damaged. Returns
    /// whether it is visible.
    fn verify(&self, what: &str) -> bool {
        let fresh = MailStore::new(self.store.pool().clone(), self.store.config().clone());
        let u = fresh.user(&self.user).unwrap();
        let inbox = u.open_mailbox("INBOX").unwrap();
        let one = inbox.record(1).unwrap().unwrap();
        let (uids, flags, keywords) = if self.appends_only {
            (vec![1, 2, 3, 4], 0, Vec::<String>::new())
        } else {
            (vec![1, 3, 4], Flags::SEEN.bits(), vec!["$r".to_string()])
        };
        let after = inbox.uids().unwrap() == uids
            && one.flags == flags
            && one.keywords == keywords
            && kw(&inbox, 3) == vec!["$s"]
            && body(&inbox, 3) == b"Subject: swept\n\nbody\n"
            && body(&inbox, 4) == b"other";
        let before = inbox.uids().unwrap() == vec![1, 2]
            && one.flags == 0
            && one.keywords.is_empty()
            && body(&inbox, 2) == b"two";
        assert!(after ^ before, "{what}: half a transaction: {:?}", inbox.records(1..=u32::MAX).unwrap());
        assert_eq!(u.open_mailbox("Other").unwrap().uids().unwrap(), vec![1], "{what}");
        let report = rados_mail::check::check_user(&u).unwrap();
        assert!(!report.has_damage(), "{what}: {report:?}");
        after
    }
}

fn sweep(store: &MailStore, user: &str, mode: FaultMode, appends_only: bool) {
    // How many writes the transaction makes when nothing fails.
    let counting = CountingStore::new(store_pool(store));
    let probe = Sweep::new(Arc::new(counting.clone()), store.config().clone(), format!("{user}-probe"), appends_only);
    let before = counting.counts();
    probe.run(&probe.store).unwrap();
    let writes = (counting.counts() - before).writes;
    assert!(probe.verify("no fault"));
    assert!(writes >= if appends_only { 3 } else { 4 }, "{writes} writes");
    for at in 0..=writes {
        let case = Sweep::new(store_pool(store), store.config().clone(), format!("{user}-{at}"), appends_only);
        let faulty = FaultyStore::new(store_pool(store));
        let through = MailStore::new(Arc::new(faulty.clone()), store.config().clone());
        faulty.fail_after(at, mode);
        let result = case.run(&through);
        faulty.heal();
        let visible = case.verify(&format!("fault at write {at} of {writes} ({mode:?}): {result:?}"));
        match &result {
            Ok(_) => assert!(visible, "write {at}: reported done but not visible"),
            Err(e) => {
                assert!(e.is_temporary(), "write {at}: {e}");
                // After a lost reply the commit reads back whether it landed; only a commit
                // that really failed may report a failure.
                if mode == FaultMode::AppliedButUnavailable {
                    assert!(!visible, "write {at}: applied, read back, yet reported failed: {e}");
                }
            }
        }
    }
}

/// Fails the transaction at each of its writes in turn (the cluster goes away there).
pub fn txn_fault_sweep_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::WritesUnavailable, false);
}

/// A transaction of new mails only (committed through the group commit), failed at each
/// of its writes in turn; then each write applied with its reply lost.
pub fn txn_fault_sweep_new_mails_only(store: &MailStore, user: &str) {
    sweep(store, &format!("{user}-u"), FaultMode::WritesUnavailable, true);
    sweep(store, &format!("{user}-a"), FaultMode::AppliedButUnavailable, true);
}

/// Each write in turn is applied but its reply is lost.
pub fn txn_fault_sweep_applied_but_unavailable(store: &MailStore, user: &str) {
    sweep(store, user, FaultMode::AppliedButUnavailable, false);
}
