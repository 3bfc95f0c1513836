//! Prints the encoded sizes of the format's records, keys and xattrs for a typical mail,
//! mailbox and user, as one JSON object: the input `benches/capacity.py` computes the
//! capacity model of `docs/CAPACITY.md` from.
//!
//! ```sh
//! cargo run --release -q -p rados-mail-omap-index --example record_sizes
//! ```
//!
//! Every size is measured by encoding a value with the format's own code (`frame::encode`,
//! `keys::*`, `names::*`); only the field values are chosen here, as representative of a
//! mailbox that has received its 100,000th mail (see `docs/CAPACITY.md`, "Inputs"). Varint
//! fields depend on their values: the choices are printed with the sizes.

use omap_index::frame;
use omap_index::keys;
use omap_index::names::{self, Guid, xattr};
use omap_index::records::{
    Change, DeliveryMark, ListCounters, MailRecord, MailboxEntry, MailboxHeader, WalEntry, flags,
};

/// A GUID that looks random (every byte non-zero: protobuf stores bytes as they are anyway).
const GUID: Guid = Guid([0x9e; 16]);
/// A random 64-bit instance has its top bit set half the time: 10 bytes as a varint; 9 for
/// most of the rest. The larger is taken.
const INSTANCE: u64 = 0x9e37_79b9_7f4a_7c15;
/// UID and modseq of a mailbox that has received its 100,000th mail.
const UID: u32 = 100_000;
const MODSEQ: u64 = 300_000;
/// The average mail of the issue's scale reference: 1.3 PB / 6.7 G mails.
const PSIZE: u64 = 194_000;
/// Unix seconds in 2027.
const NOW: i64 = 1_800_000_000;

fn record(keywords: &[&str]) -> MailRecord {
    MailRecord {
        uid: UID,
        mail_guid: GUID.0.to_vec(),
        instance: INSTANCE,
        flags: flags::SEEN | flags::ANSWERED,
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        modseq: MODSEQ,
        psize: PSIZE,
        vsize: PSIZE + PSIZE / 40,
        hdr_len: 3_000,
        received: NOW,
        saved: NOW,
        crc32: 0xdead_beef,
        chunk_size: 0,
        given_guid: Vec::new(),
        plain_psize: None,
    }
}

