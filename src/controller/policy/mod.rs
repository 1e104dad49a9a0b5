//! ContactSyncPolicy through the [pipeline](super::pipeline): its records (inline and
//! `contactsFrom`) are read and validated, and its declaration published, before any GHL call;
//! records a senior policy declares too are left to it; the engine syncs the rest. The ledger
//! lives in Secrets the policy owns.

mod sources;

use std::collections::BTreeSet;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::approval;
use super::conditions::{self, Phase};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;

use super::connections::Readiness;
use super::context::Context;
use super::events::wake;
use super::ledger_store::{LedgerOwner, SecretLedgerStore};
use super::object::{Kind, ObjectKey};
use super::pipeline::Synced;
use super::pipeline::classify;
use super::reference::ConnectionState;
use super::reference::Usable;
use super::verdict::{Facts, Outcome, Verdict};
use crate::crd::common::{Mode, PlanSummary};
use crate::crd::contact_sync_policy::{
    ContactSyncPolicy, ContactSyncPolicyStatus, RecordFailure, SyncCounts,
};
use crate::crd::vocabulary::reason;
use crate::engine::desired::{Desired, build};
use crate::engine::ledger::KeyDigest;
use crate::engine::ownership::{
    PolicyDeclaration, Seniority, Yielded, hold_back, removals, yield_messages, yielded_to_seniors,
};
use crate::engine::plan::PlanOptions;
use crate::engine::plan::render::summary_line;
use crate::engine::state::StateStore;
use crate::engine::targeted::{Scope, sync_contacts};
use crate::engine::{SyncError, SyncOutcome, sync_policy, sync_policy_owning};

/// Contacts read and written at once by a targeted sync.
const TARGETED_CONCURRENCY: usize = 32;
/// Failures listed in status (the count is in `counts.failed`).
const MAX_FAILURES: usize = 20;

/// The validated records, and those left to senior policies.
pub struct Prepared {
    desired: Desired,
    yielded: Vec<Yielded>,
}

/// What a sync found, for the status.
#[derive(Debug)]
pub struct Detail {
    plan: PlanSummary,
    counts: SyncCounts,
    failures: Vec<RecordFailure>,
}

fn ledger(ctx: &Context, policy: &ContactSyncPolicy) -> SecretLedgerStore {
    SecretLedgerStore::new(
        ctx.client.clone(),
        LedgerOwner::of(Kind::ContactSyncPolicy, policy),
        ctx.fence_for(&ObjectKey::of(Kind::ContactSyncPolicy, policy)),
    )
}

#[async_trait]
impl Synced for ContactSyncPolicy {
    const KIND: Kind = Kind::ContactSyncPolicy;
    type Prepared = Prepared;
    type Detail = Detail;
    type Status = ContactSyncPolicyStatus;

    crate::synced_spec_accessors!();

    fn stand_down(&self, ctx: &Context, key: &ObjectKey, location: Option<&str>) {
        if let Some(location) = location {
            let nothing = Desired {
                match_by: self.spec.match_by,
                ..Desired::default()
            };
            let declaration = PolicyDeclaration::new(key.owner(), Seniority::of(self), &nothing);
            ctx.ownership.declare(location, key, declaration);
        }
    }

