//! The TagRule controller: search the selector, plan tags against the rule's ledger and the
//! other owners' claims on the same connection (conflicts are reported, not fought over),
//! apply, report. Deletion with `deletionPolicy: Delete` removes the tags the rule added.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::conditions::{self, Desired, Phase, kstatus};
use super::connection::patch_status;
use super::context::{Context, Owner};
use super::error::{Error, Result};
use super::ledger_store::{LedgerOwner, SecretLedgerStore};
use super::policy::{ConnectionState, connection, jittered, set_finalizer};
use crate::crd::ContactSyncPolicy;
use crate::crd::common::{DeletionPolicy, Mode};
use crate::crd::tag_rule::{TagRule, TagRuleStatus};
use crate::crd::vocabulary::{condition, finalizer, reason};
use crate::engine::state::StateStore;
use crate::engine::tag_rule::{apply_rule, claim_of, observe_release, observe_rule, plan_rule};
use crate::ghl::ErrorClass;

pub const KIND: &str = "TagRule";

fn ledger_owner(obj: &TagRule) -> LedgerOwner {
    LedgerOwner::of(KIND, obj)
}

/// The contacts a ContactSyncPolicy manages (for `selector.policyRef`).
async fn policy_contacts(ctx: &Context, namespace: &str, name: &str) -> Result<BTreeSet<String>> {
    let policies: Api<ContactSyncPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(policy) = policies.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok(BTreeSet::new());
    };
    let owner = LedgerOwner::of(super::policy::KIND, &policy);
    let ledger = SecretLedgerStore::new(ctx.client.clone(), owner)
        .load()
        .await?;
    Ok(ledger.contacts.into_keys().collect())
}

async fn write_conditions(ctx: &Context, obj: &TagRule, wanted: Vec<Desired>) -> Result<()> {
    let previous = obj.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let status = TagRuleStatus {
        observed_generation: obj.metadata.generation,
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, now),
        ..previous
    };
    patch_status(ctx, obj, &status).await
}

