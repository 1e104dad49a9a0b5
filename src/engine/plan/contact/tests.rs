//! Table-driven tests of the planner: each case states the declared records, what GHL holds,
//! what the ledger says, and what the plan must contain.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
use crate::engine::desired::{SourceText, build};
use crate::engine::ledger::{Change, ItemKind, KeyDigest, Ledger, key_digest};
use crate::engine::observed::{ContactView, Observed};
use crate::engine::plan::{ItemOp, Plan, PlanOptions, Target, plan};
use crate::ghl::models::{Contact, Note, Task};

/// A test scenario, built up fluently.
struct Case {
    spec: Value,
    /// What each `contactsFrom` entry yielded.
    sources: Vec<SourceText>,
    observed: Observed,
    ledger: Ledger,
    options: PlanOptions,
}

impl Case {
    fn declaring(contacts: Value) -> Self {
        Self {
            spec: json!({"connectionRef": {"name": "acme"}, "contacts": contacts}),
            sources: Vec::new(),
            observed: Observed::default(),
            ledger: Ledger::default(),
            options: PlanOptions::default(),
        }
    }

    fn with_spec(mut self, extra: Value) -> Self {
        self.spec
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self
    }

    /// GHL holds this contact (a search result unless `complete`).
    fn ghl(mut self, contact: Value, complete: bool) -> Self {
        let c: Contact = serde_json::from_value(contact).unwrap();
        self.observed.insert(
            ContactView::from_contact(&c, complete),
            crate::crd::contact_sync_policy::MatchBy::Email,
        );
        self
    }

    fn tasks(mut self, id: &str, tasks: Value) -> Self {
        let tasks: Vec<Task> = serde_json::from_value(tasks).unwrap();
        self.observed.tasks.insert(id.into(), tasks);
        self
    }

    fn notes(mut self, id: &str, notes: Value) -> Self {
        let notes: Vec<Note> = serde_json::from_value(notes).unwrap();
        self.observed.notes.insert(id.into(), notes);
        self
    }

    fn gone(mut self, id: &str) -> Self {
        self.observed.gone.insert(id.into());
        self
    }

    /// Adds a `contactsFrom` ConfigMap key holding `text`.
    fn source(mut self, key: &str, text: &str) -> Self {
        let entry = json!({"configMapRef": {"name": "list", "key": key}});
        let spec = self.spec.as_object_mut().unwrap();
        let from = spec.entry("contactsFrom").or_insert_with(|| json!([]));
        from.as_array_mut().unwrap().push(entry);
        self.sources.push(SourceText {
            key: key.to_owned(),
            text: Ok(text.to_owned()),
            sensitive: false,
        });
        self
    }

    fn ledger(mut self, changes: Vec<Change>) -> Self {
        for change in &changes {
            self.ledger.apply(change);
        }
        self
    }

    /// Sets the ledger's fingerprint of `id` to what GHL currently shows (in sync).
    fn in_sync(mut self, id: &str) -> Self {
        let fp = self.observed.contacts[id].fingerprint();
        self.ledger.apply(&Change::ContactObserved {
            id: id.into(),
            fingerprint: fp,
            written_at: None,
            hidden: Default::default(),
        });
        self
    }

    fn options(mut self, options: PlanOptions) -> Self {
        self.options = options;
        self
    }

    fn plan(&self) -> Plan {
        let spec: ContactSyncPolicySpec = serde_json::from_value(self.spec.clone()).unwrap();
        let desired = build(&spec, &self.sources).unwrap();
        plan(&desired, &self.observed, &self.ledger, self.options)
    }
}

/// A ledger binding of the declared record with match key `key` (stored as its digest).
fn bound(key: &str, id: &str, created: bool) -> Change {
    Change::ContactBound {
        key: KeyDigest::of(key),
        id: id.into(),
        created,
    }
}

fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

