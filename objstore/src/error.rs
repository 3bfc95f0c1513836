//! The error type of the object-store layer.

/// What went wrong in an object-store call.
///
/// Variants are chosen so that a caller can act on them: retry a [`Error::Conflict`],
/// answer "try again later" on [`Error::Unavailable`], report [`Error::Corrupted`] to an
/// operator. Backends map their native errors (librados errnos) onto these variants; the
/// conformance suite asserts that both backends produce the same variant for the same
/// situation.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The object does not exist (librados `-ENOENT`).
    #[error("object {object:?} not found")]
    NotFound {
        /// Object name.
        object: String,
    },
    /// The xattr does not exist on an existing object (librados `-ENODATA`).
    #[error("xattr {name:?} not found on object {object:?}")]
    XattrNotFound {
        /// Object name.
        object: String,
        /// Attribute name.
        name: String,
    },
    /// An exclusive create found the object already there (librados `-EEXIST`).
    #[error("object {object:?} already exists")]
    AlreadyExists {
        /// Object name.
        object: String,
    },
    /// A guard of a compound operation failed (version, omap or xattr comparison); nothing
    /// was applied. Re-read and retry.
    #[error("guard failed on object {object:?}: {reason}")]
    Conflict {
        /// Object name.
        object: String,
        /// Which kind of guard failed, as far as the backend can tell.
        reason: String,
    },
    /// The caller passed something the store cannot accept (a NUL byte in a name, an empty
    /// object name, an unsupported comparison).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request is larger than the store accepts (librados `-EFBIG`, `-E2BIG`).
    #[error("too large: {0}")]
    TooLarge(String),
    /// Stored data failed an integrity check.
    #[error("corrupted data in object {object:?}: {detail}")]
    Corrupted {
        /// Object name.
        object: String,
        /// What was wrong.
        detail: String,
    },
    /// The pool cannot do this kind of operation at all: an erasure-coded pool has no omap
    /// and writes whole objects only (librados `-EOPNOTSUPP`). Permanent for that pool.
    #[error(
        "{op} is not supported by the pool of object {object:?} (an erasure-coded pool has no omap and writes whole objects only)"
    )]
    Unsupported {
        /// Object name.
        object: String,
        /// The operation refused.
        op: String,
    },
    /// The cluster cannot be reached or did not answer in time. Temporary: retry later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// Any other error reported by librados, with its (positive) errno.
    #[error("rados error {errno} ({}) during {context}", errno_name(*.errno))]
    Rados {
        /// The positive errno value.
        errno: i32,
        /// What was being done.
        context: String,
    },
}

impl Error {
    /// True for errors that say "temporary, try again later".
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// True when a retry after re-reading state may succeed (a failed guard).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

/// A short name for the errnos librados commonly returns.
fn errno_name(errno: i32) -> &'static str {
    match errno {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        12 => "ENOMEM",
        13 => "EACCES",
        17 => "EEXIST",
        22 => "EINVAL",
        27 => "EFBIG",
        28 => "ENOSPC",
        34 => "ERANGE",
        61 => "ENODATA",
        75 => "EOVERFLOW",
        95 => "EOPNOTSUPP",
        107 => "ENOTCONN",
        108 => "ESHUTDOWN",
        110 => "ETIMEDOUT",
        122 => "EDQUOT",
        125 => "ECANCELED",
        _ => "errno",
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
