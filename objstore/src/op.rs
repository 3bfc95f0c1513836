//! Compound operations: what one atomic call to the store reads or changes.
//!
//! A [`WriteOp`] is a list of guards followed by a list of mutations, applied to one object
//! atomically: either every guard holds and every mutation is applied, or nothing changes
//! and the call fails. A [`ReadOp`] reads several aspects of one object (stat, a byte range,
//! xattrs, omap values) in one round trip, optionally behind guards. These map one-to-one on
//! librados' `rados_write_op_*` / `rados_read_op_*` compound operations.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// Largest number of omap entries one read returns, whatever was asked for.
///
/// Ceph's OSDs cap every omap listing (`osd_max_omap_entries_per_request`); the in-memory
/// backend caps at this same number so that callers are forced to page on both backends.
pub const OMAP_PAGE_MAX: usize = 1024;

/// How a stored value is compared with the operand of a guard.
///
/// The comparison reads "stored value OP operand", lexicographically over bytes; a missing
/// omap key or xattr compares as the empty value. The orderings follow RADOS exactly, and
/// RADOS is not uniform: xattr comparisons order bytes as unsigned, omap comparisons as
/// *signed* chars (so bytes 0x80–0xff sort before 0x00–0x7f). For ASCII operands the two
/// agree; use [`CmpOp::Lt`] / [`CmpOp::Gt`] on fixed-width ASCII (decimal or hex counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// stored == operand
    Eq,
    /// stored < operand
    Lt,
    /// stored > operand
    Gt,
}

impl CmpOp {
    /// Whether `stored OP operand` holds, bytes compared as unsigned (RADOS xattr
    /// comparisons).
    pub fn holds(self, stored: &[u8], operand: &[u8]) -> bool {
        self.holds_by(stored.cmp(operand))
    }

    /// Whether `stored OP operand` holds, bytes compared as signed chars (RADOS omap
    /// comparisons).
    pub fn holds_signed(self, stored: &[u8], operand: &[u8]) -> bool {
        let signed = |b: &[u8]| b.iter().map(|&x| x as i8).collect::<Vec<i8>>();
        self.holds_by(signed(stored).cmp(&signed(operand)))
    }

    fn holds_by(self, ord: std::cmp::Ordering) -> bool {
        match self {
            CmpOp::Eq => ord.is_eq(),
            CmpOp::Lt => ord.is_lt(),
            CmpOp::Gt => ord.is_gt(),
        }
    }
}

/// A precondition of a compound operation. A failing guard aborts the whole operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The object must exist, else [`Error::NotFound`].
    AssertExists,
    /// The object must not exist; it is created (empty) by the operation. Else
    /// [`Error::AlreadyExists`].
    CreateExclusive,
    /// The object's version must equal this one, else [`Error::Conflict`].
    AssertVersion(u64),
    /// The omap value under `key` must compare as given, else [`Error::Conflict`].
    OmapCmp {
        /// Omap key.
        key: String,
        /// Comparison.
        op: CmpOp,
        /// Operand.
        value: Vec<u8>,
    },
    /// The xattr `name` must compare as given, else [`Error::Conflict`].
    CmpXattr {
        /// Xattr name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Operand.
        value: Vec<u8>,
    },
}

/// One change applied by a [`WriteOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Create the object if missing (no-op if it exists).
    Create,
    /// Replace the whole data of the object.
    WriteFull(Vec<u8>),
    /// Write bytes at an offset, extending the object as needed (holes read as zeros).
    Write {
        /// Byte offset.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Append bytes to the object's data.
    Append(Vec<u8>),
    /// Set the data length (cut or zero-extend).
    Truncate(u64),
    /// Remove the object with its data, xattrs and omap.
    Remove,
    /// Set an xattr.
    SetXattr {
        /// Xattr name.
        name: String,
        /// Value (any bytes).
        value: Vec<u8>,
    },
    /// Remove an xattr (missing is not an error).
    RmXattr(String),
    /// Set omap entries.
    OmapSet(Vec<(String, Vec<u8>)>),
    /// Remove omap keys (missing keys are ignored).
    OmapRmKeys(Vec<String>),
    /// Remove omap keys in `[start, end)`.
    OmapRmRange {
        /// First key removed.
        start: String,
        /// First key kept.
        end: String,
    },
    /// Remove every omap entry.
    OmapClear,
}

