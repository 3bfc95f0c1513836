//! The bound on a private dict's keys ([`crate::Config::max_dict_keys`]; `docs/FORMAT.md`,
//! "Bounded objects"): a private dict is one object, and IMAP METADATA lets a client add
//! entries without limit, so a commit that would take it past the bound is refused.

use std::collections::BTreeMap;

use objstore::{OMAP_PAGE_MAX, ReadOp};

use super::{Dict, Effect};
use crate::error::{Error, Result};
use crate::omap::count_keys;

impl Dict {
    /// Before a commit that sets keys in a bounded dict (`max_keys` above 0): fails with
    /// [`Error::TooLarge`], before anything is written, when the keys it adds (set and not
    /// there yet), less those it unsets, would take an object past the bound.
    ///
    /// One read (the keys set and unset, and the first 1,024 keys of the object), and when
    /// keys are added to an object holding more than 1,024, one read per further 1,024:
    /// commits that only change keys already there, unset keys or count (quota) pay nothing
    /// more. Commits running at the same moment may each find room for the last keys: the
    /// bound is passed by at most what they add together, never more.
    pub(super) fn check_room(&self, by_object: &BTreeMap<String, BTreeMap<String, Effect>>) -> Result<()> {
        if self.max_keys == 0 {
            return Ok(());
        }
        for (object, effects) in by_object {
            let touched: Vec<&String> =
                effects.iter().filter(|(_, e)| !matches!(e, Effect::Add(_))).map(|(k, _)| k).collect();
            if !effects.values().any(|e| matches!(e, Effect::Set(_))) {
                continue;
            }
            let op = ReadOp::new().omap_get(touched.iter().map(|k| k.to_string())).omap_range("", "", OMAP_PAGE_MAX);
            let read = match self.store.read_op(object, &op) {
                Ok(read) => read,
                // No object yet: only the keys of this commit.
                Err(objstore::Error::NotFound { .. }) => Default::default(),
                Err(e) => return Err(e.into()),
            };
            let present = read.omap.unwrap_or_default();
            let (mut added, mut removed) = (0usize, 0usize);
            for key in touched {
                match (&effects[key], present.contains_key(key)) {
                    (Effect::Set(_), false) => added += 1,
                    (Effect::Unset, true) => removed += 1,
                    _ => {}
                }
            }
            if added <= removed {
                continue;
            }
            // Counted only as far as needed to know the answer.
            let room = (self.max_keys + removed).saturating_sub(added);
            let first = read.omap_page.unwrap_or_default();
            let (count, more) = count_keys(self.store.as_ref(), object, "", first, room)?;
            if count > room {
                let holds = if more { format!("more than {count}") } else { count.to_string() };
                return Err(Error::TooLarge(format!(
                    "the {} dict (object {object:?} in namespace {:?}) holds {holds} keys, at most {} \
                     (max_dict_keys): a commit adding {} keys refused, nothing set",
                    self.scope,
                    self.store.namespace(),
                    self.max_keys,
                    added - removed
                )));
            }
        }
        Ok(())
    }
}
