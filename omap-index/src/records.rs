//! The records stored as omap values, as protobuf messages (prost).
//!
//! Field numbers are part of the on-RADOS format: never reuse or renumber one; add new
//! fields with new numbers (old readers skip them).

/// System flags, as bits of [`MailRecord::flags`].
pub mod flags {
    /// `\Seen`
    pub const SEEN: u32 = 1;
    /// `\Answered`
    pub const ANSWERED: u32 = 2;
    /// `\Flagged`
    pub const FLAGGED: u32 = 4;
    /// `\Deleted`
    pub const DELETED: u32 = 8;
    /// `\Draft`
    pub const DRAFT: u32 = 16;
    /// Every defined bit.
    pub const ALL: u32 = SEEN | ANSWERED | FLAGGED | DELETED | DRAFT;
}

/// The index record of one mail in one mailbox (omap `r/<uid>` of a shard object, and
/// inside WAL entries).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct MailRecord {
    /// IMAP UID in its mailbox.
    #[prost(uint32, tag = "1")]
    pub uid: u32,
    /// GUID of the mail body object (`mail.<guid>`), 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub mail_guid: Vec<u8>,
    /// This record's reference on the body object (omap `ref/<mailbox>/<instance>`).
    #[prost(uint64, tag = "3")]
    pub instance: u64,
    /// System flags, see [`flags`].
    #[prost(uint32, tag = "4")]
    pub flags: u32,
    /// Keywords, sorted, without duplicates.
    #[prost(string, repeated, tag = "5")]
    pub keywords: Vec<String>,
    /// Modification sequence of the last change (RFC 7162).
    #[prost(uint64, tag = "6")]
    pub modseq: u64,
    /// Physical size: bytes as stored.
    #[prost(uint64, tag = "7")]
    pub psize: u64,
    /// Virtual size: bytes with every line ending as CRLF (IMAP RFC822.SIZE).
    #[prost(uint64, tag = "8")]
    pub vsize: u64,
    /// Length of the header, including the empty line that ends it.
    #[prost(uint64, tag = "9")]
    pub hdr_len: u64,
    /// Received date (IMAP INTERNALDATE), seconds since the Unix epoch.
    #[prost(int64, tag = "10")]
    pub received: i64,
    /// When it was saved into this mailbox, seconds since the Unix epoch.
    #[prost(int64, tag = "11")]
    pub saved: i64,
    /// crc32 of the body.
    #[prost(uint32, tag = "12")]
    pub crc32: u32,
    /// Bytes per body object: the body spans `ceil(psize / chunk_size)` objects
    /// (`mail.<guid>`, then `mail.<guid>.0001`, ...); 0 means one object.
    #[prost(uint64, tag = "13")]
    pub chunk_size: u64,
    /// The mail's GUID when the saver gave one (a migration keeps the GUIDs it had), 16
    /// bytes; empty when it is the body's, [`MailRecord::mail_guid`]. Copies keep it. See
    /// [`MailRecord::guid`].
    #[prost(bytes = "vec", tag = "14")]
    pub given_guid: Vec<u8>,
    /// The mail's physical size when the stored bytes are not the mail itself but what a
    /// mail plugin made of it (Dovecot's `mail_crypt` encrypts, `zlib` compresses): then
    /// [`MailRecord::psize`] counts the stored bytes (what the body objects hold),
    /// [`MailRecord::vsize`] and [`MailRecord::hdr_len`] describe the mail as the plugin
    /// gave it (offsets of the plain mail, not of the stored bytes), and this is the size a
    /// mail server reports. Absent for a body stored as given. See
    /// [`MailRecord::mail_psize`].
    #[prost(uint64, optional, tag = "15")]
    pub plain_psize: Option<u64>,
}

impl MailRecord {
    /// The mail's physical size as a mail server reports it:
    /// [`MailRecord::plain_psize`] for a transformed body, else [`MailRecord::psize`].
    pub fn mail_psize(&self) -> u64 {
        self.plain_psize.unwrap_or(self.psize)
    }

    /// Whether the stored bytes are a mail plugin's transform of the mail (see
    /// [`MailRecord::plain_psize`]): byte ranges of the body are then not ranges of the mail.
    pub fn is_transformed(&self) -> bool {
        self.plain_psize.is_some()
    }

