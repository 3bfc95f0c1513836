//! One walk of the whole pool, grouped by user: what `users`, `df` and `check --all` start
//! from, instead of one listing per user (listing one namespace of a RADOS pool visits
//! every placement group: one listing per user would cost O(pool) round trips per user).
//!
//! The object names of a pool of a billion objects do not fit in memory: past
//! [`SPILL_AFTER`] names, they are written to [`BUCKETS`] temporary files by a hash of
//! their user, and handed out one bucket at a time.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use omap_index::names::MAILBOX_LIST;
use rados_mail::MailStore;

use crate::error::{Error, Result};
use crate::output::progress;

/// Names held in memory before the walk spills them to files.
pub const SPILL_AFTER: usize = 4_000_000;
/// Files the names are spilled to.
pub const BUCKETS: usize = 256;

/// What one walk saw of a user's namespace.
#[derive(Debug, Default, Clone)]
pub struct UserObjects {
    /// Number of objects.
    pub count: u64,
    /// Whether the namespace holds a mailbox list (what makes it a user).
    pub has_list: bool,
    /// Whether it holds mailbox or mail objects.
    pub has_mail: bool,
}

/// The result of a walk: every user under the namespace prefix, and (when asked) the
/// names of their objects.
#[derive(Debug)]
pub struct PoolWalk {
    /// Users (names valid as user names; the shared namespace left out), sorted.
    pub users: BTreeMap<String, UserObjects>,
    names: Names,
}

#[derive(Debug)]
enum Names {
    Memory(HashMap<String, Vec<String>>),
    Spilled(Spill),
}

/// Temporary bucket files; removed when dropped.
#[derive(Debug)]
struct Spill {
    dir: PathBuf,
    writers: Vec<BufWriter<File>>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Spill {
    fn new() -> Result<Spill> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("rados-mail-walk-{}-{nanos}", std::process::id()));
        let io = |e| Error::Io { path: dir.clone(), source: e };
        std::fs::create_dir(&dir).map_err(io)?;
        let mut writers = Vec::with_capacity(BUCKETS);
        for i in 0..BUCKETS {
            writers.push(BufWriter::new(File::create(dir.join(i.to_string())).map_err(io)?));
        }
        Ok(Spill { dir, writers })
    }

    fn push(&mut self, user: &str, name: &str) -> Result<()> {
        let mut h = DefaultHasher::new();
        user.hash(&mut h);
        let w = &mut self.writers[(h.finish() % BUCKETS as u64) as usize];
        let mut put = |s: &str| -> std::io::Result<()> {
            w.write_all(&(s.len() as u32).to_le_bytes())?;
            w.write_all(s.as_bytes())
        };
        put(user).and_then(|()| put(name)).map_err(|e| Error::Io { path: self.dir.clone(), source: e })
    }

    /// The names of one bucket, by user.
    fn bucket(&self, i: usize) -> Result<HashMap<String, Vec<String>>> {
        let path = self.dir.join(i.to_string());
        let io = |e| Error::Io { path: path.clone(), source: e };
        let mut r = BufReader::new(File::open(&path).map_err(io)?);
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut next = || -> std::io::Result<Option<String>> {
            let mut len = [0u8; 4];
            match r.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let mut buf = vec![0; u32::from_le_bytes(len) as usize];
            r.read_exact(&mut buf)?;
            String::from_utf8(buf).map(Some).map_err(std::io::Error::other)
        };
        while let Some(user) = next().map_err(io)? {
            let name = next().map_err(io)?.ok_or_else(|| io(std::io::ErrorKind::UnexpectedEof.into()))?;
            out.entry(user).or_default().push(name);
        }
        Ok(out)
    }
}

/// Walks the pool once (`list_pool`; librados lists about 1,000 objects per round trip),
/// counting every user's objects, and keeping their names when `keep_names`.
pub fn walk_pool(store: &MailStore, keep_names: bool) -> Result<PoolWalk> {
    walk_pool_spilling(store, keep_names, SPILL_AFTER)
}

