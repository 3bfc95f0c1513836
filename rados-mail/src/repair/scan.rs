//! A raw read of one mailbox's objects that tolerates damage: every value that fails its
//! integrity check is noted (as a [`Damage`]) instead of failing the read. What `check`
//! reports and what `repair` and the head rebuild work from.

use std::collections::BTreeMap;

use objstore::{Error as StoreError, ObjectStore};
use omap_index::names::{self, Guid, MAILBOX_LIST, shard_of};
use omap_index::records::{DeliveryMark, ListCounters, MailRecord, MailboxEntry, MailboxHeader, WalEntry};
use omap_index::{frame, keys};

use crate::check::Damage;
use crate::damage::DamagedRecord;
use crate::error::Result;

/// One shard as found.
#[derive(Debug, Default)]
pub(crate) struct ShardScan {
    /// The `applied` mark; None when missing or corrupt.
    pub(crate) applied: Option<u64>,
    /// Intact records.
    pub(crate) records: BTreeMap<u32, MailRecord>,
    /// Records that failed their check.
    pub(crate) damaged: BTreeMap<u32, DamagedRecord>,
    /// `m/<modseq>/<uid>` keys.
    pub(crate) modseq_keys: Vec<(u64, u32)>,
    /// `x/<modseq>/<uid>` keys.
    pub(crate) tombstones: Vec<(u64, u32)>,
    /// Whether a record carries a frame version above the one this code knows.
    pub(crate) newer_format: bool,
    /// The `applied` value as stored, when it is damaged.
    pub(crate) applied_corrupt: Option<Vec<u8>>,
}

/// A mailbox head and its shards as found.
#[derive(Debug)]
pub(crate) struct MailboxScan {
    pub(crate) guid: Guid,
    pub(crate) head_oid: String,
    /// Whether the head object exists.
    pub(crate) head_exists: bool,
    /// The `hdr` value as stored (None: absent).
    pub(crate) hdr_bytes: Option<Vec<u8>>,
    /// The header, when intact.
    pub(crate) hdr: Option<MailboxHeader>,
    /// The trim mark, when present and intact.
    pub(crate) trim: Option<u64>,
    /// Whether the `trim` value is present but corrupt.
    pub(crate) trim_corrupt: bool,
    /// Whether the `recent` value is present but corrupt.
    pub(crate) recent_corrupt: bool,
    /// Intact WAL entries by modseq.
    pub(crate) wal: BTreeMap<u64, WalEntry>,
    /// Modseqs of WAL entries that failed their check (the modseq is the key's).
    pub(crate) corrupt_wal: Vec<u64>,
    /// The bytes of each of those entries.
    pub(crate) corrupt_wal_bytes: BTreeMap<u64, Vec<u8>>,
    /// `damaged/` keys: changes a head rebuild found lost (see `head::plan`).
    pub(crate) lost_changes: Vec<String>,
    /// `dlv/` keys whose key or value failed its check: such a mark makes every retry of
    /// its delivery fail (the commit's guard finds the key present, the read finds no
    /// mark) until its bucket expires; repair removes them.
    pub(crate) damaged_marks: Vec<String>,
    /// Shards by number.
    pub(crate) shards: BTreeMap<u32, ShardScan>,
    /// Every value that failed its check, head and shards.
    pub(crate) damage: Vec<Damage>,
    /// Whether a value carries a frame version above the one this code knows: written by a
    /// newer rados-mail, so not damage this code may repair.
    pub(crate) newer_format: bool,
    /// Whether a delivery mark carries a frame version above the one this code knows.
    pub(crate) newer_marks: bool,
}

fn damage(object: &str, key: &str, detail: impl ToString) -> Damage {
    Damage { object: object.into(), key: Some(key.into()), detail: detail.to_string() }
}