#[test]
fn nothing_in_ghl_creates_contact_task_and_note() {
    let plan = Case::declaring(json!([{
        "email": "ada@example.com", "firstName": "Ada", "companyName": "AE", "tags": ["VIP"],
        "customFields": {"f1": "gold"},
        "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z"}],
        "notes": [{"key": "n", "body": "Hello"}]
    }]))
    .plan();
    let c = &plan.contacts[0];
    let Target::Create { body, resolve } = &c.target else {
        panic!("expected a create")
    };
    assert!(!resolve);
    assert_eq!(body.fields.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        body.company_name.as_deref(),
        Some("AE"),
        "companyName is set on create"
    );
    assert_eq!(body.tags, ["vip"]);
    assert_eq!(body.fields.custom_fields[0].field_value, "gold");
    assert!(matches!(
        &c.items[0],
        ItemOp::Create {
            kind: ItemKind::Task,
            ..
        }
    ));
    assert!(matches!(
        &c.items[1],
        ItemOp::Create {
            kind: ItemKind::Note,
            ..
        }
    ));
    assert_eq!(plan.writes(), 3);
    assert_eq!(plan.summary().create, 3);
}

#[test]
fn an_existing_contact_is_adopted_not_duplicated() {
    let plan = Case::declaring(json!([{"email": "ada@example.com", "firstName": "Ada", "city": "London", "tags": ["vip"]}]))
        .ghl(json!({"id": "c1", "email": "ADA@example.com", "firstName": "Ada", "city": "Paris", "tags": ["customer"]}), false)
        .plan();
    let c = &plan.contacts[0];
    assert_eq!(
        c.target,
        Target::Existing {
            id: "c1".into(),
            adopt: true
        }
    );
    assert_eq!(c.changes.len(), 1);
    assert_eq!(c.changes[0].attribute.name(), "city");
    assert_eq!(c.changes[0].from.as_deref(), Some("Paris"));
    assert_eq!(c.add_tags, tags(&["vip"]));
    assert!(c.remove_tags.is_empty(), "foreign tags stay");
    assert_eq!(plan.summary().adopt, 1);
}

#[test]
fn a_managed_contact_in_sync_plans_nothing() {
    let case = Case::declaring(json!([{"email": "a@b.co", "firstName": "Ada", "tags": ["vip"], "customFields": {"n": 5}}]))
        .ghl(json!({"id": "c1", "email": "a@b.co", "firstName": "Ada", "tags": ["vip", "other"], "customFields": [{"id": "n", "value": "5"}]}), false)
        .ledger(vec![bound("a@b.co", "c1", true)])
        .in_sync("c1");
    let plan = case.plan();
    assert!(plan.is_empty(), "{plan:#?}");
    assert_eq!(plan.writes(), 0);
    assert_eq!(plan.counts().in_sync, 1);
}

/// (field policy, GHL's city, expected changed attributes, expected observed drift)
#[test]
fn field_policies_decide_what_is_written() {
    let cases = [
        (json!({}), "Paris", vec!["city"], vec![]),
        (json!({"city": "Enforce"}), "Paris", vec!["city"], vec![]),
        (json!({"city": "InitOnly"}), "Paris", vec![], vec![]),
        (json!({"city": "Observe"}), "Paris", vec![], vec!["city"]),
        (json!({"city": "Observe"}), "London", vec![], vec![]),
    ];
    for (policy, ghl_city, changed, drift) in cases {
        let plan = Case::declaring(json!([{"email": "a@b.co", "city": "London"}]))
            .with_spec(json!({"fieldPolicy": policy}))
            .ghl(
                json!({"id": "c1", "email": "a@b.co", "city": ghl_city}),
                false,
            )
            .ledger(vec![bound("a@b.co", "c1", true)])
            .plan();
        let c = &plan.contacts[0];
        let names: Vec<String> = c.changes.iter().map(|ch| ch.attribute.name()).collect();
        assert_eq!(names, changed, "{policy} / {ghl_city}");
        assert_eq!(c.observed_drift, drift, "{policy} / {ghl_city}");
    }
}

#[test]
fn company_name_changes_go_through_upsert() {
    let plan = Case::declaring(json!([{"email": "a@b.co", "companyName": "New Co"}]))
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "companyName": "Old Co"}),
            false,
        )
        .ledger(vec![bound("a@b.co", "c1", true)])
        .plan();
    let c = &plan.contacts[0];
    assert!(c.changes.is_empty());
    assert_eq!(c.upsert_changes[0].attribute.name(), "companyName");
}

