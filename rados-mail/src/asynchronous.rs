//! The async API, for tokio programs: the operations of [`MailStore`], [`User`] and
//! [`Mailbox`] as futures.
//!
//! Each call is a short sequence of RADOS round trips made by the blocking core; here it runs
//! on tokio's blocking thread pool (`spawn_blocking`), so async tasks never block a runtime
//! worker. Handles are cheap to clone and can move between tasks.
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
//! assert_eq!(inbox.status().await?.messages, 1);
//! # Ok(())
//! # }
//! ```

use std::io::Read;
use std::sync::Arc;

use omap_index::records::MailRecord;

use crate::error::{Error, Result};
use crate::mailbox::Mailbox;
use crate::store::MailStore;
use crate::types::{AppendOptions, Changes, Flags, MailboxInfo, Status, StoreMode, StoreResult};
use crate::user::User;

/// Runs blocking work on tokio's blocking pool. A panic in it is resumed in the caller.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
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
pub struct AsyncMailbox(Arc<Mailbox>);

impl AsyncMailbox {
    /// [`Mailbox::append`] of a mail in memory.
    pub async fn append(&self, body: Vec<u8>, options: AppendOptions) -> Result<u32> {
        let m = self.0.clone();
        blocking(move || m.append(&body[..], options)).await
    }
    /// [`Mailbox::append`] streaming from a reader (read on the blocking pool).
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
    /// [`Mailbox::sync`].
    pub async fn sync(&self) -> Result<bool> {
        let m = self.0.clone();
        blocking(move || m.sync()).await
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
    /// [`Mailbox::record`] (from memory; does not block).
    pub fn record(&self, uid: u32) -> Result<Option<MailRecord>> {
        self.0.record(uid)
    }
    /// A whole body, read into memory (use [`AsyncMailbox::read_range`] for large mails).
    pub async fn body(&self, uid: u32) -> Result<Vec<u8>> {
        let m = self.0.clone();
        blocking(move || {
            let mut out = Vec::new();
            m.open_body(uid)?.read_to_end(&mut out).map_err(|e| Error::Input(e.to_string()))?;
            Ok(out)
        })
        .await
    }
    /// [`Mailbox::read_range`].
    pub async fn read_range(&self, uid: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        let m = self.0.clone();
        blocking(move || m.read_range(uid, offset, len)).await
    }
    /// [`Mailbox::header`].
    pub async fn header(&self, uid: u32) -> Result<Vec<u8>> {
        let m = self.0.clone();
        blocking(move || m.header(uid)).await
    }
    /// The blocking mailbox underneath.
    pub fn blocking(&self) -> &Mailbox {
        &self.0
    }
}
