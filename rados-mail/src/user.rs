//! A user's mailboxes: the mailbox list, subscriptions and special-use attributes.
//!
//! All of it lives in one object of the user's namespace, [`MAILBOX_LIST`], as omap
//! entries:
//!
//! * `mbox/<name>` → a framed [`MailboxEntry`] (GUID, UIDVALIDITY, special use, creation);
//! * `guid/<guid>` → the mailbox name, to find a mailbox by GUID;
//! * `sub/<name>` → empty, one per subscription;
//! * `counters` → a framed [`ListCounters`] (the last UIDVALIDITY handed out).
//!
//! Every change is one atomic write on that object behind `omap_cmp` guards on the values
//! it read, retried with jittered backoff when a concurrent change won. A mailbox's data
//! lives in objects named by its GUID, so renaming only rewrites list entries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use objstore::{CmpOp, ObjectStore, WriteOp};
use omap_index::FormatError;
use omap_index::frame;
use omap_index::keys;
use omap_index::names::{Guid, MAILBOX_LIST};
use omap_index::records::{ListCounters, MailboxEntry};

use crate::caches::Caches;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index;
use crate::mailbox::Mailbox;
pub(crate) mod admin;
mod limits;
mod migrate;
mod recover;
pub(crate) mod remap;
mod resolve;
mod subscriptions;

use crate::names::{INBOX, MAX_NAME_LEN, SEPARATOR, SPECIAL_USE, is_below, literal_prefix, normalize, pattern_matches};
use crate::types::MailboxInfo;

/// What [`User::create_mailbox_with`] gives a new mailbox instead of fresh values (a
/// migration keeps the identity mailboxes had elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The mailbox GUID; it must not be in use by another mailbox of the user.
    pub guid: Option<Guid>,
    /// The UIDVALIDITY (not 0). Mailboxes created later still get larger ones.
    pub uidvalidity: Option<u32>,
}

/// One user's mail: the mailbox list and the way into each mailbox.
///
/// Obtained from [`MailStore::user`](crate::MailStore::user). Cheap to clone; every
/// method is safe to call from many threads and processes at once.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's namespace.
    store: Arc<dyn ObjectStore>,
    config: Arc<Config>,
    name: String,
    /// The process's caches, shared with the [`crate::MailStore`].
    caches: Caches,
}

impl User {
    /// A user whose objects live in `store` (the user's namespace).
    pub(crate) fn new(store: Arc<dyn ObjectStore>, config: Arc<Config>, name: &str, caches: Caches) -> User {
        User { store, config, name: name.to_string(), caches }
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object store of the user's namespace, for tools and tests that look at the
    /// raw objects. Writing to it bypasses every invariant of this crate.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The user's namespace in the data pool, where mail bodies are (the same store as
    /// [`User::store`] unless the deployment has a separate data pool), for tools and tests
    /// that look at the raw objects.
    pub fn body_store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(self.bodies()?.store().clone())
    }

    /// Where the user's bodies are and how their references are kept.
    pub(crate) fn bodies(&self) -> Result<crate::layout::Bodies> {
        self.caches.layout.bodies(&self.store)
    }

    /// Creates a mailbox with a new GUID and a UIDVALIDITY larger than any handed out
    /// before to this user.
    ///
    /// The name is validated and normalized (see [`User::mailbox_info`]); the returned
    /// info carries the normalized name. Fails with [`Error::AlreadyExists`] if a mailbox
    /// of that name exists, [`Error::InvalidInput`] for an invalid name.
    pub fn create_mailbox(&self, name: &str) -> Result<MailboxInfo> {
        self.create_mailbox_with(name, &CreateOptions::default())
    }

