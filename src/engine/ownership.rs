//! Ownership between objects on one location, decided once for the operator and the CLI:
//!
//! - Two ContactSyncPolicies that declare the same contact (the same match key): the senior
//!   one — created first, then by namespace and name — keeps it. The junior leaves that record
//!   alone (no write, no release) and reports the conflict.
//! - A policy outranks every TagRule: a rule does not remove a tag a policy declares on a
//!   contact, nor add one the policy is removing; it leaves the tag alone and reports it.
//! - Two TagRules that want opposite things for a tag on a contact both leave it alone.
//!
//! Pure data and decisions. The controller keeps the declarations of every object per
//! location (`controller::ownership`); the CLI builds them from its manifests.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;

use crate::crd::contact_sync_policy::MatchBy;
use crate::engine::collections::TagSet;
use crate::engine::desired::Desired;
use crate::engine::fields::{Field, normalize_phone, normalize_tag};
use crate::engine::ledger::{ItemKind, KeyDigest};
use crate::engine::plan::Plan;
use crate::ghl::models::Contact;

/// Record samples named in a conflict message.
const SAMPLES: usize = 5;

/// Which of two owners came first: the earlier creation time, then namespace and name (an
/// owner not created yet, as in a CLI run over manifests, comes after every created one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seniority {
    pub created: Option<Timestamp>,
    pub namespace: String,
    pub name: String,
}

impl Seniority {
    /// An object's seniority, from its metadata.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        use kube::ResourceExt;
        Self {
            created: obj.meta().creation_timestamp.as_ref().map(|t| t.0),
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        }
    }
}

