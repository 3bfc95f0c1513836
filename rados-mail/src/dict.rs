//! A key-value dictionary with Dovecot's dict semantics, kept in RADOS omap.
//!
//! Dovecot keeps per-user and server-wide key-values in "dicts": mailbox attributes (IMAP
//! METADATA), quota counters, last-login times, Sieve bookkeeping. Its keys begin with
//! `priv/` (private to the user) or `shared/` (visible to every user). Here a [`Dict`] of
//! [`Scope::Private`] lives in the user's namespace and one of [`Scope::Shared`] in the
//! shared namespace. A dict of 0 shards (every private dict, and the shared dict of pools of
//! format 1) is the omap of one object, [`DICT_OBJECT`]; a dict of N shards spreads its keys
//! over the objects `dict.0000` … `dict.<N-1>` by a hash of the key ([`shard_object`]), so
//! that a million users' `shared/last-login/<user>` keys never make one huge object:
//!
//! * omap key = the full Dovecot key, scope prefix included (`priv/quota/storage`);
//! * omap value = the value's bytes as given (any bytes; Dovecot passes strings);
//! * counters changed by [`Transaction::atomic_inc`] are ASCII decimal (`-12`), as
//!   Dovecot's dict-sql and dict-redis store them, so `lookup` returns them readably.
//!
//! A [`Transaction`] collects `set`, `unset` and `atomic_inc` in memory and
//! [`Transaction::commit`] applies them as one atomic compound write per object they touch:
//! all of them or none when they touch one object (always so for a dict of 0 shards); for a
//! sharded dict see [`Transaction::commit`]. Counters are compare-and-swap registers: commit reads their
//! values, writes the sums behind `omap_cmp` guards on the bytes it read, and starts over
//! (with a jittered, growing pause) when a concurrent commit changed one of them first.
//!
//! ```
//! use std::sync::Arc;
//! use rados_mail::Config;
//! use rados_mail::dict::{Committed, Dict, Scope};
//! use rados_mail::objstore::MemoryStore;
//!
//! let dict = Dict::new(Arc::new(MemoryStore::new("alice")), Arc::new(Config::default()), Scope::Private);
//! let mut t = dict.transaction();
//! t.set("priv/vendor/vendor.dovecot/comment", b"hello")?;
//! t.set("priv/quota/messages", b"0")?;
//! t.commit()?;
//! let mut t = dict.transaction();
//! t.atomic_inc("priv/quota/messages", 3)?;
//! t.atomic_inc("priv/quota/storage", 100)?; // not set: stays unset, reported
//! assert_eq!(t.commit()?, Committed::CounterNotFound);
//! assert_eq!(dict.lookup("priv/quota/messages")?.as_deref(), Some(&b"3"[..]));
//! assert_eq!(dict.lookup("priv/quota/storage")?, None);
//! let below = dict.iterate("priv/vendor", true)?;
//! assert_eq!(below, [("priv/vendor/vendor.dovecot/comment".to_string(), b"hello".to_vec())]);
//! # Ok::<(), rados_mail::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use objstore::ObjectStore;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

mod commit;
mod iterate;
mod limit;
mod reshard;
mod shard;

pub use reshard::{ReshardReport, reshard};
pub use shard::{DEFAULT_SHARED_SHARDS, MAX_SHARDS, shard_object, shard_objects};

/// The object holding a dict of 0 shards, in the user's namespace (private) or the shared
/// one.
pub const DICT_OBJECT: &str = "dict";

/// Longest key accepted, in bytes, scope prefix included.
///
/// Dovecot sets no limit of its own; its longest keys are mailbox attributes
/// (`priv/<mailbox guid>/vendor/…/<entry name>`), well below this. Ceph keeps omap keys in
/// RocksDB, where keys of a few KiB are fine and much larger ones are not.
pub const MAX_KEY_LEN: usize = 4096;

/// Key-value pairs in key order, as iteration returns them.
pub type Entries = Vec<(String, Vec<u8>)>;

/// Which half of Dovecot's key space a [`Dict`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Keys `priv/…`: one user's, stored in the user's namespace.
    Private,
    /// Keys `shared/…`: everybody's, stored in the shared namespace.
    Shared,
}

impl Scope {
    /// The key prefix of the scope, as Dovecot spells it: `priv/` or `shared/`.
    pub fn prefix(self) -> &'static str {
        match self {
            Scope::Private => "priv/",
            Scope::Shared => "shared/",
        }
    }

    fn other(self) -> Scope {
        match self {
            Scope::Private => Scope::Shared,
            Scope::Shared => Scope::Private,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Private => "private",
            Scope::Shared => "shared",
        })
    }
}

