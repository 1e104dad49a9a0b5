//! The rule planner (pure): what to add, remove and release on each contact, given what the
//! rule saw, its ledger, and what the other owners on the location want.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::items::{self, ItemFindings, RuleItems};
use super::{RuleObservation, RulePlan, TagChange};
use crate::crd::tag_rule::{FilterOperator as RuleOperator, TagRuleSpec};
use crate::engine::fields::normalize_tag;
use crate::engine::ledger::Ledger;
use crate::engine::ownership::{RuleDeclaration, TagDeclarations};
use crate::ghl::models::{FilterOperator, SearchFilter};

/// The search filters of a rule, in GHL's terms.
pub fn search_filters(spec: &TagRuleSpec) -> Vec<SearchFilter> {
    spec.selector
        .filters
        .iter()
        .map(|f| {
            let operator = match f.operator {
                RuleOperator::Eq => FilterOperator::Eq,
                RuleOperator::NotEq => FilterOperator::NotEq,
                RuleOperator::Contains => FilterOperator::Contains,
                RuleOperator::NotContains => FilterOperator::NotContains,
                RuleOperator::Exists => FilterOperator::Exists,
                RuleOperator::NotExists => FilterOperator::NotExists,
            };
            SearchFilter::condition(
                f.field.clone(),
                operator,
                f.value.clone().map(serde_json::Value::String),
            )
        })
        .collect()
}

fn normalized(tags: &[String]) -> BTreeSet<String> {
    tags.iter().map(|t| normalize_tag(t)).collect()
}

/// What the rule wants, for the other owners' conflict checks.
pub fn rule_declaration(
    owner: &str,
    spec: &TagRuleSpec,
    observed: &RuleObservation,
) -> RuleDeclaration {
    RuleDeclaration {
        owner: owner.to_owned(),
        contacts: observed.matched.keys().cloned().collect(),
        add: normalized(&spec.add_tags),
        remove: normalized(&spec.remove_tags),
    }
}

/// Counts conflicts per owner and what they are about (`wants the opposite for tag "x"`).
#[derive(Default)]
struct Conflicts(BTreeMap<(String, String), u32>);

impl Conflicts {
    fn note_tag(&mut self, owner: &str, tag: &str) {
        self.note(
            owner.to_owned(),
            format!("wants the opposite for tag {tag:?}"),
        );
    }

    fn note(&mut self, owner: String, about: String) {
        *self.0.entry((owner, about)).or_default() += 1;
    }

    fn messages(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|((owner, about), n)| format!("{owner} {about} on {n} contact(s)"))
            .collect()
    }
}

