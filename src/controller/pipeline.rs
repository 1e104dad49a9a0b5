//! The one reconcile pipeline of ContactSyncPolicies and TagRules:
//!
//! 1. deletion — with `deletionPolicy: Delete`, remove from GHL what the ledger owns (or, with
//!    the connection gone for good, leave it and say so), then drop the finalizer;
//! 2. settings — the spec's durations parsed with bounds (a bad one stalls, naming the field);
//! 3. connection — resolved from the caches ([`super::reference`]);
//! 4. prepare — what the object declares on its location, published before any GHL call so
//!    the other owners can respect it ([`super::ownership`]);
//! 5. sync — observe → plan → apply through the engine, when the connection is usable;
//! 6. the verdict ([`super::verdict`], pure) → status, Events, metrics and the next reconcile.
//!
//! A kind implements [`Synced`] (steps 4, 5, its release and its status); refused credentials,
//! 429s, backoff, connection readiness and finalizers are handled here, once for both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::runtime::controller::Action;
use rand::RngExt;
use serde::Serialize;

use super::conditions::{self, Phase};
use super::connections::Readiness;
use super::context::Context;
use super::error::{Error, Result};
use super::object::{Kind, ObjectKey};
use super::reference::{ConnectionState, Usable};
use super::shards::LAPSE_RETRY;
use super::status::{self, Object};
use super::verdict::{CONNECTION_WAIT, Facts, Notice, Outcome, Requeue, Verdict, verdict};
use crate::crd::GhlConnection;
use crate::crd::common::{ConnectionRef, DeletionPolicy, DurationString, Mode, duration_field};
use crate::crd::vocabulary::{action, reason};
use crate::engine::apply::ApplyError;
use crate::engine::{SyncError, SyncOutcome};
use crate::ghl::ErrorClass;

/// The shortest and longest `resyncInterval`.
pub const RESYNC_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 86_400));

/// What a kind brings to the pipeline.
#[async_trait]
pub trait Synced: Object + Send + Sync + 'static {
    const KIND: Kind;
    /// What `prepare` hands to `sync` (e.g. the validated records).
    type Prepared: Send;
    /// What a sync found beyond the verdict's facts, for the status (counts, failures).
    type Detail: Send + Sync;
    type Status: Serialize + Send;

    fn connection_ref(&self) -> &ConnectionRef;
    fn mode(&self) -> Mode;
    fn deletion_policy(&self) -> DeletionPolicy;
    fn resync_interval(&self) -> Option<&DurationString>;
    /// The conditions of the current status.
    fn conditions(&self) -> &[Condition];

    /// Before any GHL call: reads what the object declares and publishes it for the other
    /// owners on `location` (when known). `Err` stops here: `InvalidSpec` or
    /// `WaitingForOwners`.
    async fn prepare(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        location: Option<&str>,
    ) -> Result<Self::Prepared, Outcome>;

    /// The object cannot act (its spec is invalid): tells the other owners on `location` it
    /// wants nothing, so that none of them waits for it.
    fn stand_down(&self, _ctx: &Context, _key: &ObjectKey, _location: Option<&str>) {}

    /// Observes, plans and (per `mode`) applies.
    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        prepared: Self::Prepared,
        connection: &Usable,
    ) -> Result<(SyncOutcome<Facts>, Self::Detail), SyncError>;

    /// Removes from GHL what the object owns (its deletion with `deletionPolicy: Delete`),
    /// within its `safety` limits: `Blocked` (a larger plan) and records that failed keep the
    /// object (and its finalizer) for another try.
    async fn release(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError>;

    /// The status to write for `verdict` (and the sync's detail, when it ran).
    fn status(
        &self,
        verdict: &Verdict,
        detail: Option<&Self::Detail>,
        now: Timestamp,
    ) -> Self::Status;
}

