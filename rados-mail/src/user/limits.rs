//! The bound on the mailbox list object (`mailboxes`, docs/FORMAT.md "Bounded objects"):
//! at most [`crate::Config::max_mailboxes`] mailboxes per user, so that the object keeps
//! well under the project's limit of 100,000 omap keys (3 keys per mailbox), and at most
//! as many subscriptions (IMAP allows subscribing to names that do not exist).

use std::collections::BTreeMap;

use objstore::{OMAP_PAGE_MAX, ReadOp};
use omap_index::keys;
use omap_index::names::MAILBOX_LIST;

use super::User;
use crate::error::{Error, Result};
use crate::omap::count_keys;

/// Values of mailbox list keys (`None`: no list object), and the number of mailboxes.
type CountedKeys = (Option<BTreeMap<String, Vec<u8>>>, usize);

impl User {
    /// The values of `keys` in the mailbox list (`None` when the list does not exist) and
    /// the number of mailboxes listed, read together: one read for users with up to 1,024
    /// mailboxes, one more per further 1,024.
    ///
    /// A create's write is guarded by the `counters` read here, and every create changes
    /// `counters`: a mailbox created after this read makes the write fail and the create
    /// read again, so the count a create goes by is never short (deletes only lower it).
    pub(super) fn read_keys_counting(&self, wanted: &[&str]) -> Result<CountedKeys> {
        let op = ReadOp::new().omap_get(wanted.iter().copied()).omap_range("", keys::MAILBOX, OMAP_PAGE_MAX);
        let read = match self.store.read_op(MAILBOX_LIST, &op) {
            Ok(read) => read,
            Err(objstore::Error::NotFound { .. }) => return Ok((None, 0)),
            Err(e) => return Err(e.into()),
        };
        let first = read.omap_page.unwrap_or_default();
        let (count, _) = count_keys(self.store.as_ref(), MAILBOX_LIST, keys::MAILBOX, first, usize::MAX)?;
        Ok((Some(read.omap.unwrap_or_default()), count))
    }

    /// Refuses a new mailbox when the user has [`crate::Config::max_mailboxes`] already.
    pub(super) fn check_mailbox_count(&self, count: usize, name: &str) -> Result<()> {
        let max = self.config.max_mailboxes;
        if count >= max {
            return Err(Error::TooLarge(format!(
                "user {:?} has {count} mailboxes, at most {max} (max_mailboxes): mailbox {name:?} not created",
                self.name
            )));
        }
        Ok(())
    }

    /// Before a subscription to `name` (its key `key`): `true` when it is there already
    /// (nothing to write), `Ok(false)` when there is room for it, [`Error::TooLarge`] when
    /// the user has [`crate::Config::max_mailboxes`] subscriptions. One read for users with
    /// up to 1,024 subscriptions, one more per further 1,024. Subscribes running at the same
    /// moment may each find room for the last one: the bound is passed by at most their
    /// number, never more.
    pub(super) fn subscribed_or_room(&self, key: &str, name: &str) -> Result<bool> {
        let op = ReadOp::new().omap_get([key]).omap_range("", keys::SUBSCRIPTION, OMAP_PAGE_MAX);
        let read = match self.store.read_op(MAILBOX_LIST, &op) {
            Ok(read) => read,
            Err(objstore::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if read.omap.is_some_and(|found| found.contains_key(key)) {
            return Ok(true);
        }
        let max = self.config.max_mailboxes;
        let first = read.omap_page.unwrap_or_default();
        let (count, _) = count_keys(self.store.as_ref(), MAILBOX_LIST, keys::SUBSCRIPTION, first, max - 1)?;
        if count >= max {
            return Err(Error::TooLarge(format!(
                "user {:?} has {count} subscriptions, at most {max} (max_mailboxes): not subscribed to {name:?}",
                self.name
            )));
        }
        Ok(false)
    }
}
