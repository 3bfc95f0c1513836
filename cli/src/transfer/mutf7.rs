//! Modified UTF-7 (RFC 3501 5.1.3), the spelling Dovecot gives mailbox names in Maildir++
//! folder names: `Entwürfe` is the folder `.Entw&APw-rfe`.
//!
//! One departure, for names the Maildir++ layout cannot spell otherwise: a '.' inside a
//! level (Maildir++ separates levels with '.') is written shifted, as `&AC4-`. [`decode`]
//! takes it back; Dovecot itself would call such a folder name invalid.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// One level of a mailbox name (no '/') as a Maildir++ folder level.
pub fn encode(level: &str) -> String {
    let mut out = String::with_capacity(level.len());
    let mut run: Vec<u16> = Vec::new();
    for c in level.chars() {
        if (' '..='~').contains(&c) && c != '.' {
            flush(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

fn flush(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let (mut acc, mut bits) = (0u32, 0u32);
    for unit in run.drain(..) {
        for byte in unit.to_be_bytes() {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
            }
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out.push('-');
}

/// A Maildir++ folder level back to its mailbox name level; `None` when it is not valid
/// modified UTF-7.
pub fn decode(level: &str) -> Option<String> {
    let mut out = String::with_capacity(level.len());
    let mut rest = level;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        if end == 0 {
            out.push('&');
        } else {
            out.push_str(&decode_run(&after[..end])?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn decode_run(b64: &str) -> Option<String> {
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut bytes = Vec::new();
    for c in b64.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    if bytes.len() % 2 != 0 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spellings() {
        // RFC 3501's example and Dovecot's spelling of German and Japanese names.
        assert_eq!(encode("~peter"), "~peter");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("台北"), "&U,BTFw-");
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(encode("v1.2"), "v1&AC4-2");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(decode("&U,BTFw-").as_deref(), Some("台北"));
        assert_eq!(decode("A&-B").as_deref(), Some("A&B"));
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        for s in ["", "plain", "a.b", "émoji 😀 ok", "&&", "x-y", "日本語のフォルダ"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s), "{s}");
            assert!(!encode(s).contains('.'), "{s}");
        }
        assert_eq!(decode("bad&"), None);
        assert_eq!(decode("bad&!!-"), None);
        assert_eq!(decode("odd&AP-"), None);
    }
}
