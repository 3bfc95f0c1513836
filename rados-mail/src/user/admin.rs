//! Operator commands on whole users: delete a user, rename a user (`rados-mail user
//! delete`, `rados-mail user rename`).
//!
//! Both are multi-write operations that a crash, an outage or a lost reply can interrupt at
//! any write. Each is made so that running it again finishes it, with nothing lost and
//! nothing duplicated:
//!
//! * *Delete* removes every mailbox through [`User::delete_mailbox`] (which drops the body
//!   references as a mail server's delete does, so an interrupted delete leaves a smaller,
//!   consistent account), then the dict, then the mailbox list, then whatever else is left
//!   in the namespace (leftovers of an interrupted run, orphans). A re-run starts over on
//!   what is left.
//! * *Rename* moves every object of the user's namespace (`<prefix>/<old>`) to the new one
//!   (`<prefix>/<new>`; without a prefix, `<old>` and `<new>`): an exact copy of each object (data, xattrs, omap), then the
//!   removal of the originals. It first writes a marker object, [`RENAME_MARKER`], into
//!   both namespaces (see `docs/FORMAT.md`, "Operator commands"); a target namespace that
//!   holds objects but no marker of this rename is refused. An original is removed only
//!   after every object was copied in the same run, so a re-run copies again what is still
//!   there (overwriting its earlier, possibly partial, copy) and removes it; the markers go
//!   last.
//!
//! Neither is safe against the user's own sessions running meanwhile: the operator stops
//! them first (a copy whose source changes under it fails with [`Error::Conflict`]).

use std::collections::BTreeSet;

use objstore::{Error as StoreError, OMAP_PAGE_MAX, ObjectStore, ReadOp, WriteOp};
use omap_index::names::MAILBOX_LIST;

use crate::dict::DICT_OBJECT;
use crate::error::{Error, Result};
use crate::store::MailStore;

/// The marker object of a user rename, written into both namespaces before anything is
/// copied and removed from both after everything moved. Xattrs [`MARKER_FROM`] and
/// [`MARKER_TO`] hold the old and the new user name (UTF-8).
pub const RENAME_MARKER: &str = "user-rename";
/// Xattr of [`RENAME_MARKER`]: the user being renamed.
pub const MARKER_FROM: &str = "rm.rename.from";
/// Xattr of [`RENAME_MARKER`]: the new name.
pub const MARKER_TO: &str = "rm.rename.to";

/// Bytes of object data read and written per operation when copying an object.
const COPY_DATA_STEP: u64 = 8 << 20;
/// Omap payload (keys and values) written per operation when copying an object.
const COPY_OMAP_STEP: usize = 16 << 20;

/// What [`MailStore::delete_user`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DeleteReport {
    /// Mailboxes deleted through the mailbox list.
    pub mailboxes: usize,
    /// Objects removed after that (the dict, the mailbox list, leftovers).
    pub objects: usize,
    /// Corrupt values met on the way (the mailbox list, a mailbox's index): the objects
    /// holding them were removed as they were, with everything else.
    pub damage: Vec<String>,
}

/// What [`MailStore::rename_user`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RenameReport {
    /// Objects copied to the new namespace (and removed from the old one).
    pub objects: usize,
    /// Bytes of object data copied.
    pub bytes: u64,
    /// An interrupted rename was found (its marker) and finished.
    pub resumed: bool,
}

/// The old and new names a rename marker holds: user names for a user rename, namespaces
/// for the namespace migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The old name.
    pub from: String,
    /// The new name.
    pub to: String,
}

