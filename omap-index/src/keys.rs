//! Omap keys. Numbers in keys are fixed-width lower-case hex, so that key order is numeric
//! order and RADOS' bytewise comparisons (`omap_cmp` Lt/Gt) order them correctly.
//!
//! The parsers accept exactly what the writers here produce (the canonical spelling): no
//! upper-case digit, no sign, no other width. `parse(s) == Ok(x)` implies `format(x) == s`,
//! so a key never has two spellings that name the same number but sort apart.

use crate::FormatError;

/// Head object: the [`MailboxHeader`](crate::records::MailboxHeader).
pub const HDR: &str = "hdr";
/// Head object: WAL entries up to this modseq (16 hex) were applied and removed.
pub const TRIM: &str = "trim";
/// Head object: prefix of WAL entries.
pub const WAL: &str = "w/";
/// Head object: the mailbox's first recent UID (8 hex): the UIDs from it on are still
/// IMAP `\Recent` for the next session that takes them. Absent: 1 (every mail is).
pub const RECENT: &str = "recent";
/// Head: prefix of what a head rebuild found damaged and could not apply (`damaged/w/<modseq>`:
/// the bytes of a lost WAL entry), kept until `repair` has moved what it can to `lost+found`.
pub const DAMAGED: &str = "damaged/";
/// Head: prefix of delivery marks (`dlv/<bucket 8 hex>/<delivery key 32 hex>`, value a
/// [`DeliveryMark`](crate::records::DeliveryMark)): a delivery with this key was committed
/// in this bucket of [`DELIVERY_BUCKET_SECS`] seconds; kept for a bounded window so that a
/// sender's retry of the same delivery is stored once (`docs/FORMAT.md`, "Delivery keys").
pub const DELIVERY: &str = "dlv/";
/// Seconds per bucket of [`DELIVERY`] marks (4 hours).
pub const DELIVERY_BUCKET_SECS: i64 = 4 * 3600;
/// Shard object: WAL entries up to this modseq (16 hex) are applied to this shard.
pub const APPLIED: &str = "applied";
/// Shard object: prefix of mail records.
pub const RECORD: &str = "r/";
/// Shard object: prefix of the modseq index (`m/<modseq>/<uid>`, empty value).
pub const MODSEQ: &str = "m/";
/// Shard object: prefix of expunge tombstones (`x/<modseq>/<uid>`, empty value).
pub const EXPUNGED: &str = "x/";
/// Mailbox list: prefix of mailboxes (`mbox/<name>`).
pub const MAILBOX: &str = "mbox/";
/// Mailbox list: prefix of the GUID → name map (`guid/<32 hex>`, value the name).
pub const MAILBOX_GUID: &str = "guid/";
/// Mailbox list: prefix of subscriptions (`sub/<name>`, empty value).
pub const SUBSCRIPTION: &str = "sub/";
/// Mailbox list: the [`ListCounters`](crate::records::ListCounters).
pub const COUNTERS: &str = "counters";
/// Mail object: prefix of references (`ref/<mailbox guid>/<instance 16 hex>`).
pub const REFERENCE: &str = "ref/";

/// The number written as exactly `width` lower-case hex digits in `text`; `None` for
/// anything else (`from_str_radix` alone also takes upper case and a leading `+`).
pub(crate) fn canonical_hex(text: &str, width: usize) -> Option<u64> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if width > 16 || text.len() != width || !text.bytes().all(lower_hex) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// `text` as exactly 8 lower-case hex digits.
fn canonical_hex32(text: &str) -> Option<u32> {
    canonical_hex(text, 8).and_then(|n| u32::try_from(n).ok())
}

/// A modseq as 16 hex digits (the value of [`TRIM`] and [`APPLIED`]).
pub fn hex64(n: u64) -> String {
    format!("{n:016x}")
}

