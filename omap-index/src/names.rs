//! Object names and namespaces.
//!
//! Every user has a RADOS namespace of their own (`<prefix><user>`); all of the user's
//! objects live there, so one cephx cap (`osd 'allow rw pool=mail namespace=<ns>'`) confines
//! a client to one user.

use std::fmt;

use crate::FormatError;

/// The mailbox list of a user.
pub const MAILBOX_LIST: &str = "mailboxes";

/// Default `shard_bits`: 32,768 UIDs per shard object, so a shard holds at most 65,537 omap
/// keys (two per UID plus `applied`), well under Ceph's 200,000-key warning.
pub const DEFAULT_SHARD_BITS: u32 = 15;

/// A 16-byte GUID (mailbox or mail), written as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From stored bytes; errors unless exactly 16.
    pub fn from_slice(bytes: &[u8]) -> Result<Guid, FormatError> {
        let arr: [u8; 16] =
            bytes.try_into().map_err(|_| FormatError::Decode(format!("guid of {} bytes", bytes.len())))?;
        Ok(Guid(arr))
    }

    /// From 32 lower-case hex digits, as [`Display`](fmt::Display) writes them; upper
    /// case, signs and other lengths are errors.
    pub fn parse(hex: &str) -> Result<Guid, FormatError> {
        let bad = || FormatError::Key(hex.to_string());
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            let digits = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *b = crate::keys::canonical_hex(digits, 2).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad)?;
        }
        Ok(Guid(out))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// The head object of a mailbox: header, WAL tail, trim mark.
pub fn mailbox_head(mailbox: &Guid) -> String {
    format!("mbox.{mailbox}")
}

/// Shard `n` of a mailbox index: records of UIDs `n << shard_bits ..`.
pub fn mailbox_shard(mailbox: &Guid, shard: u32) -> String {
    format!("mbox.{mailbox}.{shard:04x}")
}

/// The shard that holds `uid`.
pub fn shard_of(uid: u32, shard_bits: u32) -> u32 {
    uid >> shard_bits
}

/// The body object of a mail.
pub fn mail(mail: &Guid) -> String {
    format!("mail.{mail}")
}

/// Chunk `n` (1, 2, ...) of a body larger than one chunk; chunk 0 is [`mail`] itself.
pub fn mail_chunk(mail: &Guid, n: u64) -> String {
    format!("mail.{mail}.{n:04x}")
}

/// The object holding chunk `n` of a body (`n = 0` is the body object itself).
pub fn mail_part(mail_guid: &Guid, n: u64) -> String {
    if n == 0 { self::mail(mail_guid) } else { mail_chunk(mail_guid, n) }
}

/// The namespace of a user.
pub fn user_namespace(prefix: &str, user: &str) -> String {
    format!("{prefix}{user}")
}

/// Xattrs of a mail body object. Values are ASCII (decimal numbers, hex GUIDs and crc),
/// so that `rados getxattr` shows them as they are.
pub mod xattr {
    /// Format version of the mail object ("1").
    pub const VERSION: &str = "rm.v";
    /// The mail GUID (32 hex).
    pub const GUID: &str = "rm.guid";
    /// GUID of the mailbox it was first saved into (32 hex).
    pub const MAILBOX: &str = "rm.mbox";
    /// Received date, Unix seconds.
    pub const RECEIVED: &str = "rm.received";
    /// Save date, Unix seconds.
    pub const SAVED: &str = "rm.saved";
    /// Physical size (bytes as stored).
    pub const PSIZE: &str = "rm.psize";
    /// Virtual size (CRLF line endings).
    pub const VSIZE: &str = "rm.vsize";
    /// Header length.
    pub const HDR_LEN: &str = "rm.hdrlen";
    /// crc32 of the body (8 hex).
    pub const CRC32: &str = "rm.crc32";
    /// Bytes per body object (decimal).
    pub const CHUNK_SIZE: &str = "rm.chunksize";
    /// Number of objects the body spans (decimal; 1 for most mails).
    pub const CHUNKS: &str = "rm.chunks";
    /// The mail's physical size (decimal) when the stored bytes are a mail plugin's
    /// transform of it (`mail_crypt`, `zlib`); absent otherwise. `rm.vsize` and
    /// `rm.hdrlen` then describe the plain mail, `rm.psize` the stored bytes.
    pub const PLAIN_PSIZE: &str = "rm.plainpsize";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_hex_round_trip() {
        let g = Guid([0xab; 16]);
        assert_eq!(g.to_string(), "ab".repeat(16));
        assert_eq!(Guid::parse(&g.to_string()).unwrap(), g);
        assert!(Guid::parse("xyz").is_err());
        assert!(Guid::parse(&"g".repeat(32)).is_err());
        // Issue 13: only the canonical (lower-case) spelling parses.
        assert!(Guid::parse(&"AB".repeat(16)).is_err(), "upper case");
        assert!(Guid::parse(&format!("+b{}", "ab".repeat(15))).is_err(), "sign");
        assert!(Guid::parse(&"ab".repeat(17)).is_err(), "34 digits");
        assert!(Guid::parse(&format!("é{}", "a".repeat(30))).is_err(), "not ASCII");
        assert_eq!(mailbox_shard(&g, 3), format!("mbox.{}.0003", "ab".repeat(16)));
        assert_eq!(shard_of(32_767, DEFAULT_SHARD_BITS), 0);
        assert_eq!(shard_of(32_768, DEFAULT_SHARD_BITS), 1);
    }
}
