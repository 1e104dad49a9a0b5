//! The operator's record of who wants what on each location: every ContactSyncPolicy's
//! declaration and every TagRule's declaration, so that each reconcile decides ownership with
//! [`crate::engine::ownership`] against the others. A declaration that changes what others
//! must respect is announced, so the owners it affects re-plan at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::controller::object::ObjectKey;
use crate::crd::Kind;
use crate::engine::ownership::{OwnedIds, PolicyDeclaration, RuleDeclaration, TagDeclarations};
use crate::webhook::Part;

/// A change on a location, by an owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclarationChange {
    pub location: String,
    pub by: ObjectKey,
}

#[derive(Debug, Default)]
struct Location {
    policies: BTreeMap<ObjectKey, Arc<PolicyDeclaration>>,
    rules: BTreeMap<ObjectKey, Arc<RuleDeclaration>>,
}

/// Declarations and declared by location, and the contacts each policy's ledger holds.
#[derive(Debug)]
pub struct Declarations {
    locations: RwLock<HashMap<String, Location>>,
    owned: RwLock<HashMap<ObjectKey, OwnedIds>>,
    changes: broadcast::Sender<DeclarationChange>,
}

impl Default for Declarations {
    fn default() -> Self {
        Self {
            locations: RwLock::new(HashMap::new()),
            owned: RwLock::new(HashMap::new()),
            changes: broadcast::channel(1024).0,
        }
    }
}