impl Ord for Seniority {
    fn cmp(&self, other: &Self) -> Ordering {
        let created = match (self.created, other.created) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        created
            .then_with(|| self.namespace.cmp(&other.namespace))
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for Seniority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a ContactSyncPolicy declares on its location: its records by match key, with the tags
/// it declares on each, and the tags its last plan removes (by contact id).
#[derive(Clone, Debug)]
pub struct PolicyDeclaration {
    /// Who, for messages: `ContactSyncPolicy <namespace>/<name>`.
    pub owner: String,
    pub seniority: Seniority,
    pub match_by: MatchBy,
    /// Match key → index into `tag_sets` (most records share a handful of tag sets).
    records: HashMap<KeyDigest, u32>,
    tag_sets: Vec<TagSet>,
    removing: HashMap<String, BTreeSet<String>>,
    /// Match key → index into `item_sets`, for the records that declare tasks or notes.
    items: HashMap<KeyDigest, u32>,
    /// `task/<key>` and `note/<key>` of a record's tasks and notes.
    item_sets: Vec<BTreeSet<String>>,
    /// Whether any record declares tasks / notes (a webhook about a contact's tasks or notes
    /// concerns the policy only then, or when it owns some).
    pub declares_tasks: bool,
    pub declares_notes: bool,
    /// Order-independent digest of `records` with their tags, to tell whether a new
    /// declaration changes anything for others.
    digest: u64,
}

impl PolicyDeclaration {
    pub fn new(owner: impl Into<String>, seniority: Seniority, desired: &Desired) -> Self {
        let mut interned: HashMap<&TagSet, u32> = HashMap::new();
        let mut tag_sets: Vec<TagSet> = Vec::new();
        let mut records = HashMap::with_capacity(desired.contacts.len() + desired.held.len());
        let mut digest = 0u64;
        let mut items = HashMap::new();
        let mut item_sets: Vec<BTreeSet<String>> = Vec::new();
        let mut interned_items: HashMap<BTreeSet<String>, u32> = HashMap::new();
        for contact in &desired.contacts {
            if !contact.tasks.is_empty() || !contact.notes.is_empty() {
                let keys: BTreeSet<String> = (contact.tasks.iter())
                    .map(|t| item_key(ItemKind::Task, &t.key))
                    .chain(
                        contact
                            .notes
                            .iter()
                            .map(|n| item_key(ItemKind::Note, &n.key)),
                    )
                    .collect();
                let index = *interned_items.entry(keys).or_insert_with_key(|keys| {
                    item_sets.push(keys.clone());
                    (item_sets.len() - 1) as u32
                });
                items.insert(contact.ledger_key, index);
            }
            let key = contact.ledger_key;
            let index = *interned.entry(&contact.tags).or_insert_with(|| {
                tag_sets.push(contact.tags.clone());
                (tag_sets.len() - 1) as u32
            });
            records.insert(key, index);
            let tags = crate::engine::ledger::fingerprint(contact.tags.iter());
            digest =
                digest.wrapping_add((key.0 as u64 ^ (key.0 >> 64) as u64).wrapping_mul(31) ^ tags);
        }
        Self {
            owner: owner.into(),
            seniority,
            match_by: desired.match_by,
            records,
            tag_sets,
            removing: HashMap::new(),
            items,
            item_sets,
            declares_tasks: desired.contacts.iter().any(|c| !c.tasks.is_empty()),
            declares_notes: desired.contacts.iter().any(|c| !c.notes.is_empty()),
            digest,
        }
    }

    /// Notes the tags the policy's last plan removes, by contact id ([`removals`]).
    pub fn set_removing(&mut self, removing: HashMap<String, BTreeSet<String>>) {
        self.removing = removing;
    }

    pub fn removing(&self) -> &HashMap<String, BTreeSet<String>> {
        &self.removing
    }

    /// Whether the policy declares a contact with this email or phone (as GHL shows them).
    pub fn declares_contact(&self, email: Option<&str>, phone: Option<&str>) -> bool {
        let key = match self.match_by {
            MatchBy::Email => email.map(|e| Field::Email.normalize(e)),
            MatchBy::Phone => phone.map(normalize_phone),
        };
        key.filter(|k| !k.is_empty())
            .is_some_and(|k| self.declares(KeyDigest::of(&k)))
    }

    /// Whether the policy declares the record with this ledger key.
    pub fn declares_ledger_key(&self, ledger_key: &KeyDigest) -> bool {
        self.declares(*ledger_key)
    }

    /// Declared records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether this declaration differs from `other` in what others must respect (records,
    /// their tags, removals).
    pub fn differs_from(&self, other: &PolicyDeclaration) -> bool {
        self.digest != other.digest
            || self.records.len() != other.records.len()
            || self.match_by != other.match_by
            || self.removing != other.removing
    }

    fn declares(&self, key: KeyDigest) -> bool {
        self.records.contains_key(&key)
    }

    /// Whether the policy declares a task or note with this key on `contact`.
    fn declares_item(&self, contact: &SeenContact, kind: ItemKind, key: &str) -> bool {
        let Some(record) = (match self.match_by {
            MatchBy::Email => contact.email,
            MatchBy::Phone => contact.phone,
        }) else {
            return false;
        };
        self.items
            .get(&record)
            .and_then(|i| self.item_sets.get(*i as usize))
            .is_some_and(|keys| keys.contains(&item_key(kind, key)))
    }

    /// The tags this policy declares on `contact`, when it declares the contact.
    fn tags_for(&self, contact: &SeenContact) -> Option<&TagSet> {
        let key = match self.match_by {
            MatchBy::Email => contact.email?,
            MatchBy::Phone => contact.phone?,
        };
        self.records
            .get(&key)
            .and_then(|i| self.tag_sets.get(*i as usize))
    }
}

fn item_key(kind: ItemKind, key: &str) -> String {
    match kind {
        ItemKind::Task => format!("task/{key}"),
        ItemKind::Note => format!("note/{key}"),
    }
}

/// The tags `plan` removes from contacts (tags of its own it no longer declares), by id.
pub fn removals(plan: &Plan) -> HashMap<String, BTreeSet<String>> {
    let mut removing: HashMap<String, BTreeSet<String>> = HashMap::new();
    for contact in &plan.contacts {
        if let Some(id) = contact.id()
            && !contact.remove_tags.is_empty()
        {
            removing
                .entry(id.to_owned())
                .or_default()
                .extend(contact.remove_tags.iter().cloned());
        }
    }
    for release in &plan.releases {
        if !release.remove_tags.is_empty() {
            removing
                .entry(release.id.clone())
                .or_default()
                .extend(release.remove_tags.iter().cloned());
        }
    }
    removing
}

/// The contacts a policy's ledger holds, as 64-bit hashes of their ids (8 bytes a contact):
/// enough to tell whether a webhook about a contact concerns the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedIds(std::collections::HashSet<u64>);

impl OwnedIds {
    fn hash(id: &str) -> u64 {
        crate::engine::ledger::fingerprint([id])
    }

    pub fn of(ledger: &crate::engine::ledger::Ledger) -> Self {
        Self(ledger.contacts.keys().map(|id| Self::hash(id)).collect())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(&Self::hash(id))
    }

    /// Adds what `other` holds (a targeted sync's new bindings).
    pub fn extend(&mut self, other: &OwnedIds) {
        self.0.extend(other.0.iter().copied());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A declared record a junior policy leaves to a senior one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Yielded {
    /// Where it was declared (`contacts[3]`).
    pub record: String,
    pub ledger_key: KeyDigest,
    /// The senior owner keeping it.
    pub senior: String,
}

/// The records of `desired` (declared by the policy `me`) that a senior policy on the same
/// location declares too. `others` may hold anyone: juniors, `me` itself and policies matching
/// by another key are ignored.
pub fn yielded_to_seniors(
    me: &Seniority,
    desired: &Desired,
    others: &[Arc<PolicyDeclaration>],
) -> Vec<Yielded> {
    let mut seniors: Vec<&PolicyDeclaration> = others
        .iter()
        .map(Arc::as_ref)
        .filter(|o| o.seniority < *me && o.match_by == desired.match_by)
        .collect();
    if seniors.is_empty() {
        return Vec::new();
    }
    seniors.sort_by(|a, b| a.seniority.cmp(&b.seniority));
    desired
        .contacts
        .iter()
        .filter_map(|contact| {
            let senior = seniors.iter().find(|s| s.declares(contact.ledger_key))?;
            Some(Yielded {
                record: contact.source.to_string(),
                ledger_key: contact.ledger_key,
                senior: senior.owner.clone(),
            })
        })
        .collect()
}

/// Takes the yielded records out of `desired`: they are neither planned nor released (a
/// contact the policy managed before stays in its ledger, untouched).
pub fn hold_yielded(desired: &mut Desired, yielded: &[Yielded]) {
    if yielded.is_empty() {
        return;
    }
    let keys: BTreeSet<KeyDigest> = yielded.iter().map(|y| y.ledger_key).collect();
    desired.contacts.retain(|c| !keys.contains(&c.ledger_key));
    desired.held.extend(keys);
}

/// One line per senior owner: `N record(s) declared first by <owner> are left to it
/// (contacts[0], …)`.
pub fn yield_messages(yielded: &[Yielded]) -> Vec<String> {
    let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for y in yielded {
        by_owner.entry(&y.senior).or_default().push(&y.record);
    }
    by_owner
        .into_iter()
        .map(|(owner, records)| {
            let mut samples = records
                .iter()
                .take(SAMPLES)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if records.len() > SAMPLES {
                samples.push_str(", …");
            }
            format!(
                "{} record(s) declared first by {owner} are left to it ({samples})",
                records.len()
            )
        })
        .collect()
}

/// A contact as a TagRule sees it: its tags, and its match keys (as policies know contacts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenContact {
    pub tags: BTreeSet<String>,
    pub email: Option<KeyDigest>,
    pub phone: Option<KeyDigest>,
}

impl SeenContact {
    pub fn from_contact(contact: &Contact) -> Self {
        let key = |value: Option<&String>, normalize: &dyn Fn(&str) -> String| {
            value
                .map(|v| normalize(v))
                .filter(|k| !k.is_empty())
                .map(|k| KeyDigest::of(&k))
        };
        Self {
            tags: contact.tags.iter().map(|t| normalize_tag(t)).collect(),
            email: key(contact.email.as_ref(), &|e| Field::Email.normalize(e)),
            phone: key(contact.phone.as_ref(), &normalize_phone),
        }
    }
}

/// What a TagRule wants: its tags added to / removed from the contacts it matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDeclaration {
    /// Who, for messages: `TagRule <namespace>/<name>`.
    pub owner: String,
    pub contacts: BTreeSet<String>,
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
}

/// What the other owners on a location want for tags, as one TagRule sees them.
#[derive(Clone, Debug, Default)]
pub struct TagDeclarations {
    pub policies: Vec<Arc<PolicyDeclaration>>,
    pub rules: Vec<Arc<RuleDeclaration>>,
}

impl TagDeclarations {
    /// The first owner that wants `tag` on the contact: a policy declaring it, or a rule
    /// adding it. Policies are asked first (they outrank rules).
    pub fn wanting(&self, id: &str, contact: &SeenContact, tag: &str) -> Option<&str> {
        self.policies
            .iter()
            .find(|p| p.tags_for(contact).is_some_and(|tags| tags.contains(tag)))
            .map(|p| p.owner.as_str())
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|r| r.add.contains(tag) && r.contacts.contains(id))
                    .map(|r| r.owner.as_str())
            })
    }

    /// The policy that declares a task or note with this key on the contact: a rule leaves
    /// that key to it.
    pub fn item_owner(&self, contact: &SeenContact, kind: ItemKind, key: &str) -> Option<&str> {
        self.policies
            .iter()
            .find(|p| p.declares_item(contact, kind, key))
            .map(|p| p.owner.as_str())
    }

    /// The first owner that wants `tag` off the contact: a policy removing it, or a rule
    /// removing it.
    pub fn refusing(&self, id: &str, tag: &str) -> Option<&str> {
        self.policies
            .iter()
            .find(|p| p.removing.get(id).is_some_and(|tags| tags.contains(tag)))
            .map(|p| p.owner.as_str())
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|r| r.remove.contains(tag) && r.contacts.contains(id))
                    .map(|r| r.owner.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
    use crate::engine::desired::build;

    fn at(day: u32) -> Option<Timestamp> {
        Some(format!("2030-01-{day:02}T00:00:00Z").parse().unwrap())
    }

    fn seniority(created: Option<Timestamp>, name: &str) -> Seniority {
        Seniority {
            created,
            namespace: "crm".into(),
            name: name.into(),
        }
    }

    fn desired(contacts: serde_json::Value) -> Desired {
        let spec: ContactSyncPolicySpec = serde_json::from_value(
            json!({"connectionRef": {"name": "acme"}, "contacts": contacts}),
        )
        .unwrap();
        build(&spec, &[]).unwrap()
    }

    fn declaration(name: &str, created: Option<Timestamp>, d: &Desired) -> Arc<PolicyDeclaration> {
        Arc::new(PolicyDeclaration::new(
            format!("ContactSyncPolicy crm/{name}"),
            seniority(created, name),
            d,
        ))
    }

    fn seen(email: &str, tags: &[&str]) -> SeenContact {
        SeenContact {
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            email: Some(KeyDigest::of(email)),
            phone: None,
        }
    }

    #[test]
    fn seniority_orders_by_creation_then_name_and_uncreated_last() {
        let cases = [
            (seniority(at(1), "b"), seniority(at(2), "a"), Ordering::Less),
            (seniority(at(2), "a"), seniority(at(2), "b"), Ordering::Less),
            (seniority(at(9), "z"), seniority(None, "a"), Ordering::Less),
            (seniority(None, "a"), seniority(None, "b"), Ordering::Less),
            (
                seniority(at(3), "a"),
                seniority(at(3), "a"),
                Ordering::Equal,
            ),
        ];
        for (a, b, expected) in cases {
            assert_eq!(a.cmp(&b), expected, "{a:?} vs {b:?}");
            assert_eq!(b.cmp(&a), expected.reverse());
        }
    }

    #[test]
    fn the_junior_policy_yields_shared_records_to_the_senior_one() {
        let old = desired(json!([{"email": "ada@example.com"}, {"email": "grace@example.com"}]));
        let new = desired(json!([{"email": "Ada@Example.com"}, {"email": "alan@example.com"}]));
        let others = vec![
            declaration("old", at(1), &old),
            declaration("new", at(2), &new),
        ];

        let yielded = yielded_to_seniors(&seniority(at(2), "new"), &new, &others);
        assert_eq!(
            yielded.len(),
            1,
            "only the shared record, matched case-insensitively"
        );
        assert_eq!(yielded[0].record, "contacts[0]");
        assert_eq!(yielded[0].senior, "ContactSyncPolicy crm/old");
        assert!(
            yielded_to_seniors(&seniority(at(1), "old"), &old, &others).is_empty(),
            "the senior keeps everything"
        );

        let mut held = new.clone();
        hold_yielded(&mut held, &yielded);
        assert_eq!(held.contacts.len(), 1);
        assert!(held.held.contains(&yielded[0].ledger_key));
        assert_eq!(
            yield_messages(&yielded),
            [
                "1 record(s) declared first by ContactSyncPolicy crm/old are left to it (contacts[0])"
            ]
        );
    }

    #[test]
    fn policies_matching_by_another_key_never_conflict() {
        let by_phone_spec: ContactSyncPolicySpec = serde_json::from_value(json!({
            "connectionRef": {"name": "acme"}, "matchBy": "phone",
            "contacts": [{"email": "ada@example.com", "phone": "+14155550100"}]}))
        .unwrap();
        let by_phone = build(&by_phone_spec, &[]).unwrap();
        let by_email = desired(json!([{"email": "ada@example.com", "phone": "+14155550100"}]));
        let others = vec![declaration("phones", at(1), &by_phone)];
        assert!(yielded_to_seniors(&seniority(at(2), "emails"), &by_email, &others).is_empty());
    }

    #[test]
    fn rules_see_the_tags_policies_declare_and_remove() {
        let d = desired(json!([{"email": "ada@example.com", "tags": ["VIP", "newsletter"]}]));
        let mut policy =
            PolicyDeclaration::new("ContactSyncPolicy crm/vip", seniority(at(1), "vip"), &d);
        let mut plan = Plan::default();
        plan.releases.push(crate::engine::plan::Release {
            id: "c9".into(),
            delete_contact: false,
            remove_tags: ["old".to_owned()].into(),
            delete_items: Vec::new(),
            gone: false,
        });
        policy.set_removing(removals(&plan));
        let rule = RuleDeclaration {
            owner: "TagRule crm/smb".into(),
            contacts: ["c2".to_owned()].into(),
            add: ["smb".to_owned()].into(),
            remove: ["enterprise".to_owned()].into(),
        };
        let declared = TagDeclarations {
            policies: vec![Arc::new(policy)],
            rules: vec![Arc::new(rule)],
        };
        let ada = seen("ada@example.com", &["vip"]);
        let cases: [(&str, &SeenContact, &str, Option<&str>); 5] = [
            ("c1", &ada, "vip", Some("ContactSyncPolicy crm/vip")),
            ("c1", &ada, "other", None),
            (
                "c2",
                &SeenContact::default(),
                "smb",
                Some("TagRule crm/smb"),
            ),
            ("c3", &SeenContact::default(), "smb", None),
            ("c1", &seen("grace@example.com", &[]), "vip", None),
        ];
        for (id, contact, tag, expected) in cases {
            assert_eq!(declared.wanting(id, contact, tag), expected, "{id} {tag}");
        }
        assert_eq!(
            declared.refusing("c9", "old"),
            Some("ContactSyncPolicy crm/vip")
        );
        assert_eq!(
            declared.refusing("c2", "enterprise"),
            Some("TagRule crm/smb")
        );
        assert_eq!(declared.refusing("c1", "enterprise"), None);
    }

    #[test]
    fn a_new_declaration_differs_only_when_records_or_tags_do() {
        let a = desired(json!([{"email": "ada@example.com", "tags": ["vip"]}]));
        let same =
            desired(json!([{"email": "ada@example.com", "tags": ["vip"], "firstName": "Ada"}]));
        let retagged = desired(json!([{"email": "ada@example.com", "tags": ["gold"]}]));
        let first = declaration("p", at(1), &a);
        assert!(!first.differs_from(&declaration("p", at(1), &same)));
        assert!(first.differs_from(&declaration("p", at(1), &retagged)));
        assert!(first.differs_from(&declaration("p", at(1), &desired(json!([])))));
    }
}
