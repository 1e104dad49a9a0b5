//! The `webhookId`s already accepted, so a delivery GHL repeats is answered 200 without being
//! processed twice. Bounded: the oldest ids are forgotten first — by then their `timestamp`
//! is outside the freshness window and a replay is refused for that instead.

use std::collections::{HashSet, VecDeque};

/// Recently accepted ids, at most `capacity` of them.
#[derive(Debug)]
pub struct SeenIds {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`; false when it was known already.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }

    /// Forgets `id` (its processing failed: GHL's retry of it must be taken).
    pub fn forget(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|known| known != id);
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_within_its_bound() {
        let mut seen = SeenIds::new(3);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"), "a repeat");
        for id in ["b", "c", "d"] {
            assert!(seen.insert(id));
        }
        assert_eq!(seen.len(), 3, "bounded");
        assert!(!seen.contains("a"), "the oldest forgotten first");
        assert!(seen.contains("b") && seen.contains("d"));
    }
}