    async fn prepare(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        location: Option<&str>,
    ) -> Result<Prepared, Outcome> {
        let texts = sources::read(&ctx.client, &key.namespace, &self.spec).await;
        let me = Seniority::of(self);
        let declare = |desired: &Desired| {
            if let Some(location) = location {
                let declaration = PolicyDeclaration::new(key.owner(), me.clone(), desired);
                ctx.ownership.declare(location, key, declaration);
            }
        };
        let mut desired = match build(&self.spec, &texts) {
            Ok(desired) => desired,
            Err(e) => {
                self.stand_down(ctx, key, location);
                return Err(Outcome::InvalidSpec(e.to_string()));
            }
        };
        declare(&desired);
        let Some(location) = location else {
            return Ok(Prepared {
                desired,
                yielded: Vec::new(),
            });
        };
        let waiting = ctx.undeclared_policies(location, key, |other| Seniority::of(other) < me);
        if !waiting.is_empty() {
            let names: Vec<String> = waiting.iter().map(ObjectKey::owner).collect();
            return Err(Outcome::WaitingForOwners(format!(
                "waiting for older policies on the location to declare their contacts: {}",
                names.join(", ")
            )));
        }
        let yielded = yielded_to_seniors(&me, &desired, &ctx.declarations(location, key));
        hold_back(&mut desired, &yielded);
        Ok(Prepared { desired, yielded })
    }

    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        prepared: Prepared,
        connection: &Usable,
    ) -> Result<(SyncOutcome<Facts>, Detail), SyncError> {
        let store = ledger(ctx, self);
        let mut options = ctx.sync_options(self.spec.mode, key);
        let approval = approval::pending(
            &self.metadata,
            self.status.as_ref().and_then(|s| s.plan.as_ref()),
        );
        options.approved = approval.clone();
        options.observe.deep = ctx.deep_resync(key);
        let deep = options.observe.deep;
        let (outcome, owned) = sync_policy_owning(
            &connection.handle.client,
            &store,
            prepared.desired,
            PlanOptions::for_spec(&self.spec),
            options,
        )
        .await?;
        ctx.ownership.set_owned(key, owned);
        let plan = outcome.plan();
        ctx.ownership.set_removals(key, removals(plan));
        let counts = plan.counts();
        let mut summary = plan.summary();
        summary.blocked = approval::blocked(&outcome, summary.hash.as_deref());
        if let Some(notice) = approval::notice(
            approval.as_deref(),
            &summary,
            &outcome,
            approval::approver(&self.metadata),
        ) {
            if notice.reason == reason::PLAN_APPROVED {
                summary.approved = approval.clone();
            }
            ctx.event(&self.object_ref(&()), &notice).await;
        }
        tracing::info!(
            object = %key,
            deep,
            create = summary.create,
            update = summary.update,
            delete = summary.delete,
            adopt = summary.adopt,
            drifted = counts.drifted,
            "planned"
        );
        let mut failures = plan.failures.clone();
        failures.extend(
            outcome
                .report()
                .into_iter()
                .flat_map(|r| r.failures.clone()),
        );
        let failed = failures.len() as u32;
        failures.truncate(MAX_FAILURES);
        let facts = Facts {
            summary: summary_line(plan),
            standing: format!("{} contact(s) in sync", counts.desired),
            refused: plan.failures.len() as u32,
            drifted: Some(counts.drifted),
            conflicts: yield_messages(&prepared.yielded),
            conflict_reason: reason::RECORD_CONFLICT,
        };
        let detail = Detail {
            plan: summary,
            counts: SyncCounts { failed, ..counts },
            failures,
        };
        Ok((outcome.map(|_| facts), detail))
    }

    async fn release(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError> {
        let store = ledger(ctx, self);
        // Contacts another policy on the location declares stay (only forgotten with us).
        let others = ctx.declarations(&connection.location, key);
        let held: BTreeSet<KeyDigest> = store
            .load()
            .await?
            .contacts
            .values()
            .map(|owned| owned.key)
            .filter(|k| others.iter().any(|o| o.declares_ledger_key(k)))
            .collect();
        let nothing = Desired {
            match_by: self.spec.match_by,
            held,
            ..Desired::default()
        };
        // Deleting everything it created is still bounded by `safety`: a larger plan waits.
        let plan_options = PlanOptions {
            prune: true,
            ..PlanOptions::for_spec(&self.spec)
        };
        let outcome = sync_policy(
            &connection.handle.client,
            &store,
            nothing,
            plan_options,
            ctx.sync_options(Mode::Apply, key),
        )
        .await?;
        Ok(outcome.map(drop))
    }

    fn status(
        &self,
        verdict: &Verdict,
        detail: Option<&Detail>,
        now: Timestamp,
    ) -> ContactSyncPolicyStatus {
        status(
            self.status.clone().unwrap_or_default(),
            self.metadata.generation,
            verdict,
            detail,
            now,
        )
    }
}

/// A targeted sync of `scope`'s contacts for the policy `key`, under its lock; returns what
/// happened (a metric label). What a targeted sync cannot settle — a plan to report, a
/// failure — wakes the full reconcile, which reports it in status.
pub async fn sync_targeted(ctx: &Context, key: &ObjectKey, scope: Scope) -> &'static str {
    let Some(policy) = ctx
        .stores
        .policies
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
    else {
        return "skipped";
    };
    // Only while this process holds the policy's shard (it may have moved since the webhook).
    let Some(_work) = ctx.enter(key) else {
        return "skipped";
    };
    let _lock = ctx.lock(key).await;
    let ConnectionState::Usable(connection) =
        ctx.connection(&key.namespace, &policy.spec.connection_ref)
    else {
        return "skipped";
    };
    // A grant that cannot write: the full reconcile reports it, once.
    if !super::pipeline::missing_scopes(policy.spec.mode, &connection).is_empty() {
        return "skipped";
    }
    let texts = sources::read(&ctx.client, &key.namespace, &policy.spec).await;
    let Ok(mut desired) = build(&policy.spec, &texts) else {
        return "skipped";
    };
    let yielded = yielded_to_seniors(
        &Seniority::of(policy.as_ref()),
        &desired,
        &ctx.declarations(&connection.location, key),
    );
    hold_back(&mut desired, &yielded);
    let store = ledger(ctx, &policy);
    let mut options = ctx.sync_options(policy.spec.mode, key);
    // A handful of contacts, each a few calls: read and write them all at once (the
    // connection's budget still paces them).
    options.observe.concurrency = TARGETED_CONCURRENCY;
    options.apply.concurrency = TARGETED_CONCURRENCY.max(ctx.config.apply_concurrency);
    let synced = sync_contacts(
        &connection.handle.client,
        &store,
        desired,
        &scope,
        PlanOptions::for_spec(&policy.spec),
        options,
    )
    .await;
    match synced {
        Ok((outcome, owned)) => {
            ctx.ownership.add_owned(key, &owned);
            let writes = outcome.report().map_or(0, |r| r.writes);
            if writes > 0 {
                ctx.metrics.wrote(Kind::ContactSyncPolicy, writes);
                tracing::info!(object = %key, contacts = scope.ids.len(), writes, "targeted sync applied");
            }
            match outcome {
                SyncOutcome::InSync { .. } => "in_sync",
                SyncOutcome::Applied { report, .. } if report.failures.is_empty() => "applied",
                _ => {
                    wake(ctx, key.clone());
                    "planned"
                }
            }
        }
        Err(error) => {
            if let Outcome::CredentialsRefused { .. } = classify(&error, &connection.label()) {
                connection.handle.set_readiness(Readiness {
                    ready: false,
                    reason: reason::CREDENTIALS_REJECTED,
                    message: "GHL refused the credentials".into(),
                });
            }
            tracing::info!(object = %key, category = error_category(&error), "targeted sync failed; the full reconcile reports it");
            wake(ctx, key.clone());
            "error"
        }
    }
}

