//! A mailbox of 1,000,000 mails on the in-memory backend (issue 15, item 3): what opening it
//! costs in RADOS reads and in memory, when the mail server's local index is current (the
//! calls Dovecot's glue makes on SELECT: open, changes since its modseq, take the recent
//! mails) and when it is cold (changes since 0: every record), and what the first FETCH,
//! STORE and "changes since" a recent modseq cost after such an open.
//!
//! The story: a view used to read every record of every shard into memory on the first
//! operation that needed one record (a FETCH of one mail's flags, a STORE, an expunge),
//! about 0.5 GB for 1M mails per view, and a process keeps up to 256 views. Now records are
//! read from the shards by the block they are in, through a bounded cache.
//!
//! The mailbox is built by writing its shard and head objects directly, with the format's
//! own types (appending 1M mails through `MemoryStore`, which copies an object on each
//! write, would take minutes); a few changes then go through the library, so the head has
//! a WAL tail over the shards as in real use. Run it alone (it is its own test binary, with
//! one test): the resident memory measured is the process's.
//!
//! Memory is measured as the peak resident set (`VmHWM`, reset through
//! `/proc/self/clear_refs`) above the resident set right before each phase.

use std::sync::Arc;
use std::time::Instant;

use omap_index::names::{self, shard_of};
use omap_index::records::{Change, MailboxHeader, WalEntry, flags};
use omap_index::{frame, keys};
use rados_mail::objstore::{MemoryStore, ObjectStore, WriteOp};
use rados_mail::{Config, MailRecord, MailStore, StoreMode};

const MAILS: u32 = 1_000_000;
const USER: &str = "million";

/// `(VmRSS, VmHWM)` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A measurement of one phase: RADOS reads and peak memory above the start.
struct Phase {
    reads: u64,
    base_kib: u64,
    hwm_reset: bool,
}

impl Phase {
    fn start(store: &MailStore) -> Phase {
        // Resets VmHWM to the current RSS (Linux, clear_refs "5").
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Phase { reads: store.stats().rados.reads, base_kib: rss_kib().0, hwm_reset }
    }

    /// (reads, MiB above the start: the peak if it could be reset, else the current RSS).
    fn end(&self, store: &MailStore) -> (u64, u64) {
        let (rss, hwm) = rss_kib();
        let top = if self.hwm_reset { hwm } else { rss };
        (store.stats().rados.reads - self.reads, top.saturating_sub(self.base_kib) / 1024)
    }
}

fn record(uid: u32, modseq: u64) -> MailRecord {
    let mut guid = [0u8; 16];
    guid[..4].copy_from_slice(&uid.to_be_bytes());
    guid[4..8].copy_from_slice(&0x5eed_f00du32.to_be_bytes());
    MailRecord {
        uid,
        mail_guid: guid.to_vec(),
        instance: u64::from(uid) * 0x9e37_79b9,
        flags: if uid.is_multiple_of(3) { 0 } else { flags::SEEN },
        keywords: if uid.is_multiple_of(10) { vec!["$label1".into()] } else { Vec::new() },
        modseq,
        psize: 4000 + u64::from(uid % 5000),
        vsize: 4100 + u64::from(uid % 5000),
        hdr_len: 900,
        received: 1_700_000_000 + i64::from(uid),
        saved: 1_700_000_000 + i64::from(uid),
        crc32: uid.wrapping_mul(2_654_435_761),
        chunk_size: 4 << 20,
        given_guid: Vec::new(),
        plain_psize: None,
    }
}

