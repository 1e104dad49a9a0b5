//! Contacts waiting for targeted syncs, by policy: changes to one policy's contacts coalesce
//! into one batch (see the runtime's `targeted`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::controller::object::ObjectKey;
use crate::engine::targeted::Scope;
use crate::ghl::models::Contact;
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
    /// Queues `contact` (changed in `part`) for `policy`, with the contact as the event
    /// carried it, if it did; true when it was not waiting yet.
    pub fn add(
        &self,
        policy: ObjectKey,
        contact: &str,
        part: Part,
        snapshot: Option<&Contact>,
        received: Instant,
    ) -> bool {
        let added = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let batch = pending.entry(policy).or_default();
            batch.since = Some(batch.since.map_or(received, |s| s.min(received)));
            batch.scope.tasks |= part == Part::Tasks;
            batch.scope.notes |= part == Part::Notes;
            // The newest event about the contact's own fields says what they are; one that
            // does not carry them leaves the contact to be read.
            match (part, snapshot) {
                (Part::Contact, Some(contact)) => {
                    batch
                        .scope
                        .snapshots
                        .insert(contact.id.clone(), contact.clone());
                }
                (Part::Contact, None) => {
                    batch.scope.snapshots.remove(contact);
                }
                _ => {}
            }
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
        let c1 = Contact {
            id: "c1".into(),
            first_name: Some("Ada".into()),
            ..Contact::default()
        };
        let c2 = Contact {
            id: "c2".into(),
            ..Contact::default()
        };
        assert!(batches.add(policy.clone(), "c1", Part::Contact, Some(&c1), t0));
        assert!(!batches.add(policy.clone(), "c1", Part::Notes, None, t0));
        assert!(batches.add(policy.clone(), "c2", Part::Contact, Some(&c2), t0));
        // A later event that does not carry c2's fields: c2 is read.
        assert!(!batches.add(policy.clone(), "c2", Part::Contact, None, t0));
        let taken = batches.take();
        assert_eq!(taken.len(), 1);
        let batch = &taken[0].1;
        assert_eq!(batch.scope.ids.len(), 2);
        assert!(batch.scope.notes && !batch.scope.tasks);
        // c1's snapshot survives the note event; c2's is gone.
        assert_eq!(batch.scope.snapshots.keys().collect::<Vec<_>>(), ["c1"]);
        assert_eq!(
            batch.scope.snapshots["c1"].first_name.as_deref(),
            Some("Ada")
        );
        assert_eq!(batch.since, Some(t0));
        assert!(batches.take().is_empty());
    }
}