#[test]
fn only_tags_we_added_are_removed() {
    let plan = Case::declaring(json!([{"email": "a@b.co", "tags": ["keep"]}]))
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "tags": ["keep", "ours-old", "someone-elses"]}),
            false,
        )
        .ledger(vec![
            bound("a@b.co", "c1", true),
            Change::TagsAdded {
                id: "c1".into(),
                tags: tags(&["keep", "ours-old"]),
            },
        ])
        .plan();
    let c = &plan.contacts[0];
    assert_eq!(c.remove_tags, tags(&["ours-old"]));
    assert!(c.add_tags.is_empty());
}

#[test]
fn a_managed_contact_deleted_in_ghl_is_recreated_as_drift() {
    let plan = Case::declaring(json!([{"email": "a@b.co"}]))
        .gone("c1")
        .ledger(vec![bound("a@b.co", "c1", true)])
        .plan();
    let c = &plan.contacts[0];
    assert!(matches!(c.target, Target::Create { .. }));
    assert_eq!(c.replaces.as_deref(), Some("c1"));
    assert!(c.drifted);
}

#[test]
fn an_interrupted_create_is_resolved_before_creating() {
    let plan = Case::declaring(json!([{"email": "a@b.co"}]))
        .ledger(vec![Change::CreateStarted {
            key: KeyDigest::of("a@b.co"),
            at: "2030-01-01T00:00:00Z".parse().unwrap(),
        }])
        .plan();
    assert!(matches!(
        plan.contacts[0].target,
        Target::Create { resolve: true, .. }
    ));
}

/// A create whose answer was lost left an intent; the contact then shows up in search. GHL
/// added it after the intent: ours (created). Before: someone else's (adopted).
#[test]
fn a_contact_found_after_a_lost_create_is_ours_only_if_added_after_the_intent() {
    for (added, recovered) in [
        ("2030-01-01T00:00:01Z", true),
        ("2030-01-01T00:00:00Z", true),
        ("2029-12-31T23:59:59Z", false),
    ] {
        let plan = Case::declaring(json!([{"email": "a@b.co"}]))
            .ghl(
                json!({"id": "c1", "email": "a@b.co", "dateAdded": added}),
                false,
            )
            .ledger(vec![Change::CreateStarted {
                key: KeyDigest::of("a@b.co"),
                at: "2030-01-01T00:00:00Z".parse().unwrap(),
            }])
            .plan();
        let c = &plan.contacts[0];
        assert!(
            matches!(c.target, Target::Existing { adopt: true, .. }),
            "{added}"
        );
        assert_eq!(c.recovered, recovered, "added {added}");
    }
    // With no intent, a found contact is never taken as ours.
    let plan = Case::declaring(json!([{"email": "a@b.co"}]))
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "dateAdded": "2030-01-01T00:00:01Z"}),
            false,
        )
        .plan();
    assert!(!plan.contacts[0].recovered);
}

/// (prune, created by us) → (delete contact, remove our tags)
#[test]
fn undeclared_contacts_are_released_or_pruned() {
    for (prune, created, deletes, removes_tags) in [
        (false, true, false, true),
        (true, true, true, false),
        (true, false, false, true),
        (false, false, false, true),
    ] {
        let plan = Case::declaring(json!([]))
            .ghl(
                json!({"id": "c1", "email": "gone@b.co", "tags": ["ours", "theirs"]}),
                false,
            )
            .ledger(vec![
                bound("gone@b.co", "c1", created),
                Change::TagsAdded {
                    id: "c1".into(),
                    tags: tags(&["ours"]),
                },
            ])
            .options(PlanOptions {
                prune,
                ..PlanOptions::default()
            })
            .plan();
        let r = &plan.releases[0];
        assert_eq!(
            r.delete_contact, deletes,
            "prune {prune}, created {created}"
        );
        if !deletes {
            assert_eq!(
                r.remove_tags.is_empty(),
                !removes_tags,
                "prune {prune}, created {created}"
            );
        }
    }
}

/// A case with `n` contacts owned by the ledger and no longer declared (created by the
/// policy or adopted), and `declared` new contacts.
fn undeclared(n: usize, created: bool, declared: usize) -> Case {
    let records: Vec<_> = (0..declared)
        .map(|i| json!({"email": format!("new{i}@b.co")}))
        .collect();
    let mut case = Case::declaring(json!(records));
    for i in 0..n {
        let id = format!("c{i}");
        case = case
            .ghl(json!({"id": id, "email": format!("p{i}@b.co")}), false)
            .ledger(vec![bound(&format!("p{i}@b.co"), &id, created)]);
    }
    case
}

