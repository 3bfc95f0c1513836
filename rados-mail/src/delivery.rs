//! Delivery keys: how a sender's retry of a delivery whose outcome was unknown is stored
//! once (`docs/FORMAT.md`, "Delivery keys").
//!
//! A commit whose reply is lost and whose outcome cannot be found out in time is reported
//! as a temporary failure, and the sender (an MTA) delivers the same mail again later. If
//! the first commit did land, that would store the mail twice. So every delivery commits,
//! in the same guarded write as its record, a mark `dlv/<bucket>/<key>` on the mailbox
//! head, and the write is guarded by the absence of the same key in every bucket of the
//! window: the retry's write fails its guard, finds the mark, and reports the UID the first
//! delivery got instead of storing the mail again. No RADOS operation is added to a
//! delivery: the marks ride in the commit's own write, expired buckets are removed in it
//! too, and they are read only after a failed guard.
//!
//! The key of a mail a mail server delivers is a SHA-256 of its bytes, without the trace
//! header fields the receiving server put on top of it (Dovecot's LMTP adds `Return-Path`,
//! `Delivered-To` and a `Received: … with LMTP id …` that differ between attempts):
//! [`DeliveryKey::of_message`], or streamed with [`Appender::deliver`](crate::Appender).
//! A caller that has its own identity of the delivery (a queue ID) may give
//! [`DeliveryKey::from_id`] instead.

use sha2::{Digest, Sha256};

/// The identity of one delivery to one mailbox: the same key within
/// [`Config::delivery_window`](crate::Config::delivery_window) means the same delivery,
/// stored once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey(pub [u8; 16]);

impl std::fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeliveryKey(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

impl DeliveryKey {
    /// The key of a whole message as received (see [`DeliveryHasher`]).
    pub fn of_message(message: &[u8]) -> DeliveryKey {
        let mut h = DeliveryHasher::new();
        h.update(message);
        h.finish()
    }

    /// A key from the caller's own identity of the delivery (a queue ID, a message ID with
    /// the envelope): the same `id` is the same delivery.
    pub fn from_id(id: &[u8]) -> DeliveryKey {
        let mut sha = Sha256::new();
        sha.update(b"rados-mail delivery id v1\0");
        sha.update(id);
        DeliveryKey(truncate(sha.finalize().as_slice()))
    }
}

fn truncate(digest: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Header fields a receiving server puts on top of a mail that differ between attempts of
/// the same delivery, longest at the start of a mail that are looked at (a larger block
/// is hashed whole).
const TRACE_LIMIT: usize = 64 * 1024;

/// Computes a [`DeliveryKey`] from a mail's bytes given in pieces: SHA-256 of the bytes
/// after the leading run of trace fields that differ between attempts — `Return-Path`,
/// `Delivered-To`, and `Received` fields that say `with LMTP` (the receiving server's own;
/// a sender's `Received` fields are the same in every attempt and are hashed). Only fields
/// that end within the first 64 KiB of the mail are skipped, however the mail is cut into
/// pieces.
#[derive(Clone)]
pub struct DeliveryHasher {
    sha: Sha256,
    /// The start of the mail while it may still be trace fields.
    head: Option<Vec<u8>>,
    /// Bytes of trace fields skipped so far.
    skipped: usize,
}

impl Default for DeliveryHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DeliveryHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryHasher").field("deciding", &self.head.as_ref().map(Vec::len)).finish()
    }
}

impl DeliveryHasher {
    /// A hasher at the start of a mail.
    pub fn new() -> DeliveryHasher {
        let mut sha = Sha256::new();
        sha.update(b"rados-mail delivery v1\0");
        DeliveryHasher { sha, head: Some(Vec::new()), skipped: 0 }
    }

