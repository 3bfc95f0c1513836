//! rados-mail: mail storage that lives natively in Ceph RADOS.
//!
//! Mails are RADOS objects; mailbox indexes and mailbox lists are omap key-values. All I/O
//! goes through the [`objstore::ObjectStore`] trait, so the same code runs on a real cluster
//! (the `librados` crate) and in memory ([`objstore::MemoryStore`]). Every byte of state is
//! in RADOS: any number of processes on any number of hosts can work on the same mailbox at
//! once and stay correct, without a director, a shared file system or replication pairs.
//!
//! [`MailStore`] → [`User`] → [`Mailbox`], blocking; the same as futures for tokio in
//! [`asynchronous`]. The on-RADOS format and the algorithms (UID and
//! modseq allocation, the per-mailbox write-ahead log, sharding) are in `docs/FORMAT.md`.
//!
//! ```
//! use rados_mail::{Config, MailStore, Flags, StoreMode};
//!
//! let store = MailStore::in_memory(Config::default());
//! let alice = store.user("alice")?;
//! alice.create_mailbox("INBOX")?;
//! let inbox = alice.open_mailbox("INBOX")?;
//! let uid = inbox.append(&b"Subject: hi\n\nhello\n"[..], Default::default())?;
//! inbox.store(&[uid], StoreMode::Add, Flags::SEEN, &[], None)?;
//! assert_eq!(inbox.record(uid)?.unwrap().flags, Flags::SEEN.bits());
//! let mut body = Vec::new();
//! std::io::Read::read_to_end(&mut inbox.open_body(uid)?, &mut body).unwrap();
//! assert_eq!(body, b"Subject: hi\n\nhello\n");
//! # Ok::<(), rados_mail::Error>(())
//! ```

pub mod asynchronous;
pub mod blob;
mod body;
pub mod cache;
mod caches;
pub mod check;
mod config;
mod damage;
pub mod delivery;
pub mod dict;
mod duplicate;
mod error;
mod index;
mod layout;
pub mod mailbox;
mod names;
mod omap;
mod refs;
pub mod repair;
mod retry;
#[cfg(feature = "rados")]
pub mod settings;
mod store;
mod types;
mod user;
pub mod watch;

pub use body::BodyReader;
pub use config::{
    Config, DEFAULT_MAX_BODY_REFERENCES, DEFAULT_MAX_DICT_KEYS, DEFAULT_MAX_KEYWORDS, DEFAULT_MAX_MAILBOXES,
};
pub use delivery::{DeliveryHasher, DeliveryKey};
pub use error::{Error, Result};
pub use layout::FAIL_FAST as FORMAT_FAIL_FAST;
pub use layout::REFRESH as FORMAT_REFRESH;
pub use layout::migrate::LayoutMoved;
pub use mailbox::{Appender, Committed, Mailbox, ModseqSteps, SavedMail, Transaction};
pub use objstore;
pub use omap_index::format::PoolFormat;
pub use omap_index::names::Guid;
pub use omap_index::records::MailRecord;
pub use retry::RetryCounts;
pub use store::{MailStore, SHARED_NAMESPACE, Stats, check_user_name};
pub use types::{
    AppendOptions, Changes, CopyOptions, Flags, MailboxInfo, MailboxUpdate, Status, StoreMode, StoreResult,
};
pub use user::admin::{DeleteReport, MARKER_FROM, MARKER_TO, RENAME_MARKER, RenameReport};
pub use user::remap::{NamespaceMove, NamespacePlan, NamespaceSkip};
pub use user::{CreateOptions, User};
pub use watch::{Events, PushCounts, Watch};
