//! The frame around every record: `[version: u8][crc32 of payload: u32 LE][payload]`.
//!
//! The version says how to read the payload; the crc32 (IEEE, as `crc32fast` computes it)
//! catches corruption, which is reported as [`FormatError`], never a panic.

use prost::Message;

use crate::FormatError;

/// The only frame version written today: payload is a protobuf message.
pub const VERSION: u8 = 1;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 5;

/// Frames a record.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + msg.encoded_len());
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    msg.encode(&mut out).expect("a Vec grows as needed");
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the frame and decodes the record.
pub fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated { len: bytes.len() });
    }
    if bytes[0] != VERSION {
        return Err(FormatError::UnknownVersion { version: bytes[0] });
    }
    let stored = u32::from_le_bytes(bytes[1..HEADER_LEN].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[HEADER_LEN..]);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    M::decode(&bytes[HEADER_LEN..]).map_err(|e| FormatError::Decode(e.to_string()))
}

/// Whether `bytes` is a frame of a version above [`VERSION`] whose crc32 holds: a record
/// written by a newer program, which this one must refuse but never take for damage. (A
/// value whose first byte is above the version by a bit flip or garbage fails the crc32.)
pub fn is_newer(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes[0] > VERSION
        && u32::from_le_bytes(bytes[1..HEADER_LEN].try_into().expect("4 bytes"))
            == crc32fast::hash(&bytes[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{MailRecord, WalEntry};

    #[test]
    fn round_trip_and_every_single_bit_flip_is_caught() {
        let rec = MailRecord { uid: 42, modseq: 9, keywords: vec!["$Label1".into()], ..Default::default() };
        let bytes = encode(&rec);
        assert_eq!(decode::<MailRecord>(&bytes).unwrap(), rec);
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode::<MailRecord>(&bad).is_err(), "bit {i} flipped went unnoticed");
        }
    }

    #[test]
    fn short_and_foreign_values_are_errors() {
        assert_eq!(decode::<WalEntry>(b"").unwrap_err(), FormatError::Truncated { len: 0 });
        assert_eq!(decode::<WalEntry>(b"\x07\0\0\0\0").unwrap_err(), FormatError::UnknownVersion { version: 7 });
        assert!(matches!(decode::<WalEntry>(b"\x01\0\0\0\0garbage"), Err(FormatError::Checksum { .. })));
    }
}