pub async fn reconcile(obj: Arc<TagRule>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let object_key = format!("{KIND}/{namespace}/{name}");
    let owner = Owner {
        kind: KIND,
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let reference = obj.object_ref(&());
    let (connection_key, state) = connection(&ctx, &namespace, &obj.spec.connection_ref);
    let connection_label = format!("{}/{}", connection_key.0, connection_key.1);
    let store = SecretLedgerStore::new(ctx.client.clone(), ledger_owner(&obj));

    if obj.meta().deletion_timestamp.is_some() {
        if !obj.finalizers().iter().any(|f| f == finalizer::CLEANUP) {
            return Ok(Action::await_change());
        }
        ctx.forget_claim(&owner, &connection_label);
        let ConnectionState::Ready(handle) = state else {
            let connections: Api<crate::crd::GhlConnection> =
                Api::namespaced(ctx.client.clone(), &connection_key.0);
            if connections
                .get_opt(&connection_key.1)
                .await
                .map_err(Error::Kube)?
                .is_some()
            {
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
            ctx.event(
                &reference,
                EventType::Warning,
                reason::CONNECTION_NOT_FOUND,
                "Delete",
                "tags left in place: the connection is gone".into(),
            )
            .await;
            set_finalizer(ctx.as_ref(), obj.as_ref(), false).await?;
            return Ok(Action::await_change());
        };
        let mut ledger = store.load().await?;
        let seen = observe_release(&handle.client, &ledger, ctx.config.apply_concurrency).await?;
        let plan = plan_rule(&obj.spec, &seen, &ledger, &[]);
        let (writes, failures) = apply_rule(&handle.client, &store, &mut ledger, &plan).await?;
        if let Some((_, e)) = failures.into_iter().next() {
            return Err(Error::Ghl(e));
        }
        ctx.event(
            &reference,
            EventType::Normal,
            "Deleted",
            "Delete",
            format!("removed the tags the rule added ({writes} writes)"),
        )
        .await;
        set_finalizer(ctx.as_ref(), obj.as_ref(), false).await?;
        return Ok(Action::await_change());
    }
    set_finalizer(
        ctx.as_ref(),
        obj.as_ref(),
        obj.spec.deletion_policy == DeletionPolicy::Delete,
    )
    .await?;
    let handle = match state {
        ConnectionState::Ready(handle) => handle,
        ConnectionState::NotReady(phase, why, message) => {
            write_conditions(&ctx, &obj, kstatus(phase, why, &message)).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let scope = match &obj.spec.selector.policy_ref {
        Some(p) => Some(policy_contacts(&ctx, &namespace, &p.name).await?),
        None => None,
    };
    let mut ledger = store.load().await?;
    let seen = match observe_rule(
        &handle.client,
        &obj.spec,
        &ledger,
        scope.as_ref(),
        ctx.config.apply_concurrency,
    )
    .await
    {
        Ok(seen) => seen,
        Err(e) if e.class() == ErrorClass::Auth => {
            let message = format!(
                "GhlConnection {connection_label} is not ready: GHL refused the credentials"
            );
            write_conditions(
                &ctx,
                &obj,
                kstatus(Phase::Stalled, reason::CONNECTION_NOT_READY, &message),
            )
            .await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        Err(e) => return Err(Error::Ghl(e)),
    };
    ctx.set_claim(
        &owner,
        &connection_label,
        claim_of(&owner.to_string(), &obj.spec, &seen),
    );
    let others = ctx.claims_except(&owner, &connection_label);
    let plan = plan_rule(&obj.spec, &seen, &ledger, &others);
    let mut writes = 0;
    let mut failures = 0;
    if obj.spec.mode == Mode::Apply && !plan.is_empty() {
        let (w, f) = apply_rule(&handle.client, &store, &mut ledger, &plan).await?;
        writes = w;
        failures = f.len();
        store.compact(&ledger).await?;
    }
    let (phase, why, message) = if failures > 0 {
        (
            Phase::Progressing,
            reason::PARTIAL_FAILURE,
            format!("{failures} contact(s) could not be changed; retrying"),
        )
    } else if obj.spec.mode == Mode::Plan {
        (
            Phase::Ready,
            reason::PLAN_ONLY,
            format!("mode Plan: {} contact(s) would change", plan.pending),
        )
    } else {
        (
            Phase::Ready,
            reason::RECONCILED,
            format!("{} matched, {} compliant", plan.matched, plan.matched),
        )
    };
    let mut wanted = kstatus(phase, why, &message);
    let in_sync = obj.spec.mode == Mode::Apply && failures == 0 || plan.pending == 0;
    wanted.push(Desired::new(
        condition::SYNCED,
        in_sync,
        if in_sync { reason::IN_SYNC } else { why },
        &message,
    ));
    wanted.push(if plan.conflicts.is_empty() {
        Desired::new(
            condition::CONFLICT,
            false,
            reason::NO_CONFLICT,
            "no other owner wants the opposite",
        )
    } else {
        Desired::new(
            condition::CONFLICT,
            true,
            reason::TAG_CONFLICT,
            plan.conflicts.join("; "),
        )
    });
    let previous = obj.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let compliant_now = if obj.spec.mode == Mode::Apply {
        plan.matched
    } else {
        plan.compliant
    };
    let status = TagRuleStatus {
        observed_generation: obj.metadata.generation,
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, now),
        matched: plan.matched,
        compliant: compliant_now.saturating_sub(if obj.spec.mode == Mode::Apply {
            failures as u32
        } else {
            0
        }),
        pending: if obj.spec.mode == Mode::Apply {
            failures as u32
        } else {
            plan.pending
        },
        plan: Some(plan.summary()),
        last_sync_time: Some(Time(now)),
    };
    patch_status(&ctx, obj.as_ref(), &status).await?;
    if writes > 0 {
        ctx.metrics.wrote(KIND, writes);
        ctx.event(
            &reference,
            EventType::Normal,
            reason::PLAN_APPLIED,
            "Apply",
            format!(
                "tags changed on {} contact(s); {writes} GHL writes",
                plan.pending
            ),
        )
        .await;
    }
    if !plan.conflicts.is_empty() && !conditions::is_true(&previous.conditions, condition::CONFLICT)
    {
        ctx.event(
            &reference,
            EventType::Warning,
            reason::TAG_CONFLICT,
            "Plan",
            plan.conflicts.join("; "),
        )
        .await;
    }
    let resync = obj
        .spec
        .resync_interval
        .as_ref()
        .and_then(|d| d.parse().ok())
        .unwrap_or(ctx.config.default_resync);
    let requeue = if failures > 0 {
        ctx.backoff.failed(&object_key)
    } else {
        ctx.backoff.succeeded(&object_key);
        jittered(resync)
    };
    ctx.metrics.reconciled(KIND, "ok", started.elapsed());
    Ok(Action::requeue(requeue))
}
