//! Subscriptions: `sub/<name>` keys of the user's mailbox list object, at most
//! [`crate::Config::max_mailboxes`] of them (see `limits.rs`).

use omap_index::keys;
use omap_index::names::MAILBOX_LIST;

use super::User;
use crate::error::Result;
use crate::names::{literal_prefix, normalize, pattern_matches};

impl User {
    /// Subscribes to a mailbox name (which need not exist, as IMAP allows). Subscribing
    /// twice is not an error. A user has at most [`crate::Config::max_mailboxes`]
    /// subscriptions: one more fails with [`crate::Error::TooLarge`] (one read before the write,
    /// see `docs/FORMAT.md`, "Bounded objects").
    pub fn subscribe(&self, name: &str) -> Result<()> {
        let name = normalize(name)?;
        let key = keys::subscription(&name);
        if self.subscribed_or_room(&key, &name)? {
            return Ok(());
        }
        self.store.omap_set(MAILBOX_LIST, &[(&key, &[])])?;
        self.list_changed();
        Ok(())
    }

    /// Removes a subscription. Unsubscribing from a name that is not subscribed is not an
    /// error.
    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        let name = normalize(name)?;
        match self.store.omap_rm_keys(MAILBOX_LIST, &[&keys::subscription(&name)]) {
            Ok(_) => {
                self.list_changed();
                Ok(())
            }
            Err(objstore::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The subscribed names that match an IMAP LIST pattern (as in
    /// [`User::list_mailboxes`]), sorted.
    pub fn subscriptions(&self, pattern: &str) -> Result<Vec<String>> {
        if pattern.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = self
            .scan(&keys::subscription(literal_prefix(pattern)))?
            .into_iter()
            .map(|(key, _)| key[keys::SUBSCRIPTION.len()..].to_string())
            .filter(|name| pattern_matches(pattern, name))
            .collect();
        out.sort();
        Ok(out)
    }
}
