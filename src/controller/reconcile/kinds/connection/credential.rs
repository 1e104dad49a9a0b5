//! A connection's credential, as the connection controller needs it: the token to use (from a
//! PIT Secret or the OAuth lifecycle in [`crate::credentials`]), its facts for status, when to
//! look again — and, once resolved, its dependents (consumer Secret, rollout restarts) and the
//! Events and metrics of rotations.

use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;
use kube::ResourceExt;
use secrecy::SecretString;

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::verdict::Notice;
use crate::crd::Kind;
use crate::crd::common::{InvalidField, MAX_DURATION, duration_field};
use crate::crd::connection::{
    AgencyGrantAuth, CredentialType, GhlConnection, OAuthAuth, PrivateIntegrationTokenAuth,
    RolloutTarget, UserType,
};
use crate::crd::vocabulary::{action, reason};
use crate::credentials::Problem;
use crate::credentials::consumers::{self, Rollout};
use crate::credentials::keys::OperatorKeys;
use crate::credentials::oauth::{self, Inputs};
use crate::credentials::{pit, schedule};
use crate::ghl::oauth::OAuthClient;
use crate::ghl::retry::RetryPolicy;
use crate::ghl::transport::HttpTimeouts;

/// A usable credential and its facts.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub token: SecretString,
    /// What status reports of it.
    pub facts: Facts,
    /// What the verdict reads of its schedule.
    pub outlook: Outlook,
    /// Refreshed or exchanged just now.
    pub rotated: bool,
    /// The previous OAuth access token is still kept (dropped once the new one works).
    pub unconfirmed: bool,
    /// An own agency grant (`userType: Company`): the agency token, for agency-level reads
    /// (installed locations). Clients use `token`, the location token.
    pub agency_token: Option<SecretString>,
}

/// A credential's facts, as status reports them.
#[derive(Clone, Debug)]
pub struct Facts {
    pub type_: CredentialType,
    pub fingerprint: String,
    pub revision: i64,
    pub expires_at: Option<Timestamp>,
    pub renewal_time: Option<Timestamp>,
    pub last_rotated_at: Option<Timestamp>,
    pub scopes: Vec<String>,
}

/// A credential's schedule, as the verdict reads it.
#[derive(Clone, Debug)]
pub struct Outlook {
    /// PIT with `maxAge`: (due, message).
    pub rotation_due: Option<(bool, String)>,
    /// OAuth: whether renewal had to depart from `renewBefore`, and why.
    pub renewal_adjusted: Option<(bool, String)>,
    /// OAuth: the grant could not be renewed and serves until it expires (why, until when).
    pub renewal_failed: Option<String>,
    /// When to look again at the latest.
    pub requeue: Duration,
}

/// `spec.consumers.minInterval`, checked.
pub fn min_interval(obj: &GhlConnection) -> Result<Duration, InvalidField> {
    duration_field(
        obj.spec
            .consumers
            .as_ref()
            .and_then(|c| c.min_interval.as_ref()),
        "spec.consumers.minInterval",
        consumers::DEFAULT_MIN_INTERVAL,
        Duration::ZERO,
        MAX_DURATION,
    )
}

/// Resolves the credential of `obj`.
pub async fn resolve(
    ctx: &Context,
    obj: &GhlConnection,
    now: Timestamp,
) -> Result<Resolved, Problem> {
    let auth = &obj.spec.auth;
    match (
        &auth.private_integration_token,
        &auth.oauth,
        &auth.agency_grant,
    ) {
        (Some(pit), None, None) => resolve_pit(ctx, obj, pit, now).await,
        (None, Some(oauth), None) => resolve_oauth(ctx, obj, oauth, now).await,
        (None, None, Some(agency)) => resolve_borrowed(ctx, obj, agency, now).await,
        _ => Err(Problem::stalled(
            reason::INVALID_SPEC,
            "set exactly one of auth.privateIntegrationToken, auth.oauth or auth.agencyGrant"
                .into(),
        )),
    }
}

/// A Private Integration Token and its age.
async fn resolve_pit(
    ctx: &Context,
    obj: &GhlConnection,
    pit_auth: &PrivateIntegrationTokenAuth,
    now: Timestamp,
) -> Result<Resolved, Problem> {
    let namespace = obj.namespace().unwrap_or_default();
    let cap = ctx.config.connection_check_interval;
    {
        let previous = obj.status.as_ref().and_then(|s| s.credentials.as_ref());
        let reader = (&ctx.client, &ctx.credentials.keys);
        let pit = pit::observe(reader, &namespace, pit_auth, previous, now).await?;
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
        Ok(Resolved {
            facts: Facts {
                type_: CredentialType::PrivateIntegrationToken,
                fingerprint: pit.fingerprint.clone(),
                revision: pit.revision as i64,
                expires_at: None,
                renewal_time: None,
                last_rotated_at: Some(pit.observed_at),
                scopes: Vec::new(),
            },
            outlook: Outlook {
                rotation_due,
                renewal_adjusted: None,
                renewal_failed: None,
                requeue,
            },
            token: pit.token,
            rotated: false,
            unconfirmed: false,
            agency_token: None,
        })
    }
}

