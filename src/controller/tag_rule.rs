//! TagRule through the [pipeline](super::pipeline): once the policies on its location have
//! declared what they want, search the selector, publish the rule's claim, plan its tags
//! against its ledger and every other owner's wishes (conflicts are left alone and reported,
//! never fought over), apply per `mode`. Deletion with `deletionPolicy: Delete` removes the
//! tags the rule added (those another owner wants stay).

use std::collections::BTreeSet;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Resource};

use super::approval;
use super::conditions;
use super::context::Context;
use super::ledger_store::{LedgerOwner, SecretLedgerStore};
use super::object::{Kind, ObjectKey};
use super::pipeline::Synced;
use super::reference::Usable;
use super::verdict::{Facts, Outcome, Verdict};
use crate::crd::ContactSyncPolicy;
use crate::crd::common::PlanSummary;
use crate::crd::tag_rule::{TagRule, TagRuleStatus};
use crate::crd::vocabulary::reason;
use crate::engine::fence::Fence;
use crate::engine::state::{StateError, StateStore};
use crate::engine::tag_rule::{
    RulePlan, apply_rule, observe_release, observe_rule, plan_rule, rule_block, rule_claim,
    settle_rule,
};
use crate::engine::{SyncError, SyncOutcome};

/// What a rule's sync found, for the status.
#[derive(Debug)]
pub struct Detail {
    plan: PlanSummary,
    matched: u32,
    compliant: u32,
    pending: u32,
    conflicted: u32,
}

fn ledger(ctx: &Context, rule: &TagRule) -> SecretLedgerStore {
    SecretLedgerStore::new(
        ctx.client.clone(),
        LedgerOwner::of(Kind::TagRule, rule),
        ctx.fence_for(&ObjectKey::of(Kind::TagRule, rule)),
    )
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
        .map_err(|e| StateError(format!("reading ContactSyncPolicy {name}: {e}")))?;
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
        plan: plan.summary(),
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
        drifted: None,
        conflicts: plan.conflicts.clone(),
        conflict_reason: reason::TAG_CONFLICT,
    }
}

#[async_trait]
impl Synced for TagRule {
    const KIND: Kind = Kind::TagRule;
    type Prepared = ();
    type Detail = Detail;
    type Status = TagRuleStatus;

    crate::synced_spec_accessors!();

    async fn prepare(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        location: Option<&str>,
    ) -> Result<(), Outcome> {
        let Some(location) = location else {
            return Ok(());
        };
        let waiting = ctx.undeclared_policies(location, key, |_| true);
        if waiting.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = waiting.iter().map(ObjectKey::owner).collect();
        Err(Outcome::WaitingForOwners(format!(
            "waiting for the policies on the location to declare their contacts: {}",
            names.join(", ")
        )))
    }

    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        _: (),
        connection: &Usable,
    ) -> Result<(SyncOutcome<Facts>, Detail), SyncError> {
        let client = &connection.handle.client;
        let store = ledger(ctx, self);
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
        let claim = rule_claim(&key.owner(), &self.spec, &seen);
        ctx.ownership.claim(&connection.location, key, claim);
        let claims = ctx.tag_claims(&connection.location, key);
        let mut options = ctx.sync_options(self.spec.mode, key);
        let approval = approval::pending(
            &self.metadata,
            self.status.as_ref().and_then(|s| s.plan.as_ref()),
        );
        options.approved = approval.clone();
        let outcome =
            settle_rule(client, &store, ledger, &self.spec, &seen, &claims, &options).await?;
        let mut detail = detail(&outcome);
        detail.plan.blocked = approval::blocked(&outcome, detail.plan.hash.as_deref());
        if let Some(notice) = approval::notice(
            approval.as_deref(),
            &detail.plan,
            &outcome,
            approval::approver(&self.metadata),
        ) {
            if notice.reason == reason::PLAN_APPROVED {
                detail.plan.approved = approval.clone();
            }
            ctx.event(&self.object_ref(&()), &notice).await;
        }
        let facts = facts(outcome.plan(), &detail);
        Ok((outcome.map(|_| facts), detail))
    }

    async fn release(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError> {
        let client = &connection.handle.client;
        let store = ledger(ctx, self);
        let mut ledger = store.load().await?;
        let seen = observe_release(client, &ledger, ctx.config.apply_concurrency).await?;
        let claims = ctx.tag_claims(&connection.location, key);
        let plan = plan_rule(&self.spec, &seen, &ledger, &claims);
        if let Some(reason) = rule_block(&self.spec, &plan) {
            return Ok(SyncOutcome::Blocked { plan: (), reason });
        }
        let report = apply_rule(client, &store, &mut ledger, &plan, &ctx.fence_for(key)).await?;
        Ok(SyncOutcome::Applied { plan: (), report })
    }

    fn status(&self, verdict: &Verdict, detail: Option<&Detail>, now: Timestamp) -> TagRuleStatus {
        let previous = self.status.clone().unwrap_or_default();
        let generation = self.metadata.generation;
        let conditions =
            conditions::merge(&previous.conditions, &verdict.conditions, generation, now);
        let Some(detail) = detail else {
            return TagRuleStatus {
                observed_generation: generation,
                conditions,
                ..previous
            };
        };
        TagRuleStatus {
            observed_generation: generation,
            conditions,
            matched: detail.matched,
            compliant: detail.compliant,
            pending: detail.pending,
            conflicted: detail.conflicted,
            // The last approval used stays recorded until another is used.
            plan: Some(PlanSummary {
                approved: detail
                    .plan
                    .approved
                    .clone()
                    .or_else(|| previous.plan.as_ref().and_then(|p| p.approved.clone())),
                ..detail.plan.clone()
            }),
            last_sync_time: Some(Time(now)),
        }
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
