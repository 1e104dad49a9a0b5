//! The GhlConnection controller: resolves the credential (PIT or OAuth, see
//! [`super::credential`]), keeps the shared GHL client current, checks the credential against
//! GHL, and reports `Ready` / `Authenticated` / `RotationDue`, the credential's facts and the
//! remaining request budget. Policies wait while their connection is not ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, Desired, Phase, kstatus};
use super::connections::{ConnectionKey, Readiness};
use super::context::Context;
use super::credential::{self, Resolved};
use super::error::{Error, Result};
use crate::crd::connection::{BudgetStatus, CredentialStatus, GhlConnection, GhlConnectionStatus};
use crate::crd::vocabulary::{FIELD_MANAGER, condition, reason};
use crate::ghl::budget::BudgetConfig;
use crate::ghl::models::ListContactsQuery;
use crate::ghl::{ErrorClass, GhlApi};

pub const KIND: &str = "GhlConnection";

/// What the check concluded.
struct Outcome {
    phase: Phase,
    reason: &'static str,
    message: String,
    authenticated: Option<bool>,
    resolved: Option<Resolved>,
    requeue: Duration,
}

/// The budget the spec asks for.
pub fn budget_of(obj: &GhlConnection) -> std::result::Result<BudgetConfig, String> {
    let mut budget = BudgetConfig::default();
    if let Some(limit) = &obj.spec.rate_limit {
        if let Some(share) = limit.share_percent {
            budget.share_percent = share;
        }
        if let Some(n) = limit.requests_per_window {
            budget.requests_per_window = n;
        }
        if let Some(window) = &limit.window {
            budget.window = window
                .parse()
                .map_err(|e| format!("rateLimit.window: {e}"))?;
        }
        if let Some(daily) = limit.daily_limit {
            budget.daily_limit = daily;
        }
    }
    Ok(budget)
}

pub async fn reconcile(obj: Arc<GhlConnection>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let key: ConnectionKey = (namespace.clone(), obj.name_any());
    if obj.meta().deletion_timestamp.is_some() {
        ctx.connections.remove(&key);
        ctx.oauth.forget(&key.0, &key.1);
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    let outcome = check(&obj, &ctx, &key, now).await;
    let handle = ctx.connections.get(&key);
    if let Some(handle) = &handle {
        handle.set_readiness(Readiness {
            ready: outcome.phase == Phase::Ready,
            reason: outcome.reason,
            message: outcome.message.clone(),
        });
    }
    let mut requeue = outcome.requeue;
    if outcome.phase == Phase::Ready
        && let Some(resolved) = &outcome.resolved
        && let Some(wait) = credential::after_ready(&ctx, &obj, resolved, now).await
    {
        requeue = requeue.min(wait.max(Duration::from_secs(1)));
    }

    let previous = obj.status.clone().unwrap_or_default();
    let was_authenticated = conditions::is_true(&previous.conditions, condition::AUTHENTICATED);
    let mut wanted = kstatus(outcome.phase, outcome.reason, &outcome.message);
    match outcome.authenticated {
        Some(true) => wanted.push(Desired::new(
            condition::AUTHENTICATED,
            true,
            reason::CREDENTIALS_ACCEPTED,
            "GHL accepted the credentials",
        )),
        Some(false) => wanted.push(Desired::new(
            condition::AUTHENTICATED,
            false,
            outcome.reason,
            &outcome.message,
        )),
        None => {}
    }
    if let Some((due, message)) = outcome
        .resolved
        .as_ref()
        .and_then(|r| r.rotation_due.clone())
    {
        let why = if due {
            reason::MAX_AGE_EXCEEDED
        } else {
            reason::WITHIN_MAX_AGE
        };
        wanted.push(Desired::new(condition::ROTATION_DUE, due, why, message));
    }
    let credentials = match &outcome.resolved {
        Some(r) => Some(CredentialStatus {
            type_: r.type_,
            revision: r.revision,
            expires_at: r.expires_at.map(Time),
            renewal_time: r.renewal_time.map(Time),
            last_rotated_at: r.last_rotated_at.map(Time),
            failed_refresh_attempts: ctx.oauth.failed_attempts(&key.0, &key.1) as i32,
        }),
        None => previous.credentials.clone().map(|mut c| {
            c.failed_refresh_attempts = ctx.oauth.failed_attempts(&key.0, &key.1) as i32;
            c
        }),
    };
    let status = GhlConnectionStatus {
        observed_generation: obj.metadata.generation,
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, now),
        credentials,
        scopes: outcome
            .resolved
            .as_ref()
            .map_or_else(|| previous.scopes.clone(), |r| r.scopes.clone()),
        budget: handle.as_ref().map(|h| {
            let view = h.budget.view();
            BudgetStatus {
                window_remaining: view.last_reported.and_then(|r| r.remaining),
                window_limit: Some(view.window_limit),
                daily_remaining: view.last_reported.and_then(|r| r.daily_remaining),
                daily_limit: Some(view.daily_limit),
            }
        }),
    };
    patch_status(&ctx, obj.as_ref(), &status).await?;
    // Without a client there is no readiness to broadcast: announce a changed verdict so
    // waiting policies report it (they read the reason from this status).
    let verdict = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == condition::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    if handle.is_none() && verdict(&previous.conditions) != verdict(&status.conditions) {
        ctx.connections.announce(&key);
    }
    let reference = obj.object_ref(&());
    match outcome.authenticated {
        Some(false) if was_authenticated || previous.conditions.is_empty() => {
            ctx.event(
                &reference,
                EventType::Warning,
                outcome.reason,
                "CheckCredentials",
                outcome.message.clone(),
            )
            .await;
        }
        Some(true) if !was_authenticated && !previous.conditions.is_empty() => {
            ctx.event(
                &reference,
                EventType::Normal,
                reason::RECOVERED,
                "CheckCredentials",
                "GHL accepts the credentials again".into(),
            )
            .await;
        }
        _ => {}
    }
    let object_key = format!("{KIND}/{}/{}", key.0, key.1);
    let requeue = match outcome.phase {
        Phase::Ready => {
            ctx.backoff.succeeded(&object_key);
            requeue
        }
        Phase::Stalled => requeue,
        Phase::Progressing => requeue.min(ctx.backoff.failed(&object_key)),
    };
    ctx.metrics.reconciled(KIND, "ok", started.elapsed());
    Ok(Action::requeue(requeue))
}

