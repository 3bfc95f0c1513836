//! The grammar of mailbox names: validation, INBOX's spelling, the hierarchy, and IMAP LIST
//! patterns.

use crate::error::{Error, Result};

/// The name of the inbox; any casing of it is normalized to this one.
pub(crate) const INBOX: &str = "INBOX";
/// The hierarchy separator of mailbox names.
pub(crate) const SEPARATOR: char = '/';
/// Longest mailbox name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 255;
/// The special-use attributes of RFC 6154, in their canonical spelling.
pub(crate) const SPECIAL_USE: [&str; 7] =
    ["\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"];
/// Validates a mailbox name and spells its INBOX part "INBOX".
pub(crate) fn normalize(name: &str) -> Result<String> {
    let bad = |why: String| Err(Error::InvalidInput(format!("mailbox name {name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad(format!("must be 1 to {MAX_NAME_LEN} bytes, not {}", name.len()));
    }
    if name.starts_with(SEPARATOR) || name.ends_with(SEPARATOR) {
        return bad(format!("must not begin or end with the hierarchy separator {SEPARATOR:?}"));
    }
    if name.split(SEPARATOR).any(str::is_empty) {
        return bad("has an empty level (two separators in a row)".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return bad(format!("contains the control character {c:?}"));
    }
    if name.contains(['*', '%']) {
        return bad("contains a LIST wildcard ('*' or '%')".into());
    }
    let first_len = name.find(SEPARATOR).unwrap_or(name.len());
    if name[..first_len].eq_ignore_ascii_case(INBOX) {
        return Ok(format!("{INBOX}{}", &name[first_len..]));
    }
    Ok(name.to_string())
}

/// Whether `name` is strictly below `parent` in the hierarchy.
pub(crate) fn is_below(name: &str, parent: &str) -> bool {
    name.strip_prefix(parent).is_some_and(|rest| rest.starts_with(SEPARATOR))
}

/// The part of a LIST pattern before its first wildcard, which every matching name
/// begins with — unless it could match INBOX case-insensitively, then nothing.
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    let literal = &pattern[..pattern.find(['*', '%']).unwrap_or(pattern.len())];
    let n = literal.len().min(INBOX.len());
    if literal.as_bytes()[..n].eq_ignore_ascii_case(&INBOX.as_bytes()[..n]) { "" } else { literal }
}

/// Whether `name` matches the LIST `pattern` (`*`: anything, `%`: anything but '/'; the
/// INBOX part of the name is compared case-insensitively).
///
/// Dynamic programming over (pattern position, name position), one row at a time, so a
/// pattern full of wildcards costs `O(pattern × name)`, never exponential time.
pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    // Characters of the name compared case-insensitively (INBOX is ASCII: chars = bytes).
    let inbox_len = if name.split(SEPARATOR).next() == Some(INBOX) { INBOX.len() } else { 0 };
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let same = |p: char, j: usize| p == name[j] || (j < inbox_len && p.eq_ignore_ascii_case(&name[j]));
    // below[j]: pattern[i + 1..] matches name[j..]; row[j]: pattern[i..] matches name[j..].
    let mut below: Vec<bool> = (0..=name.len()).map(|j| j == name.len()).collect();
    for &p in pattern.iter().rev() {
        let mut row = vec![false; name.len() + 1];
        for j in (0..=name.len()).rev() {
            row[j] = match p {
                '*' => below[j] || (j < name.len() && row[j + 1]),
                '%' => below[j] || (j < name.len() && name[j] != SEPARATOR && row[j + 1]),
                _ => j < name.len() && same(p, j) && below[j + 1],
            };
        }
        below = row;
    }
    below[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_inbox_normalized() {
        assert_eq!(normalize("inbox").unwrap(), "INBOX");
        assert_eq!(normalize("InBoX/Sub/inbox").unwrap(), "INBOX/Sub/inbox");
        assert_eq!(normalize("inboxes").unwrap(), "inboxes");
        assert_eq!(normalize("Ärger/ünter").unwrap(), "Ärger/ünter");
        for bad in ["", "/a", "a/", "a//b", "a\tb", "a*", "%", &"x".repeat(256)] {
            assert!(matches!(normalize(bad), Err(Error::InvalidInput(_))), "{bad:?}");
        }
    }

    #[test]
    fn list_patterns() {
        let cases = [
            ("*", "a/b/c", true),
            ("%", "a/b", false),
            ("%", "a", true),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("a*", "a", true),
            ("a*", "ab/c", true),
            ("a%c", "abc", true),
            ("a%c", "a/c", false),
            ("inbox", "INBOX", true),
            ("inbox/%", "INBOX/x", true),
            ("inbox/X", "INBOX/x", false),
            ("i*", "INBOX", true),
            ("inbox", "inboxes", false),
            ("INBOX*", "inboxes", false),
            ("*x*y*z*", "x/y/z", true),
            ("*x*y*z*", "x/z/y", false),
            ("a", "", false),
            ("", "a", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(pattern_matches(pattern, name), want, "{pattern:?} vs {name:?}");
        }
        assert_eq!(literal_prefix("Sent/%"), "Sent/");
        assert_eq!(literal_prefix("in*"), "");
        assert_eq!(literal_prefix("INBOX/a*"), "");
        assert_eq!(literal_prefix("ix*"), "ix");
    }

    #[test]
    fn many_wildcards_stay_fast() {
        let pattern = format!("{}b", "*a".repeat(100));
        assert!(!pattern_matches(&pattern, &"a".repeat(255)));
    }
}
