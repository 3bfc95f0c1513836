//! The one error type of the `rados-mail` command.

use std::path::PathBuf;

/// What went wrong in a command.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mail store failed (the library's error, with its object and key).
    #[error(transparent)]
    Store(#[from] rados_mail::Error),
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The command line or a file given on it is not usable.
    #[error("{0}")]
    Usage(String),
}

/// Result alias of the command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
