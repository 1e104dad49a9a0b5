//! The one reconcile pipeline of ContactSyncPolicies and TagRules:
//!
//! 1. deletion — with `deletionPolicy: Delete`, remove from GHL what the ledger owns (or, with
//!    the connection gone for good, leave it and say so), then drop the finalizer;
//! 2. settings — the spec's durations parsed with bounds (a bad one stalls, naming the field);
//! 3. connection — resolved from the registry;
//! 4. prepare — what the object declares on its location, published before any GHL call so
//!    the other owners can respect it;
//! 5. sync — observe → plan → settle through the engine, when the connection is usable: of
//!    everything the object manages ([`Reach::Full`]), or of the contacts a webhook named
//!    ([`Reach::Contacts`], a targeted reconcile);
//! 6. the approval — whether an approved plan was applied or is outdated ([`approval`]);
//! 7. the verdict ([`verdict`], pure) → status ([`status`]), Events, metrics and the next
//!    reconcile.
//!
//! A kind implements [`Synced`] (steps 4 and 5, its removal on deletion, its own status
//! fields); refused credentials, 429s, backoff, connection readiness, approvals and finalizers
//! are handled here, once for both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use rand::RngExt;

use super::approval;
use super::status;
use super::verdict::{CONNECTION_WAIT, Facts, Notice, Outcome, Requeue, Verdict, verdict};
use super::write;
use crate::admission::stamps::Subject;
use crate::controller::context::Context;
use crate::controller::error::{Error, Result};
use crate::controller::object::ObjectKey;
use crate::controller::registry::Stores;
use crate::controller::registry::clients::Readiness;
use crate::controller::registry::reference::{ConnectionState, Usable};
use crate::controller::registry::shards::LAPSE_RETRY;
use crate::crd::common::{DeletionPolicy, Mode, PlanSummary, duration_field};
use crate::crd::conditions::{self, Phase};
use crate::crd::kind::Object;
use crate::crd::owner::Owner;
use crate::crd::vocabulary::{action, reason};
use crate::crd::{GhlConnection, Kind};
use crate::engine::state::StateError;
use crate::engine::state::secret::{LedgerOwner, SecretLedgerStore};
use crate::engine::targeted::Scope;
use crate::engine::{SyncError, SyncOutcome};
use crate::ghl::ErrorClass;

/// The shortest and longest `resyncInterval`.
pub const RESYNC_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 86_400));

/// What a reconcile observes.
#[derive(Clone, Debug)]
pub enum Reach {
    /// Everything the object manages (a full reconcile, on a spec change or a resync).
    Full,
    /// Only these contacts (a targeted reconcile, after GHL's webhooks named them).
    Contacts(Scope),
}

/// What a kind's sync found: the outcome the verdict reads, the plan summary status records,
/// and the kind's own facts for its status.
#[derive(Debug)]
pub struct Findings<D> {
    pub outcome: SyncOutcome<Facts>,
    pub plan: PlanSummary,
    pub detail: D,
}

/// What a kind brings to the pipeline.
#[async_trait]
pub trait Synced: Owner + Object + Send + Sync {
    const KIND: Kind;
    /// What `prepare` hands to `sync` (e.g. the validated records).
    type Prepared: Send;
    /// What a sync found beyond the verdict's facts, for the status (counts, failures).
    type Detail: Send + Sync;

    /// The controller's cache of the kind.
    fn cache(stores: &Stores) -> &Store<Self>;

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

    /// Observes what `reach` covers, plans, and settles the plan (`approved`: the hash of a
    /// plan approved to be applied once).
    async fn sync(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        prepared: Self::Prepared,
        connection: &Usable,
        reach: &Reach,
        approved: Option<&str>,
    ) -> Result<Findings<Self::Detail>, SyncError>;

    /// Removes from GHL what the object owns (its deletion with `deletionPolicy: Delete`),
    /// within its `safety` limits: `Blocked` (a larger plan) and records that failed keep the
    /// object (and its finalizer) for another try.
    async fn remove_owned(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        connection: &Usable,
    ) -> Result<SyncOutcome<()>, SyncError>;

    /// Records the kind's own facts of a sync in its status.
    fn record(status: &mut Self::Status, detail: &Self::Detail);
}

