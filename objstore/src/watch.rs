//! Watch and notify: RADOS' push channel between clients of one object.
//!
//! A client *watches* an object ([`ObjectStore::watch`](crate::ObjectStore::watch)) and
//! from then on receives every *notify* another client (or itself) sends on that object
//! ([`ObjectStore::notify`](crate::ObjectStore::notify)), with its payload. Nothing is
//! stored: a notify sent while nobody watches, or while a watch is broken, is lost. A
//! broken watch is reported once, as [`WatchEvent::Error`]; the watcher must then drop it,
//! watch again and resynchronise from the stored state.
//!
//! Notifies are fire-and-forget for the sender: [`ObjectStore::notify`](crate::ObjectStore::notify)
//! returns once the notify is submitted and never waits for the watchers.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What a watch callback receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A notify on the watched object, with the notifier's payload.
    Notify(Vec<u8>),
    /// The watch broke: the OSD restarted, the connection timed out, the object was
    /// removed. Notifies may have been missed, and none arrives through this watch any
    /// more: drop it, watch again, and re-read what the notifies were about. Sent at most
    /// once per watch; a notify is never delivered after it.
    Error(Error),
}

/// The callback of a watch. Backends call it on a thread of their own (the in-memory one
/// on the notifier's thread), one event at a time per watch. It must be quick: it must not
/// block, call the store, or drop its own [`WatchHandle`] (that waits for the callback:
/// a deadlock).
pub type WatchCallback = Arc<dyn Fn(WatchEvent) + Send + Sync>;

/// A registered watch ([`ObjectStore::watch`](crate::ObjectStore::watch)). Dropping it
/// unwatches: when `drop` returns, the callback is not running and is never called again.
pub trait WatchHandle: Send + Sync + fmt::Debug {
    /// The watched object's name.
    fn oid(&self) -> &str;

    /// `Ok` while the watch is registered; the error it broke with otherwise (librados
    /// `rados_watch_check`).
    fn check(&self) -> Result<()>;
}

/// How a notify ended, for [`ObjectStore::notify`](crate::ObjectStore::notify): called
/// exactly once, on any thread, possibly before `notify` returns. It must be quick and must
/// not call the store. `Ok`: every watcher acknowledged (or there was none);
/// [`Error::NotFound`]: the object does not exist; [`Error::Unavailable`]: not every watcher
/// acknowledged in time, or the notify could not be sent.
pub type NotifyDone = Box<dyn FnOnce(Result<()>) + Send>;

/// A broken-watch error as backends report it.
pub fn watch_broken(oid: &str, why: &str) -> Error {
    Error::Unavailable(format!("watch on {oid:?} broken: {why}"))
}