    /// Creates a mailbox as [`User::create_mailbox`] does, with the GUID and UIDVALIDITY
    /// of `options` where given. [`Error::AlreadyExists`] also when another mailbox of the
    /// user has that GUID (or a head object of that GUID is left over); a given
    /// UIDVALIDITY raises the user's counter, so mailboxes created later get larger ones.
    pub fn create_mailbox_with(&self, name: &str, options: &CreateOptions) -> Result<MailboxInfo> {
        let name = normalize(name)?;
        if options.uidvalidity == Some(0) {
            return Err(Error::InvalidInput(format!("UIDVALIDITY 0 for mailbox {name:?}")));
        }
        let key = keys::mailbox(&name);
        let given_guid_key = options.guid.map(|g| keys::mailbox_guid(&g));
        self.retry(&format!("creating {name:?}"), || {
            let mut wanted = vec![key.as_str(), keys::COUNTERS];
            wanted.extend(given_guid_key.as_deref());
            let (snapshot, mailboxes) = self.read_keys_counting(&wanted)?;
            let list_exists = snapshot.is_some();
            let current = snapshot.unwrap_or_default();
            if current.contains_key(&key) {
                return Err(already_exists(&name));
            }
            if let Some(in_use) = given_guid_key.as_ref().and_then(|k| current.get(k)) {
                let other = String::from_utf8_lossy(in_use);
                return Err(Error::AlreadyExists(format!(
                    "mailbox GUID {} (mailbox {other:?})",
                    options.guid.unwrap()
                )));
            }
            self.check_mailbox_count(mailboxes, &name)?;
            let prev_counters = current.get(keys::COUNTERS).cloned().unwrap_or_default();
            let mut counters =
                if prev_counters.is_empty() { ListCounters::default() } else { self.counters_of(&prev_counters)? };
            let uidvalidity = match options.uidvalidity {
                Some(given) => given,
                None => next_uidvalidity(counters.last_uidvalidity)?,
            };
            counters.last_uidvalidity = counters.last_uidvalidity.max(uidvalidity);
            let info = MailboxInfo {
                name: name.clone(),
                guid: options.guid.unwrap_or_else(|| Guid(rand::random())),
                uidvalidity,
                special_use: Vec::new(),
                created: now_secs(),
            };
            let guid_key = keys::mailbox_guid(&info.guid);

            // The head first: a crash between the two writes leaves an unlisted head
            // behind, never a listed mailbox without one.
            index::create_head(&*self.store, &info.guid, uidvalidity, self.config.shard_bits)?;

            // `omap_cmp` needs the object; the very first write creates it instead.
            let guards = if list_exists {
                WriteOp::new()
                    .omap_cmp(key.clone(), CmpOp::Eq, Vec::new())
                    .omap_cmp(guid_key.clone(), CmpOp::Eq, Vec::new())
                    .omap_cmp(keys::COUNTERS, CmpOp::Eq, prev_counters)
            } else {
                WriteOp::new().create_exclusive()
            };
            let set =
                [(key.clone(), frame::encode(&entry_of(&info))), (guid_key.clone(), info.name.as_bytes().to_vec())];
            let expect = resolve::Expect {
                after: resolve::state(&set, &[]),
                before: resolve::state(&[], &[key.clone(), guid_key]),
            };
            let op = guards.omap_set(set).omap_set([(keys::COUNTERS.to_string(), frame::encode(&counters))]);
            match self.try_write_resolved(&op, &expect) {
                Ok(true) => Ok(Some(info)),
                Ok(false) => {
                    // Nothing refers to the head: drop it and start over with fresh values.
                    index::destroy(&self.bodies()?, &info.guid, &self.caches.retry, self.config.ref_in_flight)?;
                    Ok(None)
                }
                // The write may or may not have happened (the cluster did not tell in
                // time): keep the head, which is harmless if unlisted and needed if listed.
                Err(e) => Err(e),
            }
        })
    }

