//! The ContactSyncPolicy controller: observe → plan → apply through the engine, on every change
//! and every (jittered) `resyncInterval`; the ledger lives in Secrets the policy owns. A
//! finalizer is held only with `deletionPolicy: Delete`, to remove exactly what the ledger
//! owns before the policy goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use rand::RngExt;
use serde_json::json;

use super::conditions::{self, Desired, Phase, kstatus};
use super::connection::patch_status;
use super::connections::{ConnectionKey, Handle, Readiness};
use super::context::{Context, Owner};
use super::error::{Error, Result};
use super::ledger_store::{LedgerOwner, SecretLedgerStore};
use crate::crd::common::{ConnectionRef, DeletionPolicy, Mode};
use crate::crd::contact_sync_policy::{ContactSyncPolicy, ContactSyncPolicyStatus, RecordFailure};
use crate::crd::vocabulary::{condition, finalizer, reason};
use crate::engine::apply::ApplyError;
use crate::engine::desired::SourceText;
use crate::engine::plan::render::summary_line;
use crate::engine::tag_rule::claim_of_policy;
use crate::engine::{SyncError, SyncOptions, sync_policy};
use crate::ghl::ErrorClass;

pub const KIND: &str = "ContactSyncPolicy";
/// Failures listed in status (the count is in `counts.failed`).
const MAX_FAILURES: usize = 20;

/// Where a policy or rule stands with its connection.
pub enum ConnectionState {
    Ready(Arc<Handle>),
    /// Not usable: the phase, reason and message to report.
    NotReady(Phase, &'static str, String),
}

/// Resolves `reference` from an object in `namespace`.
pub fn connection(
    ctx: &Context,
    namespace: &str,
    reference: &ConnectionRef,
) -> (ConnectionKey, ConnectionState) {
    let target_ns = reference
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_owned());
    let key = (target_ns.clone(), reference.name.clone());
    if target_ns != namespace && !ctx.config.allow_cross_namespace_refs {
        let message = format!(
            "connectionRef names namespace {target_ns}; the operator does not allow cross-namespace references"
        );
        return (
            key,
            ConnectionState::NotReady(Phase::Stalled, reason::CROSS_NAMESPACE_REF_DENIED, message),
        );
    }
    let declared = ctx
        .stores
        .connections
        .get(&ObjectRef::new(&key.1).within(&key.0))
        .filter(|c| c.meta().deletion_timestamp.is_none());
    let Some(declared) = declared else {
        let message = format!("waiting for GhlConnection {}/{} to exist", key.0, key.1);
        return (
            key,
            ConnectionState::NotReady(Phase::Progressing, reason::CONNECTION_NOT_FOUND, message),
        );
    };
    match ctx.connections.get(&key) {
        // Declared, but no client yet: its credential is not usable; say why, from its status.
        None => {
            let ready = declared.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == crate::crd::vocabulary::condition::READY)
            });
            let message = match ready {
                Some(c) => format!(
                    "GhlConnection {}/{} is not ready ({}): {}",
                    key.0, key.1, c.reason, c.message
                ),
                None => format!("GhlConnection {}/{} is not checked yet", key.0, key.1),
            };
            (
                key,
                ConnectionState::NotReady(Phase::Stalled, reason::CONNECTION_NOT_READY, message),
            )
        }
        Some(handle) => {
            let Readiness {
                ready,
                reason: why,
                message,
            } = handle.readiness();
            if ready {
                (key, ConnectionState::Ready(handle))
            } else {
                let message = format!(
                    "GhlConnection {}/{} is not ready ({why}): {message}",
                    key.0, key.1
                );
                (
                    key,
                    ConnectionState::NotReady(
                        Phase::Stalled,
                        reason::CONNECTION_NOT_READY,
                        message,
                    ),
                )
            }
        }
    }
}

/// The resync interval with ±10% jitter.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.1))
}