/// One dict: the private one of a user or the shared one.
///
/// Obtained from `User::dict()` or `MailStore::shared_dict()`, or made with [`Dict::new`]
/// or [`Dict::with_shards`]. Cheap to clone; every method is safe to call from many threads and processes at once.
///
/// Keys are the full Dovecot keys: `priv/<path>` for a private dict, `shared/<path>` for a
/// shared one (a key of the other scope is refused with [`Error::InvalidInput`]). The path
/// is not empty; the whole key is at most [`MAX_KEY_LEN`] bytes without NUL or other
/// control characters. Values are any bytes.
#[derive(Debug, Clone)]
pub struct Dict {
    store: Arc<dyn ObjectStore>,
    scope: Scope,
    retry: RetryPolicy,
    /// 0: one object, [`DICT_OBJECT`]; else the number of shard objects.
    shards: u32,
    /// Keys the dict may hold (a private dict: [`Config::max_dict_keys`]); 0: no bound
    /// (the shared dict, bounded per object by its sharding).
    max_keys: usize,
}

impl Dict {
    /// A dict of `scope` kept in the namespace of `store` (the user's namespace for a
    /// private dict, the shared namespace for the shared one).
    ///
    /// The dict is one object, [`DICT_OBJECT`] (0 shards). A private one holds at most
    /// [`Config::max_dict_keys`] keys.
    pub fn new(store: Arc<dyn ObjectStore>, config: Arc<Config>, scope: Scope) -> Dict {
        let retry = RetryPolicy::new(config.max_attempts);
        let max_keys = if scope == Scope::Private { config.max_dict_keys } else { 0 };
        Dict { store, scope, retry, shards: 0, max_keys }
    }

    /// A dict of `scope` spread over `shards` objects (see [`shard_object`]); 0 is the one
    /// object of [`Dict::new`]. Every process using a dict must agree on its number of
    /// shards: the pool's format record says it for the shared dict.
    ///
    /// Fails with [`Error::InvalidInput`] when `shards` is above [`MAX_SHARDS`].
    pub fn with_shards(store: Arc<dyn ObjectStore>, config: Arc<Config>, scope: Scope, shards: u32) -> Result<Dict> {
        Dict::sharded(store, scope, RetryPolicy::new(config.max_attempts), shards)
    }

    /// [`Dict::new`] counting its lost races in a store's counters, holding at most
    /// `max_keys` keys (0: no bound).
    pub(crate) fn with_retry(store: Arc<dyn ObjectStore>, scope: Scope, retry: RetryPolicy, max_keys: usize) -> Dict {
        Dict { store, scope, retry, shards: 0, max_keys }
    }

    /// [`Dict::with_shards`] counting its lost races in a store's counters.
    pub(crate) fn sharded(store: Arc<dyn ObjectStore>, scope: Scope, retry: RetryPolicy, shards: u32) -> Result<Dict> {
        shard::check_shards(shards)?;
        Ok(Dict { store, scope, retry, shards, max_keys: 0 })
    }

    /// The scope of the keys this dict holds.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The number of shard objects; 0 for a dict that is the one object [`DICT_OBJECT`].
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The object that holds `key` (whether or not it is set): [`DICT_OBJECT`], or the
    /// key's shard, [`shard_object`]. The key is not checked.
    pub fn object_of(&self, key: &str) -> String {
        shard_object(self.shards, key)
    }

    /// Every object this dict may keep keys in, in shard order ([`shard_objects`]).
    pub fn objects(&self) -> Vec<String> {
        shard_objects(self.shards)
    }

