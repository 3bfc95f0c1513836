//! The native async append and fetch with streaming bodies (`rados_mail::asynchronous`),
//! on the in-memory backend and on the cluster (`CEPH_CONF`; without a reachable cluster
//! the cluster cases fail, they never pass by skipping).
//!
//! Each case is a plain `async fn(&MailStore, &str)`; `async_cases!` makes one test per
//! case and backend.

mod common;

use std::collections::BTreeSet;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::StreamExt;
use rados_mail::asynchronous::{AsyncMailStore, AsyncMailbox, BodyStream};
use rados_mail::check::check_user;
use rados_mail::objstore::{
    self, BoxFuture, CountingStore, FaultMode, FaultyStore, ObjectStore, OpCounts, ReadOp, ReadResult, WriteOp,
};
use rados_mail::{AppendOptions, Config, Error, Flags, Guid, MailRecord, MailStore, Mailbox};
use tokio::io::{AsyncRead, ReadBuf};

/// Small chunks, so that a few hundred KiB span several objects and several reads.
fn small_chunks(config: &Config) -> Config {
    let mut c =
        Config { chunk_size: 64 << 10, read_chunk: 16 << 10, write_in_flight: 2, read_in_flight: 3, ..config.clone() };
    c.cache.max_item_bytes = 8 << 10;
    c
}

/// `len` bytes of a mail: a header, then a body of varied bytes (crc32 sees any change).
fn mail(len: usize, seed: u8) -> Vec<u8> {
    let mut m = format!("Subject: async {seed}\r\n\r\n").into_bytes();
    let mut x = u32::from(seed) + 1;
    while m.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        m.push(b' ' + (x >> 16) as u8 % 90);
        if x.is_multiple_of(61) {
            m.extend_from_slice(b"\r\n");
        }
    }
    m.truncate(len);
    m
}

fn mailbox_in(store: &MailStore, user: &str, name: &str) -> Mailbox {
    let u = store.user(user).unwrap();
    u.create_mailbox(name).unwrap();
    u.open_mailbox(name).unwrap()
}

async fn async_mailbox(store: &MailStore, user: &str, name: &str) -> AsyncMailbox {
    let u = AsyncMailStore::new(store.clone()).user(user).await.unwrap();
    u.create_mailbox(name).await.unwrap();
    u.open_mailbox(name).await.unwrap()
}

fn sync_body(m: &Mailbox, uid: u32) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    m.open_body(uid).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Reads an `AsyncRead` to its end (or its error).
async fn read_to_end(mut r: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 5000];
    loop {
        let n = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut buf);
            Pin::new(&mut r).poll_read(cx, &mut rb).map_ok(|()| rb.filled().len())
        })
        .await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

async fn collect(mut s: BodyStream) -> rados_mail::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(piece) = s.next().await {
        out.extend(piece?);
    }
    Ok(out)
}

/// A record without the fields that differ between two stores given the same operations
/// (GUIDs, instances, the save time).
fn comparable(mut r: MailRecord) -> MailRecord {
    r.mail_guid.clear();
    r.instance = 0;
    r.saved = 0;
    r
}

fn body_object(rec: &MailRecord) -> String {
    format!("mail.{}", Guid::from_slice(&rec.mail_guid).unwrap())
}