fn ledger_owner(obj: &ContactSyncPolicy) -> LedgerOwner {
    LedgerOwner::of(KIND, obj)
}

/// Adds or removes our finalizer with optimistic concurrency.
pub async fn set_finalizer<K>(ctx: &Context, obj: &K, present: bool) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut finalizers: Vec<String> = obj.finalizers().to_vec();
    let has = finalizers.iter().any(|f| f == finalizer::CLEANUP);
    if has == present {
        return Ok(());
    }
    if present {
        finalizers.push(finalizer::CLEANUP.to_owned());
    } else {
        finalizers.retain(|f| f != finalizer::CLEANUP);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch =
        json!({"metadata": {"resourceVersion": obj.resource_version(), "finalizers": finalizers}});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map(drop)
    .map_err(Error::Kube)
}

async fn sources(ctx: &Context, obj: &ContactSyncPolicy) -> Vec<SourceText> {
    let namespace = obj.namespace().unwrap_or_default();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut out = Vec::new();
    for source in &obj.spec.contacts_from {
        let text = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => match config_maps.get_opt(&r.name).await {
                Ok(Some(cm)) => cm
                    .data
                    .and_then(|d| d.get(&r.key).cloned())
                    .ok_or_else(|| format!("ConfigMap {} has no key {:?}", r.name, r.key)),
                Ok(None) => Err(format!("ConfigMap {} does not exist", r.name)),
                Err(e) => Err(format!("cannot read ConfigMap {}: {e}", r.name)),
            },
            (None, Some(r)) => match secrets.get_opt(&r.name).await {
                Ok(Some(secret)) => secret
                    .data
                    .and_then(|d| {
                        d.get(&r.key)
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    })
                    .ok_or_else(|| format!("Secret {} has no key {:?}", r.name, r.key)),
                Ok(None) => Err(format!("Secret {} does not exist", r.name)),
                Err(e) => Err(format!("cannot read Secret {}: {e}", r.name)),
            },
            (None, None) => Err("set configMapRef or secretRef".to_owned()),
        };
        let key = source
            .config_map_ref
            .as_ref()
            .map(|r| r.key.clone())
            .or_else(|| source.secret_ref.as_ref().map(|r| r.key.clone()))
            .unwrap_or_default();
        out.push(SourceText { key, text });
    }
    out
}