fn error_category(error: &SyncError) -> &'static str {
    match error {
        SyncError::Ghl(e) => e.category(),
        SyncError::State(_) => "state",
        SyncError::Apply(_) => "apply",
    }
}

/// The status after `verdict`: the plan facts of this sync, or the previous ones when no
/// sync ran.
fn status(
    previous: ContactSyncPolicyStatus,
    generation: Option<i64>,
    verdict: &Verdict,
    detail: Option<&Detail>,
    now: Timestamp,
) -> ContactSyncPolicyStatus {
    let conditions = conditions::merge(&previous.conditions, &verdict.conditions, generation, now);
    let Some(detail) = detail else {
        return ContactSyncPolicyStatus {
            observed_generation: generation,
            conditions,
            ..previous
        };
    };
    // The last approval used stays recorded until another is used.
    let approved = detail
        .plan
        .approved
        .clone()
        .or_else(|| previous.plan.as_ref().and_then(|p| p.approved.clone()));
    ContactSyncPolicyStatus {
        observed_generation: generation,
        conditions,
        plan: Some(PlanSummary {
            approved,
            ..detail.plan.clone()
        }),
        counts: Some(detail.counts.clone()),
        last_sync_time: Some(Time(now)),
        last_successful_sync_time: if verdict.phase == Phase::Ready {
            Some(Time(now))
        } else {
            previous.last_successful_sync_time
        },
        failures: detail.failures.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::verdict::{Requeue, verdict};
    use crate::crd::vocabulary::condition;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn detail() -> Detail {
        Detail {
            plan: PlanSummary {
                create: 1,
                ..PlanSummary::default()
            },
            counts: SyncCounts {
                desired: 3,
                in_sync: 3,
                drifted: 0,
                failed: 0,
            },
            failures: Vec::new(),
        }
    }

    #[test]
    fn a_sync_records_its_facts_and_a_wait_keeps_the_previous_ones() {
        let synced = Outcome::Synced(SyncOutcome::InSync {
            plan: Facts {
                standing: "3 contact(s) in sync".into(),
                drifted: Some(0),
                ..Facts::default()
            },
        });
        let v = verdict(&synced, Mode::Apply, &[]);
        assert_eq!(v.requeue, Requeue::Resync);
        let first = status(
            ContactSyncPolicyStatus::default(),
            Some(4),
            &v,
            Some(&detail()),
            at("2030-01-01T00:00:00Z"),
        );
        assert_eq!(first.observed_generation, Some(4));
        assert_eq!(first.counts.as_ref().unwrap().desired, 3);
        assert!(first.last_successful_sync_time.is_some());
        assert!(conditions::is_true(&first.conditions, condition::SYNCED));

        let waiting = verdict(
            &Outcome::WaitingForOwners("ContactSyncPolicy crm/old".into()),
            Mode::Apply,
            &first.conditions,
        );
        let second = status(
            first.clone(),
            Some(5),
            &waiting,
            None,
            at("2030-01-01T01:00:00Z"),
        );
        assert_eq!(second.observed_generation, Some(5));
        assert_eq!(second.counts, first.counts, "the last plan's facts stay");
        assert_eq!(second.last_sync_time, first.last_sync_time);
        assert!(!conditions::is_true(&second.conditions, condition::SYNCED));
        assert!(
            second
                .conditions
                .iter()
                .any(|c| c.type_ == condition::DRIFTED),
            "Drifted from the last sync stays"
        );
    }
}
