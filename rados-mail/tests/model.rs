//! Model-based test of the mail layer: random sequences of mail operations, run by two
//! processes (two `MailStore`s over one pool) through a `FaultyStore` with random faults,
//! against a plain `BTreeMap` model.
//!
//! After each operation the state is read by a fresh process (a new `MailStore` on the
//! pool itself) and compared with the model:
//! - the operation succeeded: the model applies it, and the state must be the result;
//! - it failed: the state must be the one before, except where the library documents that
//!   the outcome is open: a commit that failed with a temporary error (docs/FORMAT.md,
//!   "Allocating UIDs", step 4: the read-back could not tell), a mailbox list change that
//!   failed with one (its read-back could not tell either),
//!   a delete or rename whose list change landed before a later step failed, and a move
//!   whose copy landed before its expunge failed. When the fault was
//!   `AppliedButUnavailable` (the reply of an applied write lost, the store healthy again
//!   at once) step 4 can always tell: a commit, a create and a rename must then report the
//!   outcome exactly (before mailbox-list changes were resolved so, a create or rename that
//!   landed reported `Unavailable`: found by this test).
//!
//! Invariants after every step: same mailboxes, UIDs, bodies, flags and keywords as the
//! model; `uidnext` as the model says; UIDs of a mailbox never reused (every new UID above
//! every UID the mailbox ever had); `highestmodseq` never decreases and grows whenever the
//! mailbox's mails changed; `check_user` reports no damage.
//!
//! `PROPTEST_CASES` raises the number of sequences (default 256, about 5 s in debug).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use objstore::{FaultMode, FaultyStore, MemoryStore, ObjectStore};
use proptest::prelude::*;
use rados_mail::{AppendOptions, Config, Error, Flags, Guid, MailStore, StoreMode};

