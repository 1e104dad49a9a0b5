//! The operator's metrics (`ghl_operator_*`), labelled by kind, result and error category —
//! never by object name or error text — plus the GHL client's (`ghl_*`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricsRegistry;

use crate::controller::runtime::condition_gauges::ObjectStates;
use crate::crd::Kind;
use crate::crd::connection::CredentialType;
use crate::feed::FeedMetrics;
use crate::ghl::GhlMetrics;
use crate::webhook::WebhookMetrics;

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
    reconcile: ReconcileMetrics,
    credentials: CredentialMetrics,
    pub leader: Gauge,
    pub shards_held: Gauge,
    pub objects: ObjectStates,
    pub ghl: Arc<GhlMetrics>,
    pub feed: FeedMetrics,
    pub webhooks: WebhookMetrics,
}

/// Reconciles, full and targeted.
#[derive(Debug)]
struct ReconcileMetrics {
    reconciles: Family<KindResult, Counter>,
    failures: Family<KindCategory, Counter>,
    durations: Family<KindLabel, Histogram, fn() -> Histogram>,
    writes: Family<KindLabel, Counter>,
    targeted: Family<KindResult, Counter>,
    webhook_to_applied: Histogram,
}

/// Credentials: expiry and renewal per connection, rotations, dependents restarted.
#[derive(Debug, Default)]
struct CredentialMetrics {
    expiry: Family<ConnectionLabel, Gauge>,
    renewal: Family<ConnectionLabel, Gauge>,
    refresh_failures: Family<ConnectionLabel, Gauge>,
    rotations: Family<CredentialKind, Counter>,
    restarts: Counter,
}

/// `ghl_operator_build_info`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: &'static str,
    commit: &'static str,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

