//! The error type of the format layer.

/// A stored value that cannot be decoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The value is shorter than its frame.
    #[error("record truncated: {len} bytes")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// The frame names a format version this code does not know.
    #[error("unknown record format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The crc32 of the payload does not match the one stored with it.
    #[error("record checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    Checksum {
        /// The crc32 in the frame.
        stored: u32,
        /// The crc32 of the payload as read.
        computed: u32,
    },
    /// The payload is not a valid record.
    #[error("record does not decode: {0}")]
    Decode(String),
    /// A key or name does not follow the layout.
    #[error("malformed key {0:?}")]
    Key(String),
    /// A user name or namespace prefix that cannot be mapped to a RADOS namespace (see
    /// [`crate::names::user_namespace`]). Permanent: the same name never works.
    #[error("{0}")]
    Name(String),
}
