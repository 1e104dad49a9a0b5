//! TagRules: the same observe → plan → apply pipeline for "contacts matching a selector must
//! carry (or lose) these tags".
//!
//! - [`observe`] (network): a server-side search with the rule's filters; optionally only the
//!   contacts a ContactSyncPolicy manages; optionally only those with a note containing a
//!   phrase; plus GET for ledger contacts that no longer match (to release our tags).
//! - [`plan`] (pure): `addTags` missing on matched contacts are added (and recorded as ours);
//!   `removeTags` present are removed; tags we added to contacts that left the selection, or
//!   that the rule no longer adds, are removed. A tag another owner wants the other way on the
//!   same contact is left alone and reported ([`crate::engine::ownership`]).
//! - [`apply`]: tag add/remove calls with ledger intents, like the contact applier.
//!
//! [`settle_rule`] plans and settles once the rule's declaration has been exchanged for the
//! other owners' (the caller publishes it between observing and settling); [`release_rule`]
//! removes what the rule owns when it is deleted.

mod apply;
pub mod items;
mod observe;
mod plan;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use apply::apply_rule;
pub use items::RuleItems;

pub use observe::{observe_release, observe_rule};
pub use plan::{plan_rule, rule_declaration, search_filters};

use crate::crd::common::PlanSummary;
use crate::crd::tag_rule::TagRuleSpec;
use crate::engine::ledger::Ledger;
use crate::engine::ownership::{SeenContact, TagDeclarations};
use crate::engine::plan::{DEFAULT_MAX_CHANGES, ItemOp};
use crate::engine::settle::{Settle, Terms, settle};
use crate::engine::state::StateStore;
use crate::engine::sync::{Mode, SyncError, SyncOptions, SyncOutcome};
use crate::ghl::GhlApi;

/// What a rule sees.
#[derive(Clone, Debug, Default)]
pub struct RuleObservation {
    /// Matched contacts by id.
    pub matched: BTreeMap<String, SeenContact>,
    /// Ledger contacts outside the selection that need anything done as they leave (absent
    /// when GHL no longer has them).
    pub others: BTreeMap<String, Option<SeenContact>>,
    /// The rule is being deleted with `deletionPolicy: Delete`: what it created goes too.
    pub deleting: bool,
}

/// Tag changes for one contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagChange {
    pub id: String,
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
    /// Tasks and notes created for the contact entering the rule, tasks completed as it
    /// leaves (`onLeave: CompleteTasks`), or deleted with the rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemOp>,
    /// Tags of ours to drop from the ledger (already absent, or kept for another owner).
    #[serde(skip)]
    pub release: BTreeSet<String>,
    /// Forget the contact afterwards (nothing of ours left on it).
    #[serde(skip)]
    pub forget: bool,
}

impl TagChange {
    fn writes(&self) -> usize {
        usize::from(!self.add.is_empty()) + usize::from(!self.remove.is_empty()) + self.items.len()
    }
}

/// Why `plan` exceeds the rule's `safety`, if it does.
pub fn rule_block(spec: &TagRuleSpec, plan: &RulePlan) -> Option<String> {
    let max = spec
        .safety
        .as_ref()
        .and_then(|s| s.max_changes)
        .unwrap_or(DEFAULT_MAX_CHANGES);
    let changes = plan.changes();
    (changes > max as usize)
        .then(|| format!("the plan makes {changes} changes, more than safety.maxChanges ({max})"))
}

/// The plan of a rule.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePlan {
    pub changes: Vec<TagChange>,
    /// Contacts the selector matches.
    pub matched: u32,
    /// Matched contacts already as the rule wants them.
    pub compliant: u32,
    /// Matched contacts with tags to change.
    pub pending: u32,
    /// Matched contacts with a tag left alone because another owner wants it the other way.
    pub conflicted: u32,
    /// `<owner> wants the opposite for tag "x" on N contact(s)`, one per owner and tag (or
    /// `<owner> declares task "call" on N contact(s)`, one per owner and item).
    pub conflicts: Vec<String>,
    /// Items already created whose text in the rule changed since, by `task <key>` / `note
    /// <key>`, with the number of contacts: kept as created (the new text reaches contacts
    /// entering from now on).
    pub kept: BTreeMap<String, u32>,
}

impl RulePlan {
    pub fn writes(&self) -> usize {
        self.changes.iter().map(TagChange::writes).sum()
    }

    /// What `safety.maxChanges` counts: tag writes and item writes (created, completed or
    /// deleted), plus contacts forgotten without a write.
    pub fn changes(&self) -> usize {
        self.changes
            .iter()
            .map(|c| c.writes().max(usize::from(c.forget)))
            .sum()
    }

    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            update: self.changes.iter().filter(|c| c.writes() > 0).count() as u32,
            samples: self
                .changes
                .iter()
                .filter(|c| c.writes() > 0)
                .take(10)
                .map(|c| format!("contact/{}", c.id))
                .collect(),
            hash: (!self.is_empty()).then(|| self.hash()),
            ..PlanSummary::default()
        }
    }
}