    /// Takes the next bytes of the mail.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.head {
            None => self.sha.update(data),
            Some(head) => {
                head.extend_from_slice(data);
                self.settle(false);
            }
        }
    }

    /// The key of the bytes taken.
    pub fn finish(mut self) -> DeliveryKey {
        self.settle(true);
        DeliveryKey(truncate(self.sha.finalize().as_slice()))
    }

    /// Skips the complete trace fields at the start of `head`; once a field that is not
    /// one (or the end, or the limit) is reached, hashes the rest and stops looking.
    fn settle(&mut self, end: bool) {
        let Some(head) = self.head.take() else { return };
        let mut pos = 0;
        loop {
            let within = |len: usize| self.skipped + pos + len <= TRACE_LIMIT;
            match field_len(&head[pos..], end) {
                Some(len) if within(len) && is_trace_field(&head[pos..pos + len]) => pos += len,
                Some(_) => break,
                None if end || !within(head.len() - pos) => break,
                None => {
                    self.skipped += pos;
                    self.head = Some(head[pos..].to_vec());
                    return;
                }
            }
        }
        self.sha.update(&head[pos..]);
    }
}

/// The length of the header field at the start of `buf` with its folded lines and line
/// end, if it is complete (`end`: no more bytes come).
fn field_len(buf: &[u8], end: bool) -> Option<usize> {
    let mut from = 0;
    loop {
        let nl = from + buf[from..].iter().position(|&b| b == b'\n')?;
        match buf.get(nl + 1) {
            Some(b' ' | b'\t') => from = nl + 1,
            Some(_) => return Some(nl + 1),
            None if end => return Some(nl + 1),
            None => return None,
        }
    }
}

fn is_trace_field(field: &[u8]) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else { return false };
    let name = &field[..colon];
    if name.eq_ignore_ascii_case(b"Return-Path") || name.eq_ignore_ascii_case(b"Delivered-To") {
        return true;
    }
    name.eq_ignore_ascii_case(b"Received") && field.windows(10).any(|w| w.eq_ignore_ascii_case(b" with LMTP"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAIL: &[u8] = b"Received: from mx.example.org by relay (Postfix) with ESMTP id 4XyZ;\r\n\tMon, 30 Nov 2026 10:00:00 +0000\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

    fn attempt(lmtp_id: &str) -> Vec<u8> {
        let mut m = format!(
            "Return-Path: <a@example.org>\r\nDelivered-To: b@example.org\r\nReceived: from relay\r\n\tby backend with LMTP id {lmtp_id}\r\n\t(envelope-from <a@example.org>); Tue, 1 Dec 2026 05:00:0{} +0000\r\n",
            lmtp_id.len() % 10
        )
        .into_bytes();
        m.extend_from_slice(MAIL);
        m
    }

    #[test]
    fn attempts_of_one_delivery_have_one_key() {
        assert_eq!(DeliveryKey::of_message(&attempt("aaa")), DeliveryKey::of_message(&attempt("bbbbbb")));
        assert_eq!(DeliveryKey::of_message(&attempt("aaa")), DeliveryKey::of_message(MAIL));
    }

    #[test]
    fn other_mails_have_other_keys() {
        let mut other = MAIL.to_vec();
        *other.last_mut().unwrap() = b' ';
        assert_ne!(DeliveryKey::of_message(&other), DeliveryKey::of_message(MAIL));
        // The sender's own Received field (with its queue ID) is part of the key.
        let resent = String::from_utf8_lossy(MAIL).replace("id 4XyZ", "id 5AbC");
        assert_ne!(DeliveryKey::of_message(resent.as_bytes()), DeliveryKey::of_message(MAIL));
        // A mail that is only trace fields, or empty.
        assert_eq!(DeliveryKey::of_message(b"Return-Path: <a>\r\n"), DeliveryKey::of_message(b""));
        assert_ne!(DeliveryKey::from_id(b"4XyZ"), DeliveryKey::from_id(b"5AbC"));
    }

    proptest! {
        #[test]
        fn pieces_give_the_same_key(cuts in proptest::collection::vec(0usize..400, 0..6), tail in any::<Vec<u8>>()) {
            let mut mail = attempt("zz");
            mail.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(mail.len())).collect();
            cuts.sort_unstable();
            let mut h = DeliveryHasher::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([mail.len()]) {
                h.update(&mail[at..c]);
                at = c;
            }
            prop_assert_eq!(h.finish(), DeliveryKey::of_message(&mail));
        }
    }
}