    /// Deletes a mailbox with all its mails.
    ///
    /// The mailbox leaves the list first (atomically), then its objects are removed.
    /// Mailboxes below it in the hierarchy stay, and so do subscriptions (IMAP allows
    /// subscriptions to names that do not exist). [`Error::NotFound`] if it does not exist.
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        let name = normalize(name)?;
        let key = keys::mailbox(&name);
        let guid = self.retry(&format!("deleting {name:?}"), || {
            let current = self.read_keys(&[&key])?.and_then(|mut m| m.remove(&key));
            let current = current.ok_or_else(|| not_found(&name))?;
            let info = self.info_of(&name, &key, &current)?;
            let removed = [key.clone(), keys::mailbox_guid(&info.guid)];
            let expect = resolve::Expect {
                after: resolve::state(&[], &removed),
                before: resolve::state(&[(key.clone(), current.clone())], &[]),
            };
            let op = WriteOp::new().omap_cmp(key.clone(), CmpOp::Eq, current).omap_rm_keys(removed);
            Ok(self.try_write_resolved(&op, &expect)?.then_some(info.guid))
        })?;
        index::destroy(&self.bodies()?, &guid, &self.caches.retry, self.config.ref_in_flight)
    }

    /// Renames a mailbox and every mailbox below it (`old/…` becomes `new/…`) in one
    /// atomic update. Subscriptions stay as they are, to the old names (RFC 3501 6.3.6: a
    /// server must not change the subscription list on its own; Dovecot's own storages do
    /// the same). `old` may be
    /// a name that is no mailbox itself but has mailboxes below it (IMAP `\NoSelect`):
    /// those are renamed, in the same one update.
    ///
    /// GUIDs and UIDVALIDITYs do not change: the mailboxes' objects are named by GUID, and
    /// a UIDVALIDITY is never handed out twice, so `(name, UIDVALIDITY)` stays unique.
    ///
    /// Errors: [`Error::NotFound`] if `old` does not exist; [`Error::AlreadyExists`] if
    /// any of the new names exists (nothing is changed then); [`Error::InvalidInput`] for
    /// an invalid name, for `new` below `old`, for a new name that would be too long, and
    /// for renaming INBOX itself (RFC 3501 gives that a special meaning, moving INBOX's
    /// messages; mailboxes below INBOX can be renamed).
    pub fn rename_mailbox(&self, old: &str, new: &str) -> Result<()> {
        let old = normalize(old)?;
        let new = normalize(new)?;
        if old == INBOX {
            return Err(Error::InvalidInput(format!(
                "renaming INBOX (to {new:?}) is not supported: RFC 3501 defines it as moving INBOX's messages"
            )));
        }
        if is_below(&new, &old) {
            return Err(Error::InvalidInput(format!("cannot rename mailbox {old:?} to {new:?}, below itself")));
        }
        let old_key = keys::mailbox(&old);
        let renamed = |from: &str| format!("{new}{}", &from[old.len()..]);
        self.retry(&format!("renaming {old:?} to {new:?}"), || {
            let top = self.read_keys(&[&old_key])?.unwrap_or_default();
            let mut moved: Vec<(String, Vec<u8>)> =
                top.get(&old_key).map(|entry| (old.clone(), entry.clone())).into_iter().collect();
            for (key, value) in self.scan(&keys::mailbox(&format!("{old}{SEPARATOR}")))? {
                moved.push((key[keys::MAILBOX.len()..].to_string(), value));
            }
            if moved.is_empty() {
                return Err(not_found(&old));
            }

            let mut op = WriteOp::new();
            if !top.contains_key(&old_key) {
                // A \NoSelect parent: it must still be no mailbox when the children move.
                op = op.omap_cmp(old_key.clone(), CmpOp::Eq, Vec::new());
            }
            let mut remove = Vec::new();
            let mut set = Vec::new();
            let mut target_keys = Vec::new();
            for (from, value) in &moved {
                let to = renamed(from);
                if to.len() > MAX_NAME_LEN {
                    return Err(Error::InvalidInput(format!(
                        "renaming {old:?} to {new:?} would make {from:?} a name of {} bytes (at most {MAX_NAME_LEN})",
                        to.len()
                    )));
                }
                let from_key = keys::mailbox(from);
                let info = self.info_of(from, &from_key, value)?;
                let to_key = keys::mailbox(&to);
                op = op.omap_cmp(from_key.clone(), CmpOp::Eq, value.clone());
                op = op.omap_cmp(to_key.clone(), CmpOp::Eq, Vec::new());
                remove.push(from_key);
                set.push((to_key.clone(), value.clone()));
                set.push((keys::mailbox_guid(&info.guid), to.into_bytes()));
                target_keys.push(to_key);
            }
            let targets: Vec<&str> = target_keys.iter().map(String::as_str).collect();
            if let Some(taken) = self.read_keys(&targets)?.unwrap_or_default().keys().next() {
                return Err(already_exists(&taken[keys::MAILBOX.len()..]));
            }
            let before: Vec<(String, Vec<u8>)> =
                moved.iter().map(|(from, v)| (keys::mailbox(from), v.clone())).collect();
            let expect =
                resolve::Expect { after: resolve::state(&set, &remove), before: resolve::state(&before, &target_keys) };
            let op = op.omap_rm_keys(remove).omap_set(set);
            Ok(self.try_write_resolved(&op, &expect)?.then_some(()))
        })
    }

    /// The mailboxes whose names match an IMAP LIST pattern, sorted by name.
    ///
    /// `*` matches any run of characters, `%` any run without the hierarchy separator
    /// '/'; everything else matches itself, except that the INBOX part of a name matches
    /// case-insensitively. The empty pattern matches nothing.
    pub fn list_mailboxes(&self, pattern: &str) -> Result<Vec<MailboxInfo>> {
        if pattern.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (key, value) in self.scan(&keys::mailbox(literal_prefix(pattern)))? {
            let name = &key[keys::MAILBOX.len()..];
            if pattern_matches(pattern, name) {
                match self.info_of(name, &key, &value) {
                    Ok(info) => out.push(info),
                    // Unrecoverable damage of one entry hides that mailbox alone (reported).
                    Err(e @ Error::Corrupted { .. }) => crate::damage::report(&e, "a mailbox-list entry"),
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One mailbox's info; [`Error::NotFound`] if it does not exist.
    ///
    /// Mailbox names are UTF-8, 1 to 255 bytes, with levels separated by '/'; no level is
    /// empty (no leading, trailing or double '/'), and names contain neither control
    /// characters nor the LIST wildcards '*' and '%'. A first level spelled "inbox" in any
    /// case means "INBOX". Invalid names fail with [`Error::InvalidInput`].
    pub fn mailbox_info(&self, name: &str) -> Result<MailboxInfo> {
        let name = normalize(name)?;
        let key = keys::mailbox(&name);
        let value = self.read_keys(&[&key])?.and_then(|mut m| m.remove(&key)).ok_or_else(|| not_found(&name))?;
        self.info_of(&name, &key, &value)
    }

    /// The mailbox with this GUID, under its current name; [`Error::NotFound`] if none.
    pub fn mailbox_by_guid(&self, guid: &Guid) -> Result<MailboxInfo> {
        let guid_key = keys::mailbox_guid(guid);
        self.retry(&format!("looking up mailbox {guid}"), || {
            let not_found = || Error::NotFound(format!("mailbox with GUID {guid}"));
            let found = self.read_keys(&[&guid_key])?.and_then(|mut m| m.remove(&guid_key));
            let name = name_of(&guid_key, found.ok_or_else(not_found)?)?;
            // Read the mapping again with the entry, to see both at one moment.
            let key = keys::mailbox(&name);
            let mut both = self.read_keys(&[&guid_key, &key])?.unwrap_or_default();
            match (both.remove(&guid_key), both.remove(&key)) {
                (None, _) => Err(not_found()),
                (Some(again), Some(value)) if again == name.as_bytes() => {
                    let info = self.info_of(&name, &key, &value)?;
                    if info.guid != *guid {
                        let detail = format!("maps to {name:?}, whose GUID is {}", info.guid);
                        return Err(corrupted(&guid_key, FormatError::Decode(detail)));
                    }
                    Ok(Some(info))
                }
                (Some(again), None) if again == name.as_bytes() => {
                    let detail = format!("maps to {name:?}, which is not in the list");
                    Err(corrupted(&guid_key, FormatError::Decode(detail)))
                }
                // Renamed in between: look again.
                (Some(_), _) => Ok(None),
            }
        })
    }

    /// Replaces the special-use attributes (RFC 6154) of a mailbox.
    ///
    /// Each attribute must be one of `\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`,
    /// `\Sent`, `\Trash`, in any case (else [`Error::InvalidInput`]); they are stored in
    /// that spelling and order, without duplicates. An empty slice removes them all.
    /// [`Error::NotFound`] if the mailbox does not exist.
    pub fn set_special_use(&self, name: &str, attrs: &[&str]) -> Result<()> {
        let name = normalize(name)?;
        let mut canonical = Vec::new();
        for attr in attrs {
            let known = SPECIAL_USE.iter().position(|c| c.eq_ignore_ascii_case(attr)).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "special-use attribute {attr:?} for mailbox {name:?}: expected one of {}",
                    SPECIAL_USE.join(" ")
                ))
            })?;
            canonical.push(known);
        }
        canonical.sort_unstable();
        canonical.dedup();
        let wanted: Vec<String> = canonical.into_iter().map(|i| SPECIAL_USE[i].to_string()).collect();

        let key = keys::mailbox(&name);
        self.retry(&format!("setting special use of {name:?}"), || {
            let current = self.read_keys(&[&key])?.and_then(|mut m| m.remove(&key));
            let current = current.ok_or_else(|| not_found(&name))?;
            let mut entry = entry_of(&self.info_of(&name, &key, &current)?);
            if entry.special_use == wanted {
                return Ok(Some(()));
            }
            entry.special_use = wanted.clone();
            let op = WriteOp::new()
                .omap_cmp(key.clone(), CmpOp::Eq, current)
                .omap_set([(key.clone(), frame::encode(&entry))]);
            Ok(self.try_write(&op)?.then_some(()))
        })
    }

    /// Opens a mailbox; [`Error::NotFound`] if it does not exist.
    pub fn open_mailbox(&self, name: &str) -> Result<Mailbox> {
        self.caches.layout.check_known()?;
        let info = self.mailbox_info(name)?;
        Mailbox::open(self.store.clone(), self.config.clone(), info, &self.caches)
    }

    /// Opens a mailbox to add mails to (a delivery): as [`User::open_mailbox`], except that
    /// a view this process has cached is taken as it is, without reading the head again.
    /// The first commit through it is guarded by the header the view holds: when another
    /// process changed the mailbox meanwhile, that guard fails and the commit reads the head
    /// and tries again. So a delivery to a mailbox this process delivered to before costs a
    /// read of the mailbox list, the body, and the commit; its reads of records may be
    /// behind until a sync.
    pub fn open_mailbox_to_append(&self, name: &str) -> Result<Mailbox> {
        self.caches.layout.check_known()?;
        let info = self.mailbox_info(name)?;
        Mailbox::open_cached(self.store.clone(), self.config.clone(), info, &self.caches)
    }

    /// The user's private dict (Dovecot's `priv/` keys), in the user's namespace.
    pub fn dict(&self) -> crate::dict::Dict {
        crate::dict::Dict::with_retry(
            self.store.clone(),
            crate::dict::Scope::Private,
            self.caches.retry.clone(),
            self.config.max_dict_keys,
        )
    }

    /// Opens a mailbox known from an earlier listing, without looking its name up again:
    /// when this process has its view cached and nothing changed, that is one RADOS read
    /// (the head object). The GUID decides which mailbox opens; a mailbox deleted meanwhile
    /// is `NotFound`.
    pub fn open_mailbox_info(&self, info: &MailboxInfo) -> Result<Mailbox> {
        Mailbox::open(self.store.clone(), self.config.clone(), info.clone(), &self.caches)
    }

    // ---- Plumbing. ----

    /// Runs `attempt` until it returns `Some`, under the retry policy (a `None` is a lost
    /// race); [`Error::Conflict`] when the attempts are used up.
    fn retry<T>(&self, what: &str, mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let mut retry = self.caches.retry.start();
        loop {
            if let Some(done) = attempt()? {
                return Ok(done);
            }
            retry.lost(|| format!("the mailbox list of user {:?} while {what}", self.name))?;
        }
    }

    /// Applies a guarded write to the mailbox list: `false` when a guard failed because
    /// someone else changed the list since it was read.
    fn try_write(&self, op: &WriteOp) -> Result<bool> {
        match self.store.write_op(MAILBOX_LIST, op) {
            Ok(_) => {
                self.list_changed();
                Ok(true)
            }
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Tells the watchers of the mailbox list that it changed (empty payload). Not waited
    /// for; never fails.
    pub(crate) fn list_changed(&self) {
        crate::watch::notify(self.store.as_ref(), &self.caches.push, self.config.notify, MAILBOX_LIST, &[]);
    }

    /// The counters of notifies and watches.
    pub(crate) fn push(&self) -> &Arc<crate::watch::PushCounters> {
        &self.caches.push
    }

    /// A [`crate::Watch`] of this user's mail, watching nothing yet.
    pub fn watch(&self) -> Result<crate::Watch> {
        crate::Watch::new(self)
    }

    /// Values of `keys` in the mailbox list (missing keys left out); `None` when the
    /// list does not exist yet.
    fn read_keys(&self, keys: &[&str]) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        match self.store.omap_get(MAILBOX_LIST, keys) {
            Ok(found) => Ok(Some(found)),
            Err(objstore::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every entry of the mailbox list whose key begins with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        match self.store.omap_all(MAILBOX_LIST, prefix) {
            Ok(entries) => Ok(entries),
            Err(objstore::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a failed write on the mailbox list lost a race: a guard failed, or the list
/// was created (or, never by us, removed) in between. Re-reading and retrying is right.
fn lost_race(e: &objstore::Error) -> bool {
    matches!(
        e,
        objstore::Error::Conflict { .. } | objstore::Error::AlreadyExists { .. } | objstore::Error::NotFound { .. }
    )
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The UIDVALIDITY after `last`: the current time if that is larger, else `last + 1`.
pub(crate) fn next_uidvalidity(last: u32) -> Result<u32> {
    let next = last.checked_add(1).ok_or_else(|| Error::TooLarge("UIDVALIDITY space exhausted".into()))?;
    let now = u32::try_from(now_secs()).unwrap_or(u32::MAX);
    Ok(next.max(now))
}

/// The list entry of a mailbox.
fn entry_of(info: &MailboxInfo) -> MailboxEntry {
    MailboxEntry {
        guid: info.guid.0.to_vec(),
        uidvalidity: info.uidvalidity,
        special_use: info.special_use.clone(),
        created: info.created,
    }
}

fn decode_entry(key: &str, value: &[u8]) -> Result<MailboxEntry> {
    frame::decode(value).map_err(|e| corrupted(key, e))
}

/// Decodes the list entry `value` of mailbox `name`, stored under `key`.
fn decode_info(name: &str, key: &str, value: &[u8]) -> Result<MailboxInfo> {
    let entry = decode_entry(key, value)?;
    let guid = Guid::from_slice(&entry.guid).map_err(|e| corrupted(key, e))?;
    if entry.uidvalidity == 0 {
        return Err(corrupted(key, FormatError::Decode("UIDVALIDITY 0".into())));
    }
    Ok(MailboxInfo {
        name: name.to_string(),
        guid,
        uidvalidity: entry.uidvalidity,
        special_use: entry.special_use,
        created: entry.created,
    })
}

/// The mailbox name stored under a `guid/` key.
fn name_of(key: &str, value: Vec<u8>) -> Result<String> {
    String::from_utf8(value).map_err(|_| corrupted(key, FormatError::Decode("mailbox name is not UTF-8".into())))
}

fn corrupted(key: &str, e: FormatError) -> Error {
    Error::corrupted(MAILBOX_LIST, key, e)
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("mailbox {name:?}"))
}

fn already_exists(name: &str) -> Error {
    Error::AlreadyExists(format!("mailbox {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidvalidity_is_at_least_now_and_after_last() {
        let now = u32::try_from(now_secs()).unwrap();
        assert!(next_uidvalidity(0).unwrap() >= now);
        assert_eq!(next_uidvalidity(u32::MAX - 1).unwrap(), u32::MAX);
        assert!(next_uidvalidity(u32::MAX).is_err());
    }
}
