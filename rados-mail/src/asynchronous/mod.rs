//! The async API, for tokio programs: the operations of [`MailStore`], [`User`] and
//! [`Mailbox`] as futures. Handles are cheap to clone and can move between tasks.
//!
//! The hot paths are native async, on the object store's async operations (librados
//! aio), never on a thread pool:
//! - **append** ([`AsyncMailbox::append`], [`AsyncMailbox::append_reader`] from an
//!   [`tokio::io::AsyncRead`], [`AsyncMailbox::append_stream`] from a
//!   [`futures::Stream`] of pieces): the body is written in chunks with a bounded number
//!   of writes in flight (the source is not read while the bound is reached), then the
//!   commit is one async guarded write of the mailbox head, the same write the blocking
//!   path makes (same objects, keys, guards: `docs/FORMAT.md`). A commit that loses a race
//!   (or is planned on a view that lost one lately) is finished by the blocking path on
//!   tokio's blocking pool, under the same retry policy; so is resolving a commit whose
//!   reply was lost, and applying the WAL when a commit made it long.
//! - **fetch** ([`AsyncMailbox::read_record`], [`AsyncMailbox::body_stream`] and
//!   [`AsyncMailbox::range_stream`] as a [`BodyStream`], which is a [`futures::Stream`]
//!   and an [`tokio::io::AsyncRead`]; [`AsyncMailbox::body`], [`AsyncMailbox::read_range`],
//!   [`AsyncMailbox::header`]): the record's block and the body's pieces are read with
//!   async reads, a bounded window of them ahead of the consumer; a whole body is checked
//!   against its crc32 at its end.
//!
//! The runtime must be tokio's, with its time driver (`#[tokio::main]`, or a runtime
//! built with `enable_all()` or `enable_time()`): the retry policy's pauses are tokio
//! timers.
//!
//! The other operations (mailbox management, flags, expunges, copies, status) are a
//! short sequence of RADOS round trips made by the blocking core on tokio's blocking pool
//! (`spawn_blocking`), so async tasks never block a runtime worker.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rados_mail::Error> {
//! use rados_mail::asynchronous::AsyncMailStore;
//! use rados_mail::{Config, Flags, MailStore, StoreMode};
//!
//! let store = AsyncMailStore::new(MailStore::in_memory(Config::default()));
//! let bob = store.user("bob").await?;
//! bob.create_mailbox("INBOX").await?;
//! let inbox = bob.open_mailbox("INBOX").await?;
//! let uid = inbox.append(b"Subject: async\n\nhi\n".to_vec(), Default::default()).await?;
//! inbox.store(vec![uid], StoreMode::Add, Flags::SEEN, vec![], None).await?;
//! assert_eq!(inbox.body(uid).await?, b"Subject: async\n\nhi\n");
//! // Streaming both ways: from any `AsyncRead` (here a byte slice), back as a `Stream`.
//! use futures::StreamExt;
//! let uid = inbox.append_reader(&b"Subject: streamed\n\nbody\n"[..], Default::default()).await?;
//! let mut stream = inbox.body_stream(uid).await?;
//! let mut back = Vec::new();
//! while let Some(piece) = stream.next().await {
//!     back.extend(piece?);
//! }
//! assert_eq!(back, b"Subject: streamed\n\nbody\n");
//! assert_eq!(inbox.status().await?.messages, 2);
//! # Ok(())
//! # }
//! ```

mod append;
mod fetch;

use std::io::Read;
use std::sync::Arc;

pub use fetch::BodyStream;

use omap_index::records::MailRecord;

use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::store::MailStore;
use crate::types::{AppendOptions, Changes, Flags, MailboxInfo, Status, StoreMode, StoreResult};
use crate::user::User;

/// How many operations of the async API went to tokio's blocking pool in this process so
/// far (mailbox management, flags, expunges, copies, status; a damaged mailbox head
/// being rebuilt). Appends, fetches and syncs add none: their commits, lost races, lost
/// replies and WAL applications are async operations.
pub fn blocking_pool_calls() -> u64 {
    BLOCKING_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

static BLOCKING_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs blocking work on tokio's blocking pool. A panic in it is resumed in the caller.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    BLOCKING_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Unavailable(format!("the blocking task was cancelled: {e}"))),
    }
}

/// [`MailStore`], async.
#[derive(Debug, Clone)]
pub struct AsyncMailStore(MailStore);

impl AsyncMailStore {
    /// Wraps a mail store.
    pub fn new(store: MailStore) -> Self {
        AsyncMailStore(store)
    }
    /// The blocking store underneath.
    pub fn blocking(&self) -> &MailStore {
        &self.0
    }
    /// [`MailStore::user`].
    pub async fn user(&self, name: &str) -> Result<AsyncUser> {
        let (store, name) = (self.0.clone(), name.to_string());
        blocking(move || store.user(&name)).await.map(|u| AsyncUser(Arc::new(u)))
    }
}

