//! Contacts: matching and adoption, the fields and tags written, drift.

use super::*;

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
    let body = body.request();
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

/// The create body is held compactly and written out in GHL's shape: the plan's JSON and hash
/// are what they were when the plan held GHL's request struct (an approval names the hash, so
/// it must not move between releases).
#[test]
fn a_create_plans_json_and_hash_are_pinned() {
    let plan = Case::declaring(json!([{
        "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
        "companyName": "AE", "phone": "+1 202 555 0100", "tags": ["VIP", "cohort-1"],
        "customFields": {"f1": "gold", "f2": 3},
        "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z"}],
        "notes": [{"key": "n", "body": "Hello"}]
    }]))
    .plan();
    assert_eq!(
        serde_json::to_string(&plan.contacts[0].target).unwrap(),
        PINNED_TARGET
    );
    assert_eq!(plan.hash(), PINNED_HASH);
}

const PINNED_TARGET: &str = r#"{"action":"create","body":{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com","phone":"+1 202 555 0100","customFields":[{"id":"f1","field_value":"gold"},{"id":"f2","field_value":3}],"tags":["cohort-1","vip"],"companyName":"AE"},"resolve":false}"#;
const PINNED_HASH: &str = "17341206f2f53583";
