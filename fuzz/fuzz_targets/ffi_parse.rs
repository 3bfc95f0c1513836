//! The parsing behind the C ABI's entry points: `rm_config_set` (which calls
//! `Settings::set`), its size and duration values (`parse_size`), and user names
//! (`rm_user_open` calls `MailStore::user`). The FFI crate is a staticlib/cdylib only, so
//! the target calls the Rust functions the exports wrap.
//!
//! Properties: never panics; a refused setting leaves the settings unchanged (as
//! documented); only known keys are accepted; a size that parses formats back to a number
//! that parses equal, and is a multiple of (and not below) the number written; a user name
//! `MailStore::user` accepts is kept as given.
//!
//! Input: first byte picks the key (a known one, or the text up to the first 0xff byte),
//! the rest is the value (lossy UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rados_mail::settings::{KEYS, Settings, parse_size};
use rados_mail::{Config, Error, MailStore};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let (key, value) = if usize::from(which) < KEYS.len() * 8 {
        (KEYS[usize::from(which) % KEYS.len()].to_string(), String::from_utf8_lossy(rest).into_owned())
    } else {
        let at = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        (
            String::from_utf8_lossy(&rest[..at]).into_owned(),
            String::from_utf8_lossy(&rest[(at + 1).min(rest.len())..]).into_owned(),
        )
    };

    let mut settings = Settings::default();
    let before = settings.clone();
    match settings.set(&key, &value) {
        Ok(()) => assert!(KEYS.contains(&key.as_str()), "unknown key {key:?} accepted"),
        Err(Error::InvalidInput(_)) => assert_eq!(settings, before, "a refused {key} = {value:?} changed the settings"),
        Err(e) => panic!("{key} = {value:?}: unexpected error {e}"),
    }

    if let Some(n) = parse_size(&value) {
        assert_eq!(parse_size(&n.to_string()), Some(n), "{value:?} = {n} does not round-trip");
        let digits: String = value.trim().chars().take_while(char::is_ascii_digit).collect();
        let number: u64 = digits.parse().expect("a parsed size begins with a number");
        assert_eq!(n % number.max(1), 0, "{value:?} = {n} is not a multiple of {number}");
        assert!(n >= number, "{value:?} = {n} is below {number}");
    }

    // User names as `rm_user_open` takes them.
    let store = MailStore::in_memory(Config::default());
    if let Ok(user) = store.user(&value) {
        assert_eq!(user.name(), value);
    }
});
