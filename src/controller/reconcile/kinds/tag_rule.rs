//! TagRule through the [pipeline](crate::controller::reconcile::pipeline): once the policies
//! on its location have declared what they want, search the selector, publish the rule's
//! declaration, plan its tags against its ledger and every other owner's declarations
//! (conflicts are left alone and reported, never fought over), settle per `mode`. Deletion with `deletionPolicy: Delete` removes the
//! tags the rule added (those another owner wants stay).

use std::collections::BTreeSet;

use async_trait::async_trait;
use kube::Api;
use kube::runtime::reflector::Store;

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::pipeline::{Findings, Reach, Synced, ledger_of};
use crate::controller::reconcile::verdict::{Facts, Outcome};
use crate::controller::registry::Stores;
use crate::controller::registry::reference::Usable;
use crate::crd::tag_rule::{TagRule, TagRuleStatus};
use crate::crd::vocabulary::reason;
use crate::crd::{ContactSyncPolicy, Kind};
use crate::engine::fence::Fence;
use crate::engine::state::secret::{LedgerOwner, SecretLedgerStore};
use crate::engine::state::{StateError, StateStore};
use crate::engine::tag_rule::{
    RuleItems, RulePlan, observe_rule, release_rule, rule_declaration, settle_rule,
};
use crate::engine::{SyncError, SyncOutcome};

/// What a rule's sync found, for the status.
#[derive(Debug)]
pub struct Detail {
    matched: u32,
    compliant: u32,
    pending: u32,
    conflicted: u32,
}