/// The ledger of `obj` in the Secrets it owns, its writes fenced by the object's shard.
/// It takes over an earlier owner's ledger when annotated `ghl.servis.ai/adopt-ledger`.
pub fn ledger_of<K: Synced>(ctx: &Context, obj: &K) -> SecretLedgerStore {
    SecretLedgerStore::new(
        ctx.client.clone(),
        LedgerOwner::of(K::KIND, obj),
        ctx.registry.fence_for(&ObjectKey::of(K::KIND, obj)),
    )
    .adopting(
        obj.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::crd::vocabulary::ADOPT_LEDGER).cloned()),
    )
}

/// The interval with ±10% jitter, so objects created together do not resync together.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..=1.1))
}

/// What a sync left for the status and Events: the plan (its approval reviewed), the kind's
/// facts, and what to tell about the approval.
struct Ran<D> {
    plan: PlanSummary,
    detail: D,
    approval: Option<Notice>,
}

/// Reconciles one object of kind `K` (a full reconcile).
pub async fn reconcile<K: Synced>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = ObjectKey::of(K::KIND, obj.as_ref());
    // Another replica's shard: it reconciles this one (a shard gained reconciles everything).
    let Some(_work) = ctx.registry.enter(&key) else {
        return Ok(Action::await_change());
    };
    tracing::debug!(kind = K::KIND.as_str(), object = %key, "reconciling");
    // Never alongside a targeted reconcile of the same object.
    let _lock = ctx.runtime.lock(&key).await;
    if obj.meta().deletion_timestamp.is_some() {
        return finalize(obj.as_ref(), &ctx, &key).await;
    }
    let spec = obj.owner_spec();
    write::set_finalizer(
        &ctx.client,
        obj.as_ref(),
        spec.deletion_policy == DeletionPolicy::Delete,
    )
    .await?;
    let resync = duration_field(
        spec.resync_interval,
        "spec.resyncInterval",
        ctx.config.default_resync,
        RESYNC_BOUNDS.0,
        RESYNC_BOUNDS.1,
    );
    let connection = ctx.registry.connection(&key.namespace, spec.connection_ref);
    let approval = approval::pending(obj.meta(), obj.recorded_plan()).map(|hash| {
        let subject = Subject {
            kind: K::KIND,
            namespace: &key.namespace,
            name: &key.name,
        };
        let digest = obj.spec_digest();
        approval::authorize(
            ctx.config.approvals,
            &ctx.credentials.keys,
            (&subject, obj.meta(), &digest),
            hash,
        )
    });
    let ran = match &resync {
        Err(invalid) => {
            obj.stand_down(&ctx, &key, connection.location());
            Some((Outcome::InvalidSpec(invalid.to_string()), None))
        }
        Ok(_) => {
            run(
                obj.as_ref(),
                &ctx,
                &key,
                &connection,
                &Reach::Full,
                approval.as_ref(),
            )
            .await
        }
    };
    // The Lease behind this object lapsed or moved while it ran (a write was refused for it,
    // or it is closed now): what it found is not this process's to report. Retried shortly:
    // a lapse that ends reconciles it here; a shard that moved is skipped then (its holder
    // reconciles it); a lost leader exits.
    let Some((outcome, ran)) = ran.filter(|_| !ctx.registry.lapsed(&key)) else {
        return Ok(Action::requeue(LAPSE_RETRY));
    };
    pause_if_refused(&outcome, &connection);
    let verdict = verdict(&outcome, spec.mode, obj.conditions());
    let previous = obj.owner_status().cloned().unwrap_or_default();
    let now = Timestamp::now();
    let generation = obj.meta().generation;
    let mut next = status::next(
        &previous,
        generation,
        &verdict,
        ran.as_ref().map(|r| &r.plan),
        now,
    );
    if let Some(ran) = &ran {
        K::record(&mut next, &ran.detail);
    }
    write::patch_status(&ctx.client, obj.as_ref(), &next).await?;
    let now_true = conditions::merge(obj.conditions(), &verdict.conditions, None, now);
    ctx.metrics.objects.record(&key, &now_true);
    let reference = obj.object_ref(&());
    let approval = ran.and_then(|r| r.approval);
    for notice in approval.iter().chain(&verdict.events) {
        ctx.publish(&reference, notice).await;
    }
    report(&ctx, &key, &outcome, &verdict);
    let action = match verdict.requeue {
        Requeue::Resync => {
            ctx.runtime.backoff.succeeded(&key);
            Action::requeue(jittered(resync.unwrap_or(ctx.config.default_resync)))
        }
        Requeue::Backoff => Action::requeue(ctx.runtime.backoff.failed(&key)),
        Requeue::After(wait) => Action::requeue(wait),
        Requeue::AwaitChange => Action::await_change(),
    };
    ctx.metrics
        .reconciled(K::KIND, verdict.result, started.elapsed());
    Ok(action)
}