/// Parses [`hex64`]: exactly 16 lower-case hex digits.
pub fn parse_hex64(s: &[u8]) -> Result<u64, FormatError> {
    let text = std::str::from_utf8(s).map_err(|_| FormatError::Key(String::from_utf8_lossy(s).into_owned()))?;
    canonical_hex(text, 16).ok_or_else(|| FormatError::Key(text.into()))
}

/// A UID as 8 hex digits (the value of [`RECENT`]).
pub fn hex32(n: u32) -> String {
    format!("{n:08x}")
}

/// Parses [`hex32`]: exactly 8 lower-case hex digits.
pub fn parse_hex32(s: &[u8]) -> Result<u32, FormatError> {
    let text = std::str::from_utf8(s).map_err(|_| FormatError::Key(String::from_utf8_lossy(s).into_owned()))?;
    canonical_hex32(text).ok_or_else(|| FormatError::Key(text.into()))
}

/// `w/<modseq>`.
pub fn wal(modseq: u64) -> String {
    format!("{WAL}{modseq:016x}")
}

/// `r/<uid>`.
pub fn record(uid: u32) -> String {
    format!("{RECORD}{uid:08x}")
}

/// `m/<modseq>/<uid>`.
pub fn modseq_index(modseq: u64, uid: u32) -> String {
    format!("{MODSEQ}{modseq:016x}/{uid:08x}")
}

/// `x/<modseq>/<uid>`.
pub fn tombstone(modseq: u64, uid: u32) -> String {
    format!("{EXPUNGED}{modseq:016x}/{uid:08x}")
}

/// The key after which every `m/` (or `x/`) key has a modseq above `modseq`.
pub fn after_modseq(prefix: &str, modseq: u64) -> String {
    format!("{prefix}{modseq:016x}/ffffffff")
}

/// Parses `m/<modseq>/<uid>` or `x/<modseq>/<uid>` (as [`modseq_index`] and
/// [`tombstone`] write them) into `(modseq, uid)`.
pub fn parse_indexed(key: &str) -> Result<(u64, u32), FormatError> {
    let bad = || FormatError::Key(key.to_string());
    let rest = key.strip_prefix(MODSEQ).or_else(|| key.strip_prefix(EXPUNGED)).ok_or_else(bad)?;
    let (m, u) = rest.split_once('/').ok_or_else(bad)?;
    Ok((canonical_hex(m, 16).ok_or_else(bad)?, canonical_hex32(u).ok_or_else(bad)?))
}

/// Parses `r/<uid>` (as [`record`] writes it).
pub fn parse_record(key: &str) -> Result<u32, FormatError> {
    key.strip_prefix(RECORD).and_then(canonical_hex32).ok_or_else(|| FormatError::Key(key.into()))
}

/// `mbox/<name>`.
pub fn mailbox(name: &str) -> String {
    format!("{MAILBOX}{name}")
}

/// `guid/<guid>`.
pub fn mailbox_guid(guid: &crate::names::Guid) -> String {
    format!("{MAILBOX_GUID}{guid}")
}

/// `sub/<name>`.
pub fn subscription(name: &str) -> String {
    format!("{SUBSCRIPTION}{name}")
}

/// `ref/<mailbox guid>/<instance>`.
pub fn reference(mailbox: &crate::names::Guid, instance: u64) -> String {
    format!("{REFERENCE}{mailbox}/{instance:016x}")
}

/// The mailbox and instance of a [`reference()`] key (strictly as it writes them).
pub fn parse_reference(key: &str) -> Option<(crate::names::Guid, u64)> {
    let (mailbox, instance) = key.strip_prefix(REFERENCE)?.split_once('/')?;
    Some((crate::names::Guid::parse(mailbox).ok()?, canonical_hex(instance, 16)?))
}

/// The [`DELIVERY`] bucket of a time, Unix seconds (times before 1970 are bucket 0).
pub fn delivery_bucket(unix_secs: i64) -> u32 {
    u32::try_from(unix_secs.max(0) / DELIVERY_BUCKET_SECS).unwrap_or(u32::MAX)
}