/// An atomic compound write on one object: guards, then mutations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOp {
    /// Preconditions, checked before anything is applied.
    pub guards: Vec<Guard>,
    /// Changes, applied in order.
    pub mutations: Vec<Mutation>,
}

impl WriteOp {
    /// An empty operation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds [`Guard::AssertExists`].
    pub fn assert_exists(mut self) -> Self {
        self.guards.push(Guard::AssertExists);
        self
    }
    /// Adds [`Guard::CreateExclusive`].
    pub fn create_exclusive(mut self) -> Self {
        self.guards.push(Guard::CreateExclusive);
        self
    }
    /// Adds [`Guard::AssertVersion`].
    pub fn assert_version(mut self, version: u64) -> Self {
        self.guards.push(Guard::AssertVersion(version));
        self
    }
    /// Adds [`Guard::OmapCmp`].
    pub fn omap_cmp(mut self, key: impl Into<String>, op: CmpOp, value: impl Into<Vec<u8>>) -> Self {
        self.guards.push(Guard::OmapCmp { key: key.into(), op, value: value.into() });
        self
    }
    /// Adds [`Guard::CmpXattr`].
    pub fn cmp_xattr(mut self, name: impl Into<String>, op: CmpOp, value: impl Into<Vec<u8>>) -> Self {
        self.guards.push(Guard::CmpXattr { name: name.into(), op, value: value.into() });
        self
    }
    /// Adds [`Mutation::Create`].
    pub fn create(mut self) -> Self {
        self.mutations.push(Mutation::Create);
        self
    }
    /// Adds [`Mutation::WriteFull`].
    pub fn write_full(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::WriteFull(data.into()));
        self
    }
    /// Adds [`Mutation::Write`].
    pub fn write(mut self, offset: u64, data: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::Write { offset, data: data.into() });
        self
    }
    /// Adds [`Mutation::Append`].
    pub fn append(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::Append(data.into()));
        self
    }
    /// Adds [`Mutation::Truncate`].
    pub fn truncate(mut self, size: u64) -> Self {
        self.mutations.push(Mutation::Truncate(size));
        self
    }
    /// Adds [`Mutation::Remove`].
    pub fn remove(mut self) -> Self {
        self.mutations.push(Mutation::Remove);
        self
    }
    /// Adds [`Mutation::SetXattr`].
    pub fn set_xattr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::SetXattr { name: name.into(), value: value.into() });
        self
    }
    /// Adds [`Mutation::RmXattr`].
    pub fn rm_xattr(mut self, name: impl Into<String>) -> Self {
        self.mutations.push(Mutation::RmXattr(name.into()));
        self
    }
    /// Adds [`Mutation::OmapSet`].
    pub fn omap_set<K, V>(mut self, entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<Vec<u8>>,
    {
        let entries = entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.mutations.push(Mutation::OmapSet(entries));
        self
    }
    /// Adds [`Mutation::OmapRmKeys`].
    pub fn omap_rm_keys<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.mutations.push(Mutation::OmapRmKeys(keys.into_iter().map(Into::into).collect()));
        self
    }
    /// Adds [`Mutation::OmapRmRange`].
    pub fn omap_rm_range(mut self, start: impl Into<String>, end: impl Into<String>) -> Self {
        self.mutations.push(Mutation::OmapRmRange { start: start.into(), end: end.into() });
        self
    }
    /// Adds [`Mutation::OmapClear`].
    pub fn omap_clear(mut self) -> Self {
        self.mutations.push(Mutation::OmapClear);
        self
    }

    /// Checks every name and key of the operation; both backends call this first so that
    /// bad input fails the same way everywhere.
    pub fn validate(&self, oid: &str) -> Result<()> {
        check_oid(oid)?;
        if self.guards.is_empty() && self.mutations.is_empty() {
            return Err(Error::InvalidInput("empty write operation".into()));
        }
        for g in &self.guards {
            match g {
                Guard::OmapCmp { key, .. } => check_key(key)?,
                Guard::CmpXattr { name, .. } => check_xattr(name)?,
                _ => {}
            }
        }
        let payload: usize = self
            .mutations
            .iter()
            .map(|m| match m {
                Mutation::WriteFull(d) | Mutation::Append(d) | Mutation::Write { data: d, .. } => d.len(),
                Mutation::SetXattr { value, .. } => value.len(),
                Mutation::OmapSet(entries) => entries.iter().map(|(k, v)| k.len() + v.len()).sum(),
                _ => 0,
            })
            .sum();
        if payload as u64 > MAX_WRITE {
            return Err(Error::TooLarge(format!("write of {payload} bytes (at most {MAX_WRITE} per operation)")));
        }
        // RADOS gives surprising results for several removes in one operation (remove,
        // create, remove leaves an object behind); one is all a caller ever needs.
        if self.mutations.iter().filter(|m| matches!(m, Mutation::Remove)).count() > 1 {
            return Err(Error::InvalidInput("at most one remove per operation".into()));
        }
        for m in &self.mutations {
            match m {
                Mutation::SetXattr { name, .. } | Mutation::RmXattr(name) => check_xattr(name)?,
                Mutation::OmapSet(entries) => entries.iter().try_for_each(|(k, _)| check_key(k))?,
                Mutation::OmapRmKeys(keys) => keys.iter().try_for_each(|k| check_key(k))?,
                Mutation::OmapRmRange { start, end } => {
                    check_key(start)?;
                    check_key(end)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A listing of omap entries: keys after `start_after` that begin with `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OmapRange {
    /// Only keys strictly greater than this one (empty: from the start).
    pub start_after: String,
    /// Only keys beginning with this prefix (empty: all).
    pub prefix: String,
    /// At most this many entries (the store may return fewer, see [`OMAP_PAGE_MAX`]).
    pub max: usize,
}

/// A compound read of one object, answered in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOp {
    /// Preconditions (only [`Guard::AssertExists`], [`Guard::AssertVersion`],
    /// [`Guard::OmapCmp`] and [`Guard::CmpXattr`] are valid on reads).
    pub guards: Vec<Guard>,
    /// Return size and modification time.
    pub stat: bool,
    /// Read `len` bytes at `offset` (fewer at the end of the object).
    pub read: Option<(u64, u64)>,
    /// Return all xattrs.
    pub xattrs: bool,
    /// Return the omap values of these keys (missing keys are left out).
    pub omap_keys: Option<Vec<String>>,
    /// Return a page of omap entries.
    pub omap_range: Option<OmapRange>,
}

impl ReadOp {
    /// An empty read.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds [`Guard::AssertExists`].
    pub fn assert_exists(mut self) -> Self {
        self.guards.push(Guard::AssertExists);
        self
    }
    /// Adds [`Guard::AssertVersion`].
    pub fn assert_version(mut self, version: u64) -> Self {
        self.guards.push(Guard::AssertVersion(version));
        self
    }
    /// Adds [`Guard::OmapCmp`].
    pub fn omap_cmp(mut self, key: impl Into<String>, op: CmpOp, value: impl Into<Vec<u8>>) -> Self {
        self.guards.push(Guard::OmapCmp { key: key.into(), op, value: value.into() });
        self
    }
    /// Adds [`Guard::CmpXattr`].
    pub fn cmp_xattr(mut self, name: impl Into<String>, op: CmpOp, value: impl Into<Vec<u8>>) -> Self {
        self.guards.push(Guard::CmpXattr { name: name.into(), op, value: value.into() });
        self
    }
    /// Asks for size and mtime.
    pub fn stat(mut self) -> Self {
        self.stat = true;
        self
    }
    /// Asks for a byte range.
    pub fn read(mut self, offset: u64, len: u64) -> Self {
        self.read = Some((offset, len));
        self
    }
    /// Asks for all xattrs.
    pub fn xattrs(mut self) -> Self {
        self.xattrs = true;
        self
    }
    /// Asks for the values of these omap keys.
    pub fn omap_get<K: Into<String>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        self.omap_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }
    /// Asks for a page of omap entries.
    pub fn omap_range(mut self, start_after: impl Into<String>, prefix: impl Into<String>, max: usize) -> Self {
        self.omap_range = Some(OmapRange { start_after: start_after.into(), prefix: prefix.into(), max });
        self
    }

    /// Checks every name and key of the read.
    pub fn validate(&self, oid: &str) -> Result<()> {
        check_oid(oid)?;
        for g in &self.guards {
            match g {
                Guard::CreateExclusive => {
                    return Err(Error::InvalidInput("create-exclusive is not a read guard".into()));
                }
                Guard::OmapCmp { key, .. } => check_key(key)?,
                Guard::CmpXattr { name, .. } => check_xattr(name)?,
                _ => {}
            }
        }
        if let Some(keys) = &self.omap_keys {
            keys.iter().try_for_each(|k| check_key(k))?;
        }
        if let Some(r) = &self.omap_range {
            check_key(&r.start_after)?;
            check_key(&r.prefix)?;
        }
        if let Some((_, len)) = self.read
            && len > MAX_READ
        {
            return Err(Error::TooLarge(format!("read of {len} bytes (at most {MAX_READ} per call)")));
        }
        Ok(())
    }
}

/// Largest byte range a single read may ask for (callers stream larger objects).
pub const MAX_READ: u64 = 64 << 20;

/// Largest payload (data, xattr values, omap entries) of one write operation. Ceph refuses
/// writes above `osd_max_write_size` (90 MiB by default); callers chunk larger mails.
pub const MAX_WRITE: u64 = 64 << 20;

/// Size and modification time of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Data length in bytes.
    pub size: u64,
    /// Last modification.
    pub mtime: SystemTime,
}

/// One page of omap entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OmapPage {
    /// Entries in key order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// True when more matching entries follow the last one returned.
    pub more: bool,
}

/// What a [`ReadOp`] returned; fields are `Some` exactly for what was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    /// The object's version when it was read.
    pub version: u64,
    /// Size and mtime.
    pub stat: Option<Stat>,
    /// The bytes read.
    pub data: Option<Vec<u8>>,
    /// All xattrs.
    pub xattrs: Option<BTreeMap<String, Vec<u8>>>,
    /// Values of the requested omap keys that exist.
    pub omap: Option<BTreeMap<String, Vec<u8>>>,
    /// The requested page of omap entries.
    pub omap_page: Option<OmapPage>,
}

/// Longest object name accepted (Ceph's `osd_max_object_name_len` default).
pub const MAX_OID_LEN: usize = 2048;
/// Longest xattr name accepted (Ceph's `osd_max_attr_name_len` default).
pub const MAX_XATTR_NAME_LEN: usize = 100;

/// Checks an object name: not empty, no NUL, at most [`MAX_OID_LEN`] bytes.
pub fn check_oid(oid: &str) -> Result<()> {
    if oid.is_empty() {
        return Err(Error::InvalidInput("empty object name".into()));
    }
    if oid.len() > MAX_OID_LEN {
        return Err(Error::InvalidInput(format!("object name of {} bytes (max {MAX_OID_LEN})", oid.len())));
    }
    no_nul("object name", oid)
}

/// Checks a namespace name: no NUL (empty is the default namespace).
pub fn check_namespace(ns: &str) -> Result<()> {
    no_nul("namespace", ns)
}

fn check_xattr(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput("empty xattr name".into()));
    }
    if name.len() > MAX_XATTR_NAME_LEN {
        return Err(Error::InvalidInput(format!("xattr name of {} bytes (max {MAX_XATTR_NAME_LEN})", name.len())));
    }
    no_nul("xattr name", name)
}

fn check_key(key: &str) -> Result<()> {
    no_nul("omap key", key)
}

fn no_nul(what: &str, s: &str) -> Result<()> {
    if s.as_bytes().contains(&0) {
        return Err(Error::InvalidInput(format!("{what} {s:?} contains a NUL byte")));
    }
    Ok(())
}