#[test]
fn safety_limits_block_large_plans() {
    // (case, owned contacts no longer declared, created by us, new records, prune,
    //  maxDeletes, maxChanges, expected block)
    let table = [
        (
            "deletes over the limit",
            3,
            true,
            0,
            true,
            2,
            100,
            Some("deletes 3 objects, more than safety.maxDeletes (2)"),
        ),
        ("deletes at the limit", 2, true, 0, true, 2, 100, None),
        (
            "creates over the limit",
            0,
            false,
            2,
            false,
            10,
            1,
            Some("makes 2 changes, more than safety.maxChanges (1)"),
        ),
        ("creates at the limit", 0, false, 2, false, 10, 2, None),
        (
            "forgets count as changes",
            3,
            false,
            0,
            false,
            10,
            2,
            Some("makes 3 changes, more than safety.maxChanges (2)"),
        ),
        ("forgets at the limit", 3, false, 0, false, 10, 3, None),
        (
            "deletes are named first",
            3,
            true,
            5,
            true,
            2,
            1,
            Some("safety.maxDeletes (2)"),
        ),
    ];
    for (name, owned, created, declared, prune, max_deletes, max_changes, expected) in table {
        let plan = undeclared(owned, created, declared)
            .options(PlanOptions {
                prune,
                max_deletes,
                max_changes,
                omit_in_sync: false,
            })
            .plan();
        match expected {
            None => assert_eq!(plan.blocked, None, "{name}"),
            Some(text) => assert!(
                plan.blocked.as_deref().is_some_and(|b| b.contains(text)),
                "{name}: {:?}",
                plan.blocked
            ),
        }
    }
}

#[test]
fn releases_wait_while_records_fail_validation() {
    let plan = Case::declaring(json!([{"email": "not-an-email"}]))
        .ghl(json!({"id": "c1", "email": "old@b.co"}), false)
        .ledger(vec![bound("old@b.co", "c1", true)])
        .options(PlanOptions {
            prune: true,
            ..PlanOptions::default()
        })
        .plan();
    assert!(plan.releases.is_empty());
    assert!(plan.releases_deferred.is_some());
    assert_eq!(plan.failures.len(), 1);
}

fn owned_task(key: &str, id: &str) -> Vec<Change> {
    vec![
        bound("a@b.co", "c1", true),
        Change::ItemBound {
            id: "c1".into(),
            kind: ItemKind::Task,
            key: key.into(),
            item_id: id.into(),
            fingerprint: 1,
        },
    ]
}

