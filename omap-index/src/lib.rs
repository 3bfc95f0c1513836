//! The on-RADOS index format of rados-mail: prost-encoded records with a version and a
//! crc32, the omap key layout of mailbox indexes and mailbox lists, the sharding of large
//! mailboxes over several omap objects, and the dict key space.
//!
//! Status: the crate is laid out; the format arrives with the mail-store work (issue #3)
//! and is documented in `docs/FORMAT.md`.