    /// The value of `key`, or `None` if it is not set. One read (of the key's shard).
    pub fn lookup(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        match self.store.omap_get(&self.object_of(key), &[key]) {
            Ok(mut found) => Ok(found.remove(key)),
            Err(objstore::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key below the path `prefix`, with its value, in key order.
    ///
    /// As in Dovecot: `prefix` names a path (`priv/quota`; a trailing `/` may be given or
    /// not, and the scope alone, `priv` or `priv/`, means the whole dict). Without
    /// `recursive`, only the keys directly below it are returned (`priv/quota/storage`, not
    /// `priv/quota/a/b`); with it, all keys below it at any depth. The key equal to the
    /// path itself is not below it. Reads [`objstore::OMAP_PAGE_MAX`] entries per round
    /// trip; a sharded dict reads the first page of every shard at once and merges the
    /// shards in key order. Use [`Dict::iterate_page`] to bound memory on very large dicts.
    pub fn iterate(&self, prefix: &str, recursive: bool) -> Result<Entries> {
        let below = self.path_prefix(prefix)?;
        Ok(self.scan(&below, recursive, "", usize::MAX)?.0)
    }

    /// One page of [`Dict::iterate`]: at most `max` entries (which must be at least 1) whose
    /// keys come after `after` (empty: from the start), and whether more may follow.
    ///
    /// Continue with the last key returned as `after`. When the flag is `false` the
    /// iteration is complete; when it is `true` the next page may still turn out empty. Each
    /// page is read as it is asked for, so entries set or unset between two pages may or may
    /// not show, as with any cursor; a key is never returned twice. On a sharded dict every
    /// page reads every shard at least once (at once, not one after the other).
    pub fn iterate_page(&self, prefix: &str, recursive: bool, after: &str, max: usize) -> Result<(Entries, bool)> {
        let below = self.path_prefix(prefix)?;
        if max == 0 {
            return Err(Error::InvalidInput("dict iteration page of 0 entries".into()));
        }
        if after.contains('\0') {
            return Err(Error::InvalidInput(format!("dict iteration cursor {} contains a NUL byte", shown(after))));
        }
        self.scan(&below, recursive, after, max)
    }

    /// A new, empty transaction. Nothing is written before [`Transaction::commit`].
    pub fn transaction(&self) -> Transaction {
        Transaction { dict: self.clone(), ops: Vec::new(), poisoned: None }
    }

    // ---- Plumbing. ----

    /// Checks a key: this dict's scope, a non-empty path, the length and character limits.
    fn check_key(&self, key: &str) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidInput(format!("{} dict key {}: {why}", self.scope, shown(key))));
        let prefix = self.scope.prefix();
        let Some(path) = key.strip_prefix(prefix) else {
            let other = self.scope.other().prefix();
            if key.starts_with(other) || key == &other[..other.len() - 1] {
                return bad(format!("belongs to the {} dict, not this {} one", self.scope.other(), self.scope));
            }
            return bad(format!("must begin with {prefix:?}"));
        };
        if path.is_empty() {
            return bad(format!("empty path after {prefix:?}"));
        }
        check_text(key).or_else(bad)
    }

    /// The omap key prefix of everything below the path `prefix`: the path plus one `/`.
    fn path_prefix(&self, prefix: &str) -> Result<String> {
        let path = prefix.strip_suffix('/').unwrap_or(prefix);
        let root = &self.scope.prefix()[..self.scope.prefix().len() - 1];
        if path != root {
            self.check_key(path)?;
        }
        Ok(format!("{path}/"))
    }
}

/// What a successful [`Transaction::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Everything was applied.
    Applied,
    /// Everything was applied except increments of keys that were not set (they stay
    /// unset), as Dovecot's `DICT_COMMIT_RET_NOTFOUND`.
    CounterNotFound,
}

/// Changes to a [`Dict`], applied together by [`Transaction::commit`]: all or none.
///
/// Operations take effect in the order they were made, as in Dovecot: a later change of a
/// key replaces an earlier one, and an [`Transaction::atomic_inc`] after a
/// [`Transaction::set`] of the same key adds to the value set. Dropping a transaction (or
/// [`Transaction::rollback`]) applies nothing.
#[derive(Debug)]
#[must_use = "a transaction applies nothing until it is committed"]
pub struct Transaction {
    dict: Dict,
    ops: Vec<(String, Op)>,
    /// The first refused operation: the transaction can no longer be committed whole.
    poisoned: Option<Error>,
}