/// The contacts a ContactSyncPolicy manages (for `selector.policyRef`).
async fn policy_contacts(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<String>, StateError> {
    let policies: Api<ContactSyncPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let policy = policies
        .get_opt(name)
        .await
        .map_err(|e| StateError::api("reading ContactSyncPolicy", name, e))?;
    let Some(policy) = policy else {
        return Ok(BTreeSet::new());
    };
    let owner = LedgerOwner::of(Kind::ContactSyncPolicy, &policy);
    // Read only: a closed fence, as no write may come of it.
    let ledger = SecretLedgerStore::new(ctx.client.clone(), owner, Fence::leased())
        .load()
        .await?;
    Ok(ledger
        .contacts
        .into_keys()
        .map(|id| id.to_string())
        .collect())
}

/// Where the rule stands after `outcome`: after an apply, what did not fail is compliant.
fn detail(outcome: &SyncOutcome<RulePlan>) -> Detail {
    let plan = outcome.plan();
    let failed = outcome.report().map_or(0, |r| {
        r.failures
            .iter()
            .map(|f| f.record.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u32
    });
    let (compliant, pending) = match outcome {
        SyncOutcome::Applied { .. } => (
            plan.compliant + plan.pending.saturating_sub(failed),
            failed.min(plan.pending),
        ),
        _ => (plan.compliant, plan.pending),
    };
    Detail {
        matched: plan.matched,
        compliant,
        pending,
        conflicted: plan.conflicted,
    }
}

fn facts(plan: &RulePlan, detail: &Detail) -> Facts {
    let mut standing = format!("{} matched, {} compliant", detail.matched, detail.compliant);
    if detail.conflicted > 0 {
        standing.push_str(&format!(
            ", {} left alone for other owners",
            detail.conflicted
        ));
    }
    Facts {
        summary: format!("tags to change on {} contact(s)", plan.pending),
        standing,
        refused: 0,
        sources_refused: Vec::new(),
        drifted: None,
        conflicts: plan.conflicts.clone(),
        conflict_reason: reason::TAG_CONFLICT,
    }
}

#[async_trait]
impl Synced for TagRule {
    const KIND: Kind = Kind::TagRule;
    /// The rule's tasks and notes, checked.
    type Prepared = RuleItems;
    type Detail = Detail;

    fn cache(stores: &Stores) -> &Store<Self> {
        &stores.rules
    }

    async fn prepare(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        location: Option<&str>,
    ) -> Result<RuleItems, Outcome> {
        let items = RuleItems::of(&self.spec).map_err(Outcome::InvalidSpec)?;
        let Some(location) = location else {
            return Ok(items);
        };
        let waiting = ctx.registry.undeclared_policies(location, key, |_| true);
        if waiting.is_empty() {
            return Ok(items);
        }
        let names: Vec<String> = waiting.iter().map(ObjectKey::owner).collect();
        Err(Outcome::WaitingForOwners(format!(
            "waiting for the policies on the location to declare their contacts: {}",
            names.join(", ")
        )))
    }

    /// Every contact the selector matches, on a full reconcile or a targeted one (rules are
    /// woken, not targeted, by webhooks).
    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        items: RuleItems,
        connection: &Usable,
        _: &Reach,
        approved: Option<&str>,
    ) -> Result<Findings<Detail>, SyncError> {
        let client = &connection.handle.client;
        let store = ledger_of(ctx, self);
        let scope = match &self.spec.selector.policy_ref {
            Some(p) => Some(policy_contacts(ctx, &key.namespace, &p.name).await?),
            None => None,
        };
        let ledger = store.load().await?;
        let seen = observe_rule(
            client,
            &self.spec,
            &ledger,
            scope.as_ref(),
            ctx.config.apply_concurrency,
        )
        .await?;
        let declarations = &ctx.registry.declarations;
        let declaration = rule_declaration(&key.owner(), &self.spec, &seen);
        declarations.declare_rule(&connection.location, key, declaration);
        let declared = ctx.registry.tag_declarations(&connection.location, key);
        let mut options = ctx.sync_options(self.spec.mode, key);
        options.approved = approved.map(str::to_owned);
        let outcome = settle_rule(
            client, &store, ledger, &self.spec, &items, &seen, &declared, &options,
        )
        .await?;
        let detail = detail(&outcome);
        let facts = facts(outcome.plan(), &detail);
        Ok(Findings {
            plan: outcome.plan().summary(),
            detail,
            outcome: outcome.map(|_| facts),
        })
    }

    async fn remove_owned(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError> {
        let store = ledger_of(ctx, self);
        let declared = ctx.registry.tag_declarations(&connection.location, key);
        let options = ctx.sync_options(self.spec.mode, key);
        let removed = release_rule(
            &connection.handle.client,
            &store,
            &self.spec,
            &declared,
            &options,
        )
        .await?;
        Ok(removed.map(drop))
    }

    fn record(status: &mut TagRuleStatus, detail: &Detail) {
        status.matched = detail.matched;
        status.compliant = detail.compliant;
        status.pending = detail.pending;
        status.conflicted = detail.conflicted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::contact_sync_policy::RecordFailure;
    use crate::engine::apply::ApplyReport;

    fn plan(matched: u32, compliant: u32, pending: u32) -> RulePlan {
        RulePlan {
            matched,
            compliant,
            pending,
            ..RulePlan::default()
        }
    }

    fn failure(id: &str) -> RecordFailure {
        RecordFailure {
            record: format!("contact/{id}"),
            field: None,
            reason: "GhlUnavailable".into(),
            message: "503".into(),
        }
    }

    #[test]
    fn counts_follow_what_the_apply_achieved() {
        let cases = [
            (
                "plan only",
                SyncOutcome::Planned {
                    plan: plan(5, 3, 2),
                },
                (3, 2),
            ),
            (
                "applied",
                SyncOutcome::Applied {
                    plan: plan(5, 3, 2),
                    report: ApplyReport::default(),
                },
                (5, 0),
            ),
            (
                "applied, one contact failed twice",
                SyncOutcome::Applied {
                    plan: plan(5, 3, 2),
                    report: ApplyReport {
                        writes: 3,
                        failures: vec![failure("c1"), failure("c1")],
                    },
                },
                (4, 1),
            ),
            (
                "in sync",
                SyncOutcome::InSync {
                    plan: plan(5, 5, 0),
                },
                (5, 0),
            ),
        ];
        for (name, outcome, (compliant, pending)) in cases {
            let d = detail(&outcome);
            assert_eq!((d.compliant, d.pending), (compliant, pending), "{name}");
            assert_eq!(d.matched, 5, "{name}");
            let f = facts(outcome.plan(), &d);
            assert_eq!(
                f.standing,
                format!("5 matched, {compliant} compliant"),
                "{name}"
            );
        }
    }
}
