//! The per-process caches shared by every user and mailbox of a [`crate::MailStore`].

use std::sync::{Arc, Mutex};

use omap_index::names::Guid;

use crate::cache::BodyCache;
use crate::index::View;
use crate::retry::RetryPolicy;

/// The per-process caches, shared by every user and mailbox of a [`crate::MailStore`].
#[derive(Debug, Clone)]
pub(crate) struct Caches {
    /// Mailbox index views.
    pub views: ViewCache,
    /// Mail bodies.
    pub bodies: Arc<BodyCache>,
    /// The retry policy and its counters.
    pub retry: RetryPolicy,
    /// Counters of notifies and watches.
    pub push: Arc<crate::watch::PushCounters>,
    /// The deployment's layout (format record) and data pool.
    pub layout: Arc<crate::layout::LayoutState>,
}

/// The per-process cache of mailbox views, keyed by namespace and mailbox GUID. A view in
/// the cache is revalidated with one read of the head object when a handle is opened.
#[derive(Clone)]
pub(crate) struct ViewCache(pub(crate) Arc<quick_cache::sync::Cache<ViewKey, SharedView>>);

/// (namespace, mailbox GUID).
pub(crate) type ViewKey = (String, Guid);
pub(crate) type SharedView = Arc<MailboxShared>;

/// What every handle of one mailbox in the process shares: the view, and the transactions
/// of new mails waiting to be committed together (group commit, `mailbox/group.rs`, which
/// alone knows their type: kept here as `Any`, so that this module needs no mailbox type).
pub(crate) struct MailboxShared {
    pub(crate) view: Mutex<View>,
    pub(crate) waiting: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl MailboxShared {
    pub(crate) fn new(view: View) -> MailboxShared {
        MailboxShared { view: Mutex::new(view), waiting: Mutex::new(Vec::new()) }
    }
}

impl ViewCache {
    pub(crate) fn new(mailboxes: usize) -> ViewCache {
        ViewCache(Arc::new(quick_cache::sync::Cache::new(mailboxes.max(1))))
    }
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewCache({} mailboxes)", self.0.len())
    }
}
