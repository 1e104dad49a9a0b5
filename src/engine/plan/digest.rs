//! A plan's hash: what an approval (`ghl.servis.ai/approve-plan`) names.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ContactPlan, Plan, Release};

/// Feeds serialized bytes straight into the hash: a 100,000-contact plan is never held
/// serialized in memory.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first 8 bytes of the SHA-256 of `value` serialized as JSON, in hex: a plan hash.
pub fn digest<T: Serialize>(value: &T) -> String {
    let mut hashing = Hashing(Sha256::new());
    // Writing into a hash cannot fail, and the plans' types serialize infallibly.
    let _ = serde_json::to_writer(&mut hashing, value);
    hashing.0.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Plan {
    /// A digest of what applying would do — the contacts it writes and the releases — and
    /// of nothing else (not why it is blocked, nor records refused by validation): equal
    /// plans have equal hashes, and any change to what would be written changes it.
    pub fn hash(&self) -> String {
        #[derive(Serialize)]
        struct Content<'a> {
            contacts: Vec<&'a ContactPlan>,
            releases: &'a [Release],
        }
        let content = Content {
            contacts: self.contacts.iter().filter(|c| !c.is_noop()).collect(),
            releases: &self.releases,
        };
        digest(&content)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::engine::ledger::KeyDigest;
    use crate::engine::plan::Target;

    fn tagging(id: &str, tag: &str) -> ContactPlan {
        ContactPlan {
            source: format!("contact/{id}").into(),
            key: Default::default(),
            ledger_key: KeyDigest::of(id),
            target: Target::Existing {
                id: id.to_owned(),
                adopt: false,
            },
            replaces: None,
            changes: Vec::new(),
            upsert_changes: Vec::new(),
            add_tags: BTreeSet::from([tag.to_owned()]),
            remove_tags: BTreeSet::new(),
            items: Vec::new(),
            observed_drift: Vec::new(),
            drifted: false,
            recovered: false,
        }
    }

    fn plan(contacts: Vec<ContactPlan>) -> Plan {
        Plan {
            contacts,
            ..Plan::default()
        }
    }

    #[test]
    fn a_plan_hash_follows_what_would_be_written_and_nothing_else() {
        let base = plan(vec![tagging("c1", "vip"), tagging("c2", "vip")]);
        let same = plan(vec![tagging("c1", "vip"), tagging("c2", "vip")]);
        assert_eq!(base.hash(), same.hash());
        assert_eq!(base.hash().len(), 16);
        // Why it is blocked and contacts with nothing to write do not count.
        let mut blocked = same.clone();
        blocked.blocked = Some("over maxChanges".into());
        let mut noop = tagging("c3", "vip");
        noop.add_tags.clear();
        blocked.contacts.push(noop);
        assert_eq!(base.hash(), blocked.hash());
        // Anything it would write does.
        for other in [
            plan(vec![tagging("c1", "vip"), tagging("c2", "gold")]),
            plan(vec![tagging("c1", "vip")]),
            plan(vec![tagging("c2", "vip"), tagging("c1", "vip")]),
        ] {
            assert_ne!(base.hash(), other.hash());
        }
    }
}