/// A targeted reconcile: the same prepare and sync as a full one, observing only `scope`'s
/// contacts, under the object's lock. It writes no status: what it cannot settle quietly (a
/// plan to report, a failure) wakes the full reconcile, which reports it. Returns what
/// happened (a metric label).
pub async fn reconcile_contacts<K: Synced>(
    ctx: &Context,
    key: &ObjectKey,
    scope: Scope,
) -> &'static str {
    let at = ObjectRef::new(&key.name).within(&key.namespace);
    let Some(obj) = K::cache(&ctx.registry.stores).get(&at) else {
        return "skipped";
    };
    // Only while this process holds the object's shard (it may have moved since the webhook).
    let Some(_work) = ctx.registry.enter(key) else {
        return "skipped";
    };
    let _lock = ctx.runtime.lock(key).await;
    let connection = ctx
        .registry
        .connection(&key.namespace, obj.connection_ref());
    if obj.meta().deletion_timestamp.is_some() || !matches!(connection, ConnectionState::Usable(_))
    {
        return "skipped";
    }
    let contacts = scope.ids.len();
    let reach = Reach::Contacts(scope);
    let Some((outcome, _)) = run(obj.as_ref(), ctx, key, &connection, &reach, None).await else {
        return "skipped";
    };
    pause_if_refused(&outcome, &connection);
    match &outcome {
        Outcome::Synced(synced) => {
            let writes = synced.report().map_or(0, |r| r.writes);
            if writes > 0 {
                ctx.metrics.wrote(K::KIND, writes);
                tracing::info!(object = %key, contacts, writes, "targeted reconcile applied");
            }
            match synced {
                SyncOutcome::InSync { .. } => "in_sync",
                SyncOutcome::Applied { report, .. } if report.failures.is_empty() => "applied",
                _ => {
                    ctx.registry.wake(key.clone());
                    "planned"
                }
            }
        }
        // What the full reconcile already reports (or waits for).
        Outcome::InvalidSpec(_)
        | Outcome::ConnectionUnusable { .. }
        | Outcome::WaitingForOwners(_) => "skipped",
        Outcome::CredentialsRefused { .. }
        | Outcome::RateLimited { .. }
        | Outcome::Unavailable { .. } => {
            tracing::info!(object = %key, "targeted reconcile failed; the full reconcile reports it");
            ctx.registry.wake(key.clone());
            "error"
        }
    }
}

/// Steps 4 to 6: what the object declares, then the sync if the connection allows it, then
/// its approval reviewed. `None`: a write was refused by the fence (nothing to report; see the
/// callers).
async fn run<K: Synced>(
    obj: &K,
    ctx: &Context,
    key: &ObjectKey,
    connection: &ConnectionState,
    reach: &Reach,
    approval: Option<&approval::Approval>,
) -> Option<(Outcome, Option<Ran<K::Detail>>)> {
    let prepared = obj.prepare(ctx, key, connection.location()).await;
    let usable = match (prepared, connection) {
        (Err(invalid @ Outcome::InvalidSpec(_)), _) => return Some((invalid, None)),
        (
            _,
            ConnectionState::Unusable {
                phase,
                reason,
                message,
                ..
            },
        ) => {
            let outcome = Outcome::ConnectionUnusable {
                phase: *phase,
                reason,
                message: message.clone(),
            };
            return Some((outcome, None));
        }
        (Err(waiting), _) => return Some((waiting, None)),
        (Ok(prepared), ConnectionState::Usable(usable)) => (prepared, usable),
    };
    let (prepared, usable) = usable;
    let mode = obj.owner_spec().mode;
    let missing = missing_scopes(mode, usable);
    if !missing.is_empty() {
        let message = format!(
            "the grant of {} lacks {} (needed for mode {mode:?}); nothing is written until it is granted",
            usable.label(),
            missing.join(", "),
        );
        let outcome = Outcome::ConnectionUnusable {
            phase: Phase::Stalled,
            reason: reason::MISSING_SCOPE,
            message,
        };
        return Some((outcome, None));
    }
    // A full sync waits only behind the same connection's other full syncs (a closed gate
    // cannot happen: it is never closed); a targeted one, a few contacts, never waits.
    let _turn = match reach {
        Reach::Full => Some(usable.handle.gate.acquire().await),
        Reach::Contacts(_) => None,
    };
    let approved = approval.and_then(approval::Approval::authorized);
    match obj.sync(ctx, key, prepared, usable, reach, approved).await {
        Ok(mut found) => {
            let approval = approval::review(approval, &mut found.plan, &found.outcome);
            let ran = Ran {
                plan: found.plan,
                detail: found.detail,
                approval,
            };
            Some((Outcome::Synced(found.outcome), Some(ran)))
        }
        Err(error) if error.is_fenced() => None,
        Err(error) => Some((classify(&error, &usable.label()), None)),
    }
}

