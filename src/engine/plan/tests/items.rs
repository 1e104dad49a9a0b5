//! Tasks and notes: updated, completed, recreated, adopted, pruned.

use super::*;

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
