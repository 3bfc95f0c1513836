//! The error type of the mail store.

use omap_index::FormatError;

/// What went wrong in a mail-store call.
///
/// [`Error::Unavailable`] is temporary (the cluster is down or slow: answer "try again
/// later", LMTP 4xx); everything else is permanent for the same input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A user, mailbox or mail does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A mailbox (or other named thing) already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Concurrent changes kept winning for longer than the retry budget; retry later.
    #[error("too much contention on {0}; try again")]
    Conflict(String),
    /// Stored data failed its integrity check.
    #[error("corrupted data in object {object:?}{}: {detail}", key.as_ref().map(|k| format!(" key {k:?}")).unwrap_or_default())]
    Corrupted {
        /// Object name.
        object: String,
        /// Omap key, when the corruption is in one.
        key: Option<String>,
        /// What was wrong.
        detail: String,
    },
    /// A mail or request above a configured limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A change would give a mailbox more distinct keywords than its limit
    /// ([`crate::Config::max_keywords`]); nothing of it was applied.
    #[error("too many keywords in mailbox {mailbox}: at most {limit} distinct keywords")]
    KeywordLimit {
        /// The mailbox's name.
        mailbox: String,
        /// The limit.
        limit: usize,
    },
    /// Bad input: an invalid mailbox or user name, a malformed request.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The cluster cannot be reached or did not answer in time. Temporary.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Reading a mail's data from the caller failed.
    #[error("reading input: {0}")]
    Input(String),
    /// Any other storage error.
    #[error("storage error: {0}")]
    Store(objstore::Error),
    /// The pool was written by a newer rados-mail: its format record (`docs/FORMAT.md`,
    /// "Layout and format versions") has a version, or a field that matters, this build
    /// does not know. Permanent: upgrade rados-mail. Never reported as [`Error::Corrupted`].
    #[error("{}", unsupported_message(pool, namespace, *version, detail))]
    UnsupportedFormat {
        /// The index pool.
        pool: String,
        /// The namespace of the format record.
        namespace: String,
        /// The version found (0: the record's frame itself is newer).
        version: u32,
        /// What else this build does not know, if anything (an unknown field).
        detail: String,
    },
}

fn unsupported_message(pool: &str, namespace: &str, version: u32, detail: &str) -> String {
    let what = match (version, detail.is_empty()) {
        (0, _) => format!("a rados-mail format record of a newer kind ({detail})"),
        (v, true) => format!("rados-mail format version {v}"),
        (v, false) => format!("rados-mail format version {v} with {detail}"),
    };
    format!(
        "pool {pool} (namespace {namespace}) has {what}; this rados-mail {} reads versions {}: upgrade rados-mail",
        env!("CARGO_PKG_VERSION"),
        crate::layout::known_versions()
    )
}

impl Error {
    /// True when the failure is temporary: the caller should answer "try again later".
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Conflict(_))
    }

    /// A corruption found while decoding `key` of `object`.
    pub(crate) fn corrupted(object: &str, key: &str, e: FormatError) -> Error {
        Error::Corrupted { object: object.into(), key: Some(key.into()), detail: e.to_string() }
    }
}

impl From<objstore::Error> for Error {
    fn from(e: objstore::Error) -> Self {
        match e {
            objstore::Error::NotFound { object } => Error::NotFound(format!("object {object}")),
            objstore::Error::AlreadyExists { object } => Error::AlreadyExists(format!("object {object}")),
            objstore::Error::Unavailable(m) => Error::Unavailable(m),
            objstore::Error::TooLarge(m) => Error::TooLarge(m),
            objstore::Error::InvalidInput(m) => Error::InvalidInput(m),
            objstore::Error::Corrupted { object, detail } => Error::Corrupted { object, key: None, detail },
            other => Error::Store(other),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