/// Credentials refused: every user of the connection stops, not only this one, until the
/// connection is checked again.
fn pause_if_refused(outcome: &Outcome, connection: &ConnectionState) {
    if let (Outcome::CredentialsRefused { .. }, ConnectionState::Usable(usable)) =
        (outcome, connection)
    {
        usable.handle.set_readiness(Readiness {
            ready: false,
            reason: reason::CREDENTIALS_REJECTED,
            message: "GHL refused the credentials".into(),
        });
    }
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
    if let SyncError::State(found @ StateError::FromPreviousOwner { .. }) = error {
        return Outcome::ConnectionUnusable {
            phase: Phase::Stalled,
            reason: reason::LEDGER_FROM_PREVIOUS_OWNER,
            message: found.to_string(),
        };
    }
    match error.ghl() {
        Some(e) if e.class() == ErrorClass::Auth => Outcome::CredentialsRefused {
            connection: connection.to_owned(),
        },
        Some(e) if e.class() == ErrorClass::RateLimited => Outcome::RateLimited {
            retry_after: e.retry_after(),
            message: e.to_string(),
        },
        _ => Outcome::Unavailable {
            category: error.category(),
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
const REMOVAL_BLOCKED_WAIT: Duration = Duration::from_secs(300);

/// Deletion: with our finalizer (`deletionPolicy: Delete`), remove what the object owns from
/// GHL, then let it go. Never hangs on a connection that is gone for good; waits for one that
/// still exists (it may come back) rather than orphan GHL data silently.
async fn finalize<K: Synced>(obj: &K, ctx: &Context, key: &ObjectKey) -> Result<Action> {
    if !write::holds_finalizer(obj) {
        ctx.forget(key);
        return Ok(Action::await_change());
    }
    let reference = obj.object_ref(&());
    match ctx
        .registry
        .connection(&key.namespace, obj.connection_ref())
    {
        ConnectionState::Usable(usable) => {
            let removed = match obj.remove_owned(ctx, key, &usable).await {
                Ok(removed) => removed,
                Err(error) if error.is_fenced() => return Ok(Action::requeue(LAPSE_RETRY)),
                Err(error) => return Err(Error::Sync(error)),
            };
            if let SyncOutcome::Blocked { reason: limit, .. } = &removed {
                let notice = Notice {
                    warning: true,
                    reason: reason::SAFETY_LIMIT_EXCEEDED,
                    action: action::DELETE,
                    note: format!(
                        "deletion waits: {limit}; raise the limit, or set deletionPolicy: Orphan"
                    ),
                };
                ctx.publish(&reference, &notice).await;
                return Ok(Action::requeue(REMOVAL_BLOCKED_WAIT));
            }
            let report = removed.report().cloned().unwrap_or_default();
            ctx.metrics.wrote(key.kind, report.writes);
            if !report.failures.is_empty() {
                return Err(Error::Removal(report.failures.len()));
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
            ctx.publish(&reference, &notice).await;
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
            if ctx.registry.lapsed(key) {
                return Ok(Action::requeue(LAPSE_RETRY));
            }
            let notice = Notice {
                warning: true,
                reason: reason::ORPHANED,
                action: action::DELETE,
                note: format!("GHL data left in place: {message}"),
            };
            ctx.publish(&reference, &notice).await;
        }
    }
    if ctx.registry.lapsed(key) {
        return Ok(Action::requeue(LAPSE_RETRY));
    }
    write::set_finalizer(&ctx.client, obj, false).await?;
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
        use crate::engine::apply::ApplyError;
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
                SyncError::State(StateError::Conflict {
                    name: "page".into(),
                }),
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
                Outcome::Unavailable { category, .. } => {
                    assert_eq!(*category, error.category());
                    "unavailable"
                }
                other => panic!("{error}: unexpected {other:?}"),
            };
            assert_eq!(got, expected, "{error}");
        }
    }
}