const USER: &str = "model";
/// INBOX always exists; the others are created, renamed and deleted.
const NAMES: [&str; 4] = ["INBOX", "a", "b", "c"];
const KEYWORDS: [&str; 3] = ["$Forwarded", "Work", "todo"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mail {
    body: Vec<u8>,
    flags: u32,
    keywords: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Mbox {
    uidnext: u32,
    mails: BTreeMap<u32, Mail>,
}

/// Mailbox name → its contents.
type State = BTreeMap<String, Mbox>;

/// One operation; `p` is the process (0 or 1) that runs it, mailboxes are `NAMES` indexes,
/// `sel` picks among the mailbox's mails (bit i: the i-th UID, modulo their number).
#[derive(Debug, Clone)]
enum Op {
    Append { p: usize, mb: usize, len: usize, flags: u32, kw: u8 },
    Store { p: usize, mb: usize, sel: u8, mode: u8, flags: u32, kw: u8 },
    Expunge { p: usize, mb: usize, sel: u8 },
    Copy { p: usize, from: usize, to: usize, sel: u8, mv: bool },
    Create { p: usize, mb: usize },
    Rename { p: usize, from: usize, to: usize },
    Delete { p: usize, mb: usize },
    Sync { p: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = 0usize..2;
    prop_oneof![
        4 => (p.clone(), 0usize..4, 0usize..200, 0u32..32, any::<u8>())
            .prop_map(|(p, mb, len, flags, kw)| Op::Append { p, mb, len, flags, kw }),
        3 => (p.clone(), 0usize..4, any::<u8>(), 0u8..3, 0u32..32, any::<u8>())
            .prop_map(|(p, mb, sel, mode, flags, kw)| Op::Store { p, mb, sel, mode, flags, kw }),
        2 => (p.clone(), 0usize..4, any::<u8>()).prop_map(|(p, mb, sel)| Op::Expunge { p, mb, sel }),
        2 => (p.clone(), 0usize..4, 1usize..4, any::<u8>(), any::<bool>())
            .prop_map(|(p, from, k, sel, mv)| Op::Copy { p, from, to: (from + k) % 4, sel, mv }),
        2 => (p.clone(), 1usize..4).prop_map(|(p, mb)| Op::Create { p, mb }),
        1 => (p.clone(), 1usize..4, 1usize..3).prop_map(|(p, from, k)| Op::Rename { p, from, to: 1 + (from - 1 + k) % 3 }),
        1 => (p.clone(), 1usize..4).prop_map(|(p, mb)| Op::Delete { p, mb }),
        1 => p.prop_map(|p| Op::Sync { p }),
    ]
}

fn fault_strategy() -> impl Strategy<Value = Option<(u64, FaultMode)>> {
    let mode = prop_oneof![
        Just(FaultMode::Unavailable),
        Just(FaultMode::WritesUnavailable),
        Just(FaultMode::Io),
        Just(FaultMode::AppliedButUnavailable),
    ];
    prop::option::weighted(0.4, (0u64..16, mode))
}

fn keywords_of(mask: u8) -> Vec<&'static str> {
    KEYWORDS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| *k).collect()
}

fn selected(mbox: Option<&Mbox>, sel: u8) -> Vec<u32> {
    let uids: Vec<u32> = mbox.map(|m| m.mails.keys().copied().collect()).unwrap_or_default();
    if uids.is_empty() {
        return Vec::new();
    }
    let picked: BTreeSet<u32> = (0..8).filter(|i| sel & (1 << i) != 0).map(|i| uids[i % uids.len()]).collect();
    picked.into_iter().collect()
}

/// The body of the n-th append: unique, `len` bytes after a header.
fn body_of(n: usize, len: usize) -> Vec<u8> {
    let mut body = format!("Subject: mail {n}\r\n\r\n").into_bytes();
    body.extend((0..len).map(|i| b'a' + ((i + n) % 26) as u8));
    body
}

/// What an operation is expected to do: `Some(state)` if it is valid on `before`, the
/// state it leaves; `None` if it must fail and change nothing. `body` is the append's.
fn apply(before: &State, op: &Op, body: &[u8]) -> Option<State> {
    let mut s = before.clone();
    match *op {
        Op::Append { mb, flags, kw, .. } => {
            let m = s.get_mut(NAMES[mb])?;
            let uid = m.uidnext;
            let keywords = keywords_of(kw).into_iter().map(String::from).collect();
            m.mails.insert(uid, Mail { body: body.to_vec(), flags, keywords });
            m.uidnext += 1;
        }
        Op::Store { mb, sel, mode, flags, kw, .. } => {
            let uids = selected(s.get(NAMES[mb]), sel);
            let m = s.get_mut(NAMES[mb])?;
            let kws: BTreeSet<String> = keywords_of(kw).into_iter().map(String::from).collect();
            for uid in uids {
                let mail = m.mails.get_mut(&uid).expect("selected");
                match mode {
                    0 => (mail.flags, mail.keywords) = (flags, kws.clone()),
                    1 => {
                        mail.flags |= flags;
                        mail.keywords.extend(kws.iter().cloned());
                    }
                    _ => {
                        mail.flags &= !flags;
                        mail.keywords.retain(|k| !kws.contains(k));
                    }
                }
            }
        }
        Op::Expunge { mb, sel, .. } => {
            let uids = selected(s.get(NAMES[mb]), sel);
            let m = s.get_mut(NAMES[mb])?;
            uids.iter().for_each(|u| drop(m.mails.remove(u)));
        }
        Op::Copy { from, to, sel, mv, .. } => {
            let uids = selected(Some(s.get(NAMES[from])?), sel);
            let mails: Vec<Mail> = uids.iter().map(|u| s.get(NAMES[from]).unwrap().mails[u].clone()).collect();
            let dest = s.get_mut(NAMES[to])?;
            for mail in mails {
                dest.mails.insert(dest.uidnext, mail);
                dest.uidnext += 1;
            }
            if mv {
                let src = s.get_mut(NAMES[from]).expect("selected from it");
                uids.iter().for_each(|u| drop(src.mails.remove(u)));
            }
        }
        Op::Create { mb, .. } => {
            if s.contains_key(NAMES[mb]) {
                return None;
            }
            s.insert(NAMES[mb].into(), Mbox { uidnext: 1, mails: BTreeMap::new() });
        }
        Op::Rename { from, to, .. } => {
            if s.contains_key(NAMES[to]) {
                return None;
            }
            let m = s.remove(NAMES[from])?;
            s.insert(NAMES[to].into(), m);
        }
        Op::Delete { mb, .. } => drop(s.remove(NAMES[mb])?),
        Op::Sync { .. } => {}
    }
    Some(s)
}

/// Runs `op` in `store`; the UIDs it reports as new (appended or copied).
fn run(store: &MailStore, op: &Op, body: &[u8]) -> Result<Vec<u32>, Error> {
    let user = store.user(USER)?;
    match *op {
        Op::Append { mb, flags, kw, .. } => {
            let keywords = keywords_of(kw).into_iter().map(String::from).collect();
            let options = AppendOptions { flags: Flags::from_bits(flags), keywords, ..Default::default() };
            Ok(vec![user.open_mailbox(NAMES[mb])?.append(body, options)?])
        }
        Op::Store { mb, sel, mode, flags, kw, .. } => {
            let mailbox = user.open_mailbox(NAMES[mb])?;
            let uids = mailbox.uids()?;
            let wanted = selected_of(&uids, sel);
            let mode = [StoreMode::Replace, StoreMode::Add, StoreMode::Remove][usize::from(mode)];
            mailbox.store(&wanted, mode, Flags::from_bits(flags), &keywords_of(kw), None)?;
            Ok(Vec::new())
        }
        Op::Expunge { mb, sel, .. } => {
            let mailbox = user.open_mailbox(NAMES[mb])?;
            let wanted = selected_of(&mailbox.uids()?, sel);
            mailbox.expunge(&wanted)?;
            Ok(Vec::new())
        }
        Op::Copy { from, to, sel, mv, .. } => {
            let src = user.open_mailbox(NAMES[from])?;
            let dest = user.open_mailbox(NAMES[to])?;
            let wanted = selected_of(&src.uids()?, sel);
            let pairs = if mv { src.move_to(&wanted, &dest)? } else { src.copy_to(&wanted, &dest)? };
            Ok(pairs.into_iter().map(|(_, d)| d).collect())
        }
        Op::Create { mb, .. } => user.create_mailbox(NAMES[mb]).map(|_| Vec::new()),
        Op::Rename { from, to, .. } => user.rename_mailbox(NAMES[from], NAMES[to]).map(|()| Vec::new()),
        Op::Delete { mb, .. } => user.delete_mailbox(NAMES[mb]).map(|()| Vec::new()),
        Op::Sync { .. } => {
            for info in user.list_mailboxes("*")? {
                user.open_mailbox_info(&info)?.sync()?;
            }
            Ok(Vec::new())
        }
    }
}

/// The same selection as [`selected`], on the UIDs the process sees.
fn selected_of(uids: &[u32], sel: u8) -> Vec<u32> {
    let mbox = Mbox { uidnext: 0, mails: uids.iter().map(|u| (*u, Mail::empty())).collect() };
    selected(Some(&mbox), sel)
}

impl Mail {
    fn empty() -> Mail {
        Mail { body: Vec::new(), flags: 0, keywords: BTreeSet::new() }
    }
}

/// What a fresh process sees: the state, and per mailbox its GUID and highestmodseq.
fn observe(pool: &Arc<dyn ObjectStore>, config: &Config) -> (State, BTreeMap<String, (Guid, u64)>) {
    let store = MailStore::new(pool.clone(), config.clone());
    let seen = view_of(&store);
    let report = rados_mail::check::check_user(&store.user(USER).unwrap()).unwrap();
    assert!(!report.has_damage(), "check_user found damage: {report:?}");
    seen
}

/// The state as `store` (a fresh process, or one of the running ones with its caches)
/// sees it.
fn view_of(store: &MailStore) -> (State, BTreeMap<String, (Guid, u64)>) {
    let user = store.user(USER).unwrap();
    let mut state = State::new();
    let mut ids = BTreeMap::new();
    for info in user.list_mailboxes("*").unwrap() {
        let mailbox = user.open_mailbox_info(&info).unwrap();
        let status = mailbox.status().unwrap();
        let mut mails = BTreeMap::new();
        for rec in mailbox.records(1..=u32::MAX).unwrap() {
            let mut body = Vec::new();
            mailbox.open_body(rec.uid).unwrap().read_to_end(&mut body).unwrap();
            assert!(rec.modseq <= status.highestmodseq, "record modseq above highestmodseq");
            mails.insert(rec.uid, Mail { body, flags: rec.flags, keywords: rec.keywords.into_iter().collect() });
        }
        assert_eq!(mailbox.uids().unwrap().len(), mails.len(), "damaged records in {}", info.name);
        ids.insert(info.name.clone(), (info.guid, status.highestmodseq));
        state.insert(info.name, Mbox { uidnext: status.uidnext, mails });
    }
    (state, ids)
}

/// Whether a failure of `op` with `err` may have taken effect (see the module's comment).
fn may_have_landed(op: &Op, err: &Error) -> bool {
    match op {
        Op::Delete { .. } | Op::Rename { .. } => true,
        Op::Sync { .. } => false,
        _ => err.is_temporary(),
    }
}

/// Per mailbox GUID: highest UID it ever had, highestmodseq and mails last seen.
type History = BTreeMap<Guid, (u32, u64, Mbox)>;

/// What a sequence went through.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ops: usize,
    succeeded: usize,
    refused: usize,
    failed_under_fault: usize,
    /// Failed under a fault, and the state shows it took effect (wholly or, for a move,
    /// its copy).
    landed_anyway: usize,
    /// Succeeded although a fault was armed and a write was lost or its reply was.
    ok_under_fault: usize,
}