/// Writes mailbox `INBOX` of `USER` with `MAILS` mails into `pool`: the shards and the head
/// directly (see below), then 5 new mails through the library. Returns the HIGHESTMODSEQ a current local index has.
fn build(pool: &Arc<dyn ObjectStore>) -> u64 {
    let store = MailStore::new(pool.clone(), Config::default());
    let user = store.user(USER).unwrap();
    user.create_mailbox("INBOX").unwrap();
    let guid = user.open_mailbox("INBOX").unwrap().info().guid;
    let ns = user.store().clone();
    let head = names::mailbox_head(&guid);
    let hdr_bytes = ns.omap_get(&head, &[keys::HDR]).unwrap().remove(keys::HDR).unwrap();
    let mut hdr: MailboxHeader = frame::decode(&hdr_bytes).unwrap();
    let bits = hdr.shard_bits;
    let mut shard: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut psize, mut vsize) = (0u64, 0u64);
    for uid in 1..=MAILS {
        let modseq = u64::from(uid) + 1;
        let rec = record(uid, modseq);
        psize += rec.psize;
        vsize += rec.vsize;
        shard.push((keys::record(uid), frame::encode(&rec)));
        shard.push((keys::modseq_index(modseq, uid), Vec::new()));
        if uid == MAILS || shard_of(uid + 1, bits) != shard_of(uid, bits) {
            shard.push((keys::APPLIED.to_string(), keys::hex64(modseq).into_bytes()));
            let oid = names::mailbox_shard(&guid, shard_of(uid, bits));
            ns.write_op(&oid, &WriteOp::new().omap_set(std::mem::take(&mut shard))).unwrap();
        }
    }
    // Mail `u` was appended at modseq `u + 1`, all applied and trimmed; then one change
    // set in the WAL, not applied yet: UIDs 7 and 500,000 flagged (written with the
    // format's types too: through the library it would read records before the change
    // under test, and leave their memory to the allocator).
    let applied = u64::from(MAILS) + 1;
    let last = applied + 1;
    let changes = [7u32, 500_000]
        .iter()
        .map(|&uid| {
            let mut rec = record(uid, last);
            rec.flags |= flags::FLAGGED;
            Change { uid, prev_modseq: u64::from(uid) + 1, record: Some(rec) }
        })
        .collect();
    hdr.uidnext = MAILS + 1;
    hdr.messages = MAILS;
    hdr.highestmodseq = last;
    hdr.psize_total = psize;
    hdr.vsize_total = vsize;
    hdr.keywords = vec!["$label1".into()];
    let op = WriteOp::new().omap_cmp(keys::HDR, rados_mail::objstore::CmpOp::Eq, hdr_bytes).omap_set([
        (keys::HDR.to_string(), frame::encode(&hdr)),
        (keys::TRIM.to_string(), keys::hex64(applied).into_bytes()),
        (keys::RECENT.to_string(), keys::hex32(MAILS + 1).into_bytes()),
        (keys::wal(last), frame::encode(&WalEntry { modseq: last, changes })),
    ]);
    ns.write_op(&head, &op).unwrap();
    // New mails through the library (they need no record), also in the WAL.
    let inbox = user.open_mailbox("INBOX").unwrap();
    let mails: Vec<(Box<dyn std::io::Read>, rados_mail::AppendOptions)> = (0..5)
        .map(|i| (Box::new(std::io::Cursor::new(format!("Subject: new {i}\n\nnew\n"))) as _, Default::default()))
        .collect();
    inbox.append_many(mails).unwrap();
    // The WAL covers it: the header values from one read of the head.
    let now = inbox.changes_since(last).unwrap();
    inbox.take_recent(now.uidnext).unwrap();
    now.highestmodseq
}

const NAME: &str = "million_mail_mailbox_opens_in_bounded_reads_and_memory";

