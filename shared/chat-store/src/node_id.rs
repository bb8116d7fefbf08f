//! The id of the node (gateway replica) a backend handle acts for.
//!
//! It stays the same for the life of a process, except when the node was
//! taken as dead while it was in fact alive (stalled for longer than its
//! liveness lasts): the replica then carries on under the next id, so that
//! whoever sweeps the old id can never sweep what the replica registers
//! from then on (see [`crate::presence`]). The next id of `<id>` is
//! `<id>.1`, then `<id>.2`: the first part names the process in every log.

use std::sync::{Arc, RwLock};

/// A handle's node id, shared by its clones.
#[derive(Clone)]
pub(crate) struct NodeId(Arc<RwLock<Arc<str>>>);

impl NodeId {
    /// A node known as `id`.
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Self(Arc::new(RwLock::new(Arc::from(id.into()))))
    }

    /// The id the node acts under now.
    pub(crate) fn current(&self) -> Arc<str> {
        // A poisoned lock only means a panic elsewhere; the id is still one value.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Moves on to the next id if the node still acts as `was`; returns the
    /// id it acts under afterwards.
    pub(crate) fn replace(&self, was: &str) -> Arc<str> {
        let mut id = self.0.write().unwrap_or_else(|e| e.into_inner());
        if &**id == was {
            *id = Arc::from(next(was));
        }
        id.clone()
    }
}

impl std::fmt::Debug for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.current())
    }
}

/// `<id>` → `<id>.1`, `<id>.n` → `<id>.n+1`.
fn next(id: &str) -> String {
    match id.rsplit_once('.') {
        Some((first, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u64 = n.parse().unwrap_or(0);
            format!("{first}.{}", n.saturating_add(1))
        }
        _ => format!("{id}.1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_node_carries_on_under_the_next_id_once() {
        let node = NodeId::new("abc");
        assert_eq!(&*node.replace("abc"), "abc.1");
        assert_eq!(&*node.replace("abc"), "abc.1", "already replaced");
        assert_eq!(&*node.replace("abc.1"), "abc.2");
        assert_eq!(&*node.clone().current(), "abc.2");
        assert_eq!(next("a.b"), "a.b.1");
    }
}