impl MailStore {
    /// Deletes a user: every mailbox with its mails, the dict, the mailbox list, and any
    /// other object of the user's namespace. Deleting a user who has no objects is not an
    /// error. Running it again after a failure finishes it (see the module doc).
    ///
    /// [`Error::InvalidInput`] if the user is part of an unfinished rename (finish that
    /// first). The user's sessions must be stopped.
    pub fn delete_user(&self, name: &str) -> Result<DeleteReport> {
        let user = self.user(name)?;
        let ns = user.store();
        if let Some(m) = read_marker(ns.as_ref())? {
            return Err(Error::InvalidInput(format!(
                "user {name:?} is part of an unfinished rename ({:?} to {:?}): run that rename again first",
                m.from, m.to
            )));
        }
        let mut report = DeleteReport::default();
        // Damage of the list is reported (listing recovers or skips a damaged entry; the
        // objects of a skipped one go with the leftovers below).
        for d in crate::repair::scan::ListScan::read(ns.as_ref())?.damage {
            report.damage.push(format!("{} key {}: {}", d.object, d.key.unwrap_or_default(), d.detail));
        }
        match user.list_mailboxes("*") {
            Ok(infos) => {
                for info in infos {
                    match user.delete_mailbox(&info.name) {
                        Ok(()) | Err(Error::NotFound(_)) => report.mailboxes += 1,
                        // Out of the list already; its objects go with the leftovers.
                        Err(e @ Error::Corrupted { .. }) => {
                            report.mailboxes += 1;
                            report.damage.push(e.to_string());
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e @ Error::Corrupted { .. }) => report.damage.push(e.to_string()),
            Err(e) => return Err(e),
        }
        for oid in [DICT_OBJECT, MAILBOX_LIST] {
            report.objects += usize::from(remove_if_there(ns.as_ref(), oid)?);
        }
        for oid in list_names(ns.as_ref())? {
            report.objects += usize::from(remove_if_there(ns.as_ref(), &oid)?);
        }
        Ok(report)
    }

    /// Renames a user: every object of the namespace of `old` moves to that of `new`,
    /// copied exactly (data, xattrs, omap), then removed from the old namespace. Mailbox
    /// GUIDs, UIDs, UIDVALIDITYs, flags and dict keys stay as they are.
    ///
    /// Crash-safe and resumable: running the same rename again finishes an interrupted one
    /// (see the module doc). Errors: [`Error::InvalidInput`] for equal or invalid names and
    /// when either namespace is part of another unfinished rename;
    /// [`Error::AlreadyExists`] when the new user has objects already;
    /// [`Error::NotFound`] when the old user has none; [`Error::Conflict`] when an object
    /// changed while it was copied (the user's sessions were not stopped).
    pub fn rename_user(&self, old: &str, new: &str) -> Result<RenameReport> {
        let (src_user, dst_user) = (self.user(old)?, self.user(new)?);
        let (src, dst) = (src_user.store().clone(), dst_user.store().clone());
        if src.namespace() == dst.namespace() {
            return Err(Error::InvalidInput(format!("renaming user {old:?} to itself")));
        }
        let wanted = Marker { from: old.to_string(), to: new.to_string() };
        move_namespace(src.as_ref(), dst.as_ref(), &wanted, &format!("user {old:?}"), &format!("user {new:?}"))
    }
}

/// Moves every object of namespace `src` to `dst` under the rename marker `wanted` (the
/// machinery of [`MailStore::rename_user`], also used by the namespace migration):
/// crash-safe and resumable, see the module doc. `src_what` and `dst_what` name the two
/// sides in errors ("user \"a\"").
pub(crate) fn move_namespace(
    src: &dyn ObjectStore,
    dst: &dyn ObjectStore,
    wanted: &Marker,
    src_what: &str,
    dst_what: &str,
) -> Result<RenameReport> {
    let (src_marker, dst_marker) = (read_marker(src)?, read_marker(dst)?);
    for (ns, m) in [(src, &src_marker), (dst, &dst_marker)] {
        if let Some(m) = m.as_ref().filter(|m| *m != wanted) {
            return Err(Error::InvalidInput(format!(
                "namespace {:?} is part of another unfinished rename ({:?} to {:?}): run that one again first",
                ns.namespace(),
                m.from,
                m.to
            )));
        }
    }
    let resumed = src_marker.is_some() || dst_marker.is_some();
    let objects: Vec<String> = list_names(src)?.into_iter().filter(|o| o != RENAME_MARKER).collect();
    if src_marker.is_none() && dst_marker.is_some() && !objects.is_empty() {
        // The old namespace's marker goes only after every object moved: these objects
        // were written after that (a session of the old name), and copying them would
        // overwrite the renamed user's.
        return Err(Error::Conflict(format!(
            "namespace {:?} has new objects since its rename to {:?} finished copying; \
             move them by hand, then run the rename again to remove the marker",
            src.namespace(),
            wanted.to
        )));
    }
    if objects.is_empty() && !resumed {
        return Err(Error::NotFound(format!(
            "{src_what} (namespace {:?} holds no object; if a rename of it failed at its very last \
             step, it is complete)",
            src.namespace()
        )));
    }
    if dst_marker.is_none() && list_names(dst)?.iter().any(|o| o != RENAME_MARKER) {
        return Err(Error::AlreadyExists(format!(
            "{dst_what} (namespace {:?} holds objects; delete that user first)",
            dst.namespace()
        )));
    }
    if src_marker.is_none() {
        write_marker(src, wanted)?;
    }
    if dst_marker.is_none() {
        write_marker(dst, wanted)?;
    }
    let mut report = RenameReport { resumed, ..RenameReport::default() };
    for oid in &objects {
        if let Some(bytes) = copy_object(src, dst, oid)? {
            report.objects += 1;
            report.bytes += bytes;
        }
    }
    for oid in &objects {
        remove_if_there(src, oid)?;
    }
    remove_if_there(src, RENAME_MARKER)?;
    remove_if_there(dst, RENAME_MARKER)?;
    Ok(report)
}

/// The names of every object of a namespace, sorted.
fn list_names(ns: &dyn ObjectStore) -> Result<Vec<String>> {
    let names: BTreeSet<String> = ns.list_objects()?.collect::<objstore::Result<_>>()?;
    Ok(names.into_iter().collect())
}

/// Removes an object; `false` when it was not there.
fn remove_if_there(ns: &dyn ObjectStore, oid: &str) -> Result<bool> {
    match ns.remove(oid) {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The rename marker of a namespace, if there is one.
pub(crate) fn read_marker(ns: &dyn ObjectStore) -> Result<Option<Marker>> {
    let xattrs = match ns.xattrs(RENAME_MARKER) {
        Ok(x) => x,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let field = |name: &str| {
        xattrs.get(name).and_then(|v| String::from_utf8(v.clone()).ok()).ok_or_else(|| Error::Corrupted {
            object: RENAME_MARKER.into(),
            key: None,
            detail: format!("xattr {name} missing or not UTF-8 (namespace {:?})", ns.namespace()),
        })
    };
    Ok(Some(Marker { from: field(MARKER_FROM)?, to: field(MARKER_TO)? }))
}

/// Writes the rename marker (exclusively: a marker that appeared meanwhile is checked).
fn write_marker(ns: &dyn ObjectStore, m: &Marker) -> Result<()> {
    let op = WriteOp::new()
        .create_exclusive()
        .set_xattr(MARKER_FROM, m.from.as_bytes())
        .set_xattr(MARKER_TO, m.to.as_bytes());
    match ns.write_op(RENAME_MARKER, &op) {
        Ok(_) => Ok(()),
        // Written by an earlier attempt whose reply was lost, or by someone else.
        Err(StoreError::AlreadyExists { .. }) => match read_marker(ns)? {
            Some(found) if found == *m => Ok(()),
            found => Err(Error::Conflict(format!("rename marker in namespace {:?}: {found:?}", ns.namespace()))),
        },
        Err(e) => Err(e.into()),
    }
}

/// Copies object `oid` from `src` to `dst` exactly: data, xattrs and every omap entry,
/// replacing an earlier copy. Reads are guarded by the version first read, so the copy is
/// of one state of the object ([`Error::Conflict`] if it changed meanwhile). Returns the
/// bytes of data copied, `None` if the object is gone.
fn copy_object(src: &dyn ObjectStore, dst: &dyn ObjectStore, oid: &str) -> Result<Option<u64>> {
    let first = ReadOp::new().stat().xattrs().read(0, COPY_DATA_STEP).omap_range("", "", OMAP_PAGE_MAX);
    let first = match src.read_op(oid, &first) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let version = first.version;
    let size = first.stat.map_or(0, |s| s.size);
    let data = first.data.unwrap_or_default();
    let mut op = WriteOp::new().create_exclusive().write_full(data.clone());
    for (name, value) in first.xattrs.unwrap_or_default() {
        op = op.set_xattr(name, value);
    }
    let page = first.omap_page.unwrap_or_default();
    let (mut after, mut more) = (page.entries.last().map(|(k, _)| k.clone()), page.more);
    let mut batches = omap_batches(page.entries).into_iter();
    if let Some(batch) = batches.next() {
        op = op.omap_set(batch);
    }
    match dst.write_op(oid, &op) {
        Ok(_) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            // An earlier (maybe partial) copy: replace it.
            remove_if_there(dst, oid)?;
            dst.write_op(oid, &op)?;
        }
        Err(e) => return Err(e.into()),
    }
    let set_rest = |batches: std::vec::IntoIter<Vec<(String, Vec<u8>)>>| -> Result<()> {
        for batch in batches {
            dst.write_op(oid, &WriteOp::new().assert_exists().omap_set(batch))?;
        }
        Ok(())
    };
    set_rest(batches)?;
    let guarded = |op: ReadOp| -> Result<objstore::ReadResult> {
        src.read_op(oid, &op.assert_version(version)).map_err(|e| match e {
            StoreError::Conflict { .. } | StoreError::NotFound { .. } => Error::Conflict(format!(
                "object {oid:?} of namespace {:?} changed while it was copied: stop the user's sessions and run again",
                src.namespace()
            )),
            e => e.into(),
        })
    };
    let mut offset = data.len() as u64;
    while offset < size {
        let chunk = guarded(ReadOp::new().read(offset, COPY_DATA_STEP.min(size - offset)))?.data.unwrap_or_default();
        if chunk.is_empty() {
            break;
        }
        dst.write_op(oid, &WriteOp::new().assert_exists().write(offset, chunk.clone()))?;
        offset += chunk.len() as u64;
    }
    while more {
        let start = after.clone().unwrap_or_default();
        let page = guarded(ReadOp::new().omap_range(start, "", OMAP_PAGE_MAX))?.omap_page.unwrap_or_default();
        if page.entries.is_empty() {
            break;
        }
        after = page.entries.last().map(|(k, _)| k.clone());
        more = page.more;
        set_rest(omap_batches(page.entries).into_iter())?;
    }
    Ok(Some(size))
}

/// Splits omap entries into batches of at most [`COPY_OMAP_STEP`] bytes (at least one
/// entry each).
fn omap_batches(entries: Vec<(String, Vec<u8>)>) -> Vec<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    let mut size = 0;
    for (k, v) in entries {
        let len = k.len() + v.len();
        match out.last_mut() {
            Some(batch) if size + len <= COPY_OMAP_STEP => batch.push((k, v)),
            _ => {
                size = 0;
                out.push(vec![(k, v)]);
            }
        }
        size += len;
    }
    out
}