#[test]
fn tasks_are_updated_completed_recreated_adopted_or_pruned() {
    let declared = json!([{"email": "a@b.co", "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z", "completed": true}]}]);
    let contact = json!({"id": "c1", "email": "a@b.co"});
    let due = "2030-01-10T15:00:00.000Z";
    // Only completion differs: the /completed endpoint.
    let plan = Case::declaring(declared.clone())
        .ghl(contact.clone(), false)
        .tasks(
            "c1",
            json!([{"id": "t1", "title": "Call", "dueDate": due, "completed": false}]),
        )
        .ledger(owned_task("k", "t1"))
        .plan();
    assert!(matches!(
        &plan.contacts[0].items[..],
        [ItemOp::Complete {
            completed: true,
            ..
        }]
    ));
    // The title differs: an update carrying completion too.
    let plan = Case::declaring(declared.clone())
        .ghl(contact.clone(), false)
        .tasks(
            "c1",
            json!([{"id": "t1", "title": "Old", "dueDate": due, "completed": false}]),
        )
        .ledger(owned_task("k", "t1"))
        .plan();
    let [ItemOp::Update { fields, .. }] = &plan.contacts[0].items[..] else {
        panic!("{:?}", plan.contacts[0].items)
    };
    assert_eq!(fields, &["title", "completed"]);
    // Same due date in another format is no change.
    let plan = Case::declaring(declared.clone())
        .ghl(contact.clone(), false)
        .tasks("c1", json!([{"id": "t1", "title": "Call", "dueDate": "2030-01-10T15:00:00Z", "completed": true}]))
        .ledger(owned_task("k", "t1"))
        .plan();
    assert!(
        plan.contacts[0].items.is_empty(),
        "{:?}",
        plan.contacts[0].items
    );
    // Deleted in GHL: re-created, after a re-check of the old id.
    let plan = Case::declaring(declared.clone())
        .ghl(contact.clone(), false)
        .tasks("c1", json!([]))
        .ledger(owned_task("k", "t1"))
        .plan();
    assert!(
        matches!(&plan.contacts[0].items[..], [ItemOp::Create { replaces: Some(id), .. }] if id == "t1")
    );
    // Not owned yet, but an identical task exists: adopted.
    let plan = Case::declaring(declared.clone())
        .ghl(contact.clone(), false)
        .tasks(
            "c1",
            json!([{"id": "t9", "title": "Call", "dueDate": due, "completed": true}]),
        )
        .ledger(vec![bound("a@b.co", "c1", false)])
        .plan();
    assert!(matches!(&plan.contacts[0].items[..], [ItemOp::Adopt { id, .. }] if id == "t9"));
    // No longer declared: deleted with prune, forgotten without.
    let undeclared = json!([{"email": "a@b.co"}]);
    for (prune, deleted) in [(true, true), (false, false)] {
        let plan = Case::declaring(undeclared.clone())
            .ghl(contact.clone(), false)
            .tasks(
                "c1",
                json!([{"id": "t1", "title": "Call", "dueDate": due, "completed": true}]),
            )
            .ledger(owned_task("k", "t1"))
            .options(PlanOptions {
                prune,
                ..PlanOptions::default()
            })
            .plan();
        let item = &plan.contacts[0].items[0];
        assert_eq!(
            matches!(item, ItemOp::Delete { .. }),
            deleted,
            "prune {prune}"
        );
        assert_eq!(
            matches!(item, ItemOp::Forget { .. }),
            !deleted,
            "prune {prune}"
        );
    }
}

#[test]
fn notes_not_read_trust_the_ledger_and_follow_spec_changes() {
    let declared = json!([{"email": "a@b.co", "notes": [{"key": "n", "body": "Hello"}]}]);
    let fp = crate::engine::plan::items::note_fingerprint(&crate::engine::desired::DesiredNote {
        key: "n".into(),
        body: "Hello".into(),
    });
    let ledger = vec![
        bound("a@b.co", "c1", true),
        Change::ItemBound {
            id: "c1".into(),
            kind: ItemKind::Note,
            key: "n".into(),
            item_id: "n1".into(),
            fingerprint: fp,
        },
    ];
    let plan = Case::declaring(declared.clone())
        .ghl(json!({"id": "c1", "email": "a@b.co"}), false)
        .ledger(ledger.clone())
        .plan();
    assert!(
        plan.contacts[0].items.is_empty(),
        "unchanged declaration, notes not read: nothing"
    );
    let changed = json!([{"email": "a@b.co", "notes": [{"key": "n", "body": "Hello again"}]}]);
    let plan = Case::declaring(changed)
        .ghl(json!({"id": "c1", "email": "a@b.co"}), false)
        .ledger(ledger.clone())
        .plan();
    assert!(
        matches!(&plan.contacts[0].items[..], [ItemOp::Update { kind: ItemKind::Note, id, .. }] if id == "n1")
    );
    // Read and edited in GHL: reverted.
    let plan = Case::declaring(declared)
        .ghl(json!({"id": "c1", "email": "a@b.co"}), false)
        .notes("c1", json!([{"id": "n1", "body": "Edited by a human"}]))
        .ledger(ledger)
        .plan();
    assert!(matches!(
        &plan.contacts[0].items[..],
        [ItemOp::Update { .. }]
    ));
}

