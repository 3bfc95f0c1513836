//! Reading many bodies and seeking in one, run against every backend (see `memory.rs` and
//! `rados.rs`).
//!
//! The story (issue 10): a FETCH of a UID range read bodies one RADOS read at a time, back
//! to back, whatever Dovecot's `mail_prefetch_count` said; and a backward seek in a body
//! reopened it and read forward from byte 0 again. Here a prefetch of N bodies costs
//! exactly N reads with `read_in_flight` of them at once and the reads after it cost none;
//! and a seek costs at most the one read at the new position.

#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use rados_mail::objstore::{self, CountingStore, ObjectIter, ObjectStore, OpCounts, ReadOp, ReadResult, WriteOp};
use rados_mail::{AppendOptions, Config, Error, MailStore, Mailbox};

/// Generates one `#[test]` per case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! fetch_cases {
    ($make:expr) => {
        $crate::fetch_cases!(@cases $make;
            prefetch_reads_k_at_a_time_and_later_reads_cost_nothing,
            prefetch_of_chunked_and_large_bodies, prefetch_reports_a_missing_body_as_damage,
            prefetch_reports_a_damaged_body, prefetch_skips_mails_expunged_meanwhile,
            seeks_cost_at_most_one_read, seeks_never_report_false_damage,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, user) = ($make)(stringify!($case));
                fetch::$case(&store, &user);
            }
        )*
    };
}

/// Counts the reads in flight (started, not yet completed) and remembers the most at once.
#[derive(Debug, Clone)]
struct InFlight {
    inner: Arc<dyn ObjectStore>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl InFlight {
    fn new(inner: Arc<dyn ObjectStore>) -> InFlight {
        InFlight { inner, now: Arc::default(), most: Arc::default() }
    }

    /// The most reads in flight at once since the last call.
    fn take_most(&self) -> usize {
        self.most.swap(0, Ordering::SeqCst)
    }
}

impl ObjectStore for InFlight {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn with_namespace(&self, namespace: &str) -> objstore::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(InFlight { inner: self.inner.with_namespace(namespace)?, ..self.clone() }))
    }
    fn write_op(&self, oid: &str, op: &WriteOp) -> objstore::Result<u64> {
        self.inner.write_op(oid, op)
    }
    fn read_op(&self, oid: &str, op: &ReadOp) -> objstore::Result<ReadResult> {
        self.inner.read_op(oid, op)
    }
    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, objstore::Result<u64>> {
        self.inner.write_op_async(oid, op)
    }
    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, objstore::Result<ReadResult>> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let counter = self.now.clone();
        self.inner
            .read_op_async(oid, op)
            .map(move |r| {
                counter.fetch_sub(1, Ordering::SeqCst);
                r
            })
            .boxed()
    }
    fn list_objects(&self) -> objstore::Result<ObjectIter<'_>> {
        self.inner.list_objects()
    }
    fn list_namespaces(&self) -> objstore::Result<Vec<String>> {
        self.inner.list_namespaces()
    }
    fn watch(&self, oid: &str, callback: objstore::WatchCallback) -> objstore::Result<Box<dyn objstore::WatchHandle>> {
        self.inner.watch(oid, callback)
    }
    fn notify(&self, oid: &str, payload: &[u8], done: Option<objstore::NotifyDone>) {
        self.inner.notify(oid, payload, done)
    }
}

/// Another process over the same pool, with `config`, whose reads are counted.
struct Process {
    store: MailStore,
    counting: CountingStore,
    in_flight: InFlight,
}

impl Process {
    fn new(store: &MailStore, config: Config) -> Process {
        let in_flight = InFlight::new(store.pool().clone());
        let counting = CountingStore::new(Arc::new(in_flight.clone()));
        Process { store: MailStore::new(Arc::new(counting.clone()), config), counting, in_flight }
    }

    /// Opens INBOX and reads its records (read once, on first use), so that the costs
    /// measured afterwards are the bodies' alone.
    fn open(&self, user: &str) -> Mailbox {
        let m = self.store.user(user).unwrap().open_mailbox("INBOX").unwrap();
        m.uids().unwrap();
        m
    }

    /// What `f` costs in RADOS operations.
    fn cost<T>(&self, f: impl FnOnce() -> T) -> (T, OpCounts) {
        let before = self.counting.counts();
        let out = f();
        (out, self.counting.counts() - before)
    }
}