/// An OAuth grant, bootstrapped, refreshed when due, minted into a location token for
/// agency grants ([`crate::credentials::oauth`]).
async fn resolve_oauth(
    ctx: &Context,
    obj: &GhlConnection,
    oauth_auth: &OAuthAuth,
    now: Timestamp,
) -> Result<Resolved, Problem> {
    let namespace = obj.namespace().unwrap_or_default();
    let cap = ctx.config.connection_check_interval;
    let client = oauth_client(ctx, obj)?;
    let name = obj.name_any();
    let consent_secret = obj
        .metadata
        .uid
        .as_deref()
        .map(|uid| oauth::consent::code_secret_name(&name, uid));
    let inputs = Inputs {
        client: &ctx.client,
        oauth: &client,
        namespace: &namespace,
        connection: &name,
        eldest: eldest(ctx, obj, &oauth_auth.token_secret_ref.name),
        spec: &obj.spec,
        auth: oauth_auth,
        identity: &ctx.config.identity,
        fence: &ctx
            .registry
            .fence_for(&ObjectKey::of(Kind::GhlConnection, obj)),
        now,
        consent_secret: consent_secret.as_deref(),
    };
    let usable = ctx.credentials.oauth.ensure(&inputs).await?;
    let agency_token =
        (oauth_auth.user_type == UserType::Company).then(|| usable.grant.access_token.clone());
    Ok(Resolved {
        agency_token,
        ..resolved_oauth(usable, &ctx.credentials.keys, now, cap)
    })
}

/// The OAuth app's client id (`client_id` of `auth.oauth.clientSecretRef`).
pub async fn client_id(
    ctx: &Context,
    obj: &GhlConnection,
    auth: &OAuthAuth,
) -> Result<String, Problem> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    Ok(oauth::client_credentials(&secrets, auth).await?.client_id)
}

pub fn oauth_client(ctx: &Context, obj: &GhlConnection) -> Result<OAuthClient, Problem> {
    OAuthClient::new(
        obj.spec.base_url(),
        obj.spec.api_version(),
        HttpTimeouts::default(),
        RetryPolicy::default(),
        std::sync::Arc::clone(&ctx.metrics.ghl),
    )
    .map_err(|e| Problem::stalled(reason::INVALID_SPEC, e.to_string()))
}

/// The facts of an OAuth credential (own or borrowed), for status. Pure.
fn resolved_oauth(
    usable: oauth::Usable,
    keys: &OperatorKeys,
    now: Timestamp,
    cap: Duration,
) -> Resolved {
    let grant = &usable.grant;
    Resolved {
        facts: Facts {
            type_: CredentialType::OAuth,
            fingerprint: keys.fingerprint(&usable.token),
            revision: grant.revision as i64,
            expires_at: Some(
                grant
                    .location_expires_at
                    .map_or(grant.expires_at, |l| l.min(grant.expires_at)),
            ),
            renewal_time: Some(usable.next_renewal),
            last_rotated_at: Some(grant.refreshed_at),
            scopes: grant
                .scope
                .as_deref()
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        },
        outlook: Outlook {
            rotation_due: None,
            renewal_adjusted: Some(match &usable.renewal_adjusted {
                Some(why) => (true, why.clone()),
                None => (
                    false,
                    "renewing renewBefore ahead of expiry, as declared".into(),
                ),
            }),
            renewal_failed: usable.renewal_failed.clone(),
            requeue: schedule::requeue_in(usable.next_renewal, now, cap),
        },
        token: usable.token.clone(),
        rotated: usable.rotated,
        unconfirmed: grant.previous_access_token.is_some(),
        agency_token: None,
    }
}

/// A location token minted from another connection's agency grant
/// ([`crate::credentials::oauth::borrowed`]).
async fn resolve_borrowed(
    ctx: &Context,
    obj: &GhlConnection,
    auth: &AgencyGrantAuth,
    now: Timestamp,
) -> Result<Resolved, Problem> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let client = oauth_client(ctx, obj)?;
    let agency_namespace = auth
        .connection_ref
        .namespace
        .as_deref()
        .unwrap_or(&namespace);
    let reference =
        kube::runtime::reflector::ObjectRef::<GhlConnection>::new(&auth.connection_ref.name)
            .within(agency_namespace);
    let agency = ctx.registry.stores.connections.get(&reference);
    let usable = oauth::borrowed::ensure(&oauth::borrowed::BorrowInputs {
        client: &ctx.client,
        oauth: &client,
        namespace: &namespace,
        holder: oauth::Holder {
            connection: &name,
            eldest: eldest(ctx, obj, &auth.token_secret_ref.name),
        },
        spec: &obj.spec,
        auth,
        agency_namespace,
        agency: agency.as_ref().map(|a| &a.spec),
        fence: &ctx
            .registry
            .fence_for(&ObjectKey::of(Kind::GhlConnection, obj)),
        now,
    })
    .await?;
    Ok(resolved_oauth(
        usable,
        &ctx.credentials.keys,
        now,
        ctx.config.connection_check_interval,
    ))
}