pub async fn reconcile(obj: Arc<ContactSyncPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let object_key = format!("{KIND}/{namespace}/{}", obj.name_any());
    if obj.meta().deletion_timestamp.is_some() {
        return delete(&obj, &ctx, &object_key).await;
    }
    set_finalizer(
        &ctx,
        obj.as_ref(),
        obj.spec.deletion_policy == DeletionPolicy::Delete,
    )
    .await?;
    let reference = obj.object_ref(&());
    let previous = obj.status.clone().unwrap_or_default();
    let (connection_key, state) = connection(&ctx, &namespace, &obj.spec.connection_ref);
    let handle = match state {
        ConnectionState::Ready(handle) => handle,
        ConnectionState::NotReady(phase, why, message) => {
            let wanted = kstatus(phase, why, &message);
            write_status(&ctx, &obj, &previous, wanted, None).await?;
            ctx.metrics.reconciled(KIND, "requeue", started.elapsed());
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let store = SecretLedgerStore::new(ctx.client.clone(), ledger_owner(&obj));
    let texts = sources(&ctx, &obj).await;
    let now = jiff::Timestamp::now();
    let mut options = SyncOptions::new(obj.spec.mode, now);
    options.observe.deep = ctx.deep_resync(&object_key);
    let options_deep = options.observe.deep;
    options.apply.concurrency = ctx.config.apply_concurrency;
    let resync = obj
        .spec
        .resync_interval
        .as_ref()
        .and_then(|d| d.parse().ok())
        .unwrap_or(ctx.config.default_resync);

    let outcome = sync_policy(&handle.client, &store, &obj.spec, &texts, options).await;
    let connection_label = format!("{}/{}", connection_key.0, connection_key.1);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(SyncError::Spec(e)) => {
            let wanted = kstatus(Phase::Stalled, reason::INVALID_SPEC, &e.to_string());
            write_status(&ctx, &obj, &previous, wanted, None).await?;
            if !conditions::is_true(&previous.conditions, condition::STALLED) {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    reason::INVALID_SPEC,
                    "Plan",
                    e.to_string(),
                )
                .await;
            }
            ctx.metrics.reconciled(KIND, "stalled", started.elapsed());
            return Ok(Action::await_change());
        }
        Err(SyncError::Ghl(e)) | Err(SyncError::Apply(ApplyError::Auth(e)))
            if e.class() == ErrorClass::Auth =>
        {
            handle.set_readiness(Readiness {
                ready: false,
                reason: reason::CREDENTIALS_REJECTED,
                message: e.to_string(),
            });
            let message = format!(
                "GhlConnection {connection_label} is not ready: GHL refused the credentials"
            );
            write_status(
                &ctx,
                &obj,
                &previous,
                kstatus(Phase::Stalled, reason::CONNECTION_NOT_READY, &message),
                None,
            )
            .await?;
            ctx.metrics.reconciled(KIND, "requeue", started.elapsed());
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        Err(SyncError::Ghl(e)) if e.class() == ErrorClass::RateLimited => {
            let wait = e.retry_after().unwrap_or(Duration::from_secs(30));
            write_status(
                &ctx,
                &obj,
                &previous,
                kstatus(Phase::Progressing, reason::RATE_LIMITED, &e.to_string()),
                None,
            )
            .await?;
            ctx.metrics.reconciled(KIND, "requeue", started.elapsed());
            return Ok(Action::requeue(wait));
        }
        Err(SyncError::Ghl(e)) => {
            let _ = write_status(
                &ctx,
                &obj,
                &previous,
                kstatus(Phase::Progressing, reason::GHL_UNAVAILABLE, &e.to_string()),
                None,
            )
            .await;
            return Err(Error::Ghl(e));
        }
        Err(SyncError::State(e)) => return Err(Error::State(e)),
        Err(SyncError::Apply(e)) => return Err(Error::Other(e.to_string())),
    };

    let owner = Owner {
        kind: KIND,
        namespace: namespace.clone(),
        name: obj.name_any(),
    };
    ctx.set_claim(
        &owner,
        &connection_label,
        claim_of_policy(&owner.to_string(), &outcome.plan),
    );
    let plan = &outcome.plan;
    let mut failures: Vec<RecordFailure> = plan.failures.clone();
    let writes = outcome.applied.as_ref().map_or(0, |a| a.writes);
    let apply_failures = outcome.applied.as_ref().map_or(0, |a| a.failures.len());
    if let Some(applied) = &outcome.applied {
        failures.extend(applied.failures.iter().cloned());
    }
    let counts = plan.counts();
    let summary = summary_line(plan);
    let (phase, why, message) = if let Some(blocked) = &plan.blocked {
        (
            Phase::Stalled,
            reason::SAFETY_LIMIT_EXCEEDED,
            format!("not applied: {blocked}"),
        )
    } else if obj.spec.mode == Mode::Plan {
        (
            Phase::Ready,
            reason::PLAN_ONLY,
            format!("mode Plan: {summary}"),
        )
    } else if apply_failures > 0 {
        (
            Phase::Progressing,
            reason::PARTIAL_FAILURE,
            format!("{apply_failures} record(s) could not be applied; retrying"),
        )
    } else if !plan.failures.is_empty() {
        (
            Phase::Stalled,
            reason::INVALID_SPEC,
            format!(
                "{} record(s) refused (see status.failures); the others are in sync",
                plan.failures.len()
            ),
        )
    } else {
        (
            Phase::Ready,
            reason::RECONCILED,
            format!("{} contact(s) in sync", counts.desired),
        )
    };
    let synced = match (obj.spec.mode, &outcome.applied) {
        (Mode::Plan, _) => plan.is_empty(),
        (Mode::Apply, Some(_)) => plan.blocked.is_none() && apply_failures == 0,
        (Mode::Apply, None) => plan.is_empty() || plan.blocked.is_none(),
    };
    let mut wanted = kstatus(phase, why, &message);
    wanted.push(if synced {
        Desired::new(
            condition::SYNCED,
            true,
            reason::IN_SYNC,
            "GHL matches the declared state",
        )
    } else {
        Desired::new(condition::SYNCED, false, why, &message)
    });
    wanted.push(if counts.drifted > 0 {
        let repaired = if obj.spec.mode == Mode::Apply && outcome.applied.is_some() {
            "; repaired"
        } else {
            ""
        };
        Desired::new(
            condition::DRIFTED,
            true,
            reason::DRIFT_DETECTED,
            format!("{} contact(s) had changed in GHL{repaired}", counts.drifted),
        )
    } else {
        Desired::new(
            condition::DRIFTED,
            false,
            reason::NO_DRIFT,
            "no changes made outside the operator",
        )
    });
    failures.truncate(MAX_FAILURES);
    let mut status = ContactSyncPolicyStatus {
        plan: Some(plan.summary()),
        counts: Some(crate::crd::contact_sync_policy::SyncCounts {
            failed: (plan.failures.len() + apply_failures) as u32,
            ..counts
        }),
        last_sync_time: Some(Time(now)),
        last_successful_sync_time: if phase == Phase::Ready {
            Some(Time(now))
        } else {
            previous.last_successful_sync_time.clone()
        },
        failures,
        ..ContactSyncPolicyStatus::default()
    };
    status.conditions = wanted_conditions(&previous, &wanted, obj.metadata.generation, now);
    status.observed_generation = obj.metadata.generation;
    patch_status(&ctx, obj.as_ref(), &status).await?;

    let was_ready = conditions::is_true(&previous.conditions, condition::READY);
    tracing::info!(
        object = %object_key,
        mode = ?obj.spec.mode,
        deep = options_deep,
        create = plan.summary().create,
        update = plan.summary().update,
        delete = plan.summary().delete,
        drifted = counts.drifted,
        writes,
        failed = apply_failures + plan.failures.len(),
        "reconciled: {}",
        why
    );
    if writes > 0 {
        ctx.metrics.wrote(KIND, writes);
        ctx.event(
            &reference,
            EventType::Normal,
            reason::PLAN_APPLIED,
            "Apply",
            format!("{summary} {writes} GHL writes."),
        )
        .await;
    }
    if phase == Phase::Stalled && !conditions::is_true(&previous.conditions, condition::STALLED) {
        ctx.event(&reference, EventType::Warning, why, "Plan", message.clone())
            .await;
    }
    if phase == Phase::Ready && !was_ready && !previous.conditions.is_empty() {
        ctx.event(
            &reference,
            EventType::Normal,
            reason::RECOVERED,
            "Reconcile",
            message.clone(),
        )
        .await;
    }
    let requeue = if phase == Phase::Progressing {
        ctx.backoff.failed(&object_key)
    } else {
        ctx.backoff.succeeded(&object_key);
        jittered(resync)
    };
    ctx.metrics.reconciled(KIND, "ok", started.elapsed());
    Ok(Action::requeue(requeue))
}

fn wanted_conditions(
    previous: &ContactSyncPolicyStatus,
    wanted: &[Desired],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions::merge(&previous.conditions, wanted, generation, now)
}

/// Status for outcomes without a plan (connection waits, invalid spec, GHL trouble): the
/// previous plan facts stay.
async fn write_status(
    ctx: &Context,
    obj: &ContactSyncPolicy,
    previous: &ContactSyncPolicyStatus,
    wanted: Vec<Desired>,
    plan: Option<crate::crd::common::PlanSummary>,
) -> Result<()> {
    let now = jiff::Timestamp::now();
    let mut wanted = wanted;
    let message = wanted
        .first()
        .map(|d| d.message.clone())
        .unwrap_or_default();
    let why = wanted.first().map_or(reason::PROGRESSING, |d| d.reason);
    wanted.push(Desired::new(condition::SYNCED, false, why, message));
    let status = ContactSyncPolicyStatus {
        observed_generation: obj.metadata.generation,
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, now),
        plan: plan.or_else(|| previous.plan.clone()),
        counts: previous.counts.clone(),
        last_sync_time: previous.last_sync_time.clone(),
        last_successful_sync_time: previous.last_successful_sync_time.clone(),
        failures: previous.failures.clone(),
    };
    patch_status(ctx, obj, &status).await
}