    /// The mail's GUID as mail servers show it: [`MailRecord::given_guid`] when set, else
    /// the body's [`MailRecord::mail_guid`].
    pub fn guid(&self) -> &[u8] {
        if self.given_guid.is_empty() { &self.mail_guid } else { &self.given_guid }
    }
}

/// The header of a mailbox (omap `hdr` of its head object). Every change to the mailbox
/// replaces it under an `omap_cmp` guard on its previous bytes: this one value orders all
/// changes, and allocates UIDs and modseqs.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MailboxHeader {
    /// GUID of the mailbox, 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub guid: Vec<u8>,
    /// IMAP UIDVALIDITY.
    #[prost(uint32, tag = "2")]
    pub uidvalidity: u32,
    /// Next UID to assign.
    #[prost(uint32, tag = "3")]
    pub uidnext: u32,
    /// Modseq of the last change; the next change gets `highestmodseq + 1`.
    #[prost(uint64, tag = "4")]
    pub highestmodseq: u64,
    /// Number of mails.
    #[prost(uint32, tag = "5")]
    pub messages: u32,
    /// Sum of physical sizes.
    #[prost(uint64, tag = "6")]
    pub psize_total: u64,
    /// Sum of virtual sizes.
    #[prost(uint64, tag = "7")]
    pub vsize_total: u64,
    /// UIDs per shard are `1 << shard_bits`; fixed at creation.
    #[prost(uint32, tag = "8")]
    pub shard_bits: u32,
    /// Random, not 0, chosen at creation: tells a mailbox apart from an earlier one that had
    /// the same GUID (deleted, then created again with that GUID). 0 in headers written
    /// before this field existed.
    #[prost(uint32, tag = "9")]
    pub incarnation: u32,
    /// The mailbox's keyword table: every keyword name on one of its mails, in the order
    /// of first use (it may also hold names no mail has any more, until a commit that
    /// would exceed the keyword limit, or removes keywords from a mailbox at its limit,
    /// recomputes it from the records). Bounds the number of distinct keywords of a
    /// mailbox (`max_keywords`). Empty in headers written before this field existed.
    #[prost(string, repeated, tag = "10")]
    pub keywords: Vec<String>,
}

/// One change to one mail, inside a [`WalEntry`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Change {
    /// The mail's UID.
    #[prost(uint32, tag = "1")]
    pub uid: u32,
    /// The modseq the record had before (0 for a new mail); its modseq-index key goes.
    #[prost(uint64, tag = "2")]
    pub prev_modseq: u64,
    /// The record after the change; absent for an expunge.
    #[prost(message, optional, tag = "3")]
    pub record: Option<MailRecord>,
}

/// One committed change set of a mailbox (omap `w/<modseq>` of its head object), written
/// in the same atomic operation as the header that allocated its modseq.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WalEntry {
    /// The modseq of every change in the entry.
    #[prost(uint64, tag = "1")]
    pub modseq: u64,
    /// Changes, by UID.
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<Change>,
}

/// A mailbox in a user's mailbox list (omap `mbox/<name>` of the `mailboxes` object).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MailboxEntry {
    /// GUID of the mailbox, 16 bytes; names its head object.
    #[prost(bytes = "vec", tag = "1")]
    pub guid: Vec<u8>,
    /// IMAP UIDVALIDITY (also in the header; here for listing without opening).
    #[prost(uint32, tag = "2")]
    pub uidvalidity: u32,
    /// Special-use attributes (RFC 6154), like `\Sent`.
    #[prost(string, repeated, tag = "3")]
    pub special_use: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    #[prost(int64, tag = "4")]
    pub created: i64,
}

/// Per-user counters (omap `counters` of the `mailboxes` object).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ListCounters {
    /// The last UIDVALIDITY handed out in this namespace; the next is larger.
    #[prost(uint32, tag = "1")]
    pub last_uidvalidity: u32,
}

/// The mark of a committed delivery (omap `dlv/<bucket>/<key>` of a mailbox head): the
/// UID the delivery got. A later save with the same delivery key finds it and reports this
/// UID instead of storing the mail again (`docs/FORMAT.md`, "Delivery keys").
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeliveryMark {
    /// The UID the delivered mail got.
    #[prost(uint32, tag = "1")]
    pub uid: u32,
    /// When the delivery was committed, seconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub saved: i64,
}