fn main() {
    let rec = record(&[]);
    let rec_kw = record(&["$NotJunk", "NonJunk"]);
    let header = MailboxHeader {
        guid: GUID.0.to_vec(),
        uidvalidity: NOW as u32,
        uidnext: UID + 1,
        highestmodseq: MODSEQ,
        messages: 1_000,
        psize_total: 1_000 * PSIZE,
        vsize_total: 1_000 * (PSIZE + PSIZE / 40),
        shard_bits: names::DEFAULT_SHARD_BITS,
        incarnation: 0x9e37_79b9,
        keywords: vec!["$NotJunk".into(), "NonJunk".into()],
    };
    let wal_new =
        WalEntry { modseq: MODSEQ, changes: vec![Change { uid: UID, prev_modseq: 0, record: Some(rec.clone()) }] };
    let wal_flag = WalEntry {
        modseq: MODSEQ,
        changes: vec![Change { uid: UID, prev_modseq: MODSEQ - 1, record: Some(rec.clone()) }],
    };
    let wal_expunge =
        WalEntry { modseq: MODSEQ, changes: vec![Change { uid: UID, prev_modseq: MODSEQ - 1, record: None }] };
    let entry = |special: &[&str]| MailboxEntry {
        guid: GUID.0.to_vec(),
        uidvalidity: NOW as u32,
        special_use: special.iter().map(|s| s.to_string()).collect(),
        created: NOW,
    };
    let mark = DeliveryMark { uid: UID, saved: NOW };
    let counters = ListCounters { last_uidvalidity: NOW as u32 };

    let mut out: Vec<(String, usize)> = Vec::new();
    let mut put = |k: &str, v: usize| out.push((k.to_string(), v));
    // Framed values: [version][crc32][protobuf].
    put("frame_header", frame::HEADER_LEN);
    put("mail_record", frame::encode(&rec).len());
    put("mail_record_2_keywords", frame::encode(&rec_kw).len());
    put(
        "mail_record_chunked_extra",
        frame::encode(&MailRecord { chunk_size: 4 << 20, ..rec.clone() }).len() - frame::encode(&rec).len(),
    );
    put("mailbox_header", frame::encode(&header).len());
    put("wal_entry_new_mail", frame::encode(&wal_new).len());
    put("wal_entry_flag_change", frame::encode(&wal_flag).len());
    put("wal_entry_expunge", frame::encode(&wal_expunge).len());
    put("mailbox_entry", frame::encode(&entry(&[])).len());
    put("mailbox_entry_special_use", frame::encode(&entry(&["\\Sent"])).len());
    put("delivery_mark", frame::encode(&mark).len());
    put("list_counters", frame::encode(&counters).len());
    // Keys (bytes) and unframed values.
    put("key_record", keys::record(UID).len());
    put("key_modseq_index", keys::modseq_index(MODSEQ, UID).len());
    put("key_tombstone", keys::tombstone(MODSEQ, UID).len());
    put("key_applied", keys::APPLIED.len());
    put("value_applied", keys::hex64(MODSEQ).len());
    put("key_hdr", keys::HDR.len());
    put("key_trim", keys::TRIM.len());
    put("value_trim", keys::hex64(MODSEQ).len());
    put("key_recent", keys::RECENT.len());
    put("value_recent", keys::hex32(UID).len());
    put("key_wal", keys::wal(MODSEQ).len());
    put("key_delivery", keys::delivery(keys::delivery_bucket(NOW), &[0x9e; 16]).len());
    put("key_mailbox_prefix", keys::mailbox("").len());
    put("key_mailbox_guid", keys::mailbox_guid(&GUID).len());
    put("key_subscription_prefix", keys::subscription("").len());
    put("key_counters", keys::COUNTERS.len());
    put("key_reference_v1", keys::reference(&GUID, INSTANCE).len());
    // v2 references (H1, issue 15): xattr `rm.ref.<mailbox guid>.<instance>`, empty value.
    put("xattr_reference_v2", format!("rm.ref.{GUID}.{INSTANCE:016x}").len());
    // Object names.
    put("oid_mailbox_list", names::MAILBOX_LIST.len());
    put("oid_head", names::mailbox_head(&GUID).len());
    put("oid_shard", names::mailbox_shard(&GUID, 3).len());
    put("oid_body", names::mail(&GUID).len());
    put("oid_chunk", names::mail_chunk(&GUID, 1).len());
    // The body xattrs every first object carries (names + values), as rados-mail writes
    // them for an unchunked body of PSIZE bytes (chunk size 4 MiB, 1 object).
    let num = |v: u64| v.to_string();
    let body_xattrs: [(&str, String); 11] = [
        (xattr::VERSION, "1".into()),
        (xattr::GUID, GUID.to_string()),
        (xattr::MAILBOX, GUID.to_string()),
        (xattr::RECEIVED, NOW.to_string()),
        (xattr::SAVED, NOW.to_string()),
        (xattr::PSIZE, num(PSIZE)),
        (xattr::VSIZE, num(PSIZE + PSIZE / 40)),
        (xattr::HDR_LEN, num(3_000)),
        (xattr::CRC32, format!("{:08x}", 0xdead_beef_u32)),
        (xattr::CHUNK_SIZE, num(4 << 20)),
        (xattr::CHUNKS, num(1)),
    ];
    put("body_xattrs_count", body_xattrs.len());
    put("body_xattr_names", body_xattrs.iter().map(|(k, _)| k.len()).sum());
    put("body_xattr_values", body_xattrs.iter().map(|(_, v)| v.len()).sum());
    put("default_shard_bits", names::DEFAULT_SHARD_BITS as usize);

    println!("{{");
    for (i, (k, v)) in out.iter().enumerate() {
        let comma = if i + 1 < out.len() { "," } else { "" };
        println!("  \"{k}\": {v}{comma}");
    }
    println!("}}");
}