/// [`User`], async.
#[derive(Debug, Clone)]
pub struct AsyncUser(Arc<User>);

impl AsyncUser {
    /// [`User::create_mailbox`].
    pub async fn create_mailbox(&self, name: &str) -> Result<MailboxInfo> {
        let (u, name) = (self.0.clone(), name.to_string());
        blocking(move || u.create_mailbox(&name)).await
    }
    /// [`User::delete_mailbox`].
    pub async fn delete_mailbox(&self, name: &str) -> Result<()> {
        let (u, name) = (self.0.clone(), name.to_string());
        blocking(move || u.delete_mailbox(&name)).await
    }
    /// [`User::rename_mailbox`].
    pub async fn rename_mailbox(&self, old: &str, new: &str) -> Result<()> {
        let (u, old, new) = (self.0.clone(), old.to_string(), new.to_string());
        blocking(move || u.rename_mailbox(&old, &new)).await
    }
    /// [`User::list_mailboxes`].
    pub async fn list_mailboxes(&self, pattern: &str) -> Result<Vec<MailboxInfo>> {
        let (u, pattern) = (self.0.clone(), pattern.to_string());
        blocking(move || u.list_mailboxes(&pattern)).await
    }
    /// [`User::open_mailbox`].
    pub async fn open_mailbox(&self, name: &str) -> Result<AsyncMailbox> {
        let (u, name) = (self.0.clone(), name.to_string());
        blocking(move || u.open_mailbox(&name)).await.map(|m| AsyncMailbox(Arc::new(m)))
    }
    /// The blocking user underneath.
    pub fn blocking(&self) -> &User {
        &self.0
    }
}

/// [`Mailbox`], async.
#[derive(Debug, Clone)]
pub struct AsyncMailbox(pub(crate) Arc<Mailbox>);

impl AsyncMailbox {
    /// [`Mailbox::append`] streaming from a blocking reader (read, and the mail written, on
    /// the blocking pool; [`AsyncMailbox::append_reader`] takes an async one).
    pub async fn append_from(&self, body: impl Read + Send + 'static, options: AppendOptions) -> Result<u32> {
        let m = self.0.clone();
        blocking(move || m.append(body, options)).await
    }
    /// [`Mailbox::store`].
    pub async fn store(
        &self,
        uids: Vec<u32>,
        mode: StoreMode,
        flags: Flags,
        keywords: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult> {
        let m = self.0.clone();
        blocking(move || {
            let kw: Vec<&str> = keywords.iter().map(String::as_str).collect();
            m.store(&uids, mode, flags, &kw, unchanged_since)
        })
        .await
    }
    /// [`Mailbox::expunge`].
    pub async fn expunge(&self, uids: Vec<u32>) -> Result<Vec<u32>> {
        let m = self.0.clone();
        blocking(move || m.expunge(&uids)).await
    }
    /// [`Mailbox::copy_to`].
    pub async fn copy_to(&self, uids: Vec<u32>, dest: &AsyncMailbox) -> Result<Vec<(u32, u32)>> {
        let (m, d) = (self.0.clone(), dest.0.clone());
        blocking(move || m.copy_to(&uids, &d)).await
    }
    /// [`Mailbox::move_to`].
    pub async fn move_to(&self, uids: Vec<u32>, dest: &AsyncMailbox) -> Result<Vec<(u32, u32)>> {
        let (m, d) = (self.0.clone(), dest.0.clone());
        blocking(move || m.move_to(&uids, &d)).await
    }
    /// [`Mailbox::status`].
    pub async fn status(&self) -> Result<Status> {
        let m = self.0.clone();
        blocking(move || m.status()).await
    }
    /// [`Mailbox::sync`], with an async read of the head (no blocking pool).
    pub async fn sync(&self) -> Result<bool> {
        self.0.refresh_async().await
    }
    /// [`Mailbox::changes_since`].
    pub async fn changes_since(&self, modseq: u64) -> Result<Changes> {
        let m = self.0.clone();
        blocking(move || m.changes_since(modseq)).await
    }
    /// [`Mailbox::take_recent`].
    pub async fn take_recent(&self, upto: u32) -> Result<std::ops::Range<u32>> {
        let m = self.0.clone();
        blocking(move || m.take_recent(upto)).await
    }
    /// [`Mailbox::record`], blocking: from memory when the record cache holds its block,
    /// else one RADOS read ([`AsyncMailbox::read_record`] never blocks).
    pub fn record(&self, uid: u32) -> Result<Option<MailRecord>> {
        self.0.record(uid)
    }
    /// The blocking mailbox underneath.
    pub fn blocking(&self) -> &Mailbox {
        &self.0
    }
}
