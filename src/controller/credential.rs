//! A connection's credential, as the connection controller needs it: the token to use (from a
//! PIT Secret or the OAuth lifecycle in [`crate::credentials`]), its facts for status, when to
//! look again — and, once resolved, its dependents (consumer Secret, rollout restarts) and the
//! Events and metrics of rotations.

use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use secrecy::SecretString;

use super::context::Context;
use crate::crd::connection::{CredentialType, GhlConnection};
use crate::crd::vocabulary::reason;
use crate::credentials::consumers::{self, Rollout};
use crate::credentials::oauth::{self, Inputs, Problem};
use crate::credentials::token_secret::fingerprint;
use crate::credentials::{pit, schedule};
use crate::ghl::oauth::OAuthClient;
use crate::ghl::retry::RetryPolicy;
use crate::ghl::transport::HttpTimeouts;

/// A usable credential and its facts.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub type_: CredentialType,
    pub token: SecretString,
    pub fingerprint: String,
    pub revision: i64,
    pub expires_at: Option<Timestamp>,
    pub renewal_time: Option<Timestamp>,
    pub last_rotated_at: Option<Timestamp>,
    /// Refreshed or exchanged just now.
    pub rotated: bool,
    /// PIT with `maxAge`: (due, message).
    pub rotation_due: Option<(bool, String)>,
    pub scopes: Vec<String>,
    /// When to look again at the latest.
    pub requeue: Duration,
    /// The previous OAuth access token is still kept (dropped once the new one works).
    pub unconfirmed: bool,
}

/// Resolves the credential of `obj`.
pub async fn resolve(
    ctx: &Context,
    obj: &GhlConnection,
    now: Timestamp,
) -> Result<Resolved, Problem> {
    let namespace = obj.namespace().unwrap_or_default();
    let cap = ctx.config.connection_check_interval;
    let auth = &obj.spec.auth;
    if let Some(pit_auth) = &auth.private_integration_token {
        let pit = pit::observe(&ctx.client, &namespace, pit_auth, now).await?;
        let rotation_due = pit.due_at.map(|due| {
            if pit.rotation_due {
                (
                    true,
                    format!(
                        "the token was first seen {}; rotate it in GHL and update the Secret",
                        pit.observed_at
                    ),
                )
            } else {
                (false, format!("within maxAge until {due}"))
            }
        });
        let requeue = match pit.due_at {
            Some(due) if !pit.rotation_due => schedule::requeue_in(due, now, cap),
            _ => cap,
        };
        return Ok(Resolved {
            type_: CredentialType::PrivateIntegrationToken,
            fingerprint: pit.fingerprint.clone(),
            token: pit.token,
            revision: pit.revision as i64,
            expires_at: None,
            renewal_time: None,
            last_rotated_at: Some(pit.observed_at),
            rotated: false,
            rotation_due,
            scopes: Vec::new(),
            requeue,
            unconfirmed: false,
        });
    }
    let Some(oauth_auth) = &auth.oauth else {
        return Err(Problem::stalled(
            reason::INVALID_SPEC,
            "set auth.privateIntegrationToken or auth.oauth".into(),
        ));
    };
    let client = OAuthClient::new(
        obj.spec.base_url(),
        obj.spec.api_version(),
        HttpTimeouts::default(),
        RetryPolicy::default(),
        std::sync::Arc::clone(&ctx.metrics.ghl),
    )
    .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e.to_string()))?;
    let name = obj.name_any();
    let inputs = Inputs {
        client: &ctx.client,
        oauth: &client,
        namespace: &namespace,
        connection: &name,
        spec: &obj.spec,
        auth: oauth_auth,
        identity: &ctx.config.identity,
        now,
    };
    let usable = ctx.oauth.ensure(&inputs).await?;
    let grant = &usable.grant;
    Ok(Resolved {
        type_: CredentialType::OAuth,
        fingerprint: fingerprint(&usable.token),
        token: usable.token.clone(),
        revision: grant.revision as i64,
        expires_at: Some(
            grant
                .location_expires_at
                .map_or(grant.expires_at, |l| l.min(grant.expires_at)),
        ),
        renewal_time: Some(usable.next_renewal),
        last_rotated_at: Some(grant.refreshed_at),
        rotated: usable.rotated,
        rotation_due: None,
        scopes: grant
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        requeue: schedule::requeue_in(usable.next_renewal, now, cap),
        unconfirmed: grant.previous_access_token.is_some(),
    })
}

/// After the credential works: drop the previous OAuth token, publish to consumers, roll
/// dependents whose token changed, and tell humans. Returns how soon to look again for a
/// deferred roll.
pub async fn after_ready(
    ctx: &Context,
    obj: &GhlConnection,
    resolved: &Resolved,
    now: Timestamp,
) -> Option<Duration> {
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.object_ref(&());
    let key = (namespace.clone(), obj.name_any());
    if resolved.unconfirmed
        && let Some(auth) = &obj.spec.auth.oauth
    {
        oauth::confirm(&ctx.client, &namespace, auth).await;
    }
    if resolved.rotated {
        ctx.metrics.rotated(resolved.type_);
        ctx.event(
            &reference,
            EventType::Normal,
            "CredentialsRotated",
            "Rotate",
            format!(
                "new access token (revision {}), next renewal {}",
                resolved.revision,
                resolved
                    .renewal_time
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        )
        .await;
    }
    ctx.metrics
        .credential_times(&key, resolved.expires_at, resolved.renewal_time);
    let consumers = obj.spec.consumers.as_ref()?;
    if let Some(secret_name) = &consumers.secret_name
        && let Err(error) = consumers::publish_secret(
            &ctx.client,
            obj,
            secret_name,
            &resolved.token,
            &resolved.fingerprint,
        )
        .await
    {
        tracing::warn!(%error, secret = %secret_name, "could not publish the access token to the consumer Secret");
    }
    let min_interval = consumers
        .min_interval
        .as_ref()
        .and_then(|d| d.parse().ok())
        .unwrap_or(consumers::DEFAULT_MIN_INTERVAL);
    let mut wait: Option<Duration> = None;
    for target in &consumers.rollout_restart_targets {
        match consumers::rollout(
            &ctx.client,
            &namespace,
            target,
            &resolved.fingerprint,
            min_interval,
            now,
        )
        .await
        {
            Ok(Rollout::Restarted) => {
                ctx.metrics.restarted();
                ctx.event(
                    &reference,
                    EventType::Normal,
                    "RolloutRestarted",
                    "Restart",
                    format!(
                        "restarted {:?} {} for credential revision {}",
                        target.kind, target.name, resolved.revision
                    ),
                )
                .await;
            }
            Ok(Rollout::Deferred(after)) => wait = Some(wait.map_or(after, |w| w.min(after))),
            Ok(Rollout::Missing) => {
                tracing::info!(kind = ?target.kind, name = %target.name, "rollout target does not exist (yet)");
            }
            Ok(Rollout::Current | Rollout::Adopted) => {}
            Err(error) => {
                tracing::warn!(%error, kind = ?target.kind, name = %target.name, "could not restart a rollout target")
            }
        }
    }
    wait
}