/// A big body (5 chunk objects, 19 reads) round trip: appended from an `AsyncRead` and
/// from a `Stream` of odd-sized pieces, fetched as a `Stream` and as an `AsyncRead`, and
/// the same bytes through the blocking API; its record is the blocking path's.
pub async fn async_stream_big_body_round_trip(store: &MailStore, user: &str) {
    let store = MailStore::new(store.pool().clone(), small_chunks(store.config()));
    let m = async_mailbox(&store, user, "INBOX").await;
    let big = mail(300_000, 1);
    let a = m.append_reader(&big[..], AppendOptions::default()).await.unwrap();
    let pieces: Vec<std::io::Result<Vec<u8>>> = big.chunks(7001).map(|c| Ok(c.to_vec())).collect();
    let b = m.append_stream(futures::stream::iter(pieces), AppendOptions::default()).await.unwrap();
    assert_eq!((a, b), (1, 2));
    for uid in [a, b] {
        assert_eq!(collect(m.body_stream(uid).await.unwrap()).await.unwrap(), big);
        assert_eq!(read_to_end(m.body_stream(uid).await.unwrap()).await.unwrap(), big);
        assert_eq!(m.body(uid).await.unwrap(), big);
        assert_eq!(sync_body(m.blocking(), uid), big);
        let rec = m.read_record(uid).await.unwrap().unwrap();
        assert_eq!((rec.psize, rec.chunk_size, rec.crc32), (big.len() as u64, 64 << 10, crc32fast::hash(&big)));
        assert_eq!(rec.hdr_len, "Subject: async 1\r\n\r\n".len() as u64);
    }
    // Another process sees them the same way.
    let other = MailStore::new(store.pool().clone(), store.config().clone());
    let there = other.user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, 2]);
    assert_eq!(sync_body(&there, 2), big);
    assert!(check_user(&store.user(user).unwrap()).unwrap().is_clean());
}

/// Byte ranges across chunk-object and read boundaries, at the end and past it, as the
/// blocking API answers them; the header; a small body served by the cache.
pub async fn async_stream_ranges(store: &MailStore, user: &str) {
    let store = MailStore::new(store.pool().clone(), small_chunks(store.config()));
    let m = async_mailbox(&store, user, "INBOX").await;
    let big = mail(200_000, 2);
    let uid = m.append(big.clone(), AppendOptions::default()).await.unwrap();
    let chunk = 64u64 << 10;
    let cases = [
        (0, 10),
        (chunk - 5, 10),
        (chunk - 1, 2 * chunk + 2),
        (16 << 10, 16 << 10),
        (150_000, 49_999),
        (150_000, 100_000),
        (199_999, 5),
        (200_000, 5),
        (250_000, 1),
        (0, u64::MAX),
    ];
    for (offset, len) in cases {
        let want = m.blocking().read_range(uid, offset, len).unwrap();
        let end = offset.saturating_add(len).min(big.len() as u64) as usize;
        assert_eq!(want, big[(offset as usize).min(end)..end], "blocking read_range({offset}, {len})");
        assert_eq!(m.read_range(uid, offset, len).await.unwrap(), want, "read_range({offset}, {len})");
        let s = m.range_stream(uid, offset, len).await.unwrap();
        assert_eq!(s.remaining(), want.len() as u64);
        assert_eq!(read_to_end(s).await.unwrap(), want, "range_stream({offset}, {len})");
    }
    assert_eq!(m.header(uid).await.unwrap(), b"Subject: async 2\r\n\r\n");
    // A small body: the blocking fetch caches it, the async one is served from memory.
    let small = mail(3000, 3);
    let s = m.append(small.clone(), AppendOptions::default()).await.unwrap();
    assert_eq!(sync_body(m.blocking(), s), small);
    assert_eq!(m.body(s).await.unwrap(), small);
    assert_eq!(m.read_range(s, 100, 50).await.unwrap(), small[100..150]);
    assert!(matches!(m.body_stream(99).await, Err(Error::NotFound(_))));
}

