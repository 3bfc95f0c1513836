//! Push: RADOS watch/notify between processes sharing users.
//!
//! Every commit that writes a mailbox head (`mbox.<guid>`: transactions, appends, group
//! commits, expunges, flag changes, header updates) notifies that object once, with the
//! new HIGHESTMODSEQ as payload (8 bytes, little-endian); every change of a user's mailbox
//! list (create, delete, rename, subscribe, unsubscribe, special use, UIDVALIDITY) notifies
//! the list object `mailboxes` (empty payload). Notifies are fire-and-forget and
//! best-effort: one failing never fails the commit; it is counted ([`PushCounts`]).
//! [`crate::Config::notify`] turns them off.
//!
//! A [`Watch`] receives them: made from a [`User`], it watches any number of mailboxes and
//! optionally the mailbox list, and keeps a set of pending [`Events`] that an event loop
//! polls through a file descriptor ([`Watch::as_fd`]) or a thread waits for
//! ([`Watch::wait`]). A process that makes no `Watch` pays nothing: no thread, no
//! operation.
//!
//! A watch that breaks (the OSD restarted, a timeout) sets [`Events::LOST`] at once: the
//! consumer must resynchronise, since notifies may have been missed. A thread of the
//! `Watch` (started on the first break) watches again, pausing between attempts as
//! `retry::rewatch_pause` says, until it succeeds or the `Watch` is dropped; when
//! it succeeds it sets `LOST` again, because what changed between the break and the new
//! watch was never notified. A mailbox that was deleted is not watched again (the
//! consumer's resync finds it gone).
//!
//! ```
//! use std::time::Duration;
//! use rados_mail::{Config, Events, MailStore};
//!
//! let store = MailStore::in_memory(Config::default());
//! let alice = store.user("alice")?;
//! alice.create_mailbox("INBOX")?;
//! let watch = alice.watch()?; // in another process, in real life
//! watch.add_mailbox_name("INBOX")?;
//! watch.add_list()?;
//! alice.open_mailbox("INBOX")?.append(&b"Subject: hi\n\nhi\n"[..], Default::default())?;
//! assert_eq!(watch.wait(Duration::from_secs(1)), Events::CHANGED);
//! alice.create_mailbox("Later")?;
//! assert_eq!(watch.take(), Events::LIST);
//! assert_eq!(watch.take(), Events::NONE);
//! # Ok::<(), rados_mail::Error>(())
//! ```

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use objstore::{ObjectStore, WatchEvent, WatchHandle, WriteOp};
use omap_index::names::MAILBOX_LIST;

use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::retry::rewatch_pause;
use crate::user::User;

/// Counters of push, part of [`crate::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushCounts {
    /// Notifies sent (one per mailbox head write, one per mailbox list change).
    pub notifies: u64,
    /// Notifies that failed or that not every watcher acknowledged in time (the commit
    /// succeeded all the same).
    pub notify_failures: u64,
    /// Watches of this process that broke ([`Events::LOST`]).
    pub watch_errors: u64,
    /// Broken watches established again.
    pub rewatches: u64,
}

/// The shared counters behind [`PushCounts`].
#[derive(Debug, Default)]
pub(crate) struct PushCounters {
    notifies: AtomicU64,
    notify_failures: AtomicU64,
    watch_errors: AtomicU64,
    rewatches: AtomicU64,
}

impl PushCounters {
    pub(crate) fn counts(&self) -> PushCounts {
        PushCounts {
            notifies: self.notifies.load(Ordering::Relaxed),
            notify_failures: self.notify_failures.load(Ordering::Relaxed),
            watch_errors: self.watch_errors.load(Ordering::Relaxed),
            rewatches: self.rewatches.load(Ordering::Relaxed),
        }
    }
}

/// Sends a notify on `oid` without waiting; a failure is counted, never returned.
pub(crate) fn notify(store: &dyn ObjectStore, push: &Arc<PushCounters>, enabled: bool, oid: &str, payload: &[u8]) {
    if !enabled {
        return;
    }
    push.notifies.fetch_add(1, Ordering::Relaxed);
    let counters = push.clone();
    let oid_owned = oid.to_string();
    store.notify(
        oid,
        payload,
        Some(Box::new(move |r| {
            if let Err(e) = r {
                counters.notify_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(oid = %oid_owned, "notify: {e}");
            }
        })),
    );
}

/// The pending events of a [`Watch`], a bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Events(u32);

impl Events {
    /// Nothing.
    pub const NONE: Events = Events(0);
    /// A watched mailbox was notified (a commit changed it).
    pub const CHANGED: Events = Events(1);
    /// The watched mailbox list was notified (mailboxes or subscriptions changed).
    pub const LIST: Events = Events(2);
    /// A watch broke or was established again: notifies may have been missed, resync.
    pub const LOST: Events = Events(4);

