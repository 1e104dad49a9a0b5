//! What is no longer declared: released or pruned, within the safety limits.

use super::*;

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