/// `deletionPolicy: Delete`: remove exactly what the ledger owns, then let the policy go.
/// Never hangs on a connection that no longer exists.
async fn delete(
    obj: &Arc<ContactSyncPolicy>,
    ctx: &Arc<Context>,
    object_key: &str,
) -> Result<Action> {
    let holds = obj.finalizers().iter().any(|f| f == finalizer::CLEANUP);
    if !holds {
        return Ok(Action::await_change());
    }
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.object_ref(&());
    let (key, state) = connection(ctx, &namespace, &obj.spec.connection_ref);
    let handle = match state {
        ConnectionState::Ready(handle) => handle,
        ConnectionState::NotReady(_, why, message) => {
            let connections: Api<crate::crd::GhlConnection> =
                Api::namespaced(ctx.client.clone(), &key.0);
            let exists = connections
                .get_opt(&key.1)
                .await
                .map_err(Error::Kube)?
                .is_some();
            if exists && why != reason::CROSS_NAMESPACE_REF_DENIED {
                // It may come back: wait rather than orphan GHL data silently.
                tracing::info!(
                    object = object_key,
                    "deletion waits for the connection: {message}"
                );
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
            ctx.event(
                &reference,
                EventType::Warning,
                why,
                "Delete",
                format!("GHL data left in place: {message}"),
            )
            .await;
            set_finalizer(ctx.as_ref(), obj.as_ref(), false).await?;
            return Ok(Action::await_change());
        }
    };
    let store = SecretLedgerStore::new(ctx.client.clone(), ledger_owner(obj));
    let mut spec = obj.spec.clone();
    spec.contacts.clear();
    spec.contacts_from.clear();
    spec.prune = true;
    spec.mode = Mode::Apply;
    spec.safety = Some(crate::crd::contact_sync_policy::Safety {
        max_deletes: Some(u32::MAX),
        max_changes: None,
    });
    let mut options = SyncOptions::new(Mode::Apply, jiff::Timestamp::now());
    options.apply.concurrency = ctx.config.apply_concurrency;
    match sync_policy(&handle.client, &store, &spec, &[], options).await {
        Ok(outcome) => {
            let failures = outcome.applied.as_ref().map_or(0, |a| a.failures.len());
            if failures > 0 {
                return Err(Error::Other(format!(
                    "{failures} object(s) could not be removed from GHL"
                )));
            }
            let writes = outcome.applied.map_or(0, |a| a.writes);
            ctx.event(
                &reference,
                EventType::Normal,
                "Deleted",
                "Delete",
                format!("removed what the policy owned from GHL ({writes} writes)"),
            )
            .await;
            let owner = Owner {
                kind: KIND,
                namespace: namespace.clone(),
                name: obj.name_any(),
            };
            ctx.forget_claim(&owner, &format!("{}/{}", key.0, key.1));
            set_finalizer(ctx.as_ref(), obj.as_ref(), false).await?;
            Ok(Action::await_change())
        }
        Err(SyncError::Ghl(e)) => Err(Error::Ghl(e)),
        Err(e) => Err(Error::Other(e.to_string())),
    }
}
