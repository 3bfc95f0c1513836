//! Commit: the net effect of a transaction, one guarded write per object it touches.

use std::collections::BTreeMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use objstore::{CmpOp, ReadOp, WriteOp};

use super::{Committed, Dict, Effect, Op, add, net_effects};
use crate::error::{Error, Result};
use crate::refs::run_bounded;

/// How many shards' counters are read at once.
const COUNTER_READS_IN_FLIGHT: usize = 64;

/// The effects of a transaction on one object of the dict.
struct Part {
    object: String,
    effects: BTreeMap<String, Effect>,
    /// The keys changed only by increments: read before writing.
    counters: Vec<String>,
}

/// What to write to one object, from the counter values read.
struct Plan {
    /// `None`: nothing to write (only increments of unset keys).
    op: Option<WriteOp>,
    /// An increment found its key unset.
    not_found: bool,
}

/// Current values of a part's counters; `None` when the object does not exist yet.
type Counters = Option<BTreeMap<String, Vec<u8>>>;

impl Part {
    /// Reads the counters (none to read: an empty map, no I/O).
    fn read(&self, dict: &Dict) -> BoxFuture<'static, Result<Counters>> {
        if self.counters.is_empty() {
            return futures::future::ready(Ok(Some(BTreeMap::new()))).boxed();
        }
        dict.store
            .read_op_async(&self.object, ReadOp::new().omap_get(self.counters.iter().cloned()))
            .map(|r| match r {
                Ok(r) => Ok(Some(r.omap.unwrap_or_default())),
                Err(objstore::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Error::from(e)),
            })
            .boxed()
    }

    /// The write of this part given its counters' current values; fails (before any
    /// write) on a counter that is not a number or would overflow.
    fn plan(&self, current: Counters) -> Result<Plan> {
        let mut op = WriteOp::new();
        if self.counters.is_empty() {
            // Unguarded: unsets need the object to exist.
            op = op.create();
        }
        let mut set = Vec::new();
        let mut unset = Vec::new();
        let mut not_found = false;
        for (key, effect) in &self.effects {
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
            // Guards need the object; the first write creates it, or loses to the writer
            // that did.
            op = op.create_exclusive();
        }
        if !unset.is_empty() {
            op = op.omap_rm_keys(unset);
        }
        if !set.is_empty() {
            op = op.omap_set(set);
        }
        let empty = op.guards.is_empty() && op.mutations.is_empty();
        Ok(Plan { op: (!empty).then_some(op), not_found })
    }
}

impl Dict {
    /// Applies the net effect of a transaction: one guarded write per object touched,
    /// counters' objects first, each retried alone when a concurrent commit changed a
    /// counter it read.
    pub(super) fn apply(&self, ops: &[(String, Op)]) -> Result<Committed> {
        let (effects, unset_then_added) = net_effects(ops)?;
        if effects.is_empty() {
            return Ok(Committed::Applied);
        }
        let mut by_object: BTreeMap<String, BTreeMap<String, Effect>> = BTreeMap::new();
        for (key, effect) in effects {
            by_object.entry(self.object_of(&key)).or_default().insert(key, effect);
        }
        self.check_room(&by_object)?;
        let mut parts: Vec<Part> = by_object
            .into_iter()
            .map(|(object, effects)| {
                let counters =
                    effects.iter().filter(|(_, e)| matches!(e, Effect::Add(_))).map(|(k, _)| k.clone()).collect();
                Part { object, effects, counters }
            })
            .collect();
        // Objects with counters first (stable: in name order within each group): their
        // writes are the ones that can lose races or meet a value that is no number.
        parts.sort_by_key(|p| p.counters.is_empty());

        // Every counter read and every sum checked before the first write.
        let current = match parts.iter().filter(|p| !p.counters.is_empty()).count() {
            0 => parts.iter().map(|_| Ok(Some(BTreeMap::new()))).collect::<Vec<_>>(),
            1 => parts.iter().map(|p| futures::executor::block_on(p.read(self))).collect(),
            _ => run_bounded(parts.iter().map(|p| p.read(self)).collect(), COUNTER_READS_IN_FLIGHT),
        };
        let plans = parts.iter().zip(current).map(|(p, c)| p.plan(c?)).collect::<Result<Vec<_>>>()?;
        // Too large for one write: refused before anything is written.
        for (part, plan) in parts.iter().zip(&plans) {
            if let Some(op) = &plan.op {
                op.validate(&part.object)?;
            }
        }

        let mut not_found = unset_then_added;
        for (written, (part, plan)) in parts.iter().zip(plans).enumerate() {
            match self.write_part(part, plan) {
                Ok(nf) => not_found |= nf,
                Err(e) if written == 0 => return Err(e),
                Err(e) => return Err(partly_applied(e, written, parts.len())),
            }
        }
        Ok(if not_found { Committed::CounterNotFound } else { Committed::Applied })
    }

    /// Writes one part, reading its counters again after each lost race. Returns whether
    /// an increment found its key unset.
    fn write_part(&self, part: &Part, mut plan: Plan) -> Result<bool> {
        let mut retry = self.retry.start();
        loop {
            let Some(op) = &plan.op else {
                // Only increments of unset keys: nothing to write.
                return Ok(plan.not_found);
            };
            match self.store.write_op(&part.object, op) {
                Ok(_) => return Ok(plan.not_found),
                Err(e) if lost_race(&e) => {
                    retry.lost(|| {
                        format!(
                            "the {} dict (object {:?} in namespace {:?}): a commit lost every race",
                            self.scope,
                            part.object,
                            self.store.namespace()
                        )
                    })?;
                    plan = part.plan(futures::executor::block_on(part.read(self))?)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `e`, saying that `written` of the `total` objects of the commit were written before it.
fn partly_applied(e: Error, written: usize, total: usize) -> Error {
    let say = |m: String| format!("{m} (the commit was partly applied: {written} of its {total} dict shards written)");
    match e {
        Error::Unavailable(m) => Error::Unavailable(say(m)),
        Error::Conflict(m) => Error::Conflict(say(m)),
        Error::InvalidInput(m) => Error::InvalidInput(say(m)),
        Error::TooLarge(m) => Error::TooLarge(say(m)),
        other => other,
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