/// Whether no older connection of `obj`'s namespace names `secret` as its token Secret.
fn eldest(ctx: &Context, obj: &GhlConnection, secret: &str) -> bool {
    let namespace = obj.namespace();
    let me = (obj.creation_timestamp(), obj.name_any());
    ctx.registry.stores.connections.state().iter().all(|other| {
        other.namespace() != namespace
            || other.name_any() == me.1
            || other.spec.auth.token_secret() != Some(secret)
            || (other.creation_timestamp(), other.name_any()) > me
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
        ctx.metrics.rotated(resolved.facts.type_);
        let notice = Notice {
            warning: false,
            reason: reason::CREDENTIALS_ROTATED,
            action: action::ROTATE,
            note: format!(
                "new access token (revision {}), next renewal {}",
                resolved.facts.revision,
                resolved
                    .facts
                    .renewal_time
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        };
        ctx.publish(&reference, &notice).await;
    }
    ctx.metrics
        .credential_times(&key, resolved.facts.expires_at, resolved.facts.renewal_time);
    let consumers = obj.spec.consumers.as_ref()?;
    if let Some(secret_name) = &consumers.secret_name {
        match consumers::publish_secret(
            &ctx.client,
            obj,
            secret_name,
            &resolved.token,
            &resolved.facts.fingerprint,
        )
        .await
        {
            Ok(()) => {}
            Err(error @ consumers::PublishError::NotOurs(_)) => {
                let notice = Notice {
                    warning: true,
                    reason: reason::SECRET_NOT_OWNED,
                    action: action::ROTATE,
                    note: error.to_string(),
                };
                ctx.publish(&reference, &notice).await;
            }
            Err(error) => {
                tracing::warn!(%error, secret = %secret_name, "could not publish the access token to the consumer Secret");
            }
        }
    }
    // Checked with the rest of the spec before the credential was resolved.
    let min_interval = min_interval(obj).unwrap_or(consumers::DEFAULT_MIN_INTERVAL);
    let mut wait: Option<Duration> = None;
    for target in &consumers.rollout_restart_targets {
        if let Some(after) = roll(ctx, obj, target, resolved, min_interval, now).await {
            wait = Some(wait.map_or(after, |w| w.min(after)));
        }
    }
    wait
}

/// Restarts `target` if its pods run an older token than `resolved` (at most once per
/// `min_interval`); returns how long a deferred restart waits.
async fn roll(
    ctx: &Context,
    obj: &GhlConnection,
    target: &RolloutTarget,
    resolved: &Resolved,
    min_interval: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let namespace = obj.namespace().unwrap_or_default();
    let rolled = consumers::rollout(
        &ctx.client,
        &namespace,
        &obj.name_any(),
        target,
        &resolved.facts.fingerprint,
        min_interval,
        now,
    )
    .await;
    match rolled {
        Ok(Rollout::Restarted) => {
            ctx.metrics.restarted();
            let notice = Notice {
                warning: false,
                reason: reason::ROLLOUT_RESTARTED,
                action: action::RESTART,
                note: format!(
                    "restarted {:?} {} for credential revision {}",
                    target.kind, target.name, resolved.facts.revision
                ),
            };
            ctx.publish(&obj.object_ref(&()), &notice).await;
            None
        }
        Ok(Rollout::Deferred(after)) => Some(after),
        Ok(Rollout::Missing) => {
            tracing::info!(kind = ?target.kind, name = %target.name, "rollout target does not exist (yet)");
            None
        }
        Ok(Rollout::Current | Rollout::Adopted) => None,
        Ok(Rollout::NotPermitted) => {
            let notice = Notice {
                warning: true,
                reason: reason::ROLLOUT_NOT_PERMITTED,
                action: action::RESTART,
                note: format!(
                    "{:?} {} is not restarted: it does not name this connection in its {} annotation",
                    target.kind,
                    target.name,
                    crate::crd::vocabulary::annotation::RESTART_ON_ROTATION
                ),
            };
            ctx.publish(&obj.object_ref(&()), &notice).await;
            None
        }
        Err(error) => {
            tracing::warn!(%error, kind = ?target.kind, name = %target.name, "could not restart a rollout target");
            None
        }
    }
}
