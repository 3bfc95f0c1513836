//! Settings of the mail store.

/// The default of [`Config::max_keywords`].
pub const DEFAULT_MAX_KEYWORDS: usize = 1000;

/// The default of [`Config::max_mailboxes`].
pub const DEFAULT_MAX_MAILBOXES: usize = 10_000;

/// The default of [`Config::max_body_references`].
pub const DEFAULT_MAX_BODY_REFERENCES: usize = 1000;

/// The default of [`Config::max_dict_keys`].
pub const DEFAULT_MAX_DICT_KEYS: usize = 50_000;

/// How the mail store lays out and limits its data. The defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The pool holding mail bodies (the setting `data_pool`, Dovecot `rados_data_pool`);
    /// empty (default): the index pool. It may be erasure-coded: nothing on it uses omap.
    /// It must be the pool the deployment's format record names (`docs/FORMAT.md`,
    /// "Layout and format versions"); a new deployment records it.
    pub data_pool: String,
    /// Objects the shared dict is spread over in a deployment created by this store (the
    /// setting `dict_shards`, default [`crate::dict::DEFAULT_SHARED_SHARDS`], at most
    /// [`crate::dict::MAX_SHARDS`]; see `docs/CAPACITY.md` for sizing). Used only when the
    /// deployment's format record is created (a new deployment): afterwards the record's
    /// `dict_shards` rules, and `rados-mail migrate --dict-shards N` changes it.
    pub dict_shards: u32,
    /// Namespace prefix: a user's RADOS namespace is `<prefix>/<user>`, or `<user>` when
    /// empty (default; see [`omap_index::names::user_namespace`]). No '/'.
    pub namespace_prefix: String,
    /// Largest mail accepted, in bytes; larger ones fail with `TooLarge` (default 100 MiB).
    pub max_mail_size: u64,
    /// Distinct keyword names a mailbox may hold (its keyword table, see
    /// `MailboxHeader::keywords`); a commit that would need more fails with
    /// `KeywordLimit` and changes nothing (default 1,000).
    pub max_keywords: usize,
    /// Mailboxes a user may have; creating one more fails with `TooLarge` and creates
    /// nothing (default 10,000: the user's `mailboxes` object then holds at most about
    /// 30,000 omap keys, under the project's limit of 100,000 per object).
    /// It bounds the user's subscriptions too: subscribing to one more name when the user
    /// has this many fails with `TooLarge` (IMAP allows subscriptions to names that do not
    /// exist; each is a key of the same object).
    pub max_mailboxes: usize,
    /// References one body object may carry (default 1,000): a copy of a mail whose body
    /// has this many stores a new body object (the same bytes) instead of one reference
    /// more, as Dovecot's mdbox does when a mail's reference count would overflow. Each
    /// reference is an xattr (omap key in format 1) of the body's first object, about 60
    /// bytes; Ceph loads an object's xattrs with it.
    pub max_body_references: usize,
    /// Keys a user's private dict may hold (IMAP METADATA entries, ACLs, quota counters,
    /// other plugins' keys; default 50,000, half the project's limit of 100,000 keys per
    /// object): a commit that would set keys past it fails with `TooLarge` and sets none.
    pub max_dict_keys: usize,
    /// Bytes per body object: a larger mail is stored as several objects of this size,
    /// written concurrently (default 4 MiB; Ceph's `osd_max_object_size` is 128 MiB).
    pub chunk_size: usize,
    /// Chunk objects of one mail written at once (default 4). Memory held while saving a
    /// mail is about `2 × write_in_flight × chunk_size`, whatever the mail's size.
    pub write_in_flight: usize,
    /// Body references taken or dropped at once by a copy, move or expunge of many mails
    /// (default 16).
    pub ref_in_flight: usize,
    /// Bytes per read when streaming a mail body (default 1 MiB).
    pub read_chunk: usize,
    /// Body reads a prefetch ([`crate::Mailbox::prefetch`]) keeps in flight at once
    /// (default 16). Memory held while prefetching is bounded by the body cache, not by
    /// this number.
    pub read_in_flight: usize,
    /// When a mailbox's WAL tail reaches this many entries, the writer applies it to the
    /// shard objects and trims it (default 32).
    pub wal_apply_threshold: usize,
    /// UIDs per shard object are `1 << shard_bits` (default 15: 32,768), fixed per mailbox
    /// at creation.
    pub shard_bits: u32,
    /// Attempts of a guarded update before giving up with `Conflict` (default 200; with
    /// backoff that is well over ten seconds of contention).
    pub max_attempts: u32,
    /// Mailbox views kept in memory per process, so that reopening a mailbox that did not
    /// change costs one read of its head object (default 256).
    pub view_cache_mailboxes: usize,
    /// Mail records kept in memory per process, all mailboxes together (default 65,536:
    /// about 20 MiB). Records are read from the shard objects in blocks of up to 1,024
    /// consecutive UIDs and kept in this bounded cache; a view itself holds only its
    /// header and the WAL entries it knows, whatever its mailbox's size. 0: none kept
    /// (every record read goes to RADOS).
    pub record_cache_records: usize,
    /// The local cache of mail bodies (memory, and optionally a directory on disk).
    pub cache: crate::cache::CacheConfig,
    /// Notify watchers (other processes' [`crate::Watch`]) of every commit and mailbox
    /// list change: one more RADOS operation per change, not waited for (default on).
    pub notify: bool,
    /// After a commit whose reply was lost (a timeout, a connection reset), until when,
    /// counted from the moment the commit was sent, the commit keeps asking the cluster
    /// whether it landed before it gives up and reports the failure with the outcome
    /// unknown (default 30 s, the cluster timeout's default; the settings' `timeout` sets
    /// both). A commit found to have landed succeeds, so a mail server does not answer
    /// "try again" for a mail it stored; a commit that timed out after the whole window is
    /// refused at once, so refusals stay within one timeout.
    pub resolve_window: std::time::Duration,
    /// How long a delivery's mark (its [`crate::DeliveryKey`]) is kept on the mailbox head,
    /// so that a sender's retry of a delivery whose outcome was unknown is stored once
    /// (default 24 hours, at most 7 days; 0 turns delivery keys off). Marks are kept in
    /// buckets of 4 hours: one lives between the window and the window plus 8 hours.
    pub delivery_window: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_pool: String::new(),
            dict_shards: crate::dict::DEFAULT_SHARED_SHARDS,
            namespace_prefix: String::new(),
            max_mail_size: 100 << 20,
            max_keywords: DEFAULT_MAX_KEYWORDS,
            max_mailboxes: DEFAULT_MAX_MAILBOXES,
            max_body_references: DEFAULT_MAX_BODY_REFERENCES,
            max_dict_keys: DEFAULT_MAX_DICT_KEYS,
            chunk_size: 4 << 20,
            write_in_flight: 4,
            ref_in_flight: 16,
            read_chunk: 1 << 20,
            read_in_flight: 16,
            wal_apply_threshold: 32,
            shard_bits: omap_index::names::DEFAULT_SHARD_BITS,
            max_attempts: 200,
            view_cache_mailboxes: 256,
            record_cache_records: 65_536,
            cache: crate::cache::CacheConfig::default(),
            notify: true,
            resolve_window: std::time::Duration::from_secs(30),
            delivery_window: std::time::Duration::from_secs(24 * 3600),
        }
    }
}