/// [`walk_pool`], spilling names to files past `spill_after` of them.
pub fn walk_pool_spilling(store: &MailStore, keep_names: bool, spill_after: usize) -> Result<PoolWalk> {
    // A pool this build cannot use (a newer format, a data pool the record does not name)
    // is refused here, not taken for a pool without users.
    store.layout()?;
    let prefix = store.config().namespace_prefix.clone();
    let bar = progress(None, "listing");
    let mut users: BTreeMap<String, UserObjects> = BTreeMap::new();
    let mut memory: HashMap<String, Vec<String>> = HashMap::new();
    let (mut held, mut spill) = (0usize, None::<Spill>);
    for entry in store.pool().list_pool()? {
        let (ns, name) = entry?;
        bar.inc(1);
        // Mapping v2: `<prefix>/<user>` (`<user>` without a prefix); other namespaces
        // (other prefixes, v1 leftovers, the shared data) are not this store's users.
        let Some(user) = omap_index::names::split_namespace(&prefix, &ns) else { continue };
        if user.starts_with('.') {
            continue;
        }
        let u = users.entry(user.to_string()).or_default();
        u.count += 1;
        u.has_list |= name == MAILBOX_LIST;
        u.has_mail |= name.starts_with("mail.") || name.starts_with("mbox.");
        if !keep_names {
            continue;
        }
        match spill.as_mut() {
            Some(s) => s.push(user, &name)?,
            None => {
                memory.entry(user.to_string()).or_default().push(name);
                held += 1;
                if held > spill_after {
                    let mut s = Spill::new()?;
                    for (user, names) in memory.drain() {
                        names.iter().try_for_each(|n| s.push(&user, n))?;
                    }
                    spill = Some(s);
                }
            }
        }
    }
    bar.finish_and_clear();
    users.retain(|name, _| store.user(name).is_ok());
    let names = match spill {
        Some(mut s) => {
            for w in &mut s.writers {
                w.flush().map_err(|e| Error::Io { path: s.dir.clone(), source: e })?;
            }
            Names::Spilled(s)
        }
        None => Names::Memory(memory),
    };
    Ok(PoolWalk { users, names })
}

impl PoolWalk {
    /// Calls `f` with each user that `want` selects and the names of its objects (empty
    /// unless the walk kept them): in name order when they fit in memory, else bucket by
    /// bucket.
    pub fn for_each(
        self,
        want: impl Fn(&UserObjects) -> bool,
        mut f: impl FnMut(&str, Vec<String>) -> Result<()>,
    ) -> Result<()> {
        let selected = |user: &str| self.users.get(user).is_some_and(&want);
        match &self.names {
            Names::Memory(memory) => {
                for user in self.users.keys().filter(|u| selected(u)) {
                    f(user, memory.get(user).cloned().unwrap_or_default())?;
                }
            }
            Names::Spilled(spill) => {
                for i in 0..BUCKETS {
                    let mut bucket: Vec<(String, Vec<String>)> = spill.bucket(i)?.into_iter().collect();
                    bucket.sort();
                    for (user, names) in bucket.into_iter().filter(|(u, _)| selected(u)) {
                        f(&user, names)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rados_mail::Config;

    #[test]
    fn spilled_walk_hands_out_the_same_names() {
        let store = MailStore::in_memory(Config::default());
        for u in ["alice", "bob", "carol"] {
            let user = store.user(u).unwrap();
            user.create_mailbox("INBOX").unwrap();
            user.open_mailbox("INBOX").unwrap().append(&b"Subject: x\n\ny\n"[..], Default::default()).unwrap();
        }
        store.pool().with_namespace(".shared").unwrap().write_full("dict", b"").unwrap();
        let collect = |walk: PoolWalk| {
            let mut out = BTreeMap::new();
            walk.for_each(
                |u| u.has_list,
                |u, mut names| {
                    names.sort();
                    out.insert(u.to_string(), names);
                    Ok(())
                },
            )
            .unwrap();
            out
        };
        let memory = collect(walk_pool_spilling(&store, true, usize::MAX).unwrap());
        assert_eq!(memory.keys().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
        assert_eq!(memory["alice"].len(), 3, "{memory:?}"); // mailboxes, the head, the body
        let spilled = walk_pool_spilling(&store, true, 1).unwrap();
        assert!(matches!(spilled.names, Names::Spilled(_)));
        assert_eq!(collect(spilled), memory);
    }
}