impl Metrics {
    pub fn register(registry: &mut MetricsRegistry) -> Self {
        let ghl = Arc::new(GhlMetrics::register(registry));
        let feed = FeedMetrics::register(registry);
        let webhooks = WebhookMetrics::register(registry);
        let objects = ObjectStates::register(registry);
        let metrics = Self {
            reconcile: ReconcileMetrics {
                reconciles: Family::default(),
                failures: Family::default(),
                durations: Family::new_with_constructor(reconcile_histogram),
                writes: Family::default(),
                targeted: Family::default(),
                webhook_to_applied: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            },
            credentials: CredentialMetrics::default(),
            leader: Gauge::default(),
            shards_held: Gauge::default(),
            objects,
            ghl,
            feed,
            webhooks,
        };
        let sub = registry.sub_registry_with_prefix("ghl_operator");
        sub.register(
            "reconciles",
            "Reconciles by kind and result: ok (reconciled), requeue (waiting for a connection, the budget or other owners), stalled (invalid spec), error (retried with backoff)",
            metrics.reconcile.reconciles.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Failed reconciles by kind and error category",
            metrics.reconcile.failures.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            metrics.reconcile.durations.clone(),
        );
        sub.register(
            "ghl_writes",
            "GHL write calls made by applied plans, by kind",
            metrics.reconcile.writes.clone(),
        );
        sub.register(
            "leader",
            "1 while this process holds the leader Lease",
            metrics.leader.clone(),
        );
        sub.register(
            "shards_held",
            "Shards this process holds (--shards; 1 for the leader when not sharded)",
            metrics.shards_held.clone(),
        );
        sub.register(
            "credential_expiry_timestamp_seconds",
            "When each connection's access token expires (OAuth)",
            metrics.credentials.expiry.clone(),
        );
        sub.register(
            "credential_renewal_timestamp_seconds",
            "When each connection's access token is next renewed (OAuth)",
            metrics.credentials.renewal.clone(),
        );
        sub.register(
            "credential_refresh_failures",
            "Consecutive failed attempts to renew each connection's access token (OAuth); 0 after a renewal",
            metrics.credentials.refresh_failures.clone(),
        );
        sub.register(
            "credential_rotations",
            "Access tokens renewed or exchanged, by credential type",
            metrics.credentials.rotations.clone(),
        );
        sub.register(
            "targeted_syncs",
            "Targeted syncs of the contacts webhooks named, by result: applied, in_sync, planned, skipped, error",
            metrics.reconcile.targeted.clone(),
        );
        sub.register(
            "webhook_to_applied_seconds",
            "From a webhook reaching the operator to its contact being repaired (or found in sync) by a targeted sync",
            metrics.reconcile.webhook_to_applied.clone(),
        );
        sub.register(
            "rollout_restarts",
            "Dependent workloads restarted for a new access token",
            metrics.credentials.restarts.clone(),
        );
        let build_info: Family<BuildInfo, Gauge> = Family::default();
        build_info
            .get_or_create(&BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
                commit: crate::telemetry::COMMIT,
            })
            .set(1);
        sub.register(
            "build_info",
            "1, labelled with the running binary's version and the commit it was built from",
            build_info,
        );
        // Closed label sets start at 0, so `rate()` and `increase()` see their first event.
        for kind in [Kind::GhlConnection, Kind::ContactSyncPolicy, Kind::TagRule] {
            for result in ["ok", "requeue", "stalled", "error"] {
                metrics
                    .reconcile
                    .reconciles
                    .get_or_create(&KindResult {
                        kind: kind.as_str(),
                        result,
                    })
                    .inc_by(0);
            }
        }
        for result in ["applied", "in_sync", "planned", "skipped", "error"] {
            metrics
                .reconcile
                .targeted
                .get_or_create(&KindResult {
                    kind: Kind::ContactSyncPolicy.as_str(),
                    result,
                })
                .inc_by(0);
        }
        for credential in ["oauth", "pit"] {
            metrics
                .credentials
                .rotations
                .get_or_create(&CredentialKind { credential })
                .inc_by(0);
        }
        metrics
    }

    pub fn reconciled(&self, kind: Kind, result: &'static str, took: Duration) {
        let kind = kind.as_str();
        self.reconcile
            .reconciles
            .get_or_create(&KindResult { kind, result })
            .inc();
        self.reconcile
            .durations
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: Kind, category: &'static str) {
        self.reconcile
            .failures
            .get_or_create(&KindCategory {
                kind: kind.as_str(),
                category,
            })
            .inc();
    }

    pub fn wrote(&self, kind: Kind, writes: u64) {
        self.reconcile
            .writes
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc_by(writes);
    }

    pub fn rotated(&self, credential: CredentialType) {
        let credential = match credential {
            CredentialType::OAuth => "oauth",
            CredentialType::PrivateIntegrationToken => "pit",
        };
        self.credentials
            .rotations
            .get_or_create(&CredentialKind { credential })
            .inc();
    }

    /// A targeted sync finished with `result`, `latency` after its oldest webhook.
    pub fn targeted(&self, result: &'static str, latency: Duration) {
        self.reconcile
            .targeted
            .get_or_create(&KindResult {
                kind: Kind::ContactSyncPolicy.as_str(),
                result,
            })
            .inc();
        if matches!(result, "applied" | "in_sync") {
            self.reconcile
                .webhook_to_applied
                .observe(latency.as_secs_f64());
        }
    }

    pub fn restarted(&self) {
        self.credentials.restarts.inc();
    }

    /// Drops a deleted connection's gauges.
    pub fn forget_connection(&self, key: &(String, String)) {
        let label = ConnectionLabel {
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        self.credentials.expiry.remove(&label);
        self.credentials.renewal.remove(&label);
        self.credentials.refresh_failures.remove(&label);
    }

    /// Records a connection's consecutive failed renewals.
    pub fn refresh_failures(&self, key: &(String, String), failures: u32) {
        let label = ConnectionLabel {
            namespace: key.0.clone(),
            name: key.1.clone(),
        };
        self.credentials
            .refresh_failures
            .get_or_create(&label)
            .set(i64::from(failures));
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
            self.credentials
                .expiry
                .get_or_create(&label)
                .set(at.as_second());
        }
        if let Some(at) = renewal {
            self.credentials
                .renewal
                .get_or_create(&label)
                .set(at.as_second());
        }
    }
}