/// The async append leaves the pool as the blocking one does: the same ops (counted),
/// records (but for GUIDs and save times), head keys, object kinds and body xattrs; and
/// `check` finds nothing in either.
pub async fn async_stream_same_state_as_sync(store: &MailStore, user: &str) {
    let counting = Arc::new(CountingStore::new(store.pool().clone()));
    let store = MailStore::new(counting.clone(), small_chunks(store.config()));
    let (su, au) = (format!("{user}-sync"), format!("{user}-async"));
    let sync_m = mailbox_in(&store, &su, "INBOX");
    let async_m = async_mailbox(&store, &au, "INBOX").await;
    let options = |i: u32| AppendOptions {
        flags: if i.is_multiple_of(2) { Flags::SEEN } else { Flags::default() },
        keywords: if i == 1 { vec!["$Label1".into()] } else { vec![] },
        received: Some(1_700_000_000 + i64::from(i)),
        uid: (i == 2).then_some(10),
        ..Default::default()
    };
    let bodies = [mail(150_000, 4), mail(500, 5), mail(70_000, 6), mail(0, 7)];
    let (mut sync_ops, mut async_ops) = (Vec::new(), Vec::new());
    for (i, b) in bodies.iter().enumerate() {
        let before = counting.counts();
        let s = sync_m.append(&b[..], options(i as u32)).unwrap();
        sync_ops.push(counting.counts() - before);
        let before = counting.counts();
        let a = async_m.append(b.clone(), options(i as u32)).await.unwrap();
        async_ops.push(counting.counts() - before);
        assert_eq!(s, a);
    }
    assert_eq!(async_ops, sync_ops, "the async append makes the blocking one's operations");
    // A 150,000-byte mail in 64 KiB chunks: 3 objects and their description, the commit
    // and its notify.
    assert_eq!(sync_ops[0], OpCounts { reads: 0, writes: 5, lists: 0, notifies: 1, watches: 0 });
    // Fetching the 150,000-byte mail: the same reads both ways, one per 16 KiB piece
    // within each 64 KiB object (4 + 4 + 2), once its record's block is cached.
    async_m.read_record(1).await.unwrap();
    sync_m.record(1).unwrap();
    let before = counting.counts();
    assert_eq!(async_m.body(1).await.unwrap(), bodies[0]);
    let async_fetch = counting.counts() - before;
    let before = counting.counts();
    assert_eq!(sync_body(&sync_m, 1), bodies[0]);
    assert_eq!(counting.counts() - before, async_fetch);
    assert_eq!(async_fetch, OpCounts { reads: 10, ..Default::default() });
    let (sr, ar) = (sync_m.records(1..=u32::MAX).unwrap(), async_m.blocking().records(1..=u32::MAX).unwrap());
    assert_eq!(sr.len(), 4);
    assert_eq!(sr.into_iter().map(comparable).collect::<Vec<_>>(), ar.into_iter().map(comparable).collect::<Vec<_>>());
    let (ss, as_) = (sync_m.status().unwrap(), async_m.status().await.unwrap());
    assert_eq!(
        (ss.messages, ss.uidnext, ss.highestmodseq, ss.psize_total, ss.vsize_total),
        (as_.messages, as_.uidnext, as_.highestmodseq, as_.psize_total, as_.vsize_total)
    );
    // The objects, by kind (name without GUIDs), with their xattr names and omap keys.
    let shape = |user: &str| {
        let ns = store.user(user).unwrap().store().clone();
        let mut out = BTreeSet::new();
        for oid in ns.list_objects().unwrap() {
            let oid = oid.unwrap();
            let kind: Vec<String> =
                oid.split('.').map(|p| if p.len() == 32 { "<guid>".into() } else { p.to_string() }).collect();
            let xattrs: Vec<String> = ns
                .xattrs(&oid)
                .unwrap()
                .into_keys()
                .map(|k| if k.contains("ref") { "ref".into() } else { k })
                .collect();
            let omap: Vec<String> = ns
                .omap_all(&oid, "")
                .unwrap()
                .into_iter()
                .map(|(k, _)| match k.split_once('/') {
                    _ if k.starts_with("ref") => "ref".into(),
                    Some((kind, id)) if id.len() == 32 => format!("{kind}/<guid>"),
                    _ => k,
                })
                .collect();
            out.insert((kind.join("."), xattrs, omap));
        }
        out
    };
    assert_eq!(shape(&su), shape(&au));
    for u in [&su, &au] {
        assert!(check_user(&store.user(u).unwrap()).unwrap().is_clean());
    }
}