/// Plans a rule against what it sees, its ledger, and the other owners' declared; `items`
/// are the rule's tasks and notes ([`RuleItems::of`]), due from `now` for contacts entering.
pub fn plan_rule(
    spec: &TagRuleSpec,
    items: &RuleItems,
    observed: &RuleObservation,
    ledger: &Ledger,
    declared: &TagDeclarations,
    now: Timestamp,
) -> RulePlan {
    let add = normalized(&spec.add_tags);
    let remove = normalized(&spec.remove_tags);
    let mut plan = RulePlan {
        matched: observed.matched.len() as u32,
        ..RulePlan::default()
    };
    let mut conflicts = Conflicts::default();
    for (id, contact) in &observed.matched {
        let mut change = TagChange {
            id: id.clone(),
            ..TagChange::default()
        };
        let mut left_alone = false;
        for tag in add.difference(&contact.tags) {
            match declared.refusing(id, tag) {
                Some(owner) => {
                    conflicts.note_tag(owner, tag);
                    left_alone = true;
                }
                None => {
                    change.add.insert(tag.clone());
                }
            }
        }
        for tag in remove.intersection(&contact.tags) {
            match declared.wanting(id, contact, tag) {
                Some(owner) => {
                    conflicts.note_tag(owner, tag);
                    left_alone = true;
                }
                None => {
                    change.remove.insert(tag.clone());
                }
            }
        }
        let owned = ledger.contacts.get(id.as_str());
        let mut found = ItemFindings::default();
        change.items = items::entering(items, contact, owned, declared, now, &mut found);
        left_alone |= !found.conflicts.is_empty();
        for (owner, about) in found.conflicts {
            conflicts.note(owner, about);
        }
        items::count_kept(found.kept, &mut plan.kept);
        // Tags we added earlier that the rule no longer adds: removed, unless another owner
        // wants them (then they stay, no longer ours).
        for tag in owned.into_iter().flat_map(|c| c.tags.iter()) {
            if add.contains(tag) {
                continue;
            }
            if contact.tags.contains(tag) && declared.wanting(id, contact, tag).is_none() {
                change.remove.insert(tag.to_owned());
            }
            change.release.insert(tag.to_owned());
        }
        let writes = change.writes() > 0;
        if writes {
            plan.pending += 1;
        }
        if left_alone {
            plan.conflicted += 1;
        } else if !writes {
            plan.compliant += 1;
        }
        if writes || !change.release.is_empty() {
            plan.changes.push(change);
        }
    }
    release_departed(items, observed, ledger, declared, &mut plan);
    plan.conflicts = conflicts.messages();
    plan
}