    /// The bits (`CHANGED` = 1, `LIST` = 2, `LOST` = 4).
    pub fn bits(self) -> u32 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

/// One watched object.
struct Target {
    store: Arc<dyn ObjectStore>,
    oid: String,
    /// What a notify on it sets.
    event: Events,
    /// `None` while broken (the re-watch thread's work) or given up.
    handle: Option<Box<dyn WatchHandle>>,
    /// Deleted: not watched again.
    gone: bool,
}

/// Pending events and whether the pipe holds its one byte.
#[derive(Default)]
struct Pending {
    events: Events,
    signalled: bool,
}

struct Inner {
    push: Arc<PushCounters>,
    pending: Mutex<Pending>,
    arrived: Condvar,
    reader: PipeReader,
    writer: PipeWriter,
    targets: Mutex<Vec<Target>>,
    /// Woken when a watch broke or the `Watch` is dropped.
    work: Condvar,
    closed: Mutex<bool>,
    rewatcher: Mutex<bool>,
}

/// Push events of a user's mailboxes and mailbox list (see the module documentation).
///
/// Thread-safe; every method takes `&self`. Dropping it unwatches everything.
pub struct Watch {
    inner: Arc<Inner>,
    user: User,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = lock(&self.inner.targets).len();
        f.debug_struct("Watch").field("targets", &n).field("pending", &self.pending()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Adds `events` to the pending ones; the pipe gets its byte if it had none.
    fn raise(&self, events: Events) {
        let mut p = lock(&self.pending);
        p.events = p.events | events;
        if !p.signalled {
            // One byte in an empty pipe: never blocks, never fails short of a closed pipe.
            match (&self.writer).write_all(&[1]) {
                Ok(()) => p.signalled = true,
                Err(e) => tracing::error!("watch pipe: {e}"),
            }
        }
        self.arrived.notify_all();
    }

    fn on_event(self: &Arc<Self>, oid: &str, event: Events, e: WatchEvent) {
        match e {
            WatchEvent::Notify(_) => self.raise(event),
            WatchEvent::Error(err) => {
                self.push.watch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::info!(oid, "watch broken, watching again: {err}");
                {
                    let mut targets = lock(&self.targets);
                    if let Some(t) = targets.iter_mut().find(|t| t.oid == oid && t.handle.is_some()) {
                        // Unwatched on a thread of the backend's; never in its own callback.
                        let old = t.handle.take();
                        std::thread::spawn(move || drop(old));
                    }
                }
                self.raise(Events::LOST);
                self.start_rewatcher();
                self.work.notify_all();
            }
        }
    }

    /// Registers a watch on `oid` whose events go to this `Watch`.
    fn register(
        self: &Arc<Self>,
        store: &Arc<dyn ObjectStore>,
        oid: &str,
        event: Events,
    ) -> Result<Box<dyn WatchHandle>> {
        let me: Weak<Inner> = Arc::downgrade(self);
        let name = oid.to_string();
        let handle = store.watch(
            oid,
            Arc::new(move |e| {
                if let Some(inner) = me.upgrade() {
                    inner.on_event(&name, event, e);
                }
            }),
        )?;
        Ok(handle)
    }

    fn start_rewatcher(self: &Arc<Self>) {
        let mut started = lock(&self.rewatcher);
        if *started {
            return;
        }
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("rados-mail-rewatch".into()).spawn(move || rewatch_loop(me));
        match spawned {
            Ok(_) => *started = true,
            Err(e) => tracing::error!("cannot start the re-watch thread: {e}"),
        }
    }
}

/// The re-watch thread: watches broken targets again until the `Watch` is dropped.
fn rewatch_loop(me: Weak<Inner>) {
    let mut attempt = 0u32;
    loop {
        let Some(inner) = me.upgrade() else { return };
        let broken: Vec<(Arc<dyn ObjectStore>, String, Events)> = lock(&inner.targets)
            .iter()
            .filter(|t| t.handle.is_none() && !t.gone)
            .map(|t| (t.store.clone(), t.oid.clone(), t.event))
            .collect();
        if *lock(&inner.closed) {
            return;
        }
        if broken.is_empty() {
            attempt = 0;
            let closed = lock(&inner.closed);
            if !*closed {
                drop(inner.work.wait_timeout(closed, Duration::from_secs(1)));
            }
            continue;
        }
        let mut failed = false;
        for (store, oid, event) in broken {
            match inner.register(&store, &oid, event) {
                Ok(handle) => {
                    let mut targets = lock(&inner.targets);
                    match targets.iter_mut().find(|t| t.oid == oid && t.handle.is_none() && !t.gone) {
                        Some(t) if !*lock(&inner.closed) => t.handle = Some(handle),
                        _ => continue,
                    }
                    drop(targets);
                    inner.push.rewatches.fetch_add(1, Ordering::Relaxed);
                    // Changes between the break and now were never notified.
                    inner.raise(Events::LOST);
                }
                Err(Error::NotFound(_)) => {
                    lock(&inner.targets).iter_mut().filter(|t| t.oid == oid).for_each(|t| t.gone = true);
                    inner.raise(Events::LOST);
                }
                Err(e) => {
                    tracing::debug!(oid, "watching again: {e}");
                    failed = true;
                }
            }
        }
        if failed {
            let pause = rewatch_pause(attempt);
            attempt = attempt.saturating_add(1);
            let closed = lock(&inner.closed);
            if !*closed {
                drop(inner.work.wait_timeout(closed, pause));
            }
        } else {
            attempt = 0;
        }
    }
}

impl Watch {
    /// A watch of `user`'s mail that watches nothing yet.
    pub fn new(user: &User) -> Result<Watch> {
        let (reader, writer) =
            std::io::pipe().map_err(|e| Error::Unavailable(format!("creating the watch pipe: {e}")))?;
        let inner = Inner {
            push: user.push().clone(),
            pending: Mutex::default(),
            arrived: Condvar::new(),
            reader,
            writer,
            targets: Mutex::new(Vec::new()),
            work: Condvar::new(),
            closed: Mutex::new(false),
            rewatcher: Mutex::new(false),
        };
        Ok(Watch { inner: Arc::new(inner), user: user.clone() })
    }