impl Settle for RulePlan {
    /// True when applying would change nothing in GHL or in the ledger.
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// A digest of what applying would do — each contact's tags added and removed, its items
    /// created (by key and text: not by due time, which moves with the clock), completed or
    /// deleted, and the contacts forgotten — and nothing else: what an approval names.
    fn hash(&self) -> String {
        #[derive(Serialize)]
        struct Change<'a> {
            id: &'a str,
            add: &'a BTreeSet<String>,
            remove: &'a BTreeSet<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            items: Vec<(&'static str, &'static str, &'a str, u64)>,
            forget: bool,
        }
        fn item(op: &ItemOp) -> (&'static str, &'static str, &str, u64) {
            let kind = items::kind_name(op.kind());
            match op {
                ItemOp::Create { fingerprint, .. } => ("create", kind, op.key(), *fingerprint),
                ItemOp::Complete { .. } => ("complete", kind, op.key(), 0),
                ItemOp::Delete { .. } => ("delete", kind, op.key(), 0),
                _ => ("other", kind, op.key(), 0),
            }
        }
        let changes: Vec<Change<'_>> = self
            .changes
            .iter()
            .map(|c| Change {
                id: &c.id,
                add: &c.add,
                remove: &c.remove,
                items: c.items.iter().map(item).collect(),
                forget: c.forget,
            })
            .collect();
        crate::engine::plan::digest::digest(&changes)
    }
}

/// Plans the rule against what it saw, its ledger and the other owners' declarations, then
/// settles the plan (applying it when `mode` allows, and compacting the ledger after).
#[allow(clippy::too_many_arguments)]
pub async fn settle_rule(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    mut ledger: Ledger,
    spec: &TagRuleSpec,
    items: &RuleItems,
    seen: &RuleObservation,
    declared: &TagDeclarations,
    options: &SyncOptions,
) -> Result<SyncOutcome<RulePlan>, SyncError> {
    let plan = plan_rule(spec, items, seen, &ledger, declared, options.apply.now);
    let blocked = rule_block(spec, &plan);
    let terms = Terms {
        mode: options.mode,
        blocked: blocked.as_deref(),
        approved: options.approved.as_deref(),
    };
    settle(plan, terms, async |plan: &RulePlan| {
        let report = apply_rule(api, store, &mut ledger, plan, &options.apply.fence).await?;
        store.compact(&ledger).await?;
        Ok(report)
    })
    .await
}

/// Removes what the rule owns (its deletion with `deletionPolicy: Delete`): the tags it added
/// that no other owner declares, and the tasks and notes it created, within its `safety`
/// limits (a larger plan is `Blocked`).
pub async fn release_rule(
    api: &dyn GhlApi,
    store: &dyn StateStore,
    spec: &TagRuleSpec,
    declared: &TagDeclarations,
    options: &SyncOptions,
) -> Result<SyncOutcome<RulePlan>, SyncError> {
    let mut ledger = store.load().await?;
    let seen = observe_release(api, &ledger, options.apply.concurrency).await?;
    // Nothing is created on the way out: the rule's items matter only as the ledger has them.
    let items = RuleItems {
        on_leave: spec.on_leave,
        ..RuleItems::default()
    };
    let plan = plan_rule(spec, &items, &seen, &ledger, declared, options.apply.now);
    let blocked = rule_block(spec, &plan);
    let terms = Terms {
        mode: Mode::Apply,
        blocked: blocked.as_deref(),
        approved: None,
    };
    settle(plan, terms, async |plan: &RulePlan| {
        Ok(apply_rule(api, store, &mut ledger, plan, &options.apply.fence).await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(changes: &[(&str, &[&str], &[&str], bool)]) -> RulePlan {
        RulePlan {
            changes: changes
                .iter()
                .map(|(id, add, remove, forget)| TagChange {
                    id: (*id).into(),
                    add: add.iter().map(|t| (*t).to_owned()).collect(),
                    remove: remove.iter().map(|t| (*t).to_owned()).collect(),
                    items: Vec::new(),
                    release: BTreeSet::new(),
                    forget: *forget,
                })
                .collect(),
            ..RulePlan::default()
        }
    }

    #[test]
    fn the_hash_names_exactly_what_applying_writes() {
        let base = plan(&[("c1", &["vip"], &[], false)]);
        let mut counted = base.clone();
        counted.matched = 40;
        counted.conflicts.push("another owner".into());
        assert_eq!(
            base.hash(),
            counted.hash(),
            "counts and conflicts are not writes"
        );
        for other in [
            plan(&[("c2", &["vip"], &[], false)]),
            plan(&[("c1", &["gold"], &[], false)]),
            plan(&[("c1", &["vip"], &["smb"], false)]),
            plan(&[("c1", &["vip"], &[], true)]),
            plan(&[("c1", &["vip"], &[], false), ("c2", &[], &["smb"], false)]),
        ] {
            assert_ne!(base.hash(), other.hash(), "{:?}", other.changes);
        }
        assert_eq!(base.summary().hash, Some(base.hash()));
        assert_eq!(plan(&[]).summary().hash, None, "nothing to approve");
    }
}
