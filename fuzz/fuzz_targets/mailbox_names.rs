//! Mailbox names through the public API on an in-memory store: never panics; a name is
//! accepted exactly when the documented grammar allows it; normalizing is stable (the
//! normalized name names the same mailbox, and normalizes to itself); the INBOX rule holds
//! (any casing of a first level `INBOX` is the inbox, every other level is case-sensitive).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rados_mail::{Config, Error, MailStore};

/// The grammar of `names.rs`, written independently: what the name normalizes to, or
/// `None` if it is invalid.
fn expected(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && !name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if !ok {
        return None;
    }
    let (first, rest) = name.split_at(name.find('/').unwrap_or(name.len()));
    Some(if first.eq_ignore_ascii_case("INBOX") { format!("INBOX{rest}") } else { name.to_string() })
}

/// `name` with the ASCII case of its first level swapped.
fn swap_first_level(name: &str) -> String {
    let end = name.find('/').unwrap_or(name.len());
    let swapped: String = name[..end]
        .chars()
        .map(|c| if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect();
    format!("{swapped}{}", &name[end..])
}

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let store = MailStore::in_memory(Config::default());
    let user = store.user("fuzz").expect("a valid user name");
    let want = expected(&name);
    let info = match (user.create_mailbox(&name), &want) {
        (Ok(info), Some(want)) => {
            assert_eq!(&info.name, want, "{name:?} normalized");
            info
        }
        (Err(Error::InvalidInput(_)), None) => {
            assert!(matches!(user.mailbox_info(&name), Err(Error::InvalidInput(_))));
            return;
        }
        (got, want) => panic!("create {name:?}: {got:?}, expected {want:?}"),
    };
    // Normalizing twice is stable: both spellings find the same mailbox.
    let again = user.mailbox_info(&info.name).expect("the normalized name");
    assert_eq!((again.name.as_str(), again.guid), (info.name.as_str(), info.guid));
    let orig = user.mailbox_info(&name).expect("the name as given");
    assert_eq!((orig.name.as_str(), orig.guid), (info.name.as_str(), info.guid));
    assert!(matches!(user.create_mailbox(&info.name), Err(Error::AlreadyExists(_))));
    assert!(user.list_mailboxes("*").unwrap().iter().any(|m| m.name == info.name && m.guid == info.guid));

    // The INBOX rule: another casing of the first level is the same mailbox only for INBOX.
    let other = swap_first_level(&name);
    if other != *name {
        let first = &name[..name.find('/').unwrap_or(name.len())];
        match user.create_mailbox(&other) {
            Err(Error::AlreadyExists(_)) => assert!(first.eq_ignore_ascii_case("INBOX"), "{other:?} vs {name:?}"),
            Ok(made) => {
                assert!(!first.eq_ignore_ascii_case("INBOX"), "{other:?} is a second inbox");
                assert_ne!(made.guid, info.guid);
            }
            Err(e) => panic!("create {other:?}: {e}"),
        }
    }
});