/// The accessors of a [`Synced`] kind whose spec has `connectionRef`, `mode`,
/// `deletionPolicy` and `resyncInterval`, and whose status has `conditions`.
#[macro_export]
macro_rules! synced_spec_accessors {
    () => {
        fn connection_ref(&self) -> &$crate::crd::common::ConnectionRef {
            &self.spec.connection_ref
        }

        fn mode(&self) -> $crate::crd::common::Mode {
            self.spec.mode
        }

        fn deletion_policy(&self) -> $crate::crd::common::DeletionPolicy {
            self.spec.deletion_policy
        }

        fn resync_interval(&self) -> Option<&$crate::crd::common::DurationString> {
            self.spec.resync_interval.as_ref()
        }

        fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
            self.status.as_ref().map_or(&[], |s| &s.conditions)
        }
    };
}

/// The interval with ±10% jitter, so objects created together do not resync together.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.1))
}

/// Reconciles one object of kind `K`.
pub async fn reconcile<K: Synced>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = ObjectKey::of(K::KIND, obj.as_ref());
    // Another replica's shard: it reconciles this one (a shard gained reconciles everything).
    let Some(_work) = ctx.enter(&key) else {
        return Ok(Action::await_change());
    };
    tracing::debug!(kind = K::KIND.as_str(), object = %key, "reconciling");
    // Never alongside a targeted sync of the same object.
    let _lock = ctx.lock(&key).await;
    if obj.meta().deletion_timestamp.is_some() {
        return finalize(obj.as_ref(), &ctx, &key).await;
    }
    status::set_finalizer(
        &ctx.client,
        obj.as_ref(),
        obj.deletion_policy() == DeletionPolicy::Delete,
    )
    .await?;
    let resync = duration_field(
        obj.resync_interval(),
        "spec.resyncInterval",
        ctx.config.default_resync,
        RESYNC_BOUNDS.0,
        RESYNC_BOUNDS.1,
    );
    let connection = ctx.connection(&key.namespace, obj.connection_ref());
    let ran = match &resync {
        Err(message) => {
            obj.stand_down(&ctx, &key, connection.location());
            Some((Outcome::InvalidSpec(message.clone()), None))
        }
        Ok(_) => run(obj.as_ref(), &ctx, &key, &connection).await,
    };
    // The Lease behind this object lapsed or moved while it ran (a write was refused for it,
    // or it is closed now): what it found is not this process's to report. Retried shortly:
    // a lapse that ends reconciles it here; a shard that moved is skipped then (its holder
    // reconciles it); a lost leader exits.
    let Some((outcome, detail)) = ran.filter(|_| !ctx.lapsed(&key)) else {
        return Ok(Action::requeue(LAPSE_RETRY));
    };
    if let (Outcome::CredentialsRefused { .. }, ConnectionState::Usable(usable)) =
        (&outcome, &connection)
    {
        // Stop every user of the connection, not only this one, until it is checked again.
        usable.handle.set_readiness(Readiness {
            ready: false,
            reason: reason::CREDENTIALS_REJECTED,
            message: "GHL refused the credentials".into(),
        });
    }
    let verdict = verdict(&outcome, obj.mode(), obj.conditions());
    let status = obj.status(&verdict, detail.as_ref(), Timestamp::now());
    status::patch_status(&ctx.client, obj.as_ref(), &status).await?;
    let now_true = conditions::merge(
        obj.conditions(),
        &verdict.conditions,
        None,
        Timestamp::now(),
    );
    ctx.metrics.objects.record(&key, &now_true);
    let reference = obj.object_ref(&());
    for notice in &verdict.events {
        ctx.event(&reference, notice).await;
    }
    report(&ctx, &key, &outcome, &verdict);
    let action = match verdict.requeue {
        Requeue::Resync => {
            ctx.backoff.succeeded(&key);
            Action::requeue(jittered(resync.unwrap_or(ctx.config.default_resync)))
        }
        Requeue::Backoff => Action::requeue(ctx.backoff.failed(&key)),
        Requeue::After(wait) => Action::requeue(wait),
        Requeue::AwaitChange => Action::await_change(),
    };
    ctx.metrics
        .reconciled(K::KIND, verdict.result, started.elapsed());
    Ok(action)
}