impl Transaction {
    /// Sets `key` to `value`.
    ///
    /// An invalid key is refused here with [`Error::InvalidInput`]; the transaction then
    /// fails to commit with the same error, so that it never applies only part of what the
    /// caller asked for.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.push(key, Op::Set(value.to_vec()))
    }

    /// Removes `key` (not an error if it is not set). Invalid keys as for
    /// [`Transaction::set`].
    pub fn unset(&mut self, key: &str) -> Result<()> {
        self.push(key, Op::Unset)
    }

    /// Adds `delta` (possibly negative) to the counter `key`, atomically at commit time.
    ///
    /// The counter is read and written as ASCII decimal; the empty value counts as 0. As in
    /// Dovecot's dict API, only a key that exists is changed: an increment of an unset key
    /// leaves it unset and makes the commit return [`Committed::CounterNotFound`] (Dovecot's
    /// quota, for one, then recounts). At commit, a value that is not a decimal `i64`, or a
    /// sum that does not fit one, fails the whole transaction with [`Error::InvalidInput`].
    /// Invalid keys as for [`Transaction::set`].
    pub fn atomic_inc(&mut self, key: &str, delta: i64) -> Result<()> {
        self.push(key, Op::Add(delta))
    }

    /// Whether the transaction holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies every operation in one atomic write on the dict object, or none.
    ///
    /// On a sharded dict this holds per shard: a transaction whose keys are in one shard
    /// (a single key always is) is one atomic write; one whose keys are in several shards
    /// is one atomic write per shard, made one after the other (shards holding counters
    /// first). Every key is in exactly one shard, so each key is always either old or new,
    /// and every increment is applied exactly once; but a reader, or a crash, between two
    /// shards' writes sees some keys new and others old. Counters of every shard are read
    /// and checked before the first write, so a non-number or an overflow still applies
    /// nothing. A failure after some shards were written says so in its message (for
    /// [`Error::Unavailable`], as always, the failed write itself may have happened).
    ///
    /// Counters are read first and written behind compare-and-swap guards; when another
    /// commit changed one of them in between, commit reads again and retries after a short
    /// random pause, at most `max_attempts` times ([`Config::max_attempts`]), then fails
    /// with [`Error::Conflict`] having applied nothing. Also fails with the error of the
    /// first operation refused by `set`/`unset`/`atomic_inc`, with
    /// [`Error::InvalidInput`] for a counter that is not a number, with
    /// [`Error::TooLarge`] when the changes exceed one RADOS write
    /// ([`objstore::MAX_WRITE`]), and with [`Error::Unavailable`] when the cluster did not
    /// answer — in that last case the write may or may not have happened. An empty
    /// transaction commits without any I/O.
    ///
    /// Returns [`Committed::CounterNotFound`] when an `atomic_inc` found its key unset (the
    /// rest of the transaction is applied; Dovecot's `DICT_COMMIT_RET_NOTFOUND`).
    pub fn commit(self) -> Result<Committed> {
        if let Some(e) = self.poisoned {
            return Err(e);
        }
        self.dict.apply(&self.ops)
    }

    /// Discards the transaction (the same as dropping it).
    pub fn rollback(self) {}

    fn push(&mut self, key: &str, op: Op) -> Result<()> {
        match self.dict.check_key(key) {
            Ok(()) => {
                self.ops.push((key.to_string(), op));
                Ok(())
            }
            Err(e) => {
                self.poisoned.get_or_insert_with(|| e.clone());
                Err(e)
            }
        }
    }
}

/// One operation of a transaction, as recorded.
#[derive(Debug, Clone)]
enum Op {
    Set(Vec<u8>),
    Unset,
    Add(i64),
}

/// What a transaction does to one key, all its operations taken together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    /// The key ends up with this value, whatever it held.
    Set(Vec<u8>),
    /// The key ends up unset.
    Unset,
    /// The stored counter grows by this much (only increments touched the key).
    Add(i128),
}

/// Folds a transaction's operations, in order, into one effect per key; also says whether
/// an increment met a key the transaction itself had unset (it stays unset).
fn net_effects(ops: &[(String, Op)]) -> Result<(BTreeMap<String, Effect>, bool)> {
    let mut effects: BTreeMap<String, Effect> = BTreeMap::new();
    let mut not_found = false;
    for (key, op) in ops {
        let next = match (op, effects.remove(key)) {
            (Op::Set(value), _) => Effect::Set(value.clone()),
            (Op::Unset, _) => Effect::Unset,
            (Op::Add(delta), None) => Effect::Add(i128::from(*delta)),
            (Op::Add(delta), Some(Effect::Add(sum))) => Effect::Add(sum + i128::from(*delta)),
            (Op::Add(_), Some(Effect::Unset)) => {
                not_found = true;
                Effect::Unset
            }
            (Op::Add(delta), Some(Effect::Set(value))) => Effect::Set(add(key, &value, *delta)?.into_bytes()),
        };
        effects.insert(key.clone(), next);
    }
    Ok((effects, not_found))
}

/// The counter `stored` (ASCII decimal; empty is 0) plus `delta`, as ASCII decimal.
fn add(key: &str, stored: &[u8], delta: impl Into<i128>) -> Result<String> {
    let current: i64 = if stored.is_empty() {
        0
    } else {
        std::str::from_utf8(stored).ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            let shown_value = String::from_utf8_lossy(&stored[..stored.len().min(40)]).into_owned();
            Error::InvalidInput(format!(
                "atomic_inc of dict key {}: its value {shown_value:?} is not a number",
                shown(key)
            ))
        })?
    };
    let sum = i128::from(current) + delta.into();
    let sum = i64::try_from(sum).map_err(|_| {
        Error::InvalidInput(format!("atomic_inc of dict key {}: {sum} does not fit a 64-bit counter", shown(key)))
    })?;
    Ok(sum.to_string())
}

