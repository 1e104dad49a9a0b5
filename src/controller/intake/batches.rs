//! Contacts waiting for targeted syncs, by policy: changes to one policy's contacts coalesce
//! into one batch (see the runtime's `targeted`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::controller::object::ObjectKey;
use crate::engine::targeted::Scope;
use crate::webhook::Part;

/// The contacts waiting for one policy.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub scope: Scope,
    /// When the oldest of these changes reached the operator.
    pub since: Option<Instant>,
}

/// Contacts waiting for targeted syncs, by policy.
#[derive(Debug, Default)]
pub struct Batches {
    pending: Mutex<HashMap<ObjectKey, Batch>>,
    wake: Notify,
}

impl Batches {
    /// Queues `contact` (changed in `part`) for `policy`; true when it was not waiting yet.
    pub fn add(&self, policy: ObjectKey, contact: &str, part: Part, received: Instant) -> bool {
        let added = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let batch = pending.entry(policy).or_default();
            batch.since = Some(batch.since.map_or(received, |s| s.min(received)));
            batch.scope.tasks |= part == Part::Tasks;
            batch.scope.notes |= part == Part::Notes;
            batch.scope.ids.insert(contact.to_owned())
        };
        self.wake.notify_one();
        added
    }

    /// Resolves when something was added.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Everything waiting, taken.
    pub fn take(&self) -> Vec<(ObjectKey, Batch)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Kind;

    #[test]
    fn changes_to_one_policy_coalesce() {
        let batches = Batches::default();
        let policy = ObjectKey::new(Kind::ContactSyncPolicy, "crm", "vip");
        let t0 = Instant::now();
        assert!(batches.add(policy.clone(), "c1", Part::Contact, t0));
        assert!(!batches.add(policy.clone(), "c1", Part::Notes, t0));
        assert!(batches.add(policy.clone(), "c2", Part::Contact, t0));
        let taken = batches.take();
        assert_eq!(taken.len(), 1);
        let batch = &taken[0].1;
        assert_eq!(batch.scope.ids.len(), 2);
        assert!(batch.scope.notes && !batch.scope.tasks);
        assert_eq!(batch.since, Some(t0));
        assert!(batches.take().is_empty());
    }
}