impl Declarations {
    /// Changes as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<DeclarationChange> {
        self.changes.subscribe()
    }

    fn announce(&self, location: &str, by: &ObjectKey) {
        // No receiver only means no controller listens (tests).
        let _ = self.changes.send(DeclarationChange {
            location: location.to_owned(),
            by: by.clone(),
        });
    }

    /// Records `key`'s declaration on `location` (replacing any earlier one, anywhere).
    pub fn declare_policy(&self, location: &str, key: &ObjectKey, declaration: PolicyDeclaration) {
        let changed = {
            let mut locations = self.locations.write().unwrap_or_else(|p| p.into_inner());
            let moved = remove_elsewhere(&mut locations, location, key);
            let entry = locations.entry(location.to_owned()).or_default();
            let changed = entry
                .policies
                .get(key)
                .is_none_or(|old| old.differs_from(&declaration));
            entry.policies.insert(key.clone(), Arc::new(declaration));
            changed || moved
        };
        if changed {
            self.announce(location, key);
        }
    }

    /// Records `key`'s declaration on `location`.
    pub fn declare_rule(&self, location: &str, key: &ObjectKey, declaration: RuleDeclaration) {
        let changed = {
            let mut locations = self.locations.write().unwrap_or_else(|p| p.into_inner());
            let moved = remove_elsewhere(&mut locations, location, key);
            let entry = locations.entry(location.to_owned()).or_default();
            let changed = entry.rules.get(key).is_none_or(|old| **old != declaration);
            entry.rules.insert(key.clone(), Arc::new(declaration));
            changed || moved
        };
        if changed {
            self.announce(location, key);
        }
    }

    /// Notes the tags `key`'s last plan removes from contacts (its declaration otherwise stays).
    pub fn set_removals(&self, key: &ObjectKey, removing: HashMap<String, BTreeSet<String>>) {
        let changed = {
            let mut locations = self.locations.write().unwrap_or_else(|p| p.into_inner());
            locations.iter_mut().find_map(|(name, l)| {
                let declaration = l.policies.get_mut(key)?;
                if declaration.removing() == &removing {
                    return Some(None);
                }
                Arc::make_mut(declaration).set_removing(removing.clone());
                Some(Some(name.clone()))
            })
        };
        if let Some(Some(location)) = changed {
            self.announce(&location, key);
        }
    }

    /// The contacts `key`'s ledger holds (after a full sync).
    pub fn set_owned(&self, key: &ObjectKey, ids: OwnedIds) {
        self.owned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), ids);
    }

    /// More contacts `key`'s ledger holds (after a targeted sync).
    pub fn add_owned(&self, key: &ObjectKey, ids: &OwnedIds) {
        self.owned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .extend(ids);
    }

    /// The policies on `location` that declare the contact (by the email or phone GHL shows)
    /// or hold it in their ledger — for a change to its tasks or notes, only those that
    /// declare some; appointments concern no policy.
    pub fn concerned(
        &self,
        location: &str,
        contact: &str,
        part: Part,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Vec<ObjectKey> {
        let locations = self.locations.read().unwrap_or_else(|p| p.into_inner());
        let owned = self.owned.read().unwrap_or_else(|p| p.into_inner());
        let Some(l) = locations.get(location) else {
            return Vec::new();
        };
        l.policies
            .iter()
            .filter(|(_, declaration)| match part {
                Part::Contact => true,
                Part::Tasks => declaration.declares_tasks,
                Part::Notes => declaration.declares_notes,
                Part::Appointments => false,
            })
            .filter(|(key, declaration)| {
                declaration.declares_contact(email, phone)
                    || owned.get(*key).is_some_and(|ids| ids.contains(contact))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether `key` has declared (or declared) anything since the process started.
    pub fn has_declared(&self, key: &ObjectKey) -> bool {
        let locations = self.locations.read().unwrap_or_else(|p| p.into_inner());
        locations
            .values()
            .any(|l| l.policies.contains_key(key) || l.rules.contains_key(key))
    }

    /// The declarations of every policy on `location` but `except`.
    pub fn policies(&self, location: &str, except: &ObjectKey) -> Vec<Arc<PolicyDeclaration>> {
        let locations = self.locations.read().unwrap_or_else(|p| p.into_inner());
        locations
            .get(location)
            .map(|l| others(&l.policies, except))
            .unwrap_or_default()
    }

    /// What every owner on `location` but `except` declares for tags.
    pub fn tags(&self, location: &str, except: &ObjectKey) -> TagDeclarations {
        let locations = self.locations.read().unwrap_or_else(|p| p.into_inner());
        let Some(l) = locations.get(location) else {
            return TagDeclarations::default();
        };
        TagDeclarations {
            policies: others(&l.policies, except),
            rules: others(&l.rules, except),
        }
    }

    /// Drops the owners `alive` says are gone (a deletion missed while a watch was down).
    pub fn retain(&self, alive: impl Fn(&ObjectKey) -> bool) {
        let gone: Vec<ObjectKey> = {
            let locations = self.locations.read().unwrap_or_else(|p| p.into_inner());
            locations
                .values()
                .flat_map(|l| l.policies.keys().chain(l.rules.keys()))
                .filter(|k| !alive(k))
                .cloned()
                .collect()
        };
        for key in gone {
            self.forget(&key);
        }
    }

    /// Drops everything `key` declared or claimed (it is gone); the others re-plan.
    pub fn forget(&self, key: &ObjectKey) {
        self.owned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let left: Vec<String> = {
            let mut locations = self.locations.write().unwrap_or_else(|p| p.into_inner());
            let mut left = Vec::new();
            for (name, location) in locations.iter_mut() {
                let removed = match key.kind {
                    Kind::ContactSyncPolicy => location.policies.remove(key).is_some(),
                    Kind::TagRule => location.rules.remove(key).is_some(),
                    Kind::GhlConnection => false,
                };
                if removed {
                    left.push(name.clone());
                }
            }
            locations.retain(|_, l| !l.policies.is_empty() || !l.rules.is_empty());
            left
        };
        for location in left {
            self.announce(&location, key);
        }
    }
}

/// The declarations in `of` of every owner but `except`.
fn others<T>(of: &BTreeMap<ObjectKey, Arc<T>>, except: &ObjectKey) -> Vec<Arc<T>> {
    of.iter()
        .filter(|(k, _)| *k != except)
        .map(|(_, d)| Arc::clone(d))
        .collect()
}

/// Removes `key` from every location but `location`; true when it was anywhere else.
fn remove_elsewhere(
    locations: &mut HashMap<String, Location>,
    location: &str,
    key: &ObjectKey,
) -> bool {
    let mut moved = false;
    for (name, l) in locations.iter_mut() {
        if name != location {
            moved |= l.policies.remove(key).is_some() | l.rules.remove(key).is_some();
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
    use crate::engine::desired::build;
    use crate::engine::ownership::Seniority;

    fn declaration(name: &str, emails: &[&str]) -> PolicyDeclaration {
        let contacts: Vec<_> = emails.iter().map(|e| json!({"email": e})).collect();
        let spec: ContactSyncPolicySpec = serde_json::from_value(
            json!({"connectionRef": {"name": "acme"}, "contacts": contacts}),
        )
        .unwrap();
        PolicyDeclaration::new(
            format!("ContactSyncPolicy crm/{name}"),
            Seniority {
                created: None,
                namespace: "crm".into(),
                name: name.into(),
            },
            &build(&spec, &[]).unwrap(),
        )
    }

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey::new(kind, "crm", name)
    }

    #[test]
    fn declarations_are_announced_only_when_they_change_and_forgotten_with_their_owner() {
        let declarations = Declarations::default();
        let mut changes = declarations.subscribe();
        let a = key(Kind::ContactSyncPolicy, "a");
        declarations.declare_policy("loc", &a, declaration("a", &["ada@example.com"]));
        assert_eq!(changes.try_recv().unwrap().by, a);
        declarations.declare_policy("loc", &a, declaration("a", &["ada@example.com"]));
        assert!(
            changes.try_recv().is_err(),
            "the same declaration again is no news"
        );
        assert!(declarations.has_declared(&a));

        let b = key(Kind::ContactSyncPolicy, "b");
        assert_eq!(declarations.policies("loc", &b).len(), 1);
        assert!(declarations.policies("loc", &a).is_empty(), "not its own");
        assert!(declarations.policies("elsewhere", &b).is_empty());

        let rule = key(Kind::TagRule, "r");
        declarations.declare_rule("loc", &rule, RuleDeclaration::default());
        assert_eq!(changes.try_recv().unwrap().by, rule);
        let declared = declarations.tags("loc", &rule);
        assert_eq!((declared.policies.len(), declared.rules.len()), (1, 0));

        declarations.forget(&a);
        assert_eq!(changes.try_recv().unwrap().location, "loc");
        assert!(!declarations.has_declared(&a));
        assert!(declarations.policies("loc", &b).is_empty());
    }
}