/// A slow consumer holds the read-ahead window, never more: while it takes nothing, no
/// further read is made (counted), and every piece is read exactly once.
pub async fn async_stream_backpressure_of_a_slow_reader(store: &MailStore, user: &str) {
    let counting = Arc::new(CountingStore::new(store.pool().clone()));
    let config = small_chunks(store.config());
    let store = MailStore::new(counting.clone(), config.clone());
    let m = async_mailbox(&store, user, "INBOX").await;
    let big = mail(300_000, 8);
    let uid = m.append(big.clone(), AppendOptions::default()).await.unwrap();
    m.read_record(uid).await.unwrap();
    let pieces = big.len().div_ceil(config.read_chunk) as u64;
    assert!(pieces > 3 * config.read_in_flight as u64);
    let before = counting.counts();
    let mut s = m.body_stream(uid).await.unwrap();
    assert_eq!(counting.counts() - before, OpCounts::default(), "the record was cached; nothing read yet");
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first, big[..config.read_chunk]);
    // The window is full again: 3 reads ahead of the consumer, 4 made in all.
    assert_eq!(s.in_flight(), config.read_in_flight);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!((counting.counts() - before).reads, 1 + config.read_in_flight as u64);
    let mut got = first;
    while let Some(piece) = s.next().await {
        assert!(s.in_flight() <= config.read_in_flight);
        got.extend(piece.unwrap());
    }
    assert_eq!(got, big);
    assert_eq!((counting.counts() - before).reads, pieces, "every piece read once");
}

