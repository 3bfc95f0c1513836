//! The values the mail store's API takes and returns: flags, options, status, outcomes.

use omap_index::names::Guid;
use omap_index::records::{MailRecord, flags as flag_bits};

/// IMAP system flags of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u32);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// `\Seen`
    pub const SEEN: Flags = Flags(flag_bits::SEEN);
    /// `\Answered`
    pub const ANSWERED: Flags = Flags(flag_bits::ANSWERED);
    /// `\Flagged`
    pub const FLAGGED: Flags = Flags(flag_bits::FLAGGED);
    /// `\Deleted`
    pub const DELETED: Flags = Flags(flag_bits::DELETED);
    /// `\Draft`
    pub const DRAFT: Flags = Flags(flag_bits::DRAFT);

    /// From the stored bits (unknown bits are dropped).
    pub fn from_bits(bits: u32) -> Flags {
        Flags(bits & flag_bits::ALL)
    }
    /// The stored bits.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// How [`Mailbox::store`](crate::Mailbox::store) combines the given flags and keywords with the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Replace them (IMAP `FLAGS`).
    Replace,
    /// Add them (IMAP `+FLAGS`).
    Add,
    /// Remove them (IMAP `-FLAGS`).
    Remove,
}

/// Options of a new mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// Initial flags.
    pub flags: Flags,
    /// Initial keywords.
    pub keywords: Vec<String>,
    /// Received date (IMAP INTERNALDATE), Unix seconds; `None` means now.
    pub received: Option<i64>,
    /// The UID wanted (a migration keeps the UIDs it had). It is used when it is not below
    /// the mailbox's UIDNEXT at commit (nor below the UID given to the mail before it in
    /// the same call); otherwise the mail gets the next free UID, as Dovecot's own index
    /// does. `None`: the next free UID. [`u32::MAX`] and 0 are refused.
    pub uid: Option<u32>,
    /// The mail's GUID as mail servers show it, when not the new body's own (a migration
    /// keeps the GUIDs it had); kept in [`MailRecord::given_guid`].
    pub guid: Option<Guid>,
    /// The delivery this mail is (LMTP, LDA; [`crate::DeliveryKey`]): when a mail with the
    /// same key was committed to the mailbox within [`crate::Config::delivery_window`], it
    /// is not stored again and the commit reports the UID that one got
    /// ([`crate::Committed::delivered_before`]). `None`: not a delivery (or the key given
    /// to [`crate::Appender::deliver`]).
    pub delivery: Option<crate::DeliveryKey>,
}

/// How [`Mailbox::copy_to_with`](crate::Mailbox::copy_to_with) and [`Mailbox::move_to_with`](crate::Mailbox::move_to_with) make their copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// The UID wanted for each copy, one per source UID in the same order (empty: the next
    /// free UIDs). Used as [`AppendOptions::uid`] is: a wanted UID below UIDNEXT, or not
    /// above the copy given the previous one, gets the next free UID instead.
    pub uids: Vec<u32>,
    /// The copies' flags and keywords; `None`: each keeps its source's.
    pub flags: Option<(Flags, Vec<String>)>,
}

/// What [`Mailbox::update`](crate::Mailbox::update) changes in the mailbox header. Values only ever go up, except
/// the UIDVALIDITY, which may be set to anything but 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxUpdate {
    /// A new UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// UIDNEXT becomes at least this (UIDs below are never handed out then).
    pub min_uidnext: Option<u32>,
    /// HIGHESTMODSEQ becomes at least this.
    pub min_highestmodseq: Option<u64>,
}

/// Mailbox status, as IMAP STATUS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Number of mails.
    pub messages: u32,
    /// Mails without `\Seen`.
    pub unseen: u32,
    /// Next UID.
    pub uidnext: u32,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ.
    pub highestmodseq: u64,
    /// Sum of physical sizes.
    pub psize_total: u64,
    /// Sum of virtual sizes (IMAP STATUS SIZE).
    pub vsize_total: u64,
    /// Random, not 0, chosen when the mailbox was created: a mailbox created again with the
    /// same GUID has another (0 for mailboxes created by older versions).
    pub incarnation: u32,
}

/// Outcome of [`Mailbox::store`](crate::Mailbox::store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreResult {
    /// The modseq of the change (0 when nothing changed).
    pub modseq: u64,
    /// UIDs whose flags changed.
    pub changed: Vec<u32>,
    /// UIDs not changed because they were modified after `unchanged_since` (IMAP
    /// `[MODIFIED ...]`).
    pub modified: Vec<u32>,
}

/// What changed since a modseq ([`Mailbox::changes_since`](crate::Mailbox::changes_since)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The mailbox's HIGHESTMODSEQ now.
    pub highestmodseq: u64,
    /// The mailbox's UIDVALIDITY, from the same read as `highestmodseq`.
    pub uidvalidity: u32,
    /// The mailbox's UIDNEXT, from the same read: above every UID in `changed`.
    pub uidnext: u32,
    /// The mailbox's incarnation, from the same read (see [`Status::incarnation`]).
    pub incarnation: u32,
    /// The mailbox's first recent UID, from the same read, at most `uidnext`: the mails
    /// from it on are still IMAP `\Recent` (no session took them yet; see
    /// [`crate::Mailbox::take_recent`]).
    pub first_recent: u32,
    /// Names in the mailbox's keyword table, from the same read (its distinct keywords,
    /// counted against [`crate::Config::max_keywords`]).
    pub keywords: usize,
    /// Current records of mails added or changed since, by UID.
    pub changed: Vec<MailRecord>,
    /// UIDs expunged since.
    pub expunged: Vec<u32>,
}

/// What the mailbox list says about one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// Full name, levels separated by '/' (INBOX spelled "INBOX").
    pub name: String,
    /// The mailbox GUID; names the mailbox's objects and survives renames.
    pub guid: Guid,
    /// IMAP UIDVALIDITY: unique among all mailboxes the user ever had, and larger than that
    /// of any mailbox created before. Survives renames.
    pub uidvalidity: u32,
    /// Special-use attributes (RFC 6154) in canonical spelling, like `\Sent`.
    pub special_use: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}
