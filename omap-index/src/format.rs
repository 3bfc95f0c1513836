//! The pool format record: which layout a deployment's pools use (`docs/FORMAT.md`,
//! "Layout and format versions").
//!
//! One framed [`PoolFormat`] under omap key [`FORMAT_KEY`] of object [`FORMAT_OBJECT`] in
//! the shared namespace (`.shared`, or `<prefix>/.shared`) of the index pool. Every process
//! reads it before it touches a user's data, and refuses a version it does not know with a
//! clear message instead of misreading the pool.

use crate::FormatError;
use crate::frame;

/// The object holding the record, in the shared namespace of the index pool.
pub const FORMAT_OBJECT: &str = "format";

/// The omap key of the record on [`FORMAT_OBJECT`].
pub const FORMAT_KEY: &str = "format";

/// Version 1: bodies in the index pool, references as omap `ref/` keys on a body's first
/// object, the shared dict in one object. The layout of every pool written before the
/// record existed.
pub const V1: u32 = 1;

/// Version 2: bodies in [`PoolFormat::data_pool`] (which may be erasure-coded: no omap on
/// it), references as xattrs `rm.ref.<mailbox>.<instance>` on a body's first object, the
/// shared dict over [`PoolFormat::dict_shards`] objects.
pub const V2: u32 = 2;

/// The versions this build reads and writes, in order.
pub const KNOWN_VERSIONS: [u32; 2] = [V1, V2];

/// Fields below this number change how a pool must be read: a reader that meets one it
/// does not know refuses the pool (as it refuses an unknown version). Fields from this
/// number on are hints an older reader may skip.
pub const FIRST_OPTIONAL_FIELD: u32 = 100;

/// The fields of [`PoolFormat`] this build knows (all below [`FIRST_OPTIONAL_FIELD`]).
const KNOWN_FIELDS: [u32; 4] = [1, 2, 3, 4];

/// The layout of a deployment (omap [`FORMAT_KEY`] of [`FORMAT_OBJECT`]).
///
/// Field numbers are the format: never reuse or renumber one.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PoolFormat {
    /// The layout version: [`V1`] or [`V2`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The pool holding mail bodies; empty: the index pool itself.
    #[prost(string, tag = "2")]
    pub data_pool: String,
    /// Objects the shared dict is spread over; 0: one object (`dict`), as in v1.
    #[prost(uint32, tag = "3")]
    pub dict_shards: u32,
    /// Set while `rados-mail migrate` moves the pool to the v2 layout: readers also look
    /// in the v1 places (bodies in the index pool, omap references).
    #[prost(bool, tag = "4")]
    pub migrating: bool,
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatProblem {
    /// The record is damaged (frame, crc32 or protobuf): report it as corruption.
    Damaged(FormatError),
    /// The record was written by a newer rados-mail: a version above [`V2`], a newer
    /// frame, or a field this build must understand and does not. Refuse, never repair.
    Newer {
        /// The version found (0 when the frame itself is newer and cannot be read).
        version: u32,
        /// What makes it unreadable, for the message.
        detail: String,
    },
}

/// Frames a record.
pub fn encode(format: &PoolFormat) -> Vec<u8> {
    frame::encode(format)
}

/// Decodes a stored record and checks that this build can use it.
pub fn decode(bytes: &[u8]) -> Result<PoolFormat, FormatProblem> {
    if frame::is_newer(bytes) {
        return Err(FormatProblem::Newer { version: 0, detail: format!("record frame version {}", bytes[0]) });
    }
    let format: PoolFormat = frame::decode(bytes).map_err(FormatProblem::Damaged)?;
    if !KNOWN_VERSIONS.contains(&format.version) {
        if format.version > V2 {
            return Err(FormatProblem::Newer { version: format.version, detail: String::new() });
        }
        return Err(FormatProblem::Damaged(FormatError::Decode(format!("pool format version {}", format.version))));
    }
    // The frame's crc32 held and the payload decoded, so walking its tags cannot fail.
    if let Some(field) = unknown_required_field(&bytes[frame::HEADER_LEN..]) {
        return Err(FormatProblem::Newer {
            version: format.version,
            detail: format!("field {field}, which this build does not know"),
        });
    }
    Ok(format)
}

/// The first field number below [`FIRST_OPTIONAL_FIELD`] in a protobuf payload that
/// [`PoolFormat`] does not define (prost skips unknown fields silently).
fn unknown_required_field(mut payload: &[u8]) -> Option<u32> {
    while !payload.is_empty() {
        let key = varint(&mut payload)?;
        let field = u32::try_from(key >> 3).ok()?;
        if field < FIRST_OPTIONAL_FIELD && !KNOWN_FIELDS.contains(&field) {
            return Some(field);
        }
        match key & 7 {
            0 => {
                varint(&mut payload)?;
            }
            1 => payload = payload.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut payload)?).ok()?;
                payload = payload.get(len..)?;
            }
            5 => payload = payload.get(4..)?,
            _ => return None,
        }
    }
    None
}

/// Reads one protobuf varint off the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = PoolFormat { version: V2, data_pool: "mail-ec".into(), dict_shards: 64, migrating: true };
        assert_eq!(decode(&encode(&f)).unwrap(), f);
        let v1 = PoolFormat { version: V1, ..Default::default() };
        assert_eq!(decode(&encode(&v1)).unwrap(), v1);
    }

    #[test]
    fn newer_versions_are_refused_not_damage() {
        let v3 = PoolFormat { version: 3, ..Default::default() };
        assert_eq!(decode(&encode(&v3)), Err(FormatProblem::Newer { version: 3, detail: String::new() }));
        // A newer frame with a valid crc32.
        let mut newer = encode(&PoolFormat { version: V2, ..Default::default() });
        newer[0] = 2;
        assert!(matches!(decode(&newer), Err(FormatProblem::Newer { version: 0, .. })));
    }

    /// A v2 record with a field 5 (a newer build's layout detail) and one with a field 100
    /// (an optional hint): the first is refused, the second read.
    #[test]
    fn unknown_fields_below_100_are_refused() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Newer {
            #[prost(uint32, tag = "1")]
            version: u32,
            #[prost(string, tag = "2")]
            data_pool: String,
            #[prost(bytes = "vec", tag = "5")]
            five: Vec<u8>,
            #[prost(uint64, tag = "100")]
            hint: u64,
        }
        let required = Newer { version: V2, data_pool: "d".into(), five: b"x".to_vec(), hint: 0 };
        let problem = decode(&frame::encode(&required)).unwrap_err();
        assert!(matches!(&problem, FormatProblem::Newer { version: 2, detail } if detail.contains("field 5")));
        let hint = Newer { version: V2, data_pool: "d".into(), five: Vec::new(), hint: 7 };
        let read = decode(&frame::encode(&hint)).unwrap();
        assert_eq!(read.data_pool, "d");
    }

    #[test]
    fn damage_is_damage() {
        let mut bytes = encode(&PoolFormat { version: V2, ..Default::default() });
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(decode(&bytes), Err(FormatProblem::Damaged(FormatError::Checksum { .. }))));
        assert!(matches!(decode(b"xy"), Err(FormatProblem::Damaged(FormatError::Truncated { .. }))));
        let v0 = PoolFormat::default();
        assert!(matches!(decode(&encode(&v0)), Err(FormatProblem::Damaged(_))));
    }
}