/// `dlv/<bucket>/<key>`: the mark of a delivery with `key` committed in `bucket`.
pub fn delivery(bucket: u32, key: &[u8; 16]) -> String {
    let mut s = format!("{DELIVERY}{bucket:08x}/");
    for b in key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses `dlv/<bucket>/<key>` (as [`delivery`] writes it: 8 and 32 lower-case hex
/// digits) into the bucket and the delivery key.
pub fn parse_delivery(key: &str) -> Result<(u32, [u8; 16]), FormatError> {
    let bad = || FormatError::Key(key.to_string());
    let (bucket, hex) = key.strip_prefix(DELIVERY).and_then(|r| r.split_once('/')).ok_or_else(bad)?;
    let bucket = canonical_hex32(bucket).ok_or_else(bad)?;
    // ASCII first: the slices below must fall on character boundaries.
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::try_from(canonical_hex(&hex[2 * i..2 * i + 2], 2).ok_or_else(bad)?).map_err(|_| bad())?;
    }
    Ok((bucket, out))
}

/// `dlv/<bucket>/`: every mark of buckets below `bucket` sorts below this key.
pub fn delivery_bucket_start(bucket: u32) -> String {
    format!("{DELIVERY}{bucket:08x}/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_order_is_numeric_order(a in any::<u64>(), b in any::<u64>(), u in any::<u32>(), v in any::<u32>()) {
            prop_assert_eq!(wal(a).cmp(&wal(b)), a.cmp(&b));
            prop_assert_eq!(record(u).cmp(&record(v)), u.cmp(&v));
            prop_assert_eq!(modseq_index(a, u).cmp(&modseq_index(b, v)), (a, u).cmp(&(b, v)));
            prop_assert_eq!(parse_indexed(&modseq_index(a, u)).unwrap(), (a, u));
            prop_assert_eq!(parse_indexed(&tombstone(a, u)).unwrap(), (a, u));
            prop_assert_eq!(parse_record(&record(u)).unwrap(), u);
            let key = [a.to_be_bytes(), b.to_be_bytes()].concat().try_into().unwrap();
            prop_assert_eq!(delivery(u, &key).cmp(&delivery(v, &key)), u.cmp(&v));
            prop_assert!(delivery(u, &key) >= delivery_bucket_start(u));
            prop_assert_eq!(delivery(u, &key) < delivery_bucket_start(v), u < v);
            prop_assert_eq!(parse_hex64(hex64(a).as_bytes()).unwrap(), a);
            prop_assert_eq!(parse_hex32(hex32(u).as_bytes()).unwrap(), u);
            prop_assert_eq!(hex32(u).cmp(&hex32(v)), u.cmp(&v));
            prop_assert!(after_modseq(MODSEQ, a) >= modseq_index(a, u));
            if a < u64::MAX {
                prop_assert!(after_modseq(MODSEQ, a) < modseq_index(a + 1, 0));
            }
        }
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(parse_indexed("m/12/34").is_err());
        assert!(parse_record("r/xyz").is_err());
        assert!(parse_hex64(b"12").is_err());
        assert!(parse_hex32(b"0000001").is_err());
        assert!(parse_hex32(b"0000000g").is_err());
    }

    /// Issue 13 (fuzzing): the parsers used `from_str_radix`, which also takes upper-case
    /// digits and a leading `+`, so `r/0000000A` and `r/+0000001` parsed as UIDs 10 and 1
    /// although no writer makes them, and they sort apart from `r/0000000a`/`r/00000001`.
    /// Only the canonical spelling parses now.
    #[test]
    fn only_the_canonical_spelling_parses() {
        assert_eq!(parse_record("r/0000000a").unwrap(), 10);
        assert!(parse_record("r/0000000A").is_err(), "upper case");
        assert!(parse_record("r/+0000001").is_err(), "sign");
        assert!(parse_record("r/-0000001").is_err(), "sign");
        assert!(parse_record("r/000000001").is_err(), "9 digits");
        assert!(parse_record("r/0000001").is_err(), "7 digits");
        assert!(parse_record("r/ 0000001").is_err(), "space");
        assert!(parse_record("r/0x000001").is_err(), "0x");
        assert!(parse_record("R/0000000a").is_err(), "prefix case");

        assert_eq!(parse_indexed("m/00000000000000ff/0000000a").unwrap(), (255, 10));
        assert_eq!(parse_indexed("x/00000000000000ff/0000000a").unwrap(), (255, 10));
        for bad in [
            "m/00000000000000FF/0000000a",
            "m/00000000000000ff/0000000A",
            "x/+0000000000000ff/0000000a",
            "m/00000000000000ff/+000000a",
            "m/0000000000000ff/0000000a",
            "m/000000000000000ff/0000000a",
            "m/00000000000000ff/00000000a",
            "m/00000000000000ff/0000000a/",
            "m/00000000000000ff",
        ] {
            assert!(parse_indexed(bad).is_err(), "{bad:?} parsed");
        }

        assert_eq!(parse_hex64(b"00000000000000ff").unwrap(), 255);
        assert!(parse_hex64(b"00000000000000FF").is_err(), "upper case");
        assert!(parse_hex64(b"+0000000000000ff").is_err(), "sign");
        assert!(parse_hex64(b"0000000000000000f").is_err(), "17 digits");
        assert!(parse_hex64(b"000000000000000").is_err(), "15 digits");
        assert_eq!(parse_hex32(b"ffffffff").unwrap(), u32::MAX);
        assert!(parse_hex32(b"FFFFFFFF").is_err(), "upper case");
        assert!(parse_hex32(b"+fffffff").is_err(), "sign");
        assert!(parse_hex32(b"0ffffffff").is_err(), "9 digits");
        assert!(parse_hex32(b"\xff\xff\xff\xff\xff\xff\xff\xff").is_err(), "not UTF-8");
        let multibyte = format!("{DELIVERY}00000001/{}ab", "€".repeat(10));
        assert_eq!(multibyte.len(), DELIVERY.len() + 9 + 32);
        assert!(parse_delivery(&multibyte).is_err(), "32 bytes, not 32 hex digits");
    }

    proptest! {
        /// Whatever parses formats back to the very bytes it was parsed from. The inputs
        /// are near misses: a key prefix, then hex-like fields of about the right widths.
        #[test]
        fn parse_then_format_is_identity(
            prefix in prop::sample::select(vec!["r/", "m/", "x/", ""]),
            first in "[0-9a-fA-F+-]{7,17}",
            second in prop::option::of("/[0-9a-fA-F+]{7,9}"),
        ) {
            let s = format!("{prefix}{first}{}", second.unwrap_or_default());
            if let Ok(uid) = parse_record(&s) {
                prop_assert_eq!(record(uid), s.clone());
            }
            if let Ok((m, u)) = parse_indexed(&s) {
                let again = if s.starts_with(MODSEQ) { modseq_index(m, u) } else { tombstone(m, u) };
                prop_assert_eq!(again, s.clone());
            }
            if let Ok(n) = parse_hex64(s.as_bytes()) {
                prop_assert_eq!(hex64(n), s.clone());
            }
            if let Ok(n) = parse_hex32(s.as_bytes()) {
                prop_assert_eq!(hex32(n), s.clone());
            }
        }

        /// The same for delivery marks' keys.
        #[test]
        fn delivery_keys_parse_then_format_is_identity(bucket in "[0-9a-fA-F+]{7,9}", key in "[0-9a-fA-F+]{31,33}") {
            let s = format!("{DELIVERY}{bucket}/{key}");
            if let Ok((b, k)) = parse_delivery(&s) {
                prop_assert_eq!(delivery(b, &k), s.clone());
            }
        }

        #[test]
        fn delivery_keys_round_trip(bucket in any::<u32>(), key in any::<[u8; 16]>()) {
            prop_assert_eq!(parse_delivery(&delivery(bucket, &key)).unwrap(), (bucket, key));
        }
    }
}
