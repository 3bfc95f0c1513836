//! The omap key parsers and GUID names: never panic, and whatever parses formats back to
//! exactly the bytes it was parsed from: `parse(s) == Ok(x)` implies `format(x) == s`.
//!
//! Issue 13: this target found that the parsers (`from_str_radix`) took upper-case hex
//! digits and a leading `+` (`r/0000000A`, `r/+0000001`), which no writer makes; they
//! accept only the canonical spelling now, and this target asserts plain equality.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omap_index::keys;
use omap_index::names::Guid;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = keys::parse_hex64(data) {
        assert_eq!(keys::hex64(n).as_bytes(), data, "parsed as {n}, formats back differently");
    }
    if let Ok(n) = keys::parse_hex32(data) {
        assert_eq!(keys::hex32(n).as_bytes(), data, "parsed as {n}, formats back differently");
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(uid) = keys::parse_record(text) {
        assert_eq!(keys::record(uid), text);
    }
    if let Ok((modseq, uid)) = keys::parse_indexed(text) {
        let canonical =
            if text.starts_with(keys::MODSEQ) { keys::modseq_index(modseq, uid) } else { keys::tombstone(modseq, uid) };
        assert_eq!(canonical, text);
    }
    if let Ok((bucket, key)) = keys::parse_delivery(text) {
        assert_eq!(keys::delivery(bucket, &key), text);
    }
    if let Ok(guid) = Guid::parse(text) {
        assert_eq!(guid.to_string(), text);
        assert_eq!(Guid::from_slice(&guid.0).unwrap(), guid);
    }
});
