//! What a plan against a cluster shows by default: what the manifests declare, never what GHL
//! holds. A PR plan runs with the CI identity, so its output (CI logs anyone on the PR can
//! read) must not carry contact ids or current GHL values unless `--show-values` asks for
//! them. Pure.

use crate::engine::plan::{ContactPlan, ItemOp, Plan, Target};
use crate::engine::tag_rule::RulePlan;

/// What stands in for a value GHL holds.
pub const HIDDEN: &str = "(hidden: --show-values)";

fn hide(value: &mut String) {
    HIDDEN.clone_into(value);
}

fn hide_item(item: &mut ItemOp) {
    match item {
        ItemOp::Create { replaces, .. } => {
            if let Some(id) = replaces {
                hide(id);
            }
        }
        ItemOp::Adopt { id, .. }
        | ItemOp::Update { id, .. }
        | ItemOp::Complete { id, .. }
        | ItemOp::Delete { id, .. } => hide(id),
        ItemOp::Forget { .. } => {}
    }
}

fn hide_contact(contact: &mut ContactPlan) {
    if let Target::Existing { id, .. } = &mut contact.target {
        hide(id);
    }
    if let Some(id) = &mut contact.replaces {
        hide(id);
    }
    for change in contact
        .changes
        .iter_mut()
        .chain(contact.upsert_changes.iter_mut())
    {
        if let Some(from) = &mut change.from {
            hide(from);
        }
    }
    contact.items.iter_mut().for_each(hide_item);
}

/// `plan` without contact, task or note ids and without the values GHL holds now.
pub fn policy_plan(plan: &Plan) -> Plan {
    let mut shown = plan.clone();
    shown.contacts.iter_mut().for_each(hide_contact);
    for release in &mut shown.releases {
        hide(&mut release.id);
        for (_, _, id) in &mut release.delete_items {
            hide(id);
        }
    }
    shown
}

/// `plan`'s summary as the operator computes it (the same hash), its sample keys hidden.
pub fn summary(plan: &Plan) -> crate::crd::common::PlanSummary {
    let mut summary = plan.summary();
    for sample in &mut summary.samples {
        if let Some((kind, _)) = sample.split_once('/') {
            *sample = format!("{kind}/{HIDDEN}");
        }
    }
    summary
}

/// `plan` without the ids of the contacts it matched.
pub fn rule_plan(plan: &RulePlan) -> RulePlan {
    let mut shown = plan.clone();
    for change in &mut shown.changes {
        hide(&mut change.id);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fields::Field;
    use crate::engine::ledger::{ItemKind, KeyDigest};
    use crate::engine::plan::render::{RenderOptions, render};
    use crate::engine::plan::{Attribute, FieldChange, Release};
    use crate::engine::tag_rule::TagChange;

    fn contact(target: Target, items: Vec<ItemOp>) -> ContactPlan {
        ContactPlan {
            source: "contacts[0]".into(),
            key: "ada@example.com".into(),
            ledger_key: KeyDigest::of("ada@example.com"),
            target,
            replaces: None,
            changes: vec![FieldChange {
                attribute: Attribute::Field(Field::CompanyName),
                from: Some("Old Co".into()),
                to: serde_json::json!("New Co"),
            }],
            upsert_changes: Vec::new(),
            add_tags: ["vip".to_owned()].into(),
            remove_tags: Default::default(),
            items,
            observed_drift: Vec::new(),
            drifted: false,
            recovered: false,
        }
    }

    #[test]
    fn nothing_ghl_holds_is_left_in_a_hidden_plan() {
        let items = vec![
            ItemOp::Adopt {
                kind: ItemKind::Note,
                key: "intro".into(),
                id: "ghl-note-1".into(),
                fingerprint: 1,
            },
            ItemOp::Complete {
                key: "call".into(),
                id: "ghl-task-1".into(),
                completed: true,
                fingerprint: 2,
            },
            ItemOp::Delete {
                kind: ItemKind::Task,
                key: "old".into(),
                id: "ghl-task-2".into(),
            },
        ];
        let plan = Plan {
            contacts: vec![contact(
                Target::Existing {
                    id: "ghl-contact-1".into(),
                    adopt: false,
                },
                items,
            )],
            releases: vec![Release {
                id: "ghl-contact-2".into(),
                delete_contact: false,
                remove_tags: ["vip".to_owned()].into(),
                delete_items: vec![(ItemKind::Note, "n".into(), "ghl-note-2".into())],
                gone: false,
            }],
            ..Plan::default()
        };
        // (what GHL holds, as the plan would show it)
        let held = [
            "ghl-contact-1",
            "ghl-contact-2",
            "ghl-task-1",
            "ghl-task-2",
            "ghl-note-1",
            "ghl-note-2",
            "Old Co",
        ];
        let options = RenderOptions {
            show_sensitive: true,
        };
        // The text or the JSON form shows each, before.
        let before = render("ContactSyncPolicy crm/vip", &plan, options)
            + &serde_json::to_string(&plan).unwrap();
        for value in held {
            assert!(before.contains(value), "the plan shows {value}: {before}");
        }
        let hidden = policy_plan(&plan);
        let text = render("ContactSyncPolicy crm/vip", &hidden, options);
        let json = serde_json::to_string(&hidden).unwrap();
        for value in held {
            assert!(!text.contains(value), "{value} in {text}");
            assert!(!json.contains(value), "{value} in {json}");
        }
        assert!(text.contains(HIDDEN), "{text}");
        // What the manifests declare is still shown, and the counts are the same.
        assert!(text.contains("New Co") && text.contains("vip"), "{text}");
        let (real, shown) = (plan.summary(), summary(&plan));
        assert_eq!(
            (shown.create, shown.update, shown.delete, shown.hash.clone()),
            (real.create, real.update, real.delete, real.hash)
        );
        assert!(!format!("{shown:?}").contains("ghl-contact"), "{shown:?}");
    }

    #[test]
    fn a_hidden_rule_plan_names_no_contact() {
        let plan = RulePlan {
            changes: vec![TagChange {
                id: "ghl-contact-1".into(),
                add: ["hot".to_owned()].into(),
                ..TagChange::default()
            }],
            matched: 1,
            pending: 1,
            ..RulePlan::default()
        };
        let hidden = rule_plan(&plan);
        let json = serde_json::to_string(&hidden).unwrap();
        assert!(
            !json.contains("ghl-contact-1") && json.contains("hot"),
            "{json}"
        );
        assert_eq!(hidden.changes.len(), 1);
    }
}