/// Contacts that left the selection: our tags go (unless another owner wants them); their
/// tasks and notes stay, remembered so they are never created twice — completed first with
/// `onLeave: CompleteTasks`, deleted when the rule goes with `deletionPolicy: Delete`. A
/// contact that owns nothing left to remember, or that GHL no longer has, is forgotten.
fn release_departed(
    items: &RuleItems,
    observed: &RuleObservation,
    ledger: &Ledger,
    declared: &TagDeclarations,
    plan: &mut RulePlan,
) {
    for (id, contact) in &observed.others {
        let Some(owned) = ledger.contacts.get(id.as_str()) else {
            continue;
        };
        let remember = contact.is_some() && !observed.deleting && items::owns_items(owned);
        let mut change = TagChange {
            id: id.clone(),
            forget: !remember,
            release: owned.tags.iter().map(str::to_owned).collect(),
            ..TagChange::default()
        };
        if let Some(contact) = contact {
            for tag in owned.tags.iter().filter(|t| contact.tags.contains(*t)) {
                if declared.wanting(id, contact, tag).is_none() {
                    change.remove.insert(tag.to_owned());
                }
            }
            change.items = items::leaving(items.on_leave, owned, observed.deleting);
        }
        if change.forget || change.writes() > 0 || !change.release.is_empty() {
            plan.changes.push(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
    use crate::crd::tag_rule::OnLeave;
    use crate::engine::desired::build;
    use crate::engine::ledger::{Change, ItemKind, KeyDigest};
    use crate::engine::ownership::{PolicyDeclaration, SeenContact, Seniority};
    use crate::engine::plan::ItemOp;
    use crate::engine::settle::Settle;

    fn rule(add: &[&str], remove: &[&str]) -> TagRuleSpec {
        serde_json::from_value(json!({"connectionRef": {"name": "acme"}, "selector": {}, "addTags": add, "removeTags": remove})).unwrap()
    }

    fn tags(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn contact(email: &str, list: &[&str]) -> SeenContact {
        SeenContact {
            tags: tags(list),
            email: Some(KeyDigest::of(email)),
            phone: None,
        }
    }

    fn seen(matched: &[(&str, &[&str])]) -> RuleObservation {
        RuleObservation {
            matched: matched
                .iter()
                .map(|(id, t)| ((*id).to_owned(), contact(&format!("{id}@example.com"), t)))
                .collect(),
            others: BTreeMap::new(),
            deleting: false,
        }
    }

    fn now() -> Timestamp {
        "2030-01-01T09:00:00Z".parse().unwrap()
    }

    /// Plans `spec` with its own tasks and notes, at [`now`].
    fn planned(
        spec: &TagRuleSpec,
        seen: &RuleObservation,
        ledger: &Ledger,
        declared: &TagDeclarations,
    ) -> RulePlan {
        let items = RuleItems::of(spec).unwrap();
        plan_rule(spec, &items, seen, ledger, declared, now())
    }

    fn owning(entries: &[(&str, &[&str])]) -> Ledger {
        let mut ledger = Ledger::default();
        for (id, owned) in entries {
            ledger.apply(&Change::ContactBound {
                key: KeyDigest::of(id),
                id: (*id).into(),
                created: false,
            });
            ledger.apply(&Change::TagsAdded {
                id: (*id).into(),
                tags: tags(owned),
            });
        }
        ledger
    }

    /// A ContactSyncPolicy declaring `tags` on `<id>@example.com`.
    fn policy_declaring(id: &str, declared: &[&str]) -> Arc<PolicyDeclaration> {
        let spec: ContactSyncPolicySpec = serde_json::from_value(json!({
            "connectionRef": {"name": "acme"},
            "contacts": [{"email": format!("{id}@example.com"), "tags": declared}]
        }))
        .unwrap();
        Arc::new(PolicyDeclaration::new(
            "ContactSyncPolicy crm/vip",
            Seniority {
                created: None,
                namespace: "crm".into(),
                name: "vip".into(),
            },
            &build(&spec, &[]).unwrap(),
        ))
    }

    fn other_rule(contacts: &[&str], add: &[&str], remove: &[&str]) -> Arc<RuleDeclaration> {
        Arc::new(RuleDeclaration {
            owner: "TagRule crm/smb".into(),
            contacts: contacts.iter().map(|c| (*c).to_owned()).collect(),
            add: tags(add),
            remove: tags(remove),
        })
    }

    fn change<'a>(plan: &'a RulePlan, id: &str) -> Option<&'a TagChange> {
        plan.changes.iter().find(|c| c.id == id)
    }

    #[test]
    fn adds_removes_and_counts() {
        let plan = planned(
            &rule(&["enterprise"], &["smb"]),
            &seen(&[("c1", &["smb"]), ("c2", &["enterprise"]), ("c3", &[])]),
            &Ledger::default(),
            &TagDeclarations::default(),
        );
        assert_eq!(
            (plan.matched, plan.compliant, plan.pending, plan.conflicted),
            (3, 1, 2, 0)
        );
        let c1 = change(&plan, "c1").unwrap();
        assert_eq!(
            (c1.add.clone(), c1.remove.clone()),
            (tags(&["enterprise"]), tags(&["smb"]))
        );
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn tags_we_added_leave_with_the_contact_or_the_rule() {
        let ledger = owning(&[
            ("c1", &["old", "enterprise"]),
            ("c2", &["old", "enterprise"]),
        ]);
        let mut observed = seen(&[("c1", &["old", "enterprise", "theirs"])]);
        observed.others.insert(
            "c2".into(),
            Some(contact("c2@example.com", &["enterprise", "theirs"])),
        );
        let plan = planned(
            &rule(&["enterprise"], &[]),
            &observed,
            &ledger,
            &TagDeclarations::default(),
        );
        let c1 = change(&plan, "c1").unwrap();
        assert_eq!(c1.remove, tags(&["old"]), "dropped from addTags");
        let c2 = change(&plan, "c2").unwrap();
        assert_eq!(c2.remove, tags(&["enterprise"]), "left the selection");
        assert!(c2.forget);
    }

    /// Each row: the rule, what the contact carries, the other owners' declared; then what the
    /// rule writes and which owner it names in a conflict.
    #[test]
    fn other_owners_outrank_or_stalemate_the_rule() {
        struct Row {
            name: &'static str,
            add: &'static [&'static str],
            remove: &'static [&'static str],
            carries: &'static [&'static str],
            declared: TagDeclarations,
            adds: &'static [&'static str],
            removes: &'static [&'static str],
            conflict_with: Option<&'static str>,
        }
        let mut removing = PolicyDeclaration::clone(&policy_declaring("c9", &[]));
        let mut releasing = crate::engine::plan::Plan::default();
        releasing.releases.push(crate::engine::plan::Release {
            id: "c1".into(),
            delete_contact: false,
            remove_tags: tags(&["promo"]),
            delete_items: Vec::new(),
            gone: false,
        });
        removing.set_removing(crate::engine::ownership::removals(&releasing));
        let rows = [
            Row {
                name: "a policy declares the tag the rule removes (also when in sync)",
                add: &[],
                remove: &["vip"],
                carries: &["vip"],
                declared: TagDeclarations {
                    policies: vec![policy_declaring("c1", &["VIP"])],
                    rules: vec![],
                },
                adds: &[],
                removes: &[],
                conflict_with: Some("ContactSyncPolicy crm/vip"),
            },
            Row {
                name: "a policy removes the tag the rule adds",
                add: &["promo"],
                remove: &[],
                carries: &[],
                declared: TagDeclarations {
                    policies: vec![Arc::new(removing)],
                    rules: vec![],
                },
                adds: &[],
                removes: &[],
                conflict_with: Some("ContactSyncPolicy crm/vip"),
            },
            Row {
                name: "a policy declaring another contact is no conflict",
                add: &[],
                remove: &["vip"],
                carries: &["vip"],
                declared: TagDeclarations {
                    policies: vec![policy_declaring("someone-else", &["vip"])],
                    rules: vec![],
                },
                adds: &[],
                removes: &["vip"],
                conflict_with: None,
            },
            Row {
                name: "another rule removes what this one adds",
                add: &["enterprise"],
                remove: &[],
                carries: &[],
                declared: TagDeclarations {
                    policies: vec![],
                    rules: vec![other_rule(&["c1"], &[], &["enterprise"])],
                },
                adds: &[],
                removes: &[],
                conflict_with: Some("TagRule crm/smb"),
            },
            Row {
                name: "another rule adds what this one removes",
                add: &[],
                remove: &["smb"],
                carries: &["smb"],
                declared: TagDeclarations {
                    policies: vec![],
                    rules: vec![other_rule(&["c1"], &["smb"], &[])],
                },
                adds: &[],
                removes: &[],
                conflict_with: Some("TagRule crm/smb"),
            },
            Row {
                name: "another rule agreeing is no conflict",
                add: &["enterprise"],
                remove: &[],
                carries: &[],
                declared: TagDeclarations {
                    policies: vec![],
                    rules: vec![other_rule(&["c1"], &["enterprise"], &[])],
                },
                adds: &["enterprise"],
                removes: &[],
                conflict_with: None,
            },
        ];
        for row in rows {
            let plan = planned(
                &rule(row.add, row.remove),
                &seen(&[("c1", row.carries)]),
                &Ledger::default(),
                &row.declared,
            );
            let (adds, removes) = change(&plan, "c1")
                .map(|c| (c.add.clone(), c.remove.clone()))
                .unwrap_or_default();
            assert_eq!(adds, tags(row.adds), "{}", row.name);
            assert_eq!(removes, tags(row.removes), "{}", row.name);
            match row.conflict_with {
                Some(owner) => {
                    assert_eq!(plan.conflicts.len(), 1, "{}", row.name);
                    assert!(
                        plan.conflicts[0].starts_with(owner),
                        "{}: {:?}",
                        row.name,
                        plan.conflicts
                    );
                    assert_eq!((plan.conflicted, plan.compliant), (1, 0), "{}", row.name);
                }
                None => assert!(plan.conflicts.is_empty(), "{}", row.name),
            }
        }
    }

    #[test]
    fn a_tag_we_no_longer_add_stays_when_a_policy_declares_it() {
        let ledger = owning(&[("c1", &["vip"])]);
        let plan = planned(
            &rule(&["enterprise"], &[]),
            &seen(&[("c1", &["vip", "enterprise"])]),
            &ledger,
            &TagDeclarations {
                policies: vec![policy_declaring("c1", &["vip"])],
                rules: vec![],
            },
        );
        let c1 = change(&plan, "c1").unwrap();
        assert!(c1.remove.is_empty(), "kept for the policy");
        assert_eq!(c1.release, tags(&["vip"]), "but no longer ours");
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.compliant, 1);
    }

    #[test]
    fn the_declaration_covers_the_matched_contacts() {
        let declaration = rule_declaration(
            "TagRule crm/x",
            &rule(&["A"], &["b"]),
            &seen(&[("c1", &[]), ("c2", &[])]),
        );
        assert_eq!(declaration.contacts, tags(&["c1", "c2"]));
        assert_eq!(
            (declaration.add, declaration.remove),
            (tags(&["a"]), tags(&["b"]))
        );
    }

    #[test]
    fn filters_translate_to_ghl_search() {
        let spec: TagRuleSpec = serde_json::from_value(json!({"connectionRef": {"name": "a"}, "addTags": ["x"],
            "selector": {"filters": [{"field": "email", "operator": "contains", "value": "@bigcorp.com"},
                                     {"field": "phone", "operator": "exists"}]}})).unwrap();
        let filters = serde_json::to_value(search_filters(&spec)).unwrap();
        assert_eq!(
            filters,
            json!([{"field": "email", "operator": "contains", "value": "@bigcorp.com"},
                                   {"field": "phone", "operator": "exists"}])
        );
    }

    // Tasks and notes.

    fn acting(on_leave: &str) -> TagRuleSpec {
        serde_json::from_value(json!({"connectionRef": {"name": "acme"}, "selector": {},
            "tasks": [{"key": "call", "title": "Call the lead", "dueIn": "1d"}],
            "notes": [{"key": "intro", "body": "Became a hot lead"}],
            "onLeave": on_leave}))
        .unwrap()
    }

    /// A ledger where `c1` holds the task `call` in `state` (and the note `intro`, created).
    fn holding(state: &str, spec: &TagRuleSpec, tags_owned: &[&str]) -> Ledger {
        let mut ledger = owning(&[("c1", tags_owned)]);
        let items = RuleItems::of(spec).unwrap();
        let task_fp = items.tasks[0].fingerprint();
        let note_fp = items.notes[0].fingerprint();
        let bound = |kind, key: &str, item_id: &str, fingerprint| Change::ItemBound {
            id: "c1".into(),
            kind,
            key: key.into(),
            item_id: item_id.into(),
            fingerprint,
        };
        ledger.apply(&bound(ItemKind::Note, "intro", "n1", note_fp));
        match state {
            "started" => ledger.apply(&Change::ItemStarted {
                id: "c1".into(),
                kind: ItemKind::Task,
                key: "call".into(),
            }),
            "created" => ledger.apply(&bound(ItemKind::Task, "call", "t1", task_fp)),
            "created from older text" => {
                ledger.apply(&bound(ItemKind::Task, "call", "t1", task_fp ^ 1))
            }
            "closed" => {
                ledger.apply(&bound(ItemKind::Task, "call", "t1", task_fp));
                ledger.apply(&Change::ItemClosed {
                    id: "c1".into(),
                    kind: ItemKind::Task,
                    key: "call".into(),
                });
            }
            other => panic!("{other}"),
        }
        ledger
    }

    /// `create task call (resolve)`, `complete task call`, ... for the plan's ops on `id`.
    fn ops(plan: &RulePlan, id: &str) -> Vec<String> {
        change(plan, id)
            .map(|c| {
                c.items
                    .iter()
                    .map(|op| {
                        let kind = items::kind_name(op.kind());
                        match op {
                            ItemOp::Create { resolve: true, .. } => {
                                format!("create {kind} {} (resolve)", op.key())
                            }
                            ItemOp::Create { .. } => format!("create {kind} {}", op.key()),
                            ItemOp::Complete { .. } => format!("complete {kind} {}", op.key()),
                            ItemOp::Delete { .. } => format!("delete {kind} {}", op.key()),
                            _ => format!("other {kind} {}", op.key()),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_matched_contact_gets_each_task_and_note_once_and_nothing_created_is_rewritten() {
        let spec = acting("Keep");
        /// Name, the ledger's state of the task, the ops planned, the items kept as created.
        type Row<'a> = (
            &'a str,
            Option<&'a str>,
            &'a [&'a str],
            &'a [(&'a str, u32)],
        );
        let rows: [Row; 5] = [
            (
                "entering",
                None,
                &["create task call", "create note intro"],
                &[],
            ),
            (
                "created before a crash lost the answer",
                Some("started"),
                &["create task call (resolve)"],
                &[],
            ),
            (
                "created (completed or deleted in GHL since: never read)",
                Some("created"),
                &[],
                &[],
            ),
            (
                "created from the rule's older text",
                Some("created from older text"),
                &[],
                &[("task call", 1)],
            ),
            (
                "completed as it left before, back now",
                Some("closed"),
                &[],
                &[],
            ),
        ];
        for (name, state, expected, kept) in rows {
            let ledger = state.map_or_else(Ledger::default, |s| holding(s, &spec, &[]));
            let plan = planned(
                &spec,
                &seen(&[("c1", &[])]),
                &ledger,
                &TagDeclarations::default(),
            );
            assert_eq!(ops(&plan, "c1"), expected, "{name}");
            let kept: BTreeMap<String, u32> =
                kept.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
            assert_eq!(plan.kept, kept, "{name}");
            assert_eq!(
                plan.changes(),
                expected.len(),
                "{name}: maxChanges counts items"
            );
            assert_eq!(
                (plan.pending, plan.compliant),
                if expected.is_empty() { (0, 1) } else { (1, 0) },
                "{name}"
            );
        }
    }

    #[test]
    fn a_task_is_due_from_the_moment_the_contact_entered() {
        let plan = planned(
            &acting("Keep"),
            &seen(&[("c1", &[])]),
            &Ledger::default(),
            &TagDeclarations::default(),
        );
        let Some(ItemOp::Create {
            body: crate::engine::plan::ItemBody::Task(task),
            ..
        }) = change(&plan, "c1").and_then(|c| c.items.first())
        else {
            panic!("no task: {:?}", plan.changes);
        };
        assert_eq!(task.due_date, "2030-01-02T09:00:00Z");
        assert_eq!(task.title, "Call the lead");
        assert!(!task.completed);
    }

    #[test]
    fn the_approved_hash_names_the_items_not_the_clock() {
        let spec = acting("Keep");
        let items = RuleItems::of(&spec).unwrap();
        let at = |now: &str| {
            plan_rule(
                &spec,
                &items,
                &seen(&[("c1", &[])]),
                &Ledger::default(),
                &TagDeclarations::default(),
                now.parse().unwrap(),
            )
        };
        let earlier = at("2030-01-01T09:00:00Z");
        assert_eq!(earlier.hash(), at("2030-01-01T09:05:00Z").hash());
        let mut retitled = spec.clone();
        retitled.tasks[0].title = "Call the lead today".into();
        assert_ne!(
            earlier.hash(),
            planned(
                &retitled,
                &seen(&[("c1", &[])]),
                &Ledger::default(),
                &TagDeclarations::default()
            )
            .hash()
        );
    }

    #[test]
    fn a_task_key_a_policy_declares_on_the_contact_is_left_to_it() {
        let spec: ContactSyncPolicySpec = serde_json::from_value(json!({
            "connectionRef": {"name": "acme"},
            "contacts": [{"email": "c1@example.com",
                          "tasks": [{"key": "call", "title": "Policy call", "dueDate": "2030-02-01T00:00:00Z"}]}]
        }))
        .unwrap();
        let policy = Arc::new(PolicyDeclaration::new(
            "ContactSyncPolicy crm/vip",
            Seniority {
                created: None,
                namespace: "crm".into(),
                name: "vip".into(),
            },
            &build(&spec, &[]).unwrap(),
        ));
        let declared = TagDeclarations {
            policies: vec![policy],
            rules: vec![],
        };
        let plan = planned(
            &acting("Keep"),
            &seen(&[("c1", &[]), ("c2", &[])]),
            &Ledger::default(),
            &declared,
        );
        assert_eq!(ops(&plan, "c1"), ["create note intro"]);
        assert_eq!(ops(&plan, "c2"), ["create task call", "create note intro"]);
        assert_eq!(
            plan.conflicts,
            [r#"ContactSyncPolicy crm/vip declares task "call" on 1 contact(s)"#]
        );
        assert_eq!(plan.conflicted, 1);
    }

    /// Each row: `onLeave`, whether the rule is being deleted, the task's state, whether GHL
    /// still has the contact; then the item writes and whether the contact is forgotten.
    #[test]
    fn a_contact_that_leaves_keeps_its_items_unless_told_otherwise() {
        type Row<'a> = (&'a str, bool, &'a str, bool, &'a [&'a str], bool);
        let rows: [Row; 6] = [
            ("Keep", false, "created", true, &[], false),
            (
                "CompleteTasks",
                false,
                "created",
                true,
                &["complete task call"],
                false,
            ),
            ("CompleteTasks", false, "closed", true, &[], false),
            (
                "Keep",
                true,
                "created",
                true,
                &["delete task call", "delete note intro"],
                true,
            ),
            ("CompleteTasks", false, "created", false, &[], true),
            ("CompleteTasks", false, "started", true, &[], false),
        ];
        for (on_leave, deleting, state, present, expected, forget) in rows {
            let name = format!("{on_leave}, deleting {deleting}, {state}, present {present}");
            let spec = acting(on_leave);
            let ledger = holding(state, &spec, &["hot"]);
            let mut observed = seen(&[]);
            observed.deleting = deleting;
            observed.others.insert(
                "c1".into(),
                present.then(|| contact("c1@example.com", &["hot"])),
            );
            let plan = planned(&spec, &observed, &ledger, &TagDeclarations::default());
            let c1 = change(&plan, "c1").expect(&name);
            assert_eq!(ops(&plan, "c1"), expected, "{name}");
            assert_eq!(c1.forget, forget, "{name}");
            assert_eq!(
                c1.release,
                tags(&["hot"]),
                "{name}: the rule's tags are released"
            );
            assert_eq!(c1.remove.is_empty(), !present, "{name}");
        }
    }

    #[test]
    fn a_contact_that_left_is_read_again_only_when_something_is_left_to_do() {
        let spec = acting("Keep");
        let rows = [
            ("Keep", "created", &[][..], false),
            ("Keep", "created", &["hot"][..], true),
            ("CompleteTasks", "created", &[][..], true),
            ("CompleteTasks", "closed", &[][..], false),
        ];
        for (on_leave, state, owned_tags, expected) in rows {
            let ledger = holding(state, &spec, owned_tags);
            let on_leave: OnLeave = serde_json::from_value(json!(on_leave)).unwrap();
            assert_eq!(
                items::needs_leaving(on_leave, &ledger.contacts["c1"]),
                expected,
                "{on_leave:?} {state} {owned_tags:?}"
            );
        }
        let bare = owning(&[("c1", &[])]);
        assert!(
            items::needs_leaving(OnLeave::Keep, &bare.contacts["c1"]),
            "owning nothing: read, to be forgotten"
        );
    }
}
