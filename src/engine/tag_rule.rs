//! TagRules: the same observe → plan → apply pipeline for "contacts matching a selector must
//! carry (or lose) these tags".
//!
//! - Observe (network): a server-side search with the rule's filters; optionally only the
//!   contacts a ContactSyncPolicy manages; optionally only those with a note containing a
//!   phrase; plus GET for ledger contacts that no longer match (to release our tags).
//! - Plan (pure): `addTags` missing on matched contacts are added (and recorded as ours);
//!   `removeTags` present are removed; tags we added to contacts that left the selection, or
//!   that the rule no longer adds, are removed. A tag another owner wants the opposite way on
//!   the same contact is a conflict: both sides leave it alone and report it.
//! - Apply: tag add/remove calls with ledger intents, like the contact applier.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::crd::common::PlanSummary;
use crate::crd::tag_rule::{FilterOperator as RuleOperator, TagRuleSpec};
use crate::engine::fields::normalize_tag;
use crate::engine::ledger::{Change, Ledger};
use crate::engine::state::{StateError, StateStore};
use crate::ghl::models::{ContactSearch, FilterOperator, SearchFilter};
use crate::ghl::paginate::search_all;
use crate::ghl::{ErrorClass, GhlApi, GhlError};

/// Another owner's wishes for tags on contacts, to detect conflicts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claim {
    /// Who (e.g. `TagRule crm/smb-domain`).
    pub owner: String,
    /// Contact id → tags the owner wants present.
    pub add: BTreeMap<String, BTreeSet<String>>,
    /// Contact id → tags the owner wants absent.
    pub remove: BTreeMap<String, BTreeSet<String>>,
}

/// What a rule sees.
#[derive(Clone, Debug, Default)]
pub struct RuleObservation {
    /// Matched contacts' ids and current tags.
    pub matched: BTreeMap<String, BTreeSet<String>>,
    /// Ledger contacts outside the selection: current tags (absent when GHL no longer has them).
    pub others: BTreeMap<String, Option<BTreeSet<String>>>,
}

/// Tag changes for one contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagChange {
    pub id: String,
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
    /// Tags of ours to drop from the ledger (already absent).
    #[serde(skip)]
    pub release: BTreeSet<String>,
    /// Forget the contact afterwards (nothing of ours left on it).
    #[serde(skip)]
    pub forget: bool,
}

/// The plan of a rule.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePlan {
    pub changes: Vec<TagChange>,
    pub matched: u32,
    pub compliant: u32,
    pub pending: u32,
    /// `owner: tag on N contacts` for every conflict.
    pub conflicts: Vec<String>,
}

