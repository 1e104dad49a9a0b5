//! The GhlConnection controller: [`check`] the settings, credential and GHL (observe) →
//! [`verdict`] (pure) → a short shell that keeps the shared client's readiness, serves the
//! credential's dependents ([`credential::after_ready`]), and writes `Ready` /
//! `Authenticated` / `RotationDue`, the credential's facts and the remaining request budget.
//! Policies and rules wait while their connection is not ready.

mod check;
mod consent;
pub mod credential;
pub mod export;
pub mod provision;
pub mod verdict;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::runtime::controller::Action;

use self::credential::Resolved;
use self::verdict::verdict;
use crate::controller::context::Context;
use crate::controller::error::Result;
use crate::controller::intake::feeds::FeedTarget;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::verdict::{Requeue, Verdict};
use crate::controller::reconcile::write::patch_status;
use crate::controller::registry::clients::{ConnectionKey, Readiness};
use crate::controller::registry::installed;
use crate::controller::registry::shards::LAPSE_RETRY;
use crate::crd::Kind;
use crate::crd::conditions::{self, Wanted};
use crate::crd::connection::{
    BudgetStatus, ConsentStatus, CredentialStatus, CredentialType, GhlConnection,
    GhlConnectionStatus, InstalledLocationsStatus, ProvisionStatus, UserType,
};
use crate::crd::vocabulary::condition;
use crate::ghl::budget::BudgetView;