fn reads(n: u64) -> OpCounts {
    OpCounts { reads: n, ..Default::default() }
}

/// A mail of about `len` bytes, different for every `n`.
fn mail(n: u32, len: usize) -> Vec<u8> {
    let mut m = format!("Subject: mail {n}\n\n").into_bytes();
    m.extend((0..len).map(|i| b'a' + ((i as u32 * 7 + n) % 26) as u8));
    m
}

fn inbox(store: &MailStore, user: &str, mails: &[Vec<u8>]) -> Vec<u32> {
    let u = store.user(user).unwrap();
    u.create_mailbox("INBOX").unwrap();
    let m = u.open_mailbox("INBOX").unwrap();
    mails.iter().map(|b| m.append(&b[..], AppendOptions::default()).unwrap()).collect()
}

fn whole(m: &Mailbox, uid: u32) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    m.open_body(uid).map_err(std::io::Error::other)?.read_to_end(&mut out)?;
    Ok(out)
}

fn inner(e: &std::io::Error) -> Option<&Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>())
}

/// 40 bodies: 40 reads, `read_in_flight` (8) at once; then every read of them is a cache
/// hit; a second prefetch costs nothing. Unknown UIDs and repeats are ignored.
pub fn prefetch_reads_k_at_a_time_and_later_reads_cost_nothing(store: &MailStore, user: &str) {
    let mails: Vec<Vec<u8>> = (0..40).map(|n| mail(n, 100 + 37 * n as usize)).collect();
    let uids = inbox(store, user, &mails);
    let p = Process::new(store, Config { read_in_flight: 8, ..store.config().clone() });
    let m = p.open(user);
    p.in_flight.take_most();
    let mut asked = uids.clone();
    asked.extend([999, uids[0], uids[3]]);
    let (read, cost) = p.cost(|| m.prefetch(&asked).unwrap());
    assert_eq!((read, cost), (40, reads(40)), "one read per body");
    assert_eq!(p.in_flight.take_most(), 8, "read_in_flight reads at once");
    let (_, cost) = p.cost(|| {
        for (uid, body) in uids.iter().zip(&mails) {
            assert_eq!(whole(&m, *uid).unwrap(), *body);
            assert_eq!(m.read_range(*uid, 9, 4).unwrap(), body[9..13]);
            assert_eq!(m.header(*uid).unwrap(), body[..body.iter().position(|&b| b == b'\n').unwrap() + 2]);
        }
    });
    assert_eq!(cost, reads(0), "reads after a prefetch are cache hits");
    assert_eq!(p.cost(|| m.prefetch(&uids).unwrap()), (0, reads(0)), "nothing left to prefetch");
    // Copies share their body: it is read once.
    let other = Process::new(store, store.config().clone());
    let m2 = other.open(user);
    let copies: Vec<u32> = m2.copy_to(&uids[..2], &m2).unwrap().into_iter().map(|(_, c)| c).collect();
    let fresh = Process::new(store, store.config().clone());
    let m3 = fresh.open(user);
    assert_eq!(fresh.cost(|| m3.prefetch(&[uids[0], copies[0], uids[1], copies[1]]).unwrap()), (2, reads(2)));
    assert_eq!(whole(&m3, copies[1]).unwrap(), mails[1]);
}

/// A body of several objects costs one read per object; a body above the cache's largest
/// item is not prefetched (and is streamed when read).
pub fn prefetch_of_chunked_and_large_bodies(store: &MailStore, user: &str) {
    let cache = rados_mail::cache::CacheConfig { max_item_bytes: 1000, ..Default::default() };
    let config = Config { chunk_size: 100, read_chunk: 64, cache, ..store.config().clone() };
    let writer = MailStore::new(store.pool().clone(), config.clone());
    let mails = vec![mail(1, 230), mail(2, 5000), mail(3, 0), Vec::new()];
    let uids = inbox(&writer, user, &mails);
    let p = Process::new(store, config);
    let m = p.open(user);
    // 247 and 17 bytes: 3 + 1 objects; the empty body is one (empty) object; 5 KB skipped.
    assert_eq!(p.cost(|| m.prefetch(&uids).unwrap()), (3, reads(5)));
    let (_, cost) = p.cost(|| {
        for i in [0, 2, 3] {
            assert_eq!(whole(&m, uids[i]).unwrap(), mails[i]);
        }
    });
    assert_eq!(cost, reads(0));
    let (big, cost) = p.cost(|| whole(&m, uids[1]).unwrap());
    assert_eq!(big, mails[1]);
    assert!(cost.reads >= 50, "streamed in read_chunk pieces: {cost:?}");
}