/// Each phase runs in a process of its own (this test binary again, with `MILLION_PHASE`
/// set): memory one phase freed and the allocator kept would hide what the next one takes.
#[test]
fn million_mail_mailbox_opens_in_bounded_reads_and_memory() {
    match std::env::var("MILLION_PHASE").as_deref() {
        Ok("current") => return current_index(),
        Ok("cold") => return cold_index(),
        _ => {}
    }
    for phase in ["current", "cold"] {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("MILLION_PHASE", phase)
            .output()
            .expect("running the phase");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines().filter(|l| l.starts_with("million")) {
            println!("{line}");
        }
        assert!(out.status.success(), "phase {phase} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A mail server whose local index is current: SELECT, then FETCH, STORE, syncs.
fn current_index() {
    println!(); // after libtest's "test ... " without a line end
    let started = Instant::now();
    let pool: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let current = build(&pool);
    println!("million: built {MAILS} mails in {:.1} s (highestmodseq {current})", started.elapsed().as_secs_f64());

    // What Dovecot's SELECT does (rados-storage.c, rados-sync.c): open, identity, the
    // changes since the index's modseq (from the open's read of the head), take recent.
    let store = MailStore::new(pool.clone(), Config::default());
    let phase = Phase::start(&store);
    let user = store.user(USER).unwrap();
    let inbox = user.open_mailbox("INBOX").unwrap();
    let (_uidvalidity, _incarnation) = inbox.identity();
    let changes = inbox.changes_since(current).unwrap();
    assert!(changes.changed.is_empty() && changes.expunged.is_empty());
    assert_eq!((changes.highestmodseq, changes.uidnext), (current, MAILS + 6));
    let recent = inbox.take_recent(changes.uidnext).unwrap();
    assert!(recent.is_empty(), "the local index took them: {recent:?}");
    let (reads, mib) = phase.end(&store);
    println!("million open: reads {reads}, rss +{mib} MiB");
    assert_eq!(reads, 2, "the mailbox list entry and the head");
    assert!(mib < 100, "open of a current index: +{mib} MiB");

    // FETCH FLAGS of a few mails: one read per block of 1,024 UIDs touched.
    let phase = Phase::start(&store);
    for uid in [1, 7, 500_000, 999_999, MAILS + 3] {
        let rec = inbox.record(uid).unwrap().unwrap_or_else(|| panic!("UID {uid}"));
        assert_eq!(rec.uid, uid);
        let flagged = rec.flags & flags::FLAGGED != 0;
        assert_eq!(flagged, uid == 7 || uid == 500_000, "UID {uid}: the WAL is laid over the shard");
    }
    assert_eq!(inbox.record(12_345_678).unwrap(), None);
    let (reads, mib) = phase.end(&store);
    println!("million fetch of 5 records: reads {reads}, rss +{mib} MiB");
    assert_eq!(reads, 3, "blocks 0, 488 and 976");
    assert!(mib < 100, "fetch: +{mib} MiB");

    // STORE: the blocks of the mails touched (block 0 is cached).
    let phase = Phase::start(&store);
    let done = inbox.store(&[2, 600_000, 600_001], StoreMode::Add, rados_mail::Flags::ANSWERED, &[], None).unwrap();
    assert_eq!(done.changed, vec![2, 600_000, 600_001]);
    let (reads, mib) = phase.end(&store);
    println!("million store of 3 mails: reads {reads}, rss +{mib} MiB");
    assert_eq!(reads, 1, "block 585");
    assert!(mib < 100, "store: +{mib} MiB");

    // Changes since a modseq the WAL covers: one read of the head.
    let phase = Phase::start(&store);
    let since = inbox.changes_since(current).unwrap();
    assert_eq!(since.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), vec![2, 600_000, 600_001]);
    let (reads, mib) = phase.end(&store);
    println!("million changes since a modseq in the WAL: reads {reads}, rss +{mib} MiB");
    assert_eq!(reads, 1);

    // Changes since a modseq below the WAL's trim mark: the shards' modseq indexes (one
    // read per shard), then the blocks of the mails changed.
    let phase = Phase::start(&store);
    let older = u64::from(MAILS) - 9;
    let since = inbox.changes_since(older).unwrap();
    let mut want: Vec<u32> = vec![2, 7, 500_000, 600_000, 600_001];
    want.extend(MAILS - 9..=MAILS + 5);
    assert_eq!(since.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), want);
    assert!(since.expunged.is_empty());
    let (reads, mib) = phase.end(&store);
    println!("million changes since a modseq below the WAL: reads {reads}, rss +{mib} MiB");
    let shards = u64::from(shard_of(MAILS + 5, Config::default().shard_bits)) + 1;
    assert_eq!(reads, 1 + shards + 1, "the head, each shard, the tombstones of the one changed since");
    assert!(mib < 100, "changes since: +{mib} MiB");
    println!("million: phase of a current index {:.1} s", started.elapsed().as_secs_f64());
}

/// A mail server whose local index is empty: every record, once.
fn cold_index() {
    println!(); // after libtest's "test ... " without a line end
    let started = Instant::now();
    let pool: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    build(&pool);
    println!("million: built {MAILS} mails in {:.1} s", started.elapsed().as_secs_f64());
    let store = MailStore::new(pool.clone(), Config::default());
    let phase = Phase::start(&store);
    let inbox = store.user(USER).unwrap().open_mailbox("INBOX").unwrap();
    let all = inbox.changes_since(0).unwrap();
    assert_eq!(all.changed.len() as u32, MAILS + 5);
    assert!(all.changed.windows(2).all(|w| w[0].uid < w[1].uid));
    let (reads, mib) = phase.end(&store);
    println!("million cold open: reads {reads}, rss +{mib} MiB");
    let config = Config::default();
    let shards = u64::from(shard_of(MAILS + 5, config.shard_bits)) + 1;
    let blocks = u64::from((MAILS + 5) >> 10) + 1;
    assert_eq!(reads, 2 + shards + blocks, "list, head, each shard's tombstones, each block");
    // The answer itself holds every record; nothing else grows with the mailbox.
    assert!(mib < 400, "cold open: +{mib} MiB");
    println!("million: phase of a cold index {:.1} s", started.elapsed().as_secs_f64());
}
