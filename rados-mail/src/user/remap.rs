//! The "namespaces" migration step (`rados-mail migrate`): from mapping v1
//! (`<prefix><user>`) to mapping v2 (`<prefix>/<user>`, see
//! [`omap_index::names::user_namespace`]).
//!
//! Under v1 the namespaces of two prefixes where one extends the other (`faults-` and
//! `faults-q-`) overlap: `faults-q-a@x` is user `q-a@x` of the first and user `a@x` of the
//! second. Nothing in the pool tells which one it is, so the plan is made from every prefix
//! the operator says is used in the pool, and a namespace that more than one of them
//! matches is *ambiguous*: listed and left alone (the operator moves it by hand with
//! `rados-mail user rename`-like care, or deletes it). Namespaces that no given prefix
//! matches are not touched: an empty prefix's data is the same under both mappings.
//!
//! Each move is [`crate::user::admin`]'s namespace move (the machinery of
//! [`MailStore::rename_user`]), with a rename marker whose from and to are the two
//! namespaces: crash-safe, and a rerun finishes an interrupted move (the plan also finds
//! moves interrupted after the old namespace was emptied, by the marker left in the new
//! one). A namespace already moved is not planned again, so running the step twice is a
//! no-op.

use std::collections::BTreeSet;

use omap_index::names::{check_prefix, namespace_of, split_namespace, user_namespace};

use super::admin::{Marker, RenameReport, move_namespace, read_marker};
use crate::error::{Error, Result};
use crate::store::MailStore;
use crate::{RENAME_MARKER, SHARED_NAMESPACE};

/// One namespace to move from mapping v1 to v2.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NamespaceMove {
    /// The prefix it belongs to.
    pub prefix: String,
    /// The user name (or [`SHARED_NAMESPACE`]).
    pub user: String,
    /// The namespace under mapping v1: `<prefix><user>`.
    pub from: String,
    /// The namespace under mapping v2: `<prefix>/<user>`.
    pub to: String,
}

/// A v1 namespace that is not moved, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NamespaceSkip {
    /// The namespace.
    pub namespace: String,
    /// The given prefixes that match it (more than one: ambiguous).
    pub prefixes: Vec<String>,
    /// Why it is left alone.
    pub reason: String,
}

/// What the "namespaces" step would do ([`MailStore::plan_namespace_migration`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NamespacePlan {
    /// The moves, sorted by old namespace.
    pub moves: Vec<NamespaceMove>,
    /// Namespaces left alone: ambiguous ones (several prefixes match) and those whose
    /// name cannot be stored under v2 (a user name with '/', too long...).
    pub skipped: Vec<NamespaceSkip>,
}

impl MailStore {
    /// Plans the migration of the namespaces of `prefixes` (every prefix used in the pool,
    /// empty ones included: an empty prefix moves nothing but makes the namespaces it
    /// shares with another prefix ambiguous) from mapping v1 to v2. Reads only: one walk
    /// of the pool, and one read per rename marker found.
    ///
    /// [`Error::InvalidInput`] for a prefix with '/' or a control character.
    pub fn plan_namespace_migration(&self, prefixes: &[String]) -> Result<NamespacePlan> {
        let prefixes: BTreeSet<&str> = prefixes.iter().map(String::as_str).collect();
        for p in &prefixes {
            check_prefix(p).map_err(|e| Error::InvalidInput(e.to_string()))?;
        }
        // Every namespace of the pool, and those holding a rename marker.
        let mut namespaces = BTreeSet::new();
        let mut marked = BTreeSet::new();
        for entry in self.pool().list_pool()? {
            let (ns, name) = entry?;
            if name == RENAME_MARKER {
                marked.insert(ns.clone());
            }
            namespaces.insert(ns);
        }
        let mut plan = NamespacePlan::default();
        let mut planned = BTreeSet::new();
        for ns in &namespaces {
            // Already under v2 (`<prefix>/<name>` of a given prefix): only an interrupted
            // move's marker may be left to finish.
            if prefixes.iter().any(|p| !p.is_empty() && split_namespace(p, ns).is_some()) {
                continue;
            }
            let matching: Vec<&str> =
                prefixes.iter().copied().filter(|p| !p.is_empty() && ns.len() > p.len() && ns.starts_with(p)).collect();
            let Some(prefix) = matching.first().copied() else { continue };
            let mut all: Vec<String> = matching.iter().map(|p| p.to_string()).collect();
            if prefixes.contains("") {
                all.insert(0, String::new());
            }
            if all.len() > 1 {
                plan.skipped.push(NamespaceSkip {
                    namespace: ns.clone(),
                    prefixes: all,
                    reason: "ambiguous: several prefixes match it".into(),
                });
                continue;
            }
            let user = &ns[prefix.len()..];
            let to = if user == SHARED_NAMESPACE {
                // The shared data: `<prefix>.shared` becomes `<prefix>/.shared`.
                Ok(namespace_of(prefix, user))
            } else {
                user_namespace(prefix, user).map_err(|e| e.to_string())
            };
            match to {
                Ok(to) => {
                    planned.insert(to.clone());
                    plan.moves.push(NamespaceMove {
                        prefix: prefix.to_string(),
                        user: user.to_string(),
                        from: ns.clone(),
                        to,
                    });
                }
                Err(reason) => plan.skipped.push(NamespaceSkip {
                    namespace: ns.clone(),
                    prefixes: all,
                    reason: format!("not moved: {reason}"),
                }),
            }
        }
        // Moves interrupted after the old namespace was emptied and its marker removed:
        // the marker in the new namespace names them.
        for ns in &marked {
            if planned.contains(ns) {
                continue;
            }
            let Some((prefix, user)) = prefixes
                .iter()
                .filter(|p| !p.is_empty())
                .find_map(|p| split_namespace(p, ns).map(|u| (p.to_string(), u.to_string())))
            else {
                continue;
            };
            let from = format!("{prefix}{user}");
            let store = self.pool().with_namespace(ns)?;
            if read_marker(store.as_ref())? == Some(Marker { from: from.clone(), to: ns.clone() }) {
                plan.moves.push(NamespaceMove { prefix, user, from, to: ns.clone() });
            }
        }
        plan.moves.sort();
        Ok(plan)
    }

    /// Carries out one move of a [`NamespacePlan`]: every object of `m.from` moves to
    /// `m.to` (see [`MailStore::rename_user`] for the guarantees). The users concerned must
    /// not be served meanwhile.
    pub fn migrate_namespace(&self, m: &NamespaceMove) -> Result<RenameReport> {
        let (src, dst) = (self.pool().with_namespace(&m.from)?, self.pool().with_namespace(&m.to)?);
        let wanted = Marker { from: m.from.clone(), to: m.to.clone() };
        move_namespace(
            src.as_ref(),
            dst.as_ref(),
            &wanted,
            &format!("namespace {:?}", m.from),
            &format!("namespace {:?}", m.to),
        )
    }
}
