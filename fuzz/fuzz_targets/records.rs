//! Every record type of the omap index, decoded from arbitrary bytes (the first byte picks
//! the type): decoding never panics, and whatever decodes re-encodes to a frame that
//! decodes to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omap_index::frame;
use omap_index::records::{ListCounters, MailRecord, MailboxEntry, MailboxHeader, WalEntry};

/// Decodes `bytes` as `M`; if that works, checks the re-encoded frame decodes equal.
fn round_trip<M: prost::Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    // Also a frame with a valid crc32 around the same payload, so that the fuzzer reaches
    // the protobuf decoder without having to forge checksums.
    let mut framed = vec![frame::VERSION, 0, 0, 0, 0];
    framed.extend_from_slice(bytes);
    let crc = crc32(&framed[frame::HEADER_LEN..]);
    framed[1..frame::HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    for input in [bytes, &framed[..]] {
        let Ok(value) = frame::decode::<M>(input) else { continue };
        let again = frame::encode(&value);
        let back: M = frame::decode(&again).expect("a re-encoded record decodes");
        assert_eq!(back, value, "re-encoded record decodes differently");
        assert!(!frame::is_newer(&again), "a frame this version wrote counts as newer");
    }
}

/// crc32 (IEEE), as the frame computes it with `crc32fast`, bitwise: an independent
/// implementation, so a frame this target forges is checked against the format's definition.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => round_trip::<MailRecord>(rest),
        1 => round_trip::<MailboxHeader>(rest),
        2 => round_trip::<WalEntry>(rest),
        3 => round_trip::<MailboxEntry>(rest),
        _ => round_trip::<ListCounters>(rest),
    }
});