/// A damaged body is an error at its end, never bytes handed out as good: a changed byte
/// (crc32 mismatch) and a chunk object cut short; the crc is not claimed for ranges.
pub async fn async_stream_crc_mismatch_detected(store: &MailStore, user: &str) {
    let store = MailStore::new(store.pool().clone(), small_chunks(store.config()));
    let m = async_mailbox(&store, user, "INBOX").await;
    let big = mail(200_000, 9);
    let (a, b) = (
        m.append(big.clone(), AppendOptions::default()).await.unwrap(),
        m.append(big.clone(), AppendOptions::default()).await.unwrap(),
    );
    let data = store.data_pool().with_namespace(store.user(user).unwrap().store().namespace()).unwrap();
    let rec_a = m.read_record(a).await.unwrap().unwrap();
    let chunk1 = format!("{}.0001", body_object(&rec_a));
    data.write_op(&chunk1, &WriteOp::new().write(10, b"#".to_vec())).unwrap();
    let mut s = m.body_stream(a).await.unwrap();
    let mut good = 0;
    let err = loop {
        match s.next().await.expect("the stream ends with the error") {
            Ok(piece) => good += piece.len(),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    assert!(good < big.len(), "the last piece is held back");
    assert!(s.next().await.is_none(), "nothing after the error");
    let io = read_to_end(m.body_stream(a).await.unwrap()).await.unwrap_err();
    assert!(io.to_string().contains("crc32"), "{io}");
    // A range is read as it is (its bytes are not the whole body's to check).
    assert_eq!(m.read_range(a, 0, 100).await.unwrap(), big[..100]);
    // A chunk object cut short: the body is shorter than its record.
    let rec_b = m.read_record(b).await.unwrap().unwrap();
    let last = format!("{}.0003", body_object(&rec_b));
    let (full, _) = data.read_full(&last).unwrap();
    data.write_full(&last, &full[..full.len() - 1]).unwrap();
    let err = m.body(b).await.unwrap_err();
    assert!(matches!(&err, Error::Corrupted { detail, .. } if detail.contains("shorter")), "{err:?}");
    let err = m.read_range(b, 190_000, 10_000).await.unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
}

/// Every write of an async append failing in turn (refused, timed out, applied with its
/// reply lost): an append that reports success is there for every reader, one that fails
/// is in no reader's view, and `check` finds no damage (leftovers only after a timeout).
pub async fn async_stream_fault_sweep(store: &MailStore, user: &str) {
    let modes = [FaultMode::Io, FaultMode::DownFor(1), FaultMode::AppliedButUnavailable];
    let big = mail(150_000, 10);
    for (mi, mode) in modes.into_iter().enumerate() {
        for n in 0..10u64 {
            let faulty = Arc::new(FaultyStore::new(store.pool().clone()));
            let config = Config { max_attempts: 3, ..small_chunks(store.config()) };
            let here = MailStore::new(faulty.clone(), config);
            let name = format!("{user}-{mi}-{n}");
            let m = async_mailbox(&here, &name, "INBOX").await;
            faulty.fail_after(n, mode);
            let result = m.append(big.clone(), AppendOptions::default()).await;
            faulty.heal_all();
            let other = MailStore::new(store.pool().clone(), here.config().clone());
            let there = other.user(&name).unwrap().open_mailbox("INBOX").unwrap();
            match &result {
                Ok(uid) => {
                    assert_eq!(there.uids().unwrap(), vec![*uid], "{mode:?} after {n}");
                    assert_eq!(sync_body(&there, *uid), big);
                    assert_eq!(m.body(*uid).await.unwrap(), big);
                }
                Err(e) => {
                    assert!(there.uids().unwrap().is_empty(), "{mode:?} after {n}: failed ({e}) yet visible");
                    m.sync().await.unwrap();
                    assert!(m.blocking().uids().unwrap().is_empty());
                }
            }
            let report = check_user(&other.user(&name).unwrap()).unwrap();
            assert!(!report.has_damage(), "{mode:?} after {n}: {report:?}");
            // Leftovers of the one body, at most (its removal may fail as well).
            assert!(report.orphan_bodies.len() + report.orphan_chunks.len() <= 3, "{report:?}");
        }
    }
}

/// A store whose async writes wait for a gate (a slow cluster): write `k` (counted from
/// 0) goes to the inner store only once `open > k`; or, `eager`, goes to the inner store
/// at once (as librados sends an aio write when it is made) and only its reply waits for
/// the gate. Reads and blocking writes pass.
#[derive(Debug)]
struct Gate {
    inner: Arc<dyn ObjectStore>,
    issued: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
    eager: bool,
}

impl Gate {
    fn new(inner: Arc<dyn ObjectStore>) -> Gate {
        Gate { inner, issued: Default::default(), open: Arc::new(AtomicU64::new(u64::MAX)), eager: false }
    }
}

impl ObjectStore for Gate {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn with_namespace(&self, ns: &str) -> objstore::Result<Arc<dyn ObjectStore>> {
        let inner = self.inner.with_namespace(ns)?;
        Ok(Arc::new(Gate { inner, issued: self.issued.clone(), open: self.open.clone(), eager: self.eager }))
    }
    fn write_op(&self, oid: &str, op: &WriteOp) -> objstore::Result<u64> {
        self.inner.write_op(oid, op)
    }
    fn read_op(&self, oid: &str, op: &ReadOp) -> objstore::Result<ReadResult> {
        self.inner.read_op(oid, op)
    }
    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, objstore::Result<u64>> {
        let k = self.issued.fetch_add(1, Ordering::SeqCst);
        let (inner, open, oid) = (self.inner.clone(), self.open.clone(), oid.to_string());
        let sent = self.eager.then(|| self.inner.write_op(&oid, &op));
        Box::pin(async move {
            poll_fn(|cx: &mut Context<'_>| {
                if open.load(Ordering::SeqCst) > k {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            match sent {
                Some(reply) => reply,
                None => inner.write_op_async(&oid, op).await,
            }
        })
    }
    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, objstore::Result<ReadResult>> {
        self.inner.read_op_async(oid, op)
    }
    fn list_objects(&self) -> objstore::Result<objstore::ObjectIter<'_>> {
        self.inner.list_objects()
    }
    fn list_namespaces(&self) -> objstore::Result<Vec<String>> {
        self.inner.list_namespaces()
    }
    fn watch(&self, oid: &str, cb: objstore::WatchCallback) -> objstore::Result<Box<dyn objstore::WatchHandle>> {
        self.inner.watch(oid, cb)
    }
    fn notify(&self, oid: &str, payload: &[u8], done: Option<objstore::NotifyDone>) {
        self.inner.notify(oid, payload, done)
    }
}

/// An `AsyncRead` over bytes that counts what it handed out.
struct Counted<'a>(&'a [u8], Arc<AtomicUsize>);

impl AsyncRead for Counted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.0.len()).min(10_000);
        buf.put_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        self.1.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// Polls `f` until it stops making progress (it is waiting for the gate) or completes.
/// Sleeps between polls (on a runtime worker: this test's only task).
fn poll_until_stuck<F: std::future::Future + Unpin>(f: &mut F, issued: &AtomicU64) -> Option<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut quiet = 0;
    let mut last = issued.load(Ordering::SeqCst);
    // Quiet for 30 polls 10 ms apart: a cluster's answers have had time to come.
    while quiet < 30 {
        if quiet > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Poll::Ready(out) = Pin::new(&mut *f).poll(&mut cx) {
            return Some(out);
        }
        let now = issued.load(Ordering::SeqCst);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    None
}

/// Backpressure on the append: while the cluster has not acknowledged the chunks in
/// flight, the source is not read further (at most `write_in_flight + 1` chunks and one
/// read buffer are taken from it).
pub async fn async_stream_append_backpressure(store: &MailStore, user: &str) {
    let gate = Arc::new(Gate::new(store.pool().clone()));
    let config = small_chunks(store.config());
    let here = MailStore::new(gate.clone(), config.clone());
    let m = async_mailbox(&here, user, "INBOX").await;
    let big = mail(20 * config.chunk_size, 11);
    let taken = Arc::new(AtomicUsize::new(0));
    let start = gate.issued.load(Ordering::SeqCst);
    // The first object and two chunks may go; the cluster then stops answering.
    gate.open.store(start + 1, Ordering::SeqCst);
    let mut append = Box::pin(m.append_reader(Counted(&big, taken.clone()), AppendOptions::default()));
    let stuck = poll_until_stuck(&mut append, &gate.issued).is_none();
    let (issued, held) = (gate.issued.load(Ordering::SeqCst) - start, taken.load(Ordering::SeqCst));
    // The cluster answers again (before any assertion: a dropped append waits for its
    // writes in flight).
    gate.open.store(u64::MAX, Ordering::SeqCst);
    assert!(stuck);
    assert_eq!(issued, 1 + config.write_in_flight as u64, "the first object and a full window");
    // Written or in flight: 3 chunks; buffered: 1 chunk and what is left of one read.
    assert!(held <= (config.write_in_flight + 2) * config.chunk_size + 64 * 1024, "{held} bytes taken");
    let uid = append.await.unwrap();
    assert_eq!(m.body(uid).await.unwrap(), big);
}

/// Dropping an append future at every point it can wait (each write in turn not
/// acknowledged yet, the commit included) leaves no visible mail, and nothing `check`
/// reports but, at most, a cleanable orphan.
pub async fn async_stream_cancellation_leaves_nothing(store: &MailStore, user: &str) {
    cancel_at_every_write(store, user, false).await;
}

/// Regression: an append future dropped while its commit was in flight removed the
/// mail's bodies (the transaction's drop takes back what it wrote), although librados had
/// sent the commit, which then landed: a record without its body. The gate here sends
/// each write at once, as librados does, and holds back only the reply; a drop after the
/// commit was sent now leaves the bodies, and the mail is either there, whole, or not.
pub async fn async_stream_cancellation_after_the_commit_was_sent(store: &MailStore, user: &str) {
    cancel_at_every_write(store, user, true).await;
}

async fn cancel_at_every_write(store: &MailStore, user: &str, eager: bool) {
    let config = small_chunks(store.config());
    let big = mail(3 * config.chunk_size + 100, 12);
    for k in 0..8u64 {
        let gate = Arc::new(Gate { eager, ..Gate::new(store.pool().clone()) });
        let here = MailStore::new(gate.clone(), config.clone());
        let name = format!("{user}-{k}");
        let m = async_mailbox(&here, &name, "INBOX").await;
        let start = gate.issued.load(Ordering::SeqCst);
        gate.open.store(start + k, Ordering::SeqCst);
        let mut append = Box::pin(m.append(big.clone(), AppendOptions::default()));
        let done = poll_until_stuck(&mut append, &gate.issued);
        // The first object, 3 chunks, the description, the commit: 6 writes.
        assert_eq!(done.is_some(), k >= 6, "after {k} writes");
        // The cluster answers what was sent (as it would); the caller is gone.
        gate.open.store(u64::MAX, Ordering::SeqCst);
        drop(append);
        let there = MailStore::new(store.pool().clone(), config.clone()).user(&name).unwrap();
        let uids = there.open_mailbox("INBOX").unwrap().uids().unwrap();
        let report = check_user(&there).unwrap();
        match done {
            Some(r) => {
                assert_eq!(uids, vec![r.unwrap()], "completed before the drop ({k} writes)");
                assert!(report.is_clean(), "{report:?}");
            }
            // The commit was sent before the drop: it landed.
            None if eager && k == 5 => {
                assert_eq!(uids, vec![1], "the commit was sent");
                assert_eq!(sync_body(&there.open_mailbox("INBOX").unwrap(), 1), big);
                assert!(!report.has_damage(), "{report:?}");
            }
            None => {
                assert!(uids.is_empty(), "dropped after {k} writes, yet visible");
                assert!(!report.has_damage(), "{report:?}");
                assert!(report.stale_references.is_empty() && report.unlisted_mailbox_objects.is_empty());
            }
        }
    }
}

/// Tasks of two processes append to one mailbox at once: commits that lose the race are
/// finished by the blocking path; every mail gets its own UID, both processes agree, and
/// `check` finds nothing.
pub async fn async_stream_concurrent_appends_agree(store: &MailStore, user: &str) {
    let config = small_chunks(store.config());
    let procs =
        [MailStore::new(store.pool().clone(), config.clone()), MailStore::new(store.pool().clone(), config.clone())];
    let first = async_mailbox(&procs[0], user, "INBOX").await;
    let second = AsyncMailStore::new(procs[1].clone()).user(user).await.unwrap().open_mailbox("INBOX").await.unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|t| {
            let m = if t.is_multiple_of(2) { first.clone() } else { second.clone() };
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..5u8 {
                    let body = mail(if i == 0 { 70_000 } else { 300 }, t * 10 + i);
                    got.push((m.append(body.clone(), AppendOptions::default()).await.unwrap(), body));
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let uids: BTreeSet<u32> = all.iter().map(|(u, _)| *u).collect();
    assert_eq!(uids, (1..=40).collect());
    // Each process commits on a view the other one made stale: races were lost (and
    // counted), and none gave up.
    let lost: u64 = procs.iter().map(|p| p.stats().retries.guard_failures).sum();
    assert!(lost > 0);
    assert_eq!(procs.iter().map(|p| p.stats().retries.exhausted).sum::<u64>(), 0);
    for m in [&first, &second] {
        m.sync().await.unwrap();
        assert_eq!(m.blocking().uids().unwrap(), (1..=40).collect::<Vec<_>>());
        for (uid, body) in &all {
            assert_eq!(&m.body(*uid).await.unwrap(), body);
        }
    }
    assert!(check_user(&procs[0].user(user).unwrap()).unwrap().is_clean());
}

/// One test per case and backend.
macro_rules! async_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, user) = ($make)(stringify!($case));
                super::$case(&store, &user).await;
            }
        )*
    };
}

mod memory {
    fn store(_case: &str) -> (rados_mail::MailStore, String) {
        (rados_mail::MailStore::in_memory(rados_mail::Config::default()), "alice".to_string())
    }

    async_cases!(store;
        async_stream_big_body_round_trip, async_stream_ranges, async_stream_same_state_as_sync,
        async_stream_backpressure_of_a_slow_reader, async_stream_crc_mismatch_detected,
        async_stream_fault_sweep, async_stream_append_backpressure,
        async_stream_cancellation_leaves_nothing, async_stream_cancellation_after_the_commit_was_sent,
        async_stream_concurrent_appends_agree,
    );
}

mod cluster {
    fn store(case: &str) -> (rados_mail::MailStore, String) {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        (super::common::cluster_store(), format!("as-{case}-{}-{nanos}", std::process::id()))
    }

    async_cases!(store;
        async_stream_big_body_round_trip, async_stream_ranges, async_stream_same_state_as_sync,
        async_stream_backpressure_of_a_slow_reader, async_stream_crc_mismatch_detected,
        async_stream_fault_sweep, async_stream_append_backpressure,
        async_stream_cancellation_leaves_nothing, async_stream_cancellation_after_the_commit_was_sent,
        async_stream_concurrent_appends_agree,
    );
}