fn run_sequence(ops: Vec<(Op, Option<(u64, FaultMode)>)>) -> Result<Tally, TestCaseError> {
    let mut tally = Tally::default();
    let memory: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let faulty = FaultyStore::new(memory.clone());
    let pool: Arc<dyn ObjectStore> = Arc::new(faulty.clone());
    // The faults here last until healed: a commit that lost its reply asks once, briefly.
    let resolve_window = std::time::Duration::from_millis(30);
    let config = Config { chunk_size: 64, wal_apply_threshold: 4, shard_bits: 3, resolve_window, ..Config::default() };
    let procs = [MailStore::new(pool.clone(), config.clone()), MailStore::new(pool, config.clone())];
    procs[0].user(USER).unwrap().create_mailbox("INBOX").unwrap();
    let mut model = observe(&memory, &config).0;
    let mut history = History::new();

    for (n, (op, fault)) in ops.into_iter().enumerate() {
        let p = match op {
            Op::Append { p, .. } | Op::Store { p, .. } | Op::Expunge { p, .. } | Op::Copy { p, .. } => p,
            Op::Create { p, .. } | Op::Rename { p, .. } | Op::Delete { p, .. } | Op::Sync { p } => p,
        };
        let body = body_of(n, if let Op::Append { len, .. } = op { len } else { 0 });
        let expected = apply(&model, &op, &body);
        if let Some((after, mode)) = fault {
            faulty.fail_after(after, mode);
        }
        let result = run(&procs[p], &op, &body);
        faulty.heal();
        let (seen, ids) = observe(&memory, &config);
        let ctx = format!("step {n}: {op:?} with fault {fault:?} -> {result:?}");
        tally.ops += 1;
        match (&result, fault) {
            (Ok(_), None) => tally.succeeded += 1,
            (Ok(_), Some(_)) => tally.ok_under_fault += 1,
            (Err(_), None) => tally.refused += 1,
            (Err(_), Some(_)) => {
                tally.failed_under_fault += 1;
                tally.landed_anyway += usize::from(seen != model);
            }
        }
        match (&result, &expected) {
            (Ok(new_uids), Some(after)) => {
                prop_assert_eq!(&seen, after, "{}", ctx);
                // New UIDs are the ones the model handed out.
                let want: Vec<u32> = match op {
                    Op::Append { mb, .. } => vec![model[NAMES[mb]].uidnext],
                    Op::Copy { to, .. } => (model[NAMES[to]].uidnext..after[NAMES[to]].uidnext).collect(),
                    _ => Vec::new(),
                };
                prop_assert_eq!(new_uids, &want, "{}", ctx);
            }
            (Ok(_), None) => prop_assert!(false, "an invalid operation succeeded: {}", ctx),
            (Err(e), _) if fault.is_none() => {
                prop_assert!(expected.is_none(), "failed without a fault: {}", ctx);
                prop_assert_eq!(&seen, &model, "a refused operation changed the state: {}", ctx);
                let _ = e;
            }
            (Err(e), _) => {
                let mut allowed = vec![model.clone()];
                if let Some(after) = expected.clone().filter(|_| may_have_landed(&op, e)) {
                    allowed.push(after);
                }
                if let Op::Copy { mv: true, p, from, to, sel } = op {
                    allowed.extend(apply(&model, &Op::Copy { p, from, to, sel, mv: false }, &body));
                }
                prop_assert!(allowed.contains(&seen), "state after a failure is none of the allowed ones: {}", ctx);
                // One write decides (a commit, or a mailbox-list change): a lost reply is
                // resolved, so what landed is never reported as failed.
                let single_commit = matches!(op, Op::Append { .. } | Op::Store { .. } | Op::Expunge { .. })
                    || matches!(op, Op::Copy { mv: false, .. } | Op::Create { .. } | Op::Rename { .. });
                if fault.is_some_and(|(_, m)| m == FaultMode::AppliedButUnavailable) && single_commit {
                    prop_assert!(Some(&seen) != expected.as_ref() || seen == model, "ack lost: {}", ctx);
                }
            }
        }
        if let (Op::Sync { p }, Ok(_)) = (&op, &result) {
            // A process that synced sees what a fresh one sees, through its caches.
            let (synced, _) = view_of(&procs[*p]);
            prop_assert_eq!(&synced, &seen, "process {} after its sync: {}", p, ctx);
        }
        check_history(&mut history, &seen, &ids, &ctx)?;
        model = seen;
    }
    Ok(tally)
}

