//! What every reconciler shares, in parts whose names say where state lives:
//!
//! - `client`, `recorder`: the Kubernetes API and its Events;
//! - `config`: the operator's settings, parsed once from flags (reconcilers read no
//!   environment);
//! - `registry` ([`Registry`]): who serves whom and who owns what;
//! - `intake` ([`Intake`]): the change feeds and the contacts waiting for targeted reconciles;
//! - `runtime` ([`Runtime`]): backoff, locks and deep resyncs;
//! - `metrics`, `credentials`: the operator's metrics; the OAuth refresh state and the
//!   operator's own keys.
//!
//! A function that needs one part takes that part; the few that need several (a reconcile,
//! the webhook handler) take the `Context`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};

use super::intake::Intake;
use super::intake::batches::Batches;
use super::intake::feeds::Feeds;
use super::object::ObjectKey;
use super::reconcile::verdict::Notice;
use super::registry::clients::{Clients, DEFAULT_SYNCS_PER_CONNECTION};
use super::registry::shards::Shards;
use super::registry::{Registry, Stores};
use super::runtime::Runtime;
use super::runtime::metrics::Metrics;
use crate::crd::Kind;
use crate::crd::common::Mode;
use crate::credentials::keys::OperatorKeys;
use crate::credentials::oauth::OAuthManager;
use crate::egress::AllowList;
use crate::engine::SyncOptions;
use crate::sources::HttpSources;

/// The operator's settings, as reconciles read them.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// This process, as named in refresh claims and Events.
    pub identity: String,
    /// Contacts applied in parallel within one policy.
    pub apply_concurrency: usize,
    /// How often a ready connection re-checks its credentials.
    pub connection_check_interval: Duration,
    /// Resync interval when a spec names none.
    pub default_resync: Duration,
    /// Where the operator may send a connection's token (GHL, or the sandbox).
    pub allowed_base_urls: AllowList,
    /// Where the change feed may send contact data.
    pub allowed_sinks: AllowList,
    /// Where policies may read contact records from (`contactsFrom[].http`).
    pub allowed_sources: AllowList,
    /// Which approvals are honoured.
    pub approvals: Approvals,
    /// How the parts are made (read once, when they are).
    pub sizing: Sizing,
}

/// Which approvals the reconcilers honour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Approvals {
    /// Any (no admission webhook runs): recorded as approved by `unverified`.
    #[default]
    Unverified,
    /// Only those the admission webhook sealed, by someone other than the spec's author.
    Sealed,
}

/// How the registry, the runtime and the intake are made.
#[derive(Clone, Debug)]
pub struct Sizing {
    /// Allow objects to reference GhlConnections in other namespaces.
    pub allow_cross_namespace_refs: bool,
    /// Full syncs of one connection's policies and rules at once (connections do not wait
    /// for each other).
    pub syncs_per_connection: usize,
    /// Every how many resyncs a policy also re-reads all notes and unsearchable fields.
    pub deep_resync_every: u32,
    /// Webhook work accepted and not done yet before the receiver answers 429.
    pub webhook_backlog: usize,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            identity: "ghl-operator".to_owned(),
            apply_concurrency: 4,
            connection_check_interval: Duration::from_secs(300),
            default_resync: Duration::from_secs(600),
            allowed_base_urls: AllowList::ghl(),
            allowed_sinks: AllowList::default(),
            allowed_sources: AllowList::default(),
            approvals: Approvals::default(),
            sizing: Sizing {
                allow_cross_namespace_refs: false,
                syncs_per_connection: DEFAULT_SYNCS_PER_CONNECTION,
                deep_resync_every: 6,
                webhook_backlog: 10_000,
            },
        }
    }
}

/// Shared by all reconcilers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub intake: Intake,
    pub runtime: Runtime,
    pub credentials: Credentials,
    /// The `contactsFrom[].http` documents of the policies, by policy and index.
    pub sources: HttpSources<ObjectKey>,
}

/// What the operator keeps about credentials: the OAuth refresh state (single flight per
/// connection, grants not stored yet), and its own keys (fingerprints, approval seals).
pub struct Credentials {
    pub oauth: OAuthManager,
    pub keys: OperatorKeys,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        stores: Stores,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        shards: Arc<Shards>,
        keys: OperatorKeys,
    ) -> Self {
        let sizing = &config.sizing;
        let clients = Arc::new(Clients::with_syncs_per_connection(
            Arc::clone(&metrics.ghl),
            sizing.syncs_per_connection,
        ));
        Self {
            registry: Registry::new(stores, clients, shards, sizing.allow_cross_namespace_refs),
            intake: Intake {
                feeds: Feeds::new(
                    sizing.webhook_backlog,
                    metrics.feed.clone(),
                    Some(client.clone()),
                ),
                batches: Batches::default(),
                callback_served: std::sync::atomic::AtomicBool::new(false),
            },
            runtime: Runtime::new(sizing.deep_resync_every),
            sources: HttpSources::new(config.allowed_sources.clone()),
            client,
            config,
            recorder,
            metrics,
            credentials: Credentials {
                oauth: OAuthManager::default(),
                keys,
            },
        }
    }

    /// Sync options for `key` in `mode`: the operator's concurrency, its shard's fence.
    pub fn sync_options(&self, mode: Mode, key: &ObjectKey) -> SyncOptions {
        let mut options = SyncOptions::new(mode, Timestamp::now());
        options.apply.concurrency = self.config.apply_concurrency;
        options.apply.fence = self.registry.fence_for(key);
        options
    }

    /// Publishes a Kubernetes Event (its note redacted); failures to publish are logged,
    /// never fatal.
    pub async fn publish(&self, reference: &ObjectReference, notice: &Notice) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_owned(),
            note: Some(crate::privacy::redact(&notice.note)),
            action: notice.action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason = notice.reason, "could not publish an Event");
        }
    }

    /// Forgets everything kept about an object that is gone (or whose shard this process no
    /// longer holds): its pacing and gauges; for a connection its client, feed, OAuth state
    /// and listings; for a policy or rule what it declared (the others re-plan).
    pub fn forget(&self, key: &ObjectKey) {
        self.runtime.forget(key);
        self.metrics.objects.forget(key);
        match key.kind {
            Kind::GhlConnection => {
                let connection = (key.namespace.clone(), key.name.clone());
                self.intake.feeds.remove(&connection);
                self.registry.listings.forget(&connection);
                self.registry.clients.remove(&connection);
                self.credentials.oauth.forget(&connection.0, &connection.1);
                self.metrics.forget_connection(&connection);
            }
            Kind::ContactSyncPolicy => {
                self.registry.declarations.forget(key);
                self.sources.forget(key, 0);
            }
            Kind::TagRule => self.registry.declarations.forget(key),
        }
    }

    /// Forgets what was kept about every object of a shard lost or given up (its feeds stop;
    /// whoever holds it next starts from the cluster's state).
    pub fn forget_shard(&self, shard: u32) {
        for key in self.registry.stores.keys() {
            if self.registry.shard_of(&key) == shard {
                self.forget(&key);
            }
        }
    }
}
