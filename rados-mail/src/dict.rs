//! A key-value dictionary with Dovecot's dict semantics, kept in RADOS omap.
//!
//! Dovecot keeps per-user and server-wide key-values in "dicts": mailbox attributes (IMAP
//! METADATA), quota counters, last-login times, Sieve bookkeeping. Its keys begin with
//! `priv/` (private to the user) or `shared/` (visible to every user). Here a [`Dict`] of
//! [`Scope::Private`] lives in the user's namespace and one of [`Scope::Shared`] in the
//! shared namespace; in both, everything is the omap of one object, [`DICT_OBJECT`]:
//!
//! * omap key = the full Dovecot key, scope prefix included (`priv/quota/storage`);
//! * omap value = the value's bytes as given (any bytes; Dovecot passes strings);
//! * counters changed by [`Transaction::atomic_inc`] are ASCII decimal (`-12`), as
//!   Dovecot's dict-sql and dict-redis store them, so `lookup` returns them readably.
//!
//! A [`Transaction`] collects `set`, `unset` and `atomic_inc` in memory and
//! [`Transaction::commit`] applies them as one atomic compound write on [`DICT_OBJECT`]:
//! all of them or none. Counters are compare-and-swap registers: commit reads their
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

use objstore::{CmpOp, OMAP_PAGE_MAX, ObjectStore, WriteOp};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// The object holding a dict, in the user's namespace (private) or the shared one.
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
/// Obtained from `User::dict()` or `MailStore::shared_dict()`, or made with [`Dict::new`].
/// Cheap to clone; every method is safe to call from many threads and processes at once.
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
}

impl Dict {
    /// A dict of `scope` kept in the namespace of `store` (the user's namespace for a
    /// private dict, the shared namespace for the shared one).
    pub fn new(store: Arc<dyn ObjectStore>, config: Arc<Config>, scope: Scope) -> Dict {
        let retry = RetryPolicy::new(config.max_attempts);
        Dict { store, scope, retry }
    }

    /// [`Dict::new`] counting its lost races in a store's counters.
    pub(crate) fn with_retry(store: Arc<dyn ObjectStore>, scope: Scope, retry: RetryPolicy) -> Dict {
        Dict { store, scope, retry }
    }

    /// The scope of the keys this dict holds.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The value of `key`, or `None` if it is not set. One read.
    pub fn lookup(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        match self.store.omap_get(DICT_OBJECT, &[key]) {
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
    /// path itself is not below it. Reads [`OMAP_PAGE_MAX`] entries per round trip; use
    /// [`Dict::iterate_page`] to bound memory on very large dicts.
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
    /// not show, as with any cursor; a key is never returned twice.
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

    /// Collects up to `max` entries below `below` (which ends in '/') after `after`; the
    /// flag says whether more may follow.
    fn scan(&self, below: &str, recursive: bool, after: &str, max: usize) -> Result<(Entries, bool)> {
        let mut out = Vec::new();
        let mut start = after.to_string();
        loop {
            let want = if recursive { (max - out.len()).min(OMAP_PAGE_MAX) } else { OMAP_PAGE_MAX };
            let page = match self.store.omap_range(DICT_OBJECT, &start, below, want) {
                Ok(page) => page,
                Err(objstore::Error::NotFound { .. }) => return Ok((out, false)),
                Err(e) => return Err(e.into()),
            };
            let mut entries = page.entries.into_iter();
            let mut last = None;
            for (key, value) in entries.by_ref() {
                if recursive || !key[below.len()..].contains('/') {
                    out.push((key.clone(), value));
                }
                last = Some(key);
                if out.len() == max {
                    break;
                }
            }
            let more = page.more || entries.next().is_some();
            let Some(last) = last else {
                return Ok((out, false));
            };
            if out.len() == max || !more {
                return Ok((out, more));
            }
            start = if recursive { last } else { past_subtree(below, last) };
        }
    }

    /// Applies the net effect of a transaction in one guarded write, retrying when a
    /// concurrent commit changed a counter it read.
    fn apply(&self, ops: &[(String, Op)]) -> Result<Committed> {
        let (effects, unset_then_added) = net_effects(ops)?;
        if effects.is_empty() {
            return Ok(Committed::Applied);
        }
        let counters: Vec<&str> =
            effects.iter().filter(|(_, e)| matches!(e, Effect::Add(_))).map(|(k, _)| k.as_str()).collect();
        let mut retry = self.retry.start();
        loop {
            let mut op = WriteOp::new();
            // Current values of the counters; `None` when the object does not exist yet.
            let current = if counters.is_empty() {
                op = op.create();
                Some(BTreeMap::new())
            } else {
                match self.store.omap_get(DICT_OBJECT, &counters) {
                    Ok(found) => Some(found),
                    Err(objstore::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            };
            let mut set = Vec::new();
            let mut unset = Vec::new();
            let mut not_found = unset_then_added;
            for (key, effect) in &effects {
                match effect {
                    Effect::Set(value) => set.push((key.clone(), value.clone())),
                    Effect::Unset => unset.push(key.clone()),
                    Effect::Add(delta) => match current.as_ref().and_then(|c| c.get(key)) {
                        Some(stored) => {
                            let sum = add(key, stored, *delta)?;
                            set.push((key.clone(), sum.into_bytes()));
                            op = op.omap_cmp(key.clone(), CmpOp::Eq, stored.clone());
                        }
                        None => {
                            // Not set: stays unset, reported; guarded so that a key created
                            // meanwhile makes this commit read again.
                            not_found = true;
                            if current.is_some() {
                                op = op.omap_cmp(key.clone(), CmpOp::Eq, Vec::new());
                            }
                        }
                    },
                }
            }
            if current.is_none() {
                // Guards need the object; the first write creates it, or loses to the
                // writer that did.
                op = op.create_exclusive();
            }
            if !unset.is_empty() {
                op = op.omap_rm_keys(unset);
            }
            if !set.is_empty() {
                op = op.omap_set(set);
            }
            if op.guards.is_empty() && op.mutations.is_empty() {
                // Only increments of unset keys: nothing to write.
                return Ok(if not_found { Committed::CounterNotFound } else { Committed::Applied });
            }
            match self.store.write_op(DICT_OBJECT, &op) {
                Ok(_) => return Ok(if not_found { Committed::CounterNotFound } else { Committed::Applied }),
                Err(e) if lost_race(&e) => {
                    retry.lost(|| {
                        format!(
                            "the {} dict (object {DICT_OBJECT:?} in namespace {:?}): a commit lost every race",
                            self.scope,
                            self.store.namespace()
                        )
                    })?;
                }
                Err(e) => return Err(e.into()),
            }
        }
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

/// Whether a failed commit lost a race: a guard failed, or the dict object was created
/// (or removed) meanwhile. Re-reading and retrying is right.
fn lost_race(e: &objstore::Error) -> bool {
    matches!(
        e,
        objstore::Error::Conflict { .. } | objstore::Error::AlreadyExists { .. } | objstore::Error::NotFound { .. }
    )
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
