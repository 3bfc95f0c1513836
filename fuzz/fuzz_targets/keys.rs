//! The omap key parsers and GUID names: never panic, and a parsed value formats back to
//! the key it was parsed from.
//!
//! Known leniency (reported, issue 13 fuzzing): the parsers use `from_str_radix`, which
//! also takes upper-case hex digits and one leading `+` per number, so `r/0000000A` and
//! `r/+0000001` parse although no writer makes them. This target asserts that these two
//! are the *only* ways a parsed key can differ from its canonical spelling; drop
//! `lenient_eq` for plain equality once the parsers are strict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omap_index::keys;
use omap_index::names::Guid;

/// Whether the hex field `input` is `canonical` up to the known leniency: upper-case
/// digits, or one leading `+` in place of a leading zero.
fn lenient_eq(input: &str, canonical: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    match lower.strip_prefix('+') {
        Some(rest) => canonical.strip_prefix('0') == Some(rest),
        None => lower == canonical,
    }
}

/// Checks that `key` is `canonical` field by field (fields split at '/'), up to
/// [`lenient_eq`] on the hex fields and exact equality on the others.
fn same_key(key: &str, canonical: &str, hex_fields: &[usize]) {
    let a: Vec<&str> = key.split('/').collect();
    let b: Vec<&str> = canonical.split('/').collect();
    assert_eq!(a.len(), b.len(), "{key:?} parsed, but formats back as {canonical:?}");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let ok = if hex_fields.contains(&i) { lenient_eq(x, y) } else { x == y };
        assert!(ok, "{key:?} parsed, but formats back as {canonical:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = keys::parse_hex64(data) {
        let text = std::str::from_utf8(data).expect("parsed, so UTF-8");
        same_key(text, &keys::hex64(n), &[0]);
    }
    if let Ok(n) = keys::parse_hex32(data) {
        let text = std::str::from_utf8(data).expect("parsed, so UTF-8");
        same_key(text, &keys::hex32(n), &[0]);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(uid) = keys::parse_record(text) {
        same_key(text, &keys::record(uid), &[1]);
    }
    if let Ok((modseq, uid)) = keys::parse_indexed(text) {
        let canonical =
            if text.starts_with(keys::MODSEQ) { keys::modseq_index(modseq, uid) } else { keys::tombstone(modseq, uid) };
        same_key(text, &canonical, &[1, 2]);
    }
    if let Ok(guid) = Guid::parse(text) {
        let canonical = guid.to_string();
        assert_eq!(text.len(), 32);
        for i in 0..16 {
            assert!(lenient_eq(&text[2 * i..2 * i + 2], &canonical[2 * i..2 * i + 2]), "{text:?} → {canonical:?}");
        }
        assert_eq!(Guid::parse(&canonical).unwrap(), guid, "canonical GUID parses back");
        assert_eq!(Guid::from_slice(&guid.0).unwrap(), guid);
    }
});