impl MailboxScan {
    /// Reads the head of mailbox `guid` and its shards: those numbered in `shards` (from a
    /// listing of the namespace) or, without a listing, shard 0 up to the last one the
    /// header's UIDNEXT or the WAL implies, and beyond it while shards exist.
    pub(crate) fn read(store: &dyn ObjectStore, guid: &Guid, shards: Option<&[u32]>) -> Result<MailboxScan> {
        let head_oid = names::mailbox_head(guid);
        let mut scan = MailboxScan {
            guid: *guid,
            head_oid: head_oid.clone(),
            head_exists: true,
            hdr_bytes: None,
            hdr: None,
            trim: None,
            trim_corrupt: false,
            recent_corrupt: false,
            wal: BTreeMap::new(),
            corrupt_wal: Vec::new(),
            corrupt_wal_bytes: BTreeMap::new(),
            lost_changes: Vec::new(),
            damaged_marks: Vec::new(),
            shards: BTreeMap::new(),
            damage: Vec::new(),
            newer_format: false,
            newer_marks: false,
        };
        let values = match store.omap_all(&head_oid, "") {
            Ok(v) => v,
            Err(StoreError::NotFound { .. }) => {
                scan.head_exists = false;
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        for (key, value) in values {
            if key == keys::HDR {
                match frame::decode::<MailboxHeader>(&value) {
                    Ok(h) if Guid::from_slice(&h.guid).ok() == Some(*guid) => scan.hdr = Some(h),
                    Ok(h) => scan.damage.push(damage(&head_oid, &key, format!("header of GUID {:02x?}", h.guid))),
                    Err(e) => scan.damage.push(damage(&head_oid, &key, e)),
                }
                scan.hdr_bytes = Some(value);
            } else if key == keys::TRIM {
                match keys::parse_hex64(&value) {
                    Ok(t) => scan.trim = Some(t),
                    Err(e) => {
                        scan.trim_corrupt = true;
                        scan.damage.push(damage(&head_oid, &key, e));
                    }
                }
            } else if key == keys::RECENT {
                if let Err(e) = keys::parse_hex32(&value) {
                    scan.recent_corrupt = true;
                    scan.damage.push(damage(&head_oid, &key, e));
                }
            } else if key.starts_with(keys::DAMAGED) {
                scan.lost_changes.push(key);
            } else if key.starts_with(keys::DELIVERY) {
                let checked = keys::parse_delivery(&key)
                    .map_err(|e| e.to_string())
                    .and_then(|_| frame::decode::<DeliveryMark>(&value).map(drop).map_err(|e| e.to_string()));
                if let Err(e) = checked {
                    if frame::is_newer(&value) {
                        scan.newer_marks = true;
                    } else {
                        scan.damage.push(damage(&head_oid, &key, format!("delivery mark: {e}")));
                        scan.damaged_marks.push(key);
                    }
                }
            } else if let Some(hex) = key.strip_prefix(keys::WAL) {
                let Ok(modseq) = keys::parse_hex64(hex.as_bytes()) else {
                    scan.damage.push(damage(&head_oid, &key, "not a WAL key"));
                    continue;
                };
                match frame::decode::<WalEntry>(&value) {
                    Ok(e) if e.modseq == modseq => drop(scan.wal.insert(modseq, e)),
                    Ok(e) => {
                        scan.corrupt_wal.push(modseq);
                        scan.corrupt_wal_bytes.insert(modseq, value);
                        scan.damage.push(damage(&head_oid, &key, format!("WAL entry of modseq {}", e.modseq)));
                    }
                    Err(e) => {
                        scan.corrupt_wal.push(modseq);
                        scan.corrupt_wal_bytes.insert(modseq, value);
                        scan.damage.push(damage(&head_oid, &key, e));
                    }
                }
            }
        }
        if scan.head_exists && scan.hdr_bytes.is_none() {
            scan.damage.push(damage(&head_oid, keys::HDR, "missing"));
        }
        let bits = scan.shard_bits();
        let wanted: Vec<u32> = match shards {
            Some(list) => list.to_vec(),
            None => {
                let mut last = scan.hdr.as_ref().filter(|h| h.uidnext > 1).map(|h| shard_of(h.uidnext - 1, bits));
                for e in scan.wal.values() {
                    for c in &e.changes {
                        last = last.max(Some(shard_of(c.uid, bits)));
                    }
                }
                (0..=last.unwrap_or(0)).collect()
            }
        };
        for k in wanted {
            scan.read_shard(store, k)?;
        }
        if shards.is_none() {
            // Shards beyond what the header says (a header rebuilt too low, or lost).
            let mut k = scan.shards.keys().last().map_or(0, |k| k + 1);
            while scan.read_shard(store, k)? {
                k += 1;
            }
        }
        scan.newer_format = scan.hdr_bytes.as_deref().is_some_and(frame::is_newer)
            || scan.corrupt_wal_bytes.values().any(|v| frame::is_newer(v))
            || scan.shards.values().any(|s| s.newer_format)
            || scan.newer_marks;
        // A damaged record that a WAL entry not yet applied replaces (or expunges) is
        // damage no more.
        let (_, still) = scan.records();
        let shard_prefix = format!("{head_oid}.");
        scan.damage.retain(|d| {
            let record_uid = d.key.as_deref().and_then(|k| keys::parse_record(k).ok());
            match record_uid {
                Some(uid) if d.object.starts_with(&shard_prefix) => still.contains_key(&uid),
                _ => true,
            }
        });
        Ok(scan)
    }

    /// Reads shard `k`; false when it does not exist.
    fn read_shard(&mut self, store: &dyn ObjectStore, k: u32) -> Result<bool> {
        let oid = names::mailbox_shard(&self.guid, k);
        let values = match store.omap_all(&oid, "") {
            Ok(v) => v,
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut shard = ShardScan::default();
        let applied_value = values.iter().find(|(key, _)| key == keys::APPLIED).map(|(_, v)| v.clone());
        match applied_value.as_deref().map(keys::parse_hex64) {
            Some(Ok(a)) => shard.applied = Some(a),
            Some(Err(e)) => {
                self.damage.push(damage(&oid, keys::APPLIED, e));
                shard.applied_corrupt = applied_value.clone();
            }
            None => {}
        }
        let applied = shard.applied.unwrap_or(0);
        for (key, value) in values {
            if key.starts_with(keys::RECORD) {
                let Ok(uid) = keys::parse_record(&key) else {
                    self.damage.push(damage(&oid, &key, "not a record key"));
                    continue;
                };
                match crate::index::decode_record(uid, &value) {
                    Ok(r) => drop(shard.records.insert(uid, r)),
                    Err(detail) => {
                        shard.newer_format |= frame::is_newer(&value);
                        self.damage.push(damage(&oid, &key, &detail));
                        let d = DamagedRecord { object: oid.clone(), key: key.clone(), detail, modseq: applied };
                        shard.damaged.insert(uid, d);
                    }
                }
            } else if key.starts_with(keys::MODSEQ) || key.starts_with(keys::EXPUNGED) {
                match keys::parse_indexed(&key) {
                    Ok(pair) if key.starts_with(keys::MODSEQ) => shard.modseq_keys.push(pair),
                    Ok(pair) => shard.tombstones.push(pair),
                    Err(e) => self.damage.push(damage(&oid, &key, e)),
                }
            }
        }
        self.shards.insert(k, shard);
        Ok(true)
    }

    /// The shard size of the mailbox: the header's when intact, else the one that puts
    /// every record found into the shard it was found in (the default when none is found).
    pub(crate) fn shard_bits(&self) -> u32 {
        if let Some(h) = &self.hdr {
            return h.shard_bits;
        }
        let fits = |bits: u32| {
            self.shards.iter().all(|(k, s)| s.records.keys().chain(s.damaged.keys()).all(|u| shard_of(*u, bits) == *k))
        };
        let default = names::DEFAULT_SHARD_BITS;
        if fits(default) {
            return default;
        }
        (1..=31).find(|b| fits(*b)).unwrap_or(default)
    }

    /// The applied mark of shard `k` (0 when missing or damaged: it applied nothing known).
    pub(crate) fn applied(&self, k: u32) -> u64 {
        self.shards.get(&k).and_then(|s| s.applied).unwrap_or(0)
    }

    /// The mails as head and shards say now: the shards' records with the intact WAL
    /// entries above each shard's applied mark laid over them, and the damaged records
    /// no later entry replaced.
    pub(crate) fn records(&self) -> (BTreeMap<u32, MailRecord>, BTreeMap<u32, DamagedRecord>) {
        let bits = self.shard_bits();
        let mut records = BTreeMap::new();
        let mut damaged = BTreeMap::new();
        for s in self.shards.values() {
            records.extend(s.records.iter().map(|(u, r)| (*u, r.clone())));
            damaged.extend(s.damaged.iter().map(|(u, d)| (*u, d.clone())));
        }
        for e in self.wal.values() {
            for c in &e.changes {
                if e.modseq > self.applied(shard_of(c.uid, bits)) {
                    damaged.remove(&c.uid);
                    crate::index::apply_change(&mut records, c);
                }
            }
        }
        (records, damaged)
    }

    /// Disagreements between the header, the WAL and the shards (with the header intact).
    pub(crate) fn problems(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Some(hdr) = &self.hdr else { return out };
        let bits = hdr.shard_bits;
        for (k, s) in &self.shards {
            let oid = names::mailbox_shard(&self.guid, *k);
            if let Some(a) = s.applied.filter(|a| *a > hdr.highestmodseq) {
                out.push(format!(
                    "{name}: shard {oid} applied up to modseq {a}, above HIGHESTMODSEQ {}",
                    hdr.highestmodseq
                ));
            }
            for uid in s.records.keys().chain(s.damaged.keys()) {
                if shard_of(*uid, bits) != *k {
                    out.push(format!("{name}: UID {uid} stored in shard {oid}, not its own"));
                }
                if *uid >= hdr.uidnext {
                    out.push(format!("{name}: UID {uid} in shard {oid} is not below UIDNEXT {}", hdr.uidnext));
                }
            }
        }
        if let Some(last) = self.wal.keys().chain(&self.corrupt_wal).max().filter(|m| **m > hdr.highestmodseq) {
            out.push(format!("{name}: WAL entry of modseq {last} above HIGHESTMODSEQ {}", hdr.highestmodseq));
        }
        if let (Some(trim), Some(first)) = (self.trim, self.wal.keys().next())
            && *first <= trim
        {
            out.push(format!("{name}: WAL entry of modseq {first} not above the trim mark {trim}"));
        }
        for key in &self.lost_changes {
            out.push(format!(
                "{name}: {} holds {key}: what it lost may still be in a body for repair to move to lost+found",
                self.head_oid
            ));
        }
        let (records, damaged) = self.records();
        let count = (records.len() + damaged.len()) as u32;
        if count != hdr.messages {
            out.push(format!("{name}: the header counts {} messages, the index holds {count}", hdr.messages));
        }
        out
    }

    /// Whether the intact header disagrees with the shards and the WAL in a way a rebuild
    /// of the head mends: a shard or a WAL entry past HIGHESTMODSEQ, a UID not below
    /// UIDNEXT, a WAL entry not above the trim mark, a message count that is not the
    /// number of mails.
    pub(crate) fn header_disagrees(&self) -> bool {
        let Some(hdr) = &self.hdr else { return false };
        let past = self.shards.values().any(|s| s.applied.is_some_and(|a| a > hdr.highestmodseq))
            || self.wal.keys().chain(&self.corrupt_wal).any(|m| *m > hdr.highestmodseq);
        let uid_above =
            self.shards.values().any(|s| s.records.keys().chain(s.damaged.keys()).any(|u| *u >= hdr.uidnext));
        let untrimmed = matches!((self.trim, self.wal.keys().next()), (Some(t), Some(first)) if *first <= t);
        let (records, damaged) = self.records();
        past || uid_above || untrimmed || (records.len() + damaged.len()) as u32 != hdr.messages
    }

    /// Whether anything in the head needs a rebuild.
    pub(crate) fn head_damaged(&self) -> bool {
        self.head_exists
            && (self.hdr.is_none() || self.trim_corrupt || self.recent_corrupt || !self.corrupt_wal.is_empty())
    }
}

/// One `mbox/<name>` entry of a mailbox list as found.
#[derive(Debug)]
pub(crate) struct ListEntryScan {
    /// The mailbox name.
    pub(crate) name: String,
    /// The bytes stored (the guard of a rewrite).
    pub(crate) bytes: Vec<u8>,
    /// The entry, when intact.
    pub(crate) entry: Option<MailboxEntry>,
    /// The mailbox's GUID: the entry's, or, when the entry is damaged, the one GUID the
    /// `guid/` map names it for.
    pub(crate) guid: Option<Guid>,
}

/// A user's mailbox list as found.
#[derive(Debug, Default)]
pub(crate) struct ListScan {
    pub(crate) entries: Vec<ListEntryScan>,
    /// The `counters` value as stored, and whether it is damaged.
    pub(crate) counters: Option<(Vec<u8>, bool)>,
    /// Every value that failed its check.
    pub(crate) damage: Vec<Damage>,
    /// Disagreements between the entries and the GUID map.
    pub(crate) problems: Vec<String>,
    /// `guid/` values that are damaged (key, bytes stored).
    pub(crate) bad_map: Vec<(String, Vec<u8>)>,
    /// `guid/` entries naming a mailbox that is not in the list (GUID, name).
    pub(crate) unlisted_map: Vec<(Guid, String)>,
}

impl ListScan {
    /// Reads the `mailboxes` object of the user's namespace (absent: an empty list).
    pub(crate) fn read(store: &dyn ObjectStore) -> Result<ListScan> {
        let values = match store.omap_all(MAILBOX_LIST, "") {
            Ok(v) => v,
            Err(StoreError::NotFound { .. }) => return Ok(ListScan::default()),
            Err(e) => return Err(e.into()),
        };
        let mut scan = ListScan::default();
        let mut by_name: BTreeMap<String, Vec<Guid>> = BTreeMap::new();
        let mut map: Vec<(Guid, String)> = Vec::new();
        for (key, value) in &values {
            if let Some(hex) = key.strip_prefix(keys::MAILBOX_GUID) {
                match (Guid::parse(hex), std::str::from_utf8(value)) {
                    (Ok(g), Ok(name)) => {
                        by_name.entry(name.to_string()).or_default().push(g);
                        map.push((g, name.to_string()));
                    }
                    _ => {
                        scan.damage.push(damage(MAILBOX_LIST, key, "not a GUID mapped to a UTF-8 name"));
                        scan.bad_map.push((key.clone(), value.clone()));
                    }
                }
            } else if key == keys::COUNTERS {
                let bad = frame::decode::<ListCounters>(value).is_err();
                if bad {
                    scan.damage.push(damage(MAILBOX_LIST, key, "fails its integrity check"));
                }
                scan.counters = Some((value.clone(), bad));
            }
        }
        for (key, value) in &values {
            let Some(name) = key.strip_prefix(keys::MAILBOX) else { continue };
            let decoded = frame::decode::<MailboxEntry>(value).map_err(|e| e.to_string()).and_then(|e| {
                match Guid::from_slice(&e.guid) {
                    Ok(g) if e.uidvalidity != 0 => Ok((e, g)),
                    Ok(_) => Err("UIDVALIDITY 0".to_string()),
                    Err(err) => Err(err.to_string()),
                }
            });
            let (entry, guid) = match decoded {
                Ok((e, g)) => (Some(e), Some(g)),
                Err(detail) => {
                    scan.damage.push(damage(MAILBOX_LIST, key, detail));
                    let claims = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
                    (None, if claims.len() == 1 { Some(claims[0]) } else { None })
                }
            };
            scan.entries.push(ListEntryScan { name: name.to_string(), bytes: value.clone(), entry, guid });
        }
        for e in &scan.entries {
            match (&e.entry, e.guid) {
                (Some(_), Some(g)) if !map.contains(&(g, e.name.clone())) => {
                    scan.problems.push(format!("mailbox {:?} (GUID {g}) is missing from the GUID map", e.name));
                }
                (None, None) => scan.problems.push(format!(
                    "mailbox {:?}: damaged entry, and the GUID map does not tell its GUID: it cannot be recovered",
                    e.name
                )),
                _ => {}
            }
        }
        for (g, name) in &map {
            if !scan.entries.iter().any(|e| e.name == *name) {
                scan.problems.push(format!("GUID map entry {g} names {name:?}, which is not in the list"));
                scan.unlisted_map.push((*g, name.clone()));
            }
        }
        Ok(scan)
    }
}
