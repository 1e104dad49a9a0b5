//! The GhlConnection controller: resolves the credentials, keeps the shared GHL client current,
//! checks the credentials against GHL, and reports `Ready` / `Authenticated`, the credential's
//! facts and the remaining request budget. Policies wait while their connection is not ready.
//! (OAuth bootstrap and rotation live in `credentials`.)

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use secrecy::SecretString;
use serde_json::json;

use super::conditions::{self, Desired, Phase, kstatus};
use super::connections::{ConnectionKey, Readiness};
use super::context::Context;
use super::error::{Error, Result};
use crate::crd::connection::{
    BudgetStatus, CredentialStatus, CredentialType, GhlConnection, GhlConnectionStatus,
};
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
    credential: Option<CredentialType>,
}

/// The access token the connection's Secret holds, or why there is none.
async fn token(
    ctx: &Context,
    obj: &GhlConnection,
) -> std::result::Result<(CredentialType, SecretString), (&'static str, String)> {
    let namespace = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let auth = &obj.spec.auth;
    let (kind, secret_name, key) = if let Some(pit) = &auth.private_integration_token {
        (
            CredentialType::PrivateIntegrationToken,
            pit.secret_ref.name.clone(),
            pit.secret_ref.key.clone(),
        )
    } else if let Some(oauth) = &auth.oauth {
        (
            CredentialType::OAuth,
            oauth.token_secret_ref.name.clone(),
            "access_token".to_owned(),
        )
    } else {
        return Err((
            reason::INVALID_SPEC,
            "set auth.privateIntegrationToken or auth.oauth".into(),
        ));
    };
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|e| {
            (
                reason::SECRET_NOT_FOUND,
                format!("cannot read Secret {secret_name}: {e}"),
            )
        })?
        .ok_or_else(|| {
            (
                reason::SECRET_NOT_FOUND,
                format!("Secret {secret_name} does not exist"),
            )
        })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            (
                reason::SECRET_NOT_FOUND,
                format!("Secret {secret_name} has no key {key:?}"),
            )
        })?;
    Ok((kind, SecretString::from(value)))
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
        return Ok(Action::await_change());
    }
    let outcome = check(&obj, &ctx, &key).await;
    let handle = ctx.connections.get(&key);
    if let Some(handle) = &handle {
        handle.set_readiness(Readiness {
            ready: outcome.phase == Phase::Ready,
            reason: outcome.reason,
            message: outcome.message.clone(),
        });
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
    let now = jiff::Timestamp::now();
    let status = GhlConnectionStatus {
        observed_generation: obj.metadata.generation,
        conditions: conditions::merge(&previous.conditions, &wanted, obj.metadata.generation, now),
        credentials: outcome.credential.map(|type_| CredentialStatus {
            type_,
            revision: handle.as_ref().map_or(0, |h| h.token.revision() as i64),
            expires_at: None,
            renewal_time: None,
            last_rotated_at: previous
                .credentials
                .as_ref()
                .and_then(|c| c.last_rotated_at.clone()),
            failed_refresh_attempts: 0,
        }),
        scopes: previous.scopes.clone(),
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
    let reference = obj.object_ref(&());
    match outcome.authenticated {
        Some(false) if was_authenticated => {
            ctx.event(
                &reference,
                EventType::Warning,
                reason::CREDENTIALS_REJECTED,
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
    let requeue = match outcome.phase {
        Phase::Ready => {
            ctx.backoff
                .succeeded(&format!("{KIND}/{}/{}", key.0, key.1));
            ctx.config.connection_check_interval
        }
        Phase::Stalled => ctx.config.connection_check_interval,
        Phase::Progressing => ctx.backoff.failed(&format!("{KIND}/{}/{}", key.0, key.1)),
    };
    ctx.metrics.reconciled(KIND, "ok", started.elapsed());
    Ok(Action::requeue(requeue))
}

async fn check(obj: &GhlConnection, ctx: &Context, key: &ConnectionKey) -> Outcome {
    let stalled = |reason: &'static str, message: String| Outcome {
        phase: Phase::Stalled,
        reason,
        message,
        authenticated: None,
        credential: None,
    };
    let budget = match budget_of(obj) {
        Ok(b) => b,
        Err(message) => return stalled(reason::INVALID_SPEC, message),
    };
    let (credential, token) = match token(ctx, obj).await {
        Ok(found) => found,
        Err((why, message)) => {
            ctx.connections.remove(key);
            return stalled(why, message);
        }
    };
    let handle = match ctx.connections.upsert(key, &obj.spec, budget, token) {
        Ok(h) => h,
        Err(e) => return stalled(reason::INVALID_SPEC, e.to_string()),
    };
    let probe = ListContactsQuery {
        limit: Some(1),
        ..ListContactsQuery::default()
    };
    match handle.client.list_contacts(&probe).await {
        Ok(_) => Outcome {
            phase: Phase::Ready,
            reason: reason::CREDENTIALS_ACCEPTED,
            message: format!("location {} reachable", obj.spec.location_id),
            authenticated: Some(true),
            credential: Some(credential),
        },
        Err(e) if e.class() == ErrorClass::Auth => Outcome {
            phase: Phase::Stalled,
            reason: reason::CREDENTIALS_REJECTED,
            message: format!("GHL refused the credentials: {e}"),
            authenticated: Some(false),
            credential: Some(credential),
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
            credential: Some(credential),
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