/// UIDs never reused, modseqs never going back and growing with every change (per GUID,
/// so that a renamed mailbox keeps its history and a re-created name starts a new one).
fn check_history(
    history: &mut History,
    seen: &State,
    ids: &BTreeMap<String, (Guid, u64)>,
    ctx: &str,
) -> Result<(), TestCaseError> {
    for (name, mbox) in seen {
        let (guid, modseq) = ids[name];
        prop_assert!(mbox.mails.keys().all(|u| *u < mbox.uidnext), "a UID at or above uidnext: {}", ctx);
        if let Some((max_uid, last_modseq, last)) = history.get(&guid) {
            for uid in mbox.mails.keys().filter(|u| !last.mails.contains_key(u)) {
                prop_assert!(uid > max_uid, "UID {} of {} reused (max seen {}): {}", uid, name, max_uid, ctx);
            }
            prop_assert!(modseq >= *last_modseq, "highestmodseq of {} went back: {}", name, ctx);
            if last.mails != mbox.mails {
                prop_assert!(modseq > *last_modseq, "{} changed with the same highestmodseq: {}", name, ctx);
            }
        }
        let max_uid = history.get(&guid).map_or(0, |h| h.0);
        let top = mbox.mails.keys().last().copied().unwrap_or(0).max(max_uid);
        history.insert(guid, (top, modseq, mbox.clone()));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mail_operations_match_the_model_under_faults(
        ops in prop::collection::vec((op_strategy(), fault_strategy()), 1..40)
    ) {
        run_sequence(ops)?;
    }
}

/// The model test is not vacuous: over a fixed number of sequences, faults made operations
/// fail, some of those failures took effect anyway (the ambiguous outcomes the model has to
/// accept), and operations were also refused and succeeded.
#[test]
fn model_sequences_exercise_faults_and_ambiguous_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[13; 32]);
    let mut runner = TestRunner::new_with_rng(RunnerConfig::default(), rng);
    let strategy = prop::collection::vec((op_strategy(), fault_strategy()), 20..40);
    let mut total = Tally::default();
    for _ in 0..24 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let t = run_sequence(ops).unwrap();
        total.ops += t.ops;
        total.succeeded += t.succeeded;
        total.refused += t.refused;
        total.failed_under_fault += t.failed_under_fault;
        total.landed_anyway += t.landed_anyway;
        total.ok_under_fault += t.ok_under_fault;
    }
    eprintln!("model: {total:?}");
    assert!(total.succeeded > 0 && total.refused > 0, "{total:?}");
    assert!(total.failed_under_fault > 0 && total.ok_under_fault > 0, "{total:?}");
    assert!(total.landed_anyway > 0, "no failure under a fault took effect: {total:?}");
}