/// Checks the characters and length of a key or path.
fn check_text(key: &str) -> std::result::Result<(), String> {
    if key.len() > MAX_KEY_LEN {
        return Err(format!("{} bytes long (at most {MAX_KEY_LEN})", key.len()));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(())
}

/// Where a non-recursive scan resumes after `last`: past every key below the child of
/// `below` that `last` is in, when `last` is deeper than a direct child.
fn past_subtree(below: &str, last: String) -> String {
    let rest = &last[below.len()..];
    match rest.find('/') {
        // No UTF-8 string below `<child>/` starts with a larger character than U+10FFFF:
        // keys that do are rare and merely read, then skipped by the filter.
        Some(slash) => {
            let skip = format!("{below}{}/{}", &rest[..slash], char::MAX);
            if skip > last { skip } else { last }
        }
        None => last,
    }
}

/// A key for an error message: quoted, and cut after 64 characters.
fn shown(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((at, _)) => format!("{:?}… ({} bytes)", &key[..at], key.len()),
        None => format!("{key:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: &str, op: Op) -> (String, Op) {
        (key.to_string(), op)
    }

    #[test]
    fn later_operations_win_and_increments_add_to_sets() {
        let ops = [
            keyed("priv/a", Op::Set(b"10".to_vec())),
            keyed("priv/a", Op::Add(5)),
            keyed("priv/b", Op::Add(2)),
            keyed("priv/b", Op::Add(-7)),
            keyed("priv/c", Op::Add(1)),
            keyed("priv/c", Op::Set(b"x".to_vec())),
            keyed("priv/d", Op::Set(b"1".to_vec())),
            keyed("priv/d", Op::Unset),
            keyed("priv/e", Op::Unset),
            keyed("priv/e", Op::Add(3)),
        ];
        let (effects, not_found) = net_effects(&ops).unwrap();
        assert!(not_found, "priv/e was incremented after its unset");
        assert_eq!(effects["priv/a"], Effect::Set(b"15".to_vec()));
        assert_eq!(effects["priv/b"], Effect::Add(-5));
        assert_eq!(effects["priv/c"], Effect::Set(b"x".to_vec()));
        assert_eq!(effects["priv/d"], Effect::Unset);
        assert_eq!(effects["priv/e"], Effect::Unset, "an increment does not bring an unset key back");
        let bad = [keyed("priv/a", Op::Set(b"ten".to_vec())), keyed("priv/a", Op::Add(1))];
        assert!(matches!(net_effects(&bad), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn counters_are_ascii_decimal() {
        assert_eq!(add("k", b"", 0).unwrap(), "0");
        assert_eq!(add("k", b"41", 1).unwrap(), "42");
        assert_eq!(add("k", b"-3", -4).unwrap(), "-7");
        assert_eq!(add("k", b"+3", 0).unwrap(), "3");
        assert_eq!(add("k", i64::MAX.to_string().as_bytes(), 0).unwrap(), i64::MAX.to_string());
        for bad in [&b" 1"[..], b"1.5", b"x", b"\xff", b"99999999999999999999"] {
            assert!(matches!(add("k", bad, 1), Err(Error::InvalidInput(_))), "{bad:?}");
        }
        assert!(matches!(add("k", i64::MAX.to_string().as_bytes(), 1), Err(Error::InvalidInput(_))));
        assert!(matches!(add("k", i64::MIN.to_string().as_bytes(), -1), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn subtree_skips_stay_ahead_of_the_last_key() {
        assert_eq!(past_subtree("priv/", "priv/a".into()), "priv/a");
        assert_eq!(past_subtree("priv/", "priv/a/b/c".into()), format!("priv/a/{}", char::MAX));
        assert!(past_subtree("priv/", "priv/a/b".into()).as_str() < "priv/a0");
        let odd = format!("priv/a/{}{}", char::MAX, char::MAX);
        assert_eq!(past_subtree("priv/", odd.clone()), odd);
    }

    #[test]
    fn long_keys_are_cut_in_messages() {
        assert_eq!(shown("priv/a"), "\"priv/a\"");
        assert!(shown(&"x".repeat(5000)).len() < 100);
    }
}