pub async fn reconcile(obj: Arc<GhlConnection>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let object = ObjectKey::of(Kind::GhlConnection, obj.as_ref());
    // Another replica's shard: it reconciles this one (a shard gained reconciles everything).
    let Some(_work) = ctx.registry.enter(&object) else {
        return Ok(Action::await_change());
    };
    tracing::debug!(kind = "GhlConnection", object = %object, "reconciling");
    if obj.meta().deletion_timestamp.is_some() {
        ctx.forget(&object);
        return Ok(Action::await_change());
    }
    let key: ConnectionKey = (object.namespace.clone(), object.name.clone());
    let now = Timestamp::now();
    let (check, resolved) = check::check(&obj, &ctx, &key, now).await;
    // The Lease lapsed or moved meanwhile (a spend was refused for it, say): nothing of this
    // check is reported or acted on; the holder checks.
    if ctx.registry.lapsed(&object) {
        return Ok(Action::requeue(LAPSE_RETRY));
    }
    let previous = obj.status.clone().unwrap_or_default();
    let checked = verdict(
        &check,
        &previous.conditions,
        ctx.config.connection_check_interval,
    );
    let ready = checked.ready();
    let verdict = &checked.verdict;
    let handle = ctx.registry.clients.get(&key);
    if let Some(handle) = &handle {
        // What the grant allows, when GHL says (OAuth); users check it before writing.
        if let Some(resolved) = &resolved {
            let granted = (resolved.facts.type_ == CredentialType::OAuth
                && !resolved.facts.scopes.is_empty())
            .then(|| resolved.facts.scopes.iter().cloned().collect());
            handle.set_scopes(granted);
        }
        handle.set_readiness(Readiness {
            ready,
            reason: verdict.reason,
            message: verdict.message.clone(),
        });
    }
    let mut wait = match verdict.requeue {
        Requeue::Backoff => ctx.runtime.backoff.failed(&object).min(checked.at_most),
        Requeue::After(wait) => wait,
        Requeue::Resync | Requeue::AwaitChange => ctx.config.connection_check_interval,
    };
    if ready {
        ctx.runtime.backoff.succeeded(&object);
        if let Some(resolved) = &resolved
            && let Some(deferred) = credential::after_ready(&ctx, &obj, resolved, now).await
        {
            wait = wait.min(deferred.max(Duration::from_secs(1)));
        }
    }
    let agency = is_agency(&obj);
    // A new spec (a template change) lists again, so the children follow at once.
    if agency && previous.observed_generation != obj.metadata.generation {
        ctx.registry.listings.forget(&key);
    }
    let listing = match (&resolved, agency) {
        (Some(resolved), true) if ready => installed_locations(&ctx, &obj, &key, resolved).await,
        _ => None,
    };
    let provisioned = match &listing {
        Some((_, listed)) if agency => {
            provision::reconcile(
                &ctx,
                &obj,
                &object,
                listed,
                listed.complete(),
                previous.provisioned.as_ref(),
            )
            .await
        }
        _ => None,
    };
    let installed = listing.map(|(status, _)| status);
    // After a failed renewal the link is ready before the access token runs out.
    let consent_wanted = consent::needed(verdict.reason) || check.renewal_failed.is_some();
    let consent = if obj.spec.auth.oauth.is_some() && consent_wanted {
        match consent::link(&ctx, &obj, previous.consent.as_ref(), now).await {
            Ok(link) => Some(link),
            Err(why) => {
                tracing::info!(object = %object, "no consent link: {why}");
                None
            }
        }
    } else {
        None
    };
    let facts = Facts {
        agency,
        installed,
        consent,
        redirect: consent::redirect_condition(&ctx, &obj),
        provisioning: agency && obj.spec.provision.is_some(),
        provisioned,
        credentials: resolved.as_ref(),
        failed_attempts: ctx.credentials.oauth.failed_attempts(&key.0, &key.1),
        budget: handle.as_ref().map(|h| h.budget.view()),
    };
    let status = status(
        previous.clone(),
        obj.metadata.generation,
        verdict,
        &facts,
        now,
    );
    if ctx.registry.lapsed(&object) {
        return Ok(Action::requeue(LAPSE_RETRY));
    }
    patch_status(&ctx.client, obj.as_ref(), &status).await?;
    ctx.metrics.objects.record(&object, &status.conditions);
    ctx.metrics.refresh_failures(&key, facts.failed_attempts);
    // Without a client there is no readiness to broadcast: announce a changed verdict so
    // waiting policies report it (they read the reason from this status).
    // A new spec may also change who may use the connection (`allowedNamespaces`).
    let respecified = previous.observed_generation != obj.metadata.generation;
    if respecified
        || (handle.is_none() && ready_of(&previous.conditions) != ready_of(&status.conditions))
    {
        ctx.registry.clients.announce(&key);
    }
    // The change feed follows the spec: sinks, their secrets, snapshot requests.
    match export::feed_config(&ctx, &obj).await {
        Ok(config) => ctx.intake.feeds.configure(
            FeedTarget {
                key: &key,
                uid: obj.metadata.uid.as_deref().unwrap_or_default(),
                location: &obj.spec.location_id,
                accepted: ready,
                fence: ctx.registry.fence_for(&object),
                exporting: previous
                    .conditions
                    .iter()
                    .find(|c| c.type_ == condition::EXPORTING),
            },
            config,
            previous.export.as_ref(),
            export::client_of(&ctx.registry.clients, &key),
        ),
        // Checked with the spec above: a bad value stalls the connection and names it.
        Err(invalid) => tracing::debug!(object = %object, "no change feed: {invalid}"),
    }
    let reference = obj.object_ref(&());
    for notice in &verdict.events {
        ctx.publish(&reference, notice).await;
    }
    tracing::info!(object = %object, phase = ?verdict.phase, reason = verdict.reason, "checked: {}", verdict.message);
    ctx.metrics
        .reconciled(Kind::GhlConnection, "ok", started.elapsed());
    Ok(Action::requeue(wait))
}

fn ready_of(conditions: &[Condition]) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether the connection holds its own agency grant (`auth.oauth.userType: Company`).
fn is_agency(obj: &GhlConnection) -> bool {
    obj.spec
        .auth
        .oauth
        .as_ref()
        .is_some_and(|o| o.user_type == UserType::Company)
}

