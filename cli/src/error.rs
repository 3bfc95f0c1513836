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
    #[allow(dead_code)] // used by import and export
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
    /// Part of a run over many users failed (each failure was printed).
    #[error("{0}")]
    Partial(String),
    /// The cluster could not be reached (or the pool opened).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Writing the output failed (a closed pipe ends the command quietly).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Result alias of the command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rados_mail::objstore::Error> for Error {
    fn from(e: rados_mail::objstore::Error) -> Self {
        Error::Store(e.into())
    }
}