    fn add(&self, store: &Arc<dyn ObjectStore>, oid: &str, event: Events) -> Result<()> {
        let same = |t: &Target| t.oid == oid && t.store.namespace() == store.namespace();
        if lock(&self.inner.targets).iter().any(same) {
            return Ok(());
        }
        let handle = self.inner.register(store, oid, event)?;
        // A watch that broke before it was listed here had its error find no target: it
        // is left to the re-watch thread.
        let broken = handle.check().is_err();
        let handle = if broken { None } else { Some(handle) };
        let target = Target { store: store.clone(), oid: oid.to_string(), event, handle, gone: false };
        lock(&self.inner.targets).push(target);
        if broken {
            self.inner.raise(Events::LOST);
            self.inner.start_rewatcher();
            self.inner.work.notify_all();
        }
        Ok(())
    }

    /// Watches an open mailbox: a commit to it through any process sets [`Events::CHANGED`].
    pub fn add_mailbox(&self, mailbox: &Mailbox) -> Result<()> {
        self.add(mailbox.object_store(), mailbox.head_oid(), Events::CHANGED).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("mailbox {}", mailbox.info().name)),
            e => e,
        })
    }

    /// Watches the user's mailbox `name`; [`Error::NotFound`] if there is none.
    pub fn add_mailbox_name(&self, name: &str) -> Result<()> {
        let info = self.user.mailbox_info(name)?;
        let oid = omap_index::names::mailbox_head(&info.guid);
        self.add(self.user.store(), &oid, Events::CHANGED).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("mailbox {}", info.name)),
            e => e,
        })
    }

    /// Watches the user's mailbox list: a change to it sets [`Events::LIST`]. A user who
    /// never had a mailbox has no list object yet; it is created (empty) to be watched.
    pub fn add_list(&self) -> Result<()> {
        let store = self.user.store();
        match self.add(store, MAILBOX_LIST, Events::LIST) {
            Err(Error::NotFound(_)) => {
                store.write_op(MAILBOX_LIST, &WriteOp::new().create())?;
                self.add(store, MAILBOX_LIST, Events::LIST)
            }
            r => r,
        }
    }

    /// The pending events, left pending.
    pub fn pending(&self) -> Events {
        lock(&self.inner.pending).events
    }

    /// Returns the pending events and clears them; never blocks. Until new events arrive
    /// the file descriptor is not readable.
    pub fn take(&self) -> Events {
        let mut p = lock(&self.inner.pending);
        if p.signalled {
            let mut byte = [0u8; 1];
            // The pipe holds exactly the one byte written when `signalled` was set.
            if let Err(e) = (&self.inner.reader).read_exact(&mut byte) {
                tracing::error!("watch pipe: {e}");
            }
            p.signalled = false;
        }
        std::mem::take(&mut p.events)
    }

    /// Waits until events are pending or `timeout` passed, then takes them
    /// ([`Events::NONE`] on timeout).
    pub fn wait(&self, timeout: Duration) -> Events {
        let deadline = Instant::now() + timeout;
        let mut p = lock(&self.inner.pending);
        while p.events.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Events::NONE;
            }
            p = self.inner.arrived.wait_timeout(p, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(p);
        self.take()
    }

    /// The readable end of the pipe as a raw descriptor (valid while the `Watch` lives).
    pub fn raw_fd(&self) -> RawFd {
        self.inner.reader.as_raw_fd()
    }

    /// How many objects are watched now (broken watches being re-established excluded).
    pub fn live(&self) -> usize {
        lock(&self.inner.targets).iter().filter(|t| t.handle.is_some()).count()
    }
}

impl AsFd for Watch {
    /// Readable while events are pending (for `poll`/`epoll`); do not read it yourself,
    /// [`Watch::take`] does.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.reader.as_fd()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        *lock(&self.inner.closed) = true;
        self.inner.work.notify_all();
        let handles: Vec<_> = lock(&self.inner.targets).iter_mut().filter_map(|t| t.handle.take()).collect();
        drop(handles);
    }
}