/// Steps 4 and 5: what the object declares, then the sync if the connection allows it.
/// `None`: a write was refused by the fence (nothing to report; see the caller).
async fn run<K: Synced>(
    obj: &K,
    ctx: &Context,
    key: &ObjectKey,
    connection: &ConnectionState,
) -> Option<(Outcome, Option<K::Detail>)> {
    let prepared = obj.prepare(ctx, key, connection.location()).await;
    Some(match (prepared, connection) {
        (Err(invalid @ Outcome::InvalidSpec(_)), _) => (invalid, None),
        (
            _,
            ConnectionState::Unusable {
                phase,
                reason,
                message,
                ..
            },
        ) => (
            Outcome::ConnectionUnusable {
                phase: *phase,
                reason,
                message: message.clone(),
            },
            None,
        ),
        (Err(waiting), _) => (waiting, None),
        (Ok(prepared), ConnectionState::Usable(usable)) => {
            let missing = missing_scopes(obj.mode(), usable);
            if !missing.is_empty() {
                let message = format!(
                    "the grant of {} lacks {} (needed for mode {:?}); nothing is written until it is granted",
                    usable.label(),
                    missing.join(", "),
                    obj.mode()
                );
                let outcome = Outcome::ConnectionUnusable {
                    phase: Phase::Stalled,
                    reason: reason::MISSING_SCOPE,
                    message,
                };
                return Some((outcome, None));
            }
            // Waits only behind the same connection's other syncs (a closed gate cannot
            // happen: it is never closed).
            let _turn = usable.handle.gate.acquire().await;
            match obj.sync(ctx, key, prepared, usable).await {
                Ok((outcome, detail)) => (Outcome::Synced(outcome), Some(detail)),
                Err(error) if error.is_fenced() => return None,
                Err(error) => (classify(&error, &usable.label()), None),
            }
        }
    })
}

/// The scopes `mode` needs that the connection's grant lacks (none when GHL did not say what
/// it granted: a PIT).
pub fn missing_scopes(mode: Mode, usable: &Usable) -> Vec<String> {
    let Some(granted) = usable.handle.scopes() else {
        return Vec::new();
    };
    scopes_needed(mode)
        .iter()
        .filter(|s| !granted.contains(**s))
        .map(|s| (*s).to_owned())
        .collect()
}

/// What a policy or rule in `mode` needs of its grant: reading contacts, and in `Apply` mode
/// writing them.
fn scopes_needed(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Plan => &["contacts.readonly"],
        Mode::Apply => &["contacts.readonly", "contacts.write"],
    }
}

/// Sorts what stopped a sync into the outcomes both kinds share.
pub fn classify(error: &SyncError, connection: &str) -> Outcome {
    let ghl = match error {
        SyncError::Ghl(e) | SyncError::Apply(ApplyError::Auth(e)) => Some(e),
        SyncError::State(_) | SyncError::Apply(_) => None,
    };
    match ghl {
        Some(e) if e.class() == ErrorClass::Auth => Outcome::CredentialsRefused {
            connection: connection.to_owned(),
        },
        Some(e) if e.class() == ErrorClass::RateLimited => Outcome::RateLimited {
            retry_after: e.retry_after(),
            message: e.to_string(),
        },
        Some(e) => Outcome::Unavailable {
            category: e.category(),
            message: e.to_string(),
        },
        None => Outcome::Unavailable {
            category: "state",
            message: error.to_string(),
        },
    }
}

/// Logs the verdict and counts what must be counted.
fn report(ctx: &Context, key: &ObjectKey, outcome: &Outcome, verdict: &Verdict) {
    if let Outcome::Unavailable { category, .. } = outcome {
        ctx.metrics.failed(key.kind, category);
    }
    let writes = match outcome {
        Outcome::Synced(synced) => synced.report().map_or(0, |r| r.writes),
        _ => 0,
    };
    if writes > 0 {
        ctx.metrics.wrote(key.kind, writes);
    }
    tracing::info!(
        object = %key,
        phase = ?verdict.phase,
        reason = verdict.reason,
        writes,
        "reconciled: {}",
        verdict.message
    );
}

/// How soon a deletion held back by a safety limit looks again (a spec edit wakes it sooner).
const RELEASE_BLOCKED_WAIT: Duration = Duration::from_secs(300);