async fn check(
    obj: &GhlConnection,
    ctx: &Context,
    key: &ConnectionKey,
    now: jiff::Timestamp,
) -> Outcome {
    let cap = ctx.config.connection_check_interval;
    let stalled = |reason: &'static str, message: String| Outcome {
        phase: Phase::Stalled,
        reason,
        message,
        authenticated: None,
        resolved: None,
        requeue: cap,
    };
    let budget = match budget_of(obj) {
        Ok(b) => b,
        Err(message) => return stalled(reason::INVALID_SPEC, message),
    };
    let resolved = match credential::resolve(ctx, obj, now).await {
        Ok(resolved) => resolved,
        Err(problem) => {
            if problem.refused || problem.stalled {
                // Stop using the credential: policies pause instead of failing in a loop.
                if let Some(handle) = ctx.connections.get(key) {
                    handle.token.mark_unusable(problem.message.clone());
                }
            }
            return Outcome {
                phase: if problem.stalled {
                    Phase::Stalled
                } else {
                    Phase::Progressing
                },
                reason: problem.reason,
                message: problem.message,
                authenticated: problem.refused.then_some(false),
                resolved: None,
                requeue: problem.retry_in.min(cap),
            };
        }
    };
    let handle = match ctx
        .connections
        .upsert(key, &obj.spec, budget, resolved.token.clone())
    {
        Ok(h) => h,
        Err(e) => return stalled(reason::INVALID_SPEC, e.to_string()),
    };
    let probe = ListContactsQuery {
        limit: Some(1),
        ..ListContactsQuery::default()
    };
    let requeue = resolved.requeue;
    match handle.client.list_contacts(&probe).await {
        Ok(_) => Outcome {
            phase: Phase::Ready,
            reason: reason::CREDENTIALS_ACCEPTED,
            message: format!("location {} reachable", obj.spec.location_id),
            authenticated: Some(true),
            resolved: Some(resolved),
            requeue,
        },
        Err(e) if e.class() == ErrorClass::Auth => Outcome {
            phase: Phase::Stalled,
            reason: reason::CREDENTIALS_REJECTED,
            message: format!("GHL refused the credentials: {e}"),
            authenticated: Some(false),
            resolved: Some(resolved),
            requeue: ctx.config.connection_check_interval,
        },
        Err(e) => Outcome {
            phase: Phase::Progressing,
            reason: if e.class() == ErrorClass::RateLimited {
                reason::RATE_LIMITED
            } else {
                reason::GHL_UNAVAILABLE
            },
            message: format!("cannot check the credentials yet: {e}"),
            authenticated: None,
            resolved: Some(resolved),
            requeue: e
                .retry_after()
                .unwrap_or(Duration::from_secs(10))
                .min(requeue),
        },
    }
}

/// Writes status with server-side apply (the operator's field manager; never touches spec).
pub async fn patch_status<K>(ctx: &Context, obj: &K, status: &impl serde::Serialize) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map(drop)
    .map_err(Error::Kube)
}
