//! Dict keys through the public `Dict` API on a `MemoryStore`: never panics; a key is
//! accepted exactly when the documented rule says so (`priv/<non-empty path>`, at most
//! `MAX_KEY_LEN` bytes, no control character), and an accepted key reads back what was set.
//!
//! Input: the first byte picks the scope, the rest up to the first 0xff byte is the key
//! (lossy UTF-8), what follows is the value.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rados_mail::dict::{Dict, MAX_KEY_LEN, Scope};
use rados_mail::{Config, Error};

/// The documented rule, written independently of the library's checker.
fn valid(scope: Scope, key: &str) -> bool {
    key.strip_prefix(scope.prefix()).is_some_and(|path| !path.is_empty())
        && key.len() <= MAX_KEY_LEN
        && !key.chars().any(char::is_control)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let scope = if which & 1 == 0 { Scope::Private } else { Scope::Shared };
    let (key, value) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    // Mostly keys of the right scope, so that the rest of the rule gets exercised.
    let mut key = String::from_utf8_lossy(key).into_owned();
    if which & 2 == 0 {
        key.insert_str(0, scope.prefix());
    }
    let dict = Dict::new(Arc::new(objstore::MemoryStore::new("fuzz")), Arc::new(Config::default()), scope);
    let expect = valid(scope, &key);

    let looked = dict.lookup(&key);
    match &looked {
        Ok(found) => assert!(expect && found.is_none(), "lookup of {key:?} accepted (expected valid: {expect})"),
        Err(Error::InvalidInput(_)) => assert!(!expect, "lookup refused the valid key {key:?}"),
        Err(e) => panic!("lookup of {key:?}: unexpected error {e}"),
    }

    let mut txn = dict.transaction();
    let set = txn.set(&key, value);
    assert_eq!(set.is_ok(), expect, "set of {key:?}: {set:?}");
    let committed = txn.commit();
    if !expect {
        assert!(matches!(committed, Err(Error::InvalidInput(_))), "a refused key still committed: {committed:?}");
        return;
    }
    committed.expect("a valid key commits on a memory store");
    assert_eq!(dict.lookup(&key).unwrap().as_deref(), Some(value), "{key:?} does not read back");
    // Listed below the scope's root (its parent path need not be iterable: `priv///x` is a
    // valid key, `priv//` no valid path).
    let listed = dict.iterate(scope.prefix(), true).expect("iterating the whole dict");
    assert_eq!(listed, vec![(key.clone(), value.to_vec())], "the dict holds exactly what was set");

    let mut txn = dict.transaction();
    txn.unset(&key).unwrap();
    txn.commit().unwrap();
    assert_eq!(dict.lookup(&key).unwrap(), None, "{key:?} still set after unset");
});