#[test]
fn fields_search_does_not_return_use_the_ledger() {
    let declared = json!([{"email": "a@b.co", "website": "https://example.com"}]);
    let plan = Case::declaring(declared.clone())
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "website": "https://example.com"}),
            false,
        )
        .ledger(vec![bound("a@b.co", "c1", true)])
        .plan();
    assert_eq!(
        plan.contacts[0].changes.len(),
        1,
        "unknown and unrecorded: written"
    );
    let plan = Case::declaring(declared.clone())
        .ghl(json!({"id": "c1", "email": "a@b.co"}), false)
        .ledger(vec![
            bound("a@b.co", "c1", true),
            Change::ContactObserved {
                id: "c1".into(),
                fingerprint: 0,
                written_at: None,
                hidden: [("website".to_owned(), key_digest("https://example.com"))]
                    .into_iter()
                    .collect(),
            },
        ])
        .plan();
    assert!(
        plan.contacts[0].changes.is_empty(),
        "recorded as written: trusted"
    );
    let plan = Case::declaring(declared)
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "website": "https://other.example"}),
            true,
        )
        .ledger(vec![bound("a@b.co", "c1", true)])
        .plan();
    assert_eq!(
        plan.contacts[0].changes[0].from.as_deref(),
        Some("https://other.example"),
        "read in full: compared"
    );
}

#[test]
fn drift_is_what_changed_in_ghl_since_we_last_looked() {
    let case = Case::declaring(json!([{"email": "a@b.co", "city": "London"}]))
        .ghl(
            json!({"id": "c1", "email": "a@b.co", "city": "London"}),
            false,
        )
        .ledger(vec![bound("a@b.co", "c1", true)])
        .in_sync("c1");
    assert!(!case.plan().contacts[0].drifted);
    // A human changes the city in GHL.
    let mut edited = case;
    let c: Contact =
        serde_json::from_value(json!({"id": "c1", "email": "a@b.co", "city": "Paris"})).unwrap();
    edited.observed.insert(
        ContactView::from_contact(&c, false),
        crate::crd::contact_sync_policy::MatchBy::Email,
    );
    let plan = edited.plan();
    assert!(plan.contacts[0].drifted);
    assert_eq!(plan.counts().drifted, 1);
}

#[test]
fn in_sync_contacts_are_counted_not_listed_when_asked() {
    let ghl = json!({"id": "c1", "email": "a@b.co", "tags": ["vip"]});
    let case = || {
        Case::declaring(json!([{"email": "a@b.co", "tags": ["vip"]}, {"email": "new@b.co"}]))
            .ghl(ghl.clone(), false)
    };
    // The first plan adopts c1: listed. Once the ledger has it with a current baseline, omitted.
    let first = case().plan();
    assert_eq!(first.contacts.len(), 2);
    let view = crate::engine::observed::ContactView::from_contact(
        &serde_json::from_value(ghl.clone()).unwrap(),
        false,
    );
    let plan = case()
        .ledger(vec![
            bound("a@b.co", "c1", false),
            Change::ContactObserved {
                id: "c1".into(),
                fingerprint: view.fingerprint(),
                written_at: None,
                hidden: Default::default(),
            },
        ])
        .options(PlanOptions {
            omit_in_sync: true,
            ..PlanOptions::default()
        })
        .plan();
    assert_eq!(
        plan.contacts.len(),
        1,
        "only the contact to create is listed"
    );
    assert_eq!(plan.in_sync_omitted, 1);
    let counts = plan.counts();
    assert_eq!((counts.desired, counts.in_sync), (2, 1));
}

#[test]
fn a_source_that_empties_never_releases_what_the_policy_manages() {
    // (case, what the source holds, contacts the ledger owns, expect the release held back)
    let table = [
        ("header-only CSV", "email,firstName\n", 2, true),
        ("empty key", "", 2, true),
        ("empty JSON list", "[]", 2, true),
        ("empty, nothing managed yet", "[]", 0, false),
        ("one record left", "[{\"email\": \"p0@b.co\"}]", 2, false),
    ];
    for (name, text, owned, held) in table {
        let key = if text.starts_with('[') {
            "list.json"
        } else {
            "list.csv"
        };
        let plan = undeclared(owned, true, 0).source(key, text).plan();
        let empty = plan.failures.iter().find(|f| f.reason == "EmptySource");
        if held {
            assert!(plan.releases.is_empty(), "{name}: {:?}", plan.releases);
            let failure = empty.unwrap_or_else(|| panic!("{name}: {:?}", plan.failures));
            assert_eq!(failure.record, "contactsFrom[0]", "{name}");
            assert!(plan.releases_deferred.is_some(), "{name}");
        } else {
            assert!(empty.is_none(), "{name}: {:?}", plan.failures);
            assert_eq!(
                plan.releases.len(),
                owned.saturating_sub(1).min(owned),
                "{name}"
            );
        }
    }
}