/// An agency connection's installed locations, when due (once per connection check, or after
/// an install webhook); `None` keeps what status says.
async fn installed_locations(
    ctx: &Context,
    obj: &GhlConnection,
    key: &ConnectionKey,
    resolved: &Resolved,
) -> Option<(InstalledLocationsStatus, installed::Installed)> {
    let auth = obj.spec.auth.oauth.as_ref()?;
    let (Some(token), Some(company)) = (&resolved.agency_token, auth.company_id.as_deref()) else {
        return None;
    };
    if !ctx
        .registry
        .listings
        .due(key, ctx.config.connection_check_interval)
    {
        return None;
    }
    // One try per interval, whatever it gives.
    ctx.registry.listings.listed(key);
    let listed = async {
        let client_id = credential::client_id(ctx, obj, auth)
            .await
            .map_err(|p| p.message)?;
        let oauth = credential::oauth_client(ctx, obj).map_err(|p| p.message)?;
        installed::list(&oauth, token, company, installed::app_id(&client_id))
            .await
            .map_err(|e| e.to_string())
    };
    match listed.await {
        Ok(listed) => {
            let served: BTreeSet<String> = ctx
                .registry
                .stores
                .connections
                .state()
                .iter()
                .filter(|c| c.metadata.namespace == obj.metadata.namespace)
                .map(|c| c.spec.location_id.clone())
                .collect();
            Some((
                installed::status(&listed, &served, Timestamp::now()),
                listed,
            ))
        }
        Err(error) => {
            tracing::warn!(connection = %key.1, %error, "could not list the agency's installed locations");
            None
        }
    }
}

/// What the status reports besides the verdict.
struct Facts<'a> {
    /// An own agency grant: it reports installed locations.
    agency: bool,
    /// Installed locations listed just now.
    installed: Option<InstalledLocationsStatus>,
    credentials: Option<&'a Resolved>,
    failed_attempts: u32,
    budget: Option<BudgetView>,
    /// The consent link, while one is needed.
    consent: Option<ConsentStatus>,
    /// `RedirectUriServed`, for a connection that consents through the operator.
    redirect: Option<Wanted>,
    /// An agency connection with `spec.provision`.
    provisioning: bool,
    /// Its children, when they were reconciled just now.
    provisioned: Option<ProvisionStatus>,
}

/// The status after `verdict`; credential facts stay from the previous status while the
/// credential cannot be resolved.
fn status(
    previous: GhlConnectionStatus,
    generation: Option<i64>,
    verdict: &Verdict,
    facts: &Facts<'_>,
    now: Timestamp,
) -> GhlConnectionStatus {
    let failed_refresh_attempts = i32::try_from(facts.failed_attempts).unwrap_or(i32::MAX);
    let credentials = match facts.credentials {
        Some(r) => Some(CredentialStatus {
            type_: r.facts.type_,
            fingerprint: Some(r.facts.fingerprint.clone()),
            revision: r.facts.revision,
            expires_at: r.facts.expires_at.map(Time),
            renewal_time: r.facts.renewal_time.map(Time),
            last_rotated_at: r.facts.last_rotated_at.map(Time),
            failed_refresh_attempts,
        }),
        None => previous.credentials.clone().map(|c| CredentialStatus {
            failed_refresh_attempts,
            ..c
        }),
    };
    // `Exporting` is the change feed's to write (every second, its own field manager): this
    // apply leaves it out, so it never writes back a value older than the feed's.
    let current: Vec<Condition> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::EXPORTING)
        .cloned()
        .collect();
    GhlConnectionStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &current,
            &verdict
                .conditions
                .iter()
                .cloned()
                .chain(facts.redirect.clone())
                .collect::<Vec<_>>(),
            generation,
            now,
        ),
        credentials,
        scopes: facts
            .credentials
            .map_or_else(|| previous.scopes.clone(), |r| r.facts.scopes.clone()),
        budget: facts.budget.map(|view| BudgetStatus {
            window_remaining: view.last_reported.and_then(|r| r.remaining),
            window_limit: Some(view.window_limit),
            daily_remaining: view.last_reported.and_then(|r| r.daily_remaining),
            daily_limit: Some(view.daily_limit),
        }),
        // Written by the webhook receiver and the change feed under their own field manager.
        webhooks: None,
        export: None,
        installed_locations: if facts.agency {
            facts
                .installed
                .clone()
                .or(previous.installed_locations.clone())
        } else {
            None
        },
        consent: facts.consent.clone(),
        provisioned: if facts.provisioning {
            facts.provisioned.clone().or(previous.provisioned.clone())
        } else {
            None
        },
    }
}