/// A body object removed behind the store's back is damage, named, never an empty body;
/// the other bodies of the prefetch are cached all the same.
pub fn prefetch_reports_a_missing_body_as_damage(store: &MailStore, user: &str) {
    let mails: Vec<Vec<u8>> = (0..3).map(|n| mail(n, 50)).collect();
    let uids = inbox(store, user, &mails);
    let ns = store.user(user).unwrap().store().clone();
    let guid = rados_mail::Guid::from_slice(
        &store.user(user).unwrap().open_mailbox("INBOX").unwrap().record(uids[1]).unwrap().unwrap().mail_guid,
    )
    .unwrap();
    let object = format!("mail.{guid}");
    ns.remove(&object).unwrap();
    let p = Process::new(store, store.config().clone());
    let m = p.open(user);
    match m.prefetch(&uids) {
        Err(Error::Corrupted { object: o, detail, .. }) => {
            assert_eq!(o, object);
            assert!(detail.contains(&format!("UID {}", uids[1])), "{detail}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
    let (_, cost) = p.cost(|| {
        assert_eq!(whole(&m, uids[0]).unwrap(), mails[0]);
        assert_eq!(whole(&m, uids[2]).unwrap(), mails[2]);
    });
    assert_eq!(cost, reads(0), "the intact bodies were cached");
    match m.open_body(uids[1]) {
        Err(Error::Corrupted { object: o, .. }) => assert_eq!(o, object),
        other => panic!("expected Corrupted, got {:?}", other.map(|b| b.len())),
    }
    match m.read_range(uids[1], 0, 10) {
        Err(Error::Corrupted { object: o, .. }) => assert_eq!(o, object),
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

/// A body whose bytes no longer match its record's crc32 is reported and not cached.
pub fn prefetch_reports_a_damaged_body(store: &MailStore, user: &str) {
    let mails = vec![mail(1, 80), mail(2, 80)];
    let uids = inbox(store, user, &mails);
    let ns = store.user(user).unwrap().store().clone();
    let rec = store.user(user).unwrap().open_mailbox("INBOX").unwrap().record(uids[0]).unwrap().unwrap();
    let object = format!("mail.{}", rados_mail::Guid::from_slice(&rec.mail_guid).unwrap());
    let mut bad = mails[0].clone();
    bad[40] ^= 1;
    ns.write_op(&object, &WriteOp::new().write(0, bad)).unwrap();
    let p = Process::new(store, store.config().clone());
    let m = p.open(user);
    match m.prefetch(&uids) {
        Err(Error::Corrupted { object: o, detail, .. }) => assert!(o == object && detail.contains("crc32"), "{detail}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    let e = whole(&m, uids[0]).unwrap_err();
    assert!(matches!(inner(&e), Some(Error::Corrupted { .. })), "not cached, and read again: {e}");
    assert_eq!(p.cost(|| whole(&m, uids[1]).unwrap()).1, reads(0));
}

/// A mail expunged by another process after this one's view was read: its body is gone
/// with its last record. The prefetch asks the head, finds it expunged, and is no error.
pub fn prefetch_skips_mails_expunged_meanwhile(store: &MailStore, user: &str) {
    let mails: Vec<Vec<u8>> = (0..3).map(|n| mail(n, 50)).collect();
    let uids = inbox(store, user, &mails);
    let p = Process::new(store, store.config().clone());
    let m = p.open(user);
    let elsewhere = Process::new(store, store.config().clone());
    elsewhere.open(user).expunge(&[uids[1]]).unwrap();
    // 3 body reads, then one read of the head after the missing one.
    assert_eq!(p.cost(|| m.prefetch(&uids).unwrap()), (2, reads(4)));
    assert!(matches!(m.open_body(uids[1]), Err(Error::NotFound(_))));
    assert_eq!(p.cost(|| whole(&m, uids[2]).unwrap()), (mails[2].clone(), reads(0)));
}

/// A seek costs no read within the bytes fetched last, and one read (at the new position,
/// never from byte 0 again) anywhere else, forward or backward; every byte read after any
/// seek is right. The same on a cached body, without any read.
pub fn seeks_cost_at_most_one_read(store: &MailStore, user: &str) {
    let cache = rados_mail::cache::CacheConfig { memory_bytes: 0, ..Default::default() };
    let config = Config { chunk_size: 64, read_chunk: 16, cache, ..store.config().clone() };
    let body: Vec<u8> = (0..200u32).map(|i| (i * 13 % 251) as u8).collect();
    let uids = inbox(&MailStore::new(store.pool().clone(), config.clone()), user, std::slice::from_ref(&body));
    let p = Process::new(store, config);
    let m = p.open(user);
    let mut r = m.open_body(uids[0]).unwrap();
    let mut buf = [0u8; 10];
    let mut read_at = |r: &mut rados_mail::BodyReader, to: SeekFrom, want: u64| {
        p.cost(|| {
            let at = r.seek(to).unwrap();
            let n = r.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &body[at as usize..(at as usize + n)]);
            assert_eq!(r.position(), at + n as u64);
        })
        .1 == reads(want)
    };
    assert!(read_at(&mut r, SeekFrom::Start(0), 1));
    assert!(read_at(&mut r, SeekFrom::Start(3), 0), "within the last 16 bytes fetched");
    assert!(read_at(&mut r, SeekFrom::Start(150), 1), "forward: one read at 150");
    assert!(read_at(&mut r, SeekFrom::Start(20), 1), "backward: one read at 20, not from 0");
    assert!(read_at(&mut r, SeekFrom::Current(-8), 0), "back into the bytes fetched at 20");
    assert!(read_at(&mut r, SeekFrom::End(-5), 1));
    assert_eq!(r.seek(SeekFrom::End(10)).unwrap(), 210);
    assert_eq!(p.cost(|| r.read(&mut buf).unwrap()), (0, reads(0)), "past the end: nothing");
    assert_eq!(r.seek(SeekFrom::Current(-211)).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    // Every position, in a scrambled order.
    for i in 0..200u64 {
        let at = i * 89 % 200;
        r.seek(SeekFrom::Start(at)).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, body[at as usize..]);
    }
    // A cached body seeks the same way, with no read at all.
    let cached = Process::new(store, store.config().clone());
    let m = cached.open(user);
    let mut r = m.open_body(uids[0]).unwrap();
    let (_, cost) = cached.cost(|| {
        for at in [150u64, 3, 199, 0, 64] {
            r.seek(SeekFrom::Start(at)).unwrap();
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, body[at as usize..]);
        }
    });
    assert_eq!(cost, reads(0));
}

/// The crc32 is checked when the body was read in order from byte 0, also after seeks;
/// reads after seeks that skip bytes never claim damage they cannot see, and a damaged body
/// read whole in order is reported.
pub fn seeks_never_report_false_damage(store: &MailStore, user: &str) {
    let cache = rados_mail::cache::CacheConfig { memory_bytes: 0, ..Default::default() };
    let config = Config { chunk_size: 64, read_chunk: 16, cache, ..store.config().clone() };
    let body: Vec<u8> = (0..200u32).map(|i| (i * 7 % 253) as u8).collect();
    let uids = inbox(&MailStore::new(store.pool().clone(), config.clone()), user, &[body.clone(), body.clone()]);
    let m = Process::new(store, config).open(user);
    // Intact: skipping around, then reading in order from 0 to the end, checks and passes.
    let mut r = m.open_body(uids[0]).unwrap();
    let mut buf = [0u8; 7];
    for at in [100u64, 0, 190, 30, 199] {
        r.seek(SeekFrom::Start(at)).unwrap();
        assert!(r.read(&mut buf).unwrap() > 0);
    }
    r.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, body);
    // Damaged in its last object.
    let ns = store.user(user).unwrap().store().clone();
    let rec = m.record(uids[1]).unwrap().unwrap();
    let last = format!("mail.{}.0003", rados_mail::Guid::from_slice(&rec.mail_guid).unwrap());
    ns.write_op(&last, &WriteOp::new().write(0, vec![0xee])).unwrap();
    // Reads after seeks past the in-order part do not check: no false claim either way.
    let mut r = m.open_body(uids[1]).unwrap();
    r.seek(SeekFrom::Start(100)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail.len(), 100);
    // In order from 0 (after the seeks): the damage is found at the end.
    r.seek(SeekFrom::Start(0)).unwrap();
    let e = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(matches!(inner(&e), Some(Error::Corrupted { .. })), "{e}");
}