/// Deletion: with our finalizer (`deletionPolicy: Delete`), remove what the object owns from
/// GHL, then let it go. Never hangs on a connection that is gone for good; waits for one that
/// still exists (it may come back) rather than orphan GHL data silently.
async fn finalize<K: Synced>(obj: &K, ctx: &Context, key: &ObjectKey) -> Result<Action> {
    if !status::holds_finalizer(obj) {
        ctx.forget(key);
        return Ok(Action::await_change());
    }
    let reference = obj.object_ref(&());
    match ctx.connection(&key.namespace, obj.connection_ref()) {
        ConnectionState::Usable(usable) => {
            let released = match obj.release(ctx, key, &usable).await {
                Ok(released) => released,
                Err(error) if error.is_fenced() => return Ok(Action::requeue(LAPSE_RETRY)),
                Err(error) => return Err(Error::Sync(error)),
            };
            if let SyncOutcome::Blocked { reason: limit, .. } = &released {
                let notice = Notice {
                    warning: true,
                    reason: reason::SAFETY_LIMIT_EXCEEDED,
                    action: action::DELETE,
                    note: format!(
                        "deletion waits: {limit}; raise the limit, or set deletionPolicy: Orphan"
                    ),
                };
                ctx.event(&reference, &notice).await;
                return Ok(Action::requeue(RELEASE_BLOCKED_WAIT));
            }
            let report = released.report().cloned().unwrap_or_default();
            ctx.metrics.wrote(key.kind, report.writes);
            if !report.failures.is_empty() {
                return Err(Error::Release(report.failures.len()));
            }
            let writes = report.writes;
            let notice = Notice {
                warning: false,
                reason: reason::DELETED,
                action: action::DELETE,
                note: format!(
                    "removed what {} owned from GHL ({writes} writes)",
                    key.owner()
                ),
            };
            ctx.event(&reference, &notice).await;
        }
        ConnectionState::Unusable {
            key: connection,
            reason: why,
            message,
            ..
        } => {
            let connections: Api<GhlConnection> =
                Api::namespaced(ctx.client.clone(), &connection.0);
            let exists = connections.get_opt(&connection.1).await?.is_some();
            if exists && why != reason::CROSS_NAMESPACE_REF_DENIED {
                tracing::info!(object = %key, "deletion waits for the connection: {message}");
                return Ok(Action::requeue(CONNECTION_WAIT));
            }
            // Only the holder of the object's Lease lets it go.
            if ctx.lapsed(key) {
                return Ok(Action::requeue(LAPSE_RETRY));
            }
            let notice = Notice {
                warning: true,
                reason: reason::ORPHANED,
                action: action::DELETE,
                note: format!("GHL data left in place: {message}"),
            };
            ctx.event(&reference, &notice).await;
        }
    }
    if ctx.lapsed(key) {
        return Ok(Action::requeue(LAPSE_RETRY));
    }
    status::set_finalizer(&ctx.client, obj, false).await?;
    ctx.forget(key);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::state::StateError;
    use crate::ghl::{GhlError, Operation};

    fn api_error(status: u16, retry_after: Option<Duration>) -> GhlError {
        GhlError::Api {
            operation: Operation::SearchContacts,
            status,
            message: format!("status {status}"),
            retry_after,
            rate_limit: None,
        }
    }

    #[test]
    fn sync_errors_sort_into_shared_outcomes() {
        let cases: Vec<(SyncError, &str)> = vec![
            (SyncError::Ghl(api_error(401, None)), "credentials"),
            (
                SyncError::Apply(ApplyError::Auth(api_error(403, None))),
                "credentials",
            ),
            (
                SyncError::Ghl(api_error(429, Some(Duration::from_secs(9)))),
                "rate",
            ),
            (SyncError::Ghl(api_error(503, None)), "unavailable"),
            (
                SyncError::State(StateError("page conflict".into())),
                "unavailable",
            ),
        ];
        for (error, expected) in cases {
            let outcome = classify(&error, "crm/acme");
            let got = match &outcome {
                Outcome::CredentialsRefused { connection } => {
                    assert_eq!(connection, "crm/acme");
                    "credentials"
                }
                Outcome::RateLimited { retry_after, .. } => {
                    assert_eq!(*retry_after, Some(Duration::from_secs(9)));
                    "rate"
                }
                Outcome::Unavailable { .. } => "unavailable",
                other => panic!("{error}: unexpected {other:?}"),
            };
            assert_eq!(got, expected, "{error}");
        }
    }
}
