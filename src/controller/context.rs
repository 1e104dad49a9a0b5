//! What every reconciler shares: the Kubernetes client, the operator's settings, the GHL
//! connections, the Event recorder, metrics and per-object backoff. Settings are parsed once
//! (flags / environment) and passed in here; reconcilers read no environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricsRegistry;

use super::backoff::Backoff;
use super::connections::Registry;
use crate::crd::connection::CredentialType;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};
use crate::credentials::oauth::OAuthManager;
use crate::engine::tag_rule::Claim;
use crate::ghl::GhlMetrics;

/// The operator's settings.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Allow objects to reference GhlConnections in other namespaces.
    pub allow_cross_namespace_refs: bool,
    /// Contacts applied in parallel within one policy.
    pub apply_concurrency: usize,
    /// Every how many resyncs a policy also re-reads all notes and unsearchable fields.
    pub deep_resync_every: u32,
    /// How often a ready connection re-checks its credentials.
    pub connection_check_interval: Duration,
    /// Resync interval when a spec names none.
    pub default_resync: Duration,
    /// This process, as named in refresh claims and Events.
    pub identity: String,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            allow_cross_namespace_refs: false,
            apply_concurrency: 4,
            deep_resync_every: 6,
            connection_check_interval: Duration::from_secs(300),
            default_resync: Duration::from_secs(600),
            identity: "ghl-operator".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindResult {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Credential gauges are per connection: there are few, and "which credential expires when"
/// is the point (the only metrics labelled by object).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredentialKind {
    credential: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindCategory {
    kind: &'static str,
    category: &'static str,
}

/// Operator metrics (labels: kind, result, error category; never object names).
#[derive(Debug)]
pub struct Metrics {
    reconciles: Family<KindResult, Counter>,
    failures: Family<KindCategory, Counter>,
    durations: Family<KindLabel, Histogram, fn() -> Histogram>,
    writes: Family<KindLabel, Counter>,
    credential_expiry: Family<ConnectionLabel, Gauge>,
    credential_renewal: Family<ConnectionLabel, Gauge>,
    rotations: Family<CredentialKind, Counter>,
    restarts: Counter,
    pub leader: Gauge,
    pub ghl: Arc<GhlMetrics>,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

impl Metrics {
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let ghl = Arc::new(GhlMetrics::register(registry));
        let metrics = Self {
            reconciles: Family::default(),
            failures: Family::default(),
            durations: Family::new_with_constructor(reconcile_histogram),
            writes: Family::default(),
            credential_expiry: Family::default(),
            credential_renewal: Family::default(),
            rotations: Family::default(),
            restarts: Counter::default(),
            leader: Gauge::default(),
            ghl,
        };
        let sub = registry.sub_registry_with_prefix("ghl_operator");
        sub.register(
            "reconciles",
            "Reconciles by kind and result (ok, requeue, error)",
            metrics.reconciles.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Failed reconciles by kind and error category",
            metrics.failures.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            metrics.durations.clone(),
        );
        sub.register(
            "ghl_writes",
            "GHL writes made by applied plans, by kind",
            metrics.writes.clone(),
        );
        sub.register(
            "leader",
            "1 while this process holds the leader Lease",
            metrics.leader.clone(),
        );
        sub.register(
            "credential_expiry_timestamp_seconds",
            "When each connection's access token expires (OAuth)",
            metrics.credential_expiry.clone(),
        );
        sub.register(
            "credential_renewal_timestamp_seconds",
            "When each connection's access token is next renewed (OAuth)",
            metrics.credential_renewal.clone(),
        );
        sub.register(
            "credential_rotations",
            "Access tokens renewed or exchanged, by credential type",
            metrics.rotations.clone(),
        );
        sub.register(
            "rollout_restarts",
            "Dependent workloads restarted for a new access token",
            metrics.restarts.clone(),
        );
        metrics
    }

    pub fn reconciled(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&KindResult { kind, result })
            .inc();
        self.durations
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &'static str, category: &'static str) {
        self.failures
            .get_or_create(&KindCategory { kind, category })
            .inc();
    }

    pub fn wrote(&self, kind: &'static str, writes: u64) {
        self.writes
            .get_or_create(&KindLabel { kind })
            .inc_by(writes);
    }

    pub fn rotated(&self, credential: CredentialType) {
        let credential = match credential {
            CredentialType::OAuth => "oauth",
            CredentialType::PrivateIntegrationToken => "pit",
        };
        self.rotations
            .get_or_create(&CredentialKind { credential })
            .inc();
    }

    pub fn restarted(&self) {
        self.restarts.inc();
    }

    /// Records a connection's expiry and next renewal (unix seconds).
    pub fn credential_times(
        &self,
        key: &(String, String),
        expiry: Option<jiff::Timestamp>,
        renewal: Option<jiff::Timestamp>,
    ) {
        let label = ConnectionLabel {
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        if let Some(at) = expiry {
            self.credential_expiry
                .get_or_create(&label)
                .set(at.as_second());
        }
        if let Some(at) = renewal {
            self.credential_renewal
                .get_or_create(&label)
                .set(at.as_second());
        }
    }
}

/// The controllers' caches (reflector stores), for lookups by reconcilers.
#[derive(Clone)]
pub struct Stores {
    pub connections: Store<GhlConnection>,
    pub policies: Store<ContactSyncPolicy>,
    pub rules: Store<TagRule>,
}

/// A policy or rule, as the owner of a tag claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Shared by all reconcilers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub connections: Registry,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// OAuth refresh state (single flight per connection, grants not stored yet).
    pub oauth: OAuthManager,
    /// Tag claims of every policy and rule from their last plan, by connection and owner.
    claims: Mutex<HashMap<(String, Owner), Claim>>,
    /// Resyncs per object, to pick the deep ones.
    resyncs: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        stores: Stores,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            connections: Registry::new(Arc::clone(&metrics.ghl)),
            client,
            config,
            stores,
            recorder,
            metrics,
            backoff: Backoff::default(),
            oauth: OAuthManager::default(),
            claims: Mutex::new(HashMap::new()),
            resyncs: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event; failures to publish are logged, never fatal.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(crate::privacy::redact(&note)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }

    /// Counts a resync of `key`; true when this one should be deep (the first one is).
    pub fn deep_resync(&self, key: &str) -> bool {
        let every = self.config.deep_resync_every.max(1);
        let mut counts = self.resyncs.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.to_owned()).or_default();
        let deep = n.is_multiple_of(every);
        *n = n.wrapping_add(1);
        deep
    }

    /// Whether `owner` still exists (claims of deleted owners are ignored and dropped, even
    /// when the deletion was missed while a watch was down).
    fn exists(&self, owner: &Owner) -> bool {
        match owner.kind {
            super::policy::KIND => self
                .stores
                .policies
                .get(&ObjectRef::new(&owner.name).within(&owner.namespace))
                .is_some(),
            super::tag_rule::KIND => self
                .stores
                .rules
                .get(&ObjectRef::new(&owner.name).within(&owner.namespace))
                .is_some(),
            _ => false,
        }
    }

    /// Other owners' claims on the same connection (for `owner`'s conflict checks).
    pub fn claims_except(&self, owner: &Owner, connection: &str) -> Vec<Claim> {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.retain(|(_, o), _| self.exists(o));
        claims
            .iter()
            .filter(|((c, o), _)| c == connection && o != owner)
            .map(|(_, claim)| claim.clone())
            .collect()
    }

    pub fn forget_claim(&self, owner: &Owner, connection: &str) {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(connection.to_owned(), owner.clone()));
    }

    pub fn set_claim(&self, owner: &Owner, connection: &str, claim: Claim) {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((connection.to_owned(), owner.clone()), claim);
    }
}
