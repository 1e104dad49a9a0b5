//! The rule planner (pure): what to add, remove and release on each contact, given what the
//! rule saw, its ledger, and what the other owners on the location want.

use std::collections::{BTreeMap, BTreeSet};

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

/// Counts conflicts per owner and tag.
#[derive(Default)]
struct Conflicts(BTreeMap<(String, String), u32>);

impl Conflicts {
    fn note(&mut self, owner: &str, tag: &str) {
        *self
            .0
            .entry((owner.to_owned(), tag.to_owned()))
            .or_default() += 1;
    }

    fn messages(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|((owner, tag), n)| {
                format!("{owner} wants the opposite for tag {tag:?} on {n} contact(s)")
            })
            .collect()
    }
}

/// Plans a rule against what it sees, its ledger, and the other owners' declared.
pub fn plan_rule(
    spec: &TagRuleSpec,
    observed: &RuleObservation,
    ledger: &Ledger,
    declared: &TagDeclarations,
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
                    conflicts.note(owner, tag);
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
                    conflicts.note(owner, tag);
                    left_alone = true;
                }
                None => {
                    change.remove.insert(tag.clone());
                }
            }
        }
        // Tags we added earlier that the rule no longer adds: removed, unless another owner
        // wants them (then they stay, no longer ours).
        let owned = ledger.contacts.get(id.as_str()).map(|c| &c.tags);
        for tag in owned.into_iter().flat_map(|t| t.iter()) {
            if add.contains(tag) {
                continue;
            }
            if contact.tags.contains(tag) && declared.wanting(id, contact, tag).is_none() {
                change.remove.insert(tag.to_owned());
            }
            change.release.insert(tag.to_owned());
        }
        let writes = !change.add.is_empty() || !change.remove.is_empty();
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
    release_departed(observed, ledger, declared, &mut plan);
    plan.conflicts = conflicts.messages();
    plan
}

/// Contacts that left the selection: our tags go (unless another owner wants them), and the
/// contacts are forgotten.
fn release_departed(
    observed: &RuleObservation,
    ledger: &Ledger,
    declared: &TagDeclarations,
    plan: &mut RulePlan,
) {
    for (id, contact) in &observed.others {
        let Some(owned) = ledger.contacts.get(id.as_str()) else {
            continue;
        };
        let mut change = TagChange {
            id: id.clone(),
            forget: true,
            release: owned.tags.iter().map(str::to_owned).collect(),
            ..TagChange::default()
        };
        if let Some(contact) = contact {
            for tag in owned.tags.iter().filter(|t| contact.tags.contains(*t)) {
                if declared.wanting(id, contact, tag).is_none() {
                    change.remove.insert(tag.to_owned());
                }
            }
        }
        plan.changes.push(change);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::crd::contact_sync_policy::ContactSyncPolicySpec;
    use crate::engine::desired::build;
    use crate::engine::ledger::{Change, KeyDigest};
    use crate::engine::ownership::{PolicyDeclaration, SeenContact, Seniority};

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
        }
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
        let plan = plan_rule(
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
        let plan = plan_rule(
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
            let plan = plan_rule(
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
        let plan = plan_rule(
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
}
