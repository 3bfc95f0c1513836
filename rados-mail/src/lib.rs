//! rados-mail: mail storage that lives natively in Ceph RADOS.
//!
//! Mails are RADOS objects; mailbox indexes, mailbox lists and dicts are omap key-values;
//! all I/O goes through the [`objstore::ObjectStore`] trait, so the same code runs on a real
//! cluster (the `librados` crate) and in memory ([`objstore::MemoryStore`]).
//!
//! Status: the object-store layer is done and proven against a real cluster; the mail store
//! itself (mailboxes, UIDs, flags, modseqs, the local cache) arrives with issues #3 and #4.

pub use objstore;