impl RulePlan {
    pub fn writes(&self) -> usize {
        self.changes
            .iter()
            .map(|c| usize::from(!c.add.is_empty()) + usize::from(!c.remove.is_empty()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            update: self
                .changes
                .iter()
                .filter(|c| !c.add.is_empty() || !c.remove.is_empty())
                .count() as u32,
            samples: self
                .changes
                .iter()
                .take(10)
                .map(|c| format!("contact/{}", c.id))
                .collect(),
            ..PlanSummary::default()
        }
    }
}

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

/// Reads what the rule needs. `policy_contacts`: the ids of the referenced policy's contacts,
/// when the selector names one.
pub async fn observe_rule(
    api: &dyn GhlApi,
    spec: &TagRuleSpec,
    ledger: &Ledger,
    policy_contacts: Option<&BTreeSet<String>>,
    concurrency: usize,
) -> Result<RuleObservation, GhlError> {
    let search = ContactSearch {
        page_limit: 500,
        filters: search_filters(spec),
        ..ContactSearch::default()
    };
    let mut candidates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pages = search_all(api, search);
    while let Some(contact) = pages.try_next().await? {
        if policy_contacts.is_some_and(|ids| !ids.contains(&contact.id)) {
            continue;
        }
        candidates.insert(
            contact.id.clone(),
            contact.tags.iter().map(|t| normalize_tag(t)).collect(),
        );
    }
    if let Some(phrase) = spec
        .selector
        .note_contains
        .as_deref()
        .map(str::to_lowercase)
    {
        let ids: Vec<String> = candidates.keys().cloned().collect();
        let checks: Vec<(String, Result<bool, GhlError>)> = stream::iter(ids)
            .map(|id| {
                let phrase = phrase.clone();
                async move {
                    let found = api.list_notes(&id).await.map(|notes| {
                        notes
                            .iter()
                            .any(|n| n.body.to_lowercase().contains(&phrase))
                    });
                    (id, found)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (id, found) in checks {
            match found {
                Ok(true) => {}
                Ok(false) => {
                    candidates.remove(&id);
                }
                Err(e) if e.class() == ErrorClass::NotFound => {
                    candidates.remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
    }
    let outside: Vec<String> = ledger
        .contacts
        .keys()
        .filter(|id| !candidates.contains_key(*id))
        .cloned()
        .collect();
    type Fetched = (String, Result<Option<BTreeSet<String>>, GhlError>);
    let fetched: Vec<Fetched> = stream::iter(outside)
        .map(|id| async move {
            let tags = match api.get_contact(&id).await {
                Ok(c) => Ok(Some(c.tags.iter().map(|t| normalize_tag(t)).collect())),
                Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
                Err(e) => Err(e),
            };
            (id, tags)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut others = BTreeMap::new();
    for (id, tags) in fetched {
        others.insert(id, tags?);
    }
    Ok(RuleObservation {
        matched: candidates,
        others,
    })
}

/// Plans a rule against what it sees, its ledger, and other owners' claims.
pub fn plan_rule(
    spec: &TagRuleSpec,
    observed: &RuleObservation,
    ledger: &Ledger,
    claims: &[Claim],
) -> RulePlan {
    let add: BTreeSet<String> = spec.add_tags.iter().map(|t| normalize_tag(t)).collect();
    let remove: BTreeSet<String> = spec.remove_tags.iter().map(|t| normalize_tag(t)).collect();
    let mut plan = RulePlan {
        matched: observed.matched.len() as u32,
        ..RulePlan::default()
    };
    let mut conflicts: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut conflicting = |id: &str,
                           tag: &str,
                           opposite: fn(&Claim) -> &BTreeMap<String, BTreeSet<String>>|
     -> bool {
        let mut hit = false;
        for claim in claims {
            if opposite(claim)
                .get(id)
                .is_some_and(|tags| tags.contains(tag))
            {
                *conflicts
                    .entry((claim.owner.clone(), tag.to_owned()))
                    .or_default() += 1;
                hit = true;
            }
        }
        hit
    };
    for (id, tags) in &observed.matched {
        let owned = ledger.contacts.get(id).map(|c| &c.tags);
        let mut change = TagChange {
            id: id.clone(),
            ..TagChange::default()
        };
        for tag in add.difference(tags) {
            if !conflicting(id, tag, |c| &c.remove) {
                change.add.insert(tag.clone());
            }
        }
        for tag in remove.intersection(tags) {
            if !conflicting(id, tag, |c| &c.add) {
                change.remove.insert(tag.clone());
            }
        }
        // Tags we added earlier that the rule no longer adds.
        for tag in owned.into_iter().flatten() {
            if add.contains(tag) {
                continue;
            }
            if tags.contains(tag) && !conflicting(id, tag, |c| &c.add) {
                change.remove.insert(tag.clone());
            }
            change.release.insert(tag.clone());
        }
        if change.add.is_empty() && change.remove.is_empty() && change.release.is_empty() {
            plan.compliant += 1;
        } else {
            if !change.add.is_empty() || !change.remove.is_empty() {
                plan.pending += 1;
            }
            plan.changes.push(change);
        }
    }
    for (id, tags) in &observed.others {
        let Some(owned) = ledger.contacts.get(id) else {
            continue;
        };
        let mut change = TagChange {
            id: id.clone(),
            forget: true,
            release: owned.tags.iter().cloned().collect(),
            ..TagChange::default()
        };
        if let Some(tags) = tags {
            for tag in owned.tags.iter().filter(|t| tags.contains(*t)) {
                if !conflicting(id, tag, |c| &c.add) {
                    change.remove.insert(tag.clone());
                }
            }
        }
        plan.changes.push(change);
    }
    plan.conflicts = conflicts
        .into_iter()
        .map(|((owner, tag), n)| {
            format!("{owner} wants the opposite for tag {tag:?} on {n} contact(s)")
        })
        .collect();
    plan
}

/// Applies a rule plan; returns the number of GHL writes and per-contact failures.
pub async fn apply_rule(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    ledger: &mut Ledger,
    plan: &RulePlan,
) -> Result<(u64, Vec<(String, GhlError)>), StateError> {
    let mut writes = 0;
    let mut failures = Vec::new();
    for change in &plan.changes {
        let mut commit = Vec::new();
        if !ledger.contacts.contains_key(&change.id) && !change.add.is_empty() {
            commit.push(Change::ContactBound {
                key: change.id.clone(),
                id: change.id.clone(),
                created: false,
            });
        }
        if !change.add.is_empty() {
            commit.push(Change::TagsAdded {
                id: change.id.clone(),
                tags: change.add.clone(),
            });
        }
        store.commit(&commit).await?;
        commit.iter().for_each(|c| ledger.apply(c));
        if !change.remove.is_empty() {
            writes += 1;
            let tags: Vec<String> = change.remove.iter().cloned().collect();
            match api.remove_tags(&change.id, &tags).await {
                Ok(_) => {}
                Err(e) if e.class() == ErrorClass::NotFound => {}
                Err(e) => {
                    failures.push((change.id.clone(), e));
                    continue;
                }
            }
        }
        if !change.add.is_empty() {
            writes += 1;
            let tags: Vec<String> = change.add.iter().cloned().collect();
            if let Err(e) = api.add_tags(&change.id, &tags).await {
                failures.push((change.id.clone(), e));
                continue;
            }
        }
        let mut after = Vec::new();
        if !change.release.is_empty() {
            after.push(Change::TagsReleased {
                id: change.id.clone(),
                tags: change.release.clone(),
            });
        }
        if change.forget {
            after.push(Change::ContactForgotten {
                id: change.id.clone(),
            });
        }
        store.commit(&after).await?;
        after.iter().for_each(|c| ledger.apply(c));
    }
    Ok((writes, failures))
}

/// The tags a ContactSyncPolicy declares on the contacts it manages, as a claim for TagRule
/// conflict checks.
pub fn claim_of_policy(owner: &str, plan: &crate::engine::plan::Plan) -> Claim {
    use crate::engine::plan::Target;
    let mut claim = Claim {
        owner: owner.to_owned(),
        ..Claim::default()
    };
    for contact in &plan.contacts {
        if let Some(id) = contact.id() {
            let mut tags = contact.add_tags.clone();
            if let Target::Create { body, .. } = &contact.target {
                tags.extend(body.tags.iter().cloned());
            }
            claim.add.insert(id.to_owned(), tags);
        }
    }
    claim
}

/// What a rule being deleted sees: only its own contacts and their tags (no search).
pub async fn observe_release(
    api: &dyn GhlApi,
    ledger: &Ledger,
    concurrency: usize,
) -> Result<RuleObservation, GhlError> {
    type Fetched = (String, Result<Option<BTreeSet<String>>, GhlError>);
    let ids: Vec<String> = ledger.contacts.keys().cloned().collect();
    let fetched: Vec<Fetched> = stream::iter(ids)
        .map(|id| async move {
            let tags = match api.get_contact(&id).await {
                Ok(c) => Ok(Some(c.tags.iter().map(|t| normalize_tag(t)).collect())),
                Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
                Err(e) => Err(e),
            };
            (id, tags)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut others = BTreeMap::new();
    for (id, tags) in fetched {
        others.insert(id, tags?);
    }
    Ok(RuleObservation {
        matched: BTreeMap::new(),
        others,
    })
}

/// The claim a rule makes, for other owners' conflict checks.
pub fn claim_of(owner: &str, spec: &TagRuleSpec, observed: &RuleObservation) -> Claim {
    let add: BTreeSet<String> = spec.add_tags.iter().map(|t| normalize_tag(t)).collect();
    let remove: BTreeSet<String> = spec.remove_tags.iter().map(|t| normalize_tag(t)).collect();
    Claim {
        owner: owner.to_owned(),
        add: observed
            .matched
            .keys()
            .map(|id| (id.clone(), add.clone()))
            .collect(),
        remove: observed
            .matched
            .keys()
            .map(|id| (id.clone(), remove.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(add: &[&str], remove: &[&str]) -> TagRuleSpec {
        serde_json::from_value(json!({"connectionRef": {"name": "acme"}, "selector": {}, "addTags": add, "removeTags": remove})).unwrap()
    }

    fn tags(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn seen(matched: &[(&str, &[&str])]) -> RuleObservation {
        RuleObservation {
            matched: matched
                .iter()
                .map(|(id, t)| ((*id).to_owned(), tags(t)))
                .collect(),
            others: BTreeMap::new(),
        }
    }

    #[test]
    fn adds_removes_and_counts() {
        let plan = plan_rule(
            &rule(&["enterprise"], &["smb"]),
            &seen(&[("c1", &["smb"]), ("c2", &["enterprise"]), ("c3", &[])]),
            &Ledger::default(),
            &[],
        );
        assert_eq!(plan.matched, 3);
        assert_eq!(plan.compliant, 1);
        assert_eq!(plan.pending, 2);
        let c1 = plan.changes.iter().find(|c| c.id == "c1").unwrap();
        assert_eq!(
            (c1.add.clone(), c1.remove.clone()),
            (tags(&["enterprise"]), tags(&["smb"]))
        );
    }

    #[test]
    fn tags_we_added_leave_with_the_contact_or_the_rule() {
        let mut ledger = Ledger::default();
        for id in ["c1", "c2"] {
            ledger.apply(&Change::ContactBound {
                key: id.into(),
                id: id.into(),
                created: false,
            });
            ledger.apply(&Change::TagsAdded {
                id: id.into(),
                tags: tags(&["old", "enterprise"]),
            });
        }
        let mut observed = seen(&[("c1", &["old", "enterprise", "theirs"])]);
        observed
            .others
            .insert("c2".into(), Some(tags(&["enterprise", "theirs"])));
        let plan = plan_rule(&rule(&["enterprise"], &[]), &observed, &ledger, &[]);
        let c1 = plan.changes.iter().find(|c| c.id == "c1").unwrap();
        assert_eq!(c1.remove, tags(&["old"]), "dropped from addTags");
        let c2 = plan.changes.iter().find(|c| c.id == "c2").unwrap();
        assert_eq!(c2.remove, tags(&["enterprise"]), "left the selection");
        assert!(c2.forget);
    }

    #[test]
    fn opposite_claims_are_conflicts_not_flaps() {
        let other = Claim {
            owner: "TagRule crm/smb".into(),
            add: BTreeMap::new(),
            remove: [("c1".to_owned(), tags(&["enterprise"]))].into(),
        };
        let plan = plan_rule(
            &rule(&["enterprise"], &[]),
            &seen(&[("c1", &[]), ("c2", &[])]),
            &Ledger::default(),
            &[other],
        );
        assert_eq!(plan.changes.len(), 1, "c1 is left alone");
        assert_eq!(plan.changes[0].id, "c2");
        assert_eq!(plan.conflicts.len(), 1);
        assert!(plan.conflicts[0].contains("TagRule crm/smb"));
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
