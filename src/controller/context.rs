//! What every reconciler shares: the Kubernetes client, the operator's settings, the caches,
//! the GHL connections, who owns what, the Event recorder, metrics and per-object backoff.
//! Settings are parsed once (flags / environment) and passed in here; reconcilers read no
//! environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};

use tokio::sync::broadcast;

use super::backoff::Backoff;
use super::connections::Registry;
use super::feeds::Feeds;
use super::installed::Listings;
use super::metrics::Metrics;
use super::object::{Kind, ObjectKey};
use super::ownership::Ownership;
use super::reference::{self, ConnectionState};
use super::shards::{Shards, Work};
use super::targets::Targets;
use super::verdict::Notice;
use jiff::Timestamp;

use crate::crd::common::{ConnectionRef, Mode};
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};
use crate::credentials::oauth::OAuthManager;
use crate::egress::AllowList;
use crate::engine::SyncOptions;
use crate::engine::fence::Fence;
use crate::engine::ownership::{PolicyDeclaration, TagClaims};

/// How long after the process starts owners on a location wait for each other to declare
/// what they want (a restart must not let a junior policy or a rule act before its seniors).
pub const OWNERS_PATIENCE: Duration = Duration::from_secs(120);

/// The operator's settings.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Allow objects to reference GhlConnections in other namespaces.
    pub allow_cross_namespace_refs: bool,
    /// Contacts applied in parallel within one policy.
    pub apply_concurrency: usize,
    /// Full syncs of one connection's policies and rules at once (connections do not wait
    /// for each other).
    pub syncs_per_connection: usize,
    /// Every how many resyncs a policy also re-reads all notes and unsearchable fields.
    pub deep_resync_every: u32,
    /// How often a ready connection re-checks its credentials.
    pub connection_check_interval: Duration,
    /// Resync interval when a spec names none.
    pub default_resync: Duration,
    /// This process, as named in refresh claims and Events.
    pub identity: String,
    /// Where the operator may send a connection's token (GHL, or the sandbox).
    pub allowed_base_urls: AllowList,
    /// Where the change feed may send contact data.
    pub allowed_sinks: AllowList,
    /// Webhook work accepted and not done yet before the receiver answers 429.
    pub webhook_backlog: usize,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            allow_cross_namespace_refs: false,
            apply_concurrency: 4,
            syncs_per_connection: super::connections::DEFAULT_SYNCS_PER_CONNECTION,
            deep_resync_every: 6,
            connection_check_interval: Duration::from_secs(300),
            default_resync: Duration::from_secs(600),
            identity: "ghl-operator".to_owned(),
            allowed_base_urls: AllowList::ghl(),
            allowed_sinks: AllowList::default(),
            webhook_backlog: 10_000,
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

impl Stores {
    /// Whether the object is in the cache (and so still exists, as far as we know).
    pub fn contains(&self, key: &ObjectKey) -> bool {
        fn at<K: kube::Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectRef<K> {
            ObjectRef::new(&key.name).within(&key.namespace)
        }
        match key.kind {
            Kind::GhlConnection => self.connections.get(&at(key)).is_some(),
            Kind::ContactSyncPolicy => self.policies.get(&at(key)).is_some(),
            Kind::TagRule => self.rules.get(&at(key)).is_some(),
        }
    }
}

/// Shared by all reconcilers.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub connections: Arc<Registry>,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// OAuth refresh state (single flight per connection, grants not stored yet).
    pub oauth: OAuthManager,
    /// What every policy and rule wants, by location.
    pub ownership: Ownership,
    /// The change feeds, webhook counts and the backlog of webhook work.
    pub events: Feeds,
    /// Contacts waiting for targeted syncs.
    pub targets: Targets,
    /// When agency connections last listed their installed locations.
    pub installed: Listings,
    /// Objects to reconcile now (e.g. the TagRules of a location a webhook named).
    pub wakes: broadcast::Sender<ObjectKey>,
    /// The shards this process holds: reconciles start only for their objects, and every
    /// GHL write and ledger write checks the object's shard's fence.
    pub shards: Arc<Shards>,
    /// Resyncs per object, to pick the deep ones.
    resyncs: Mutex<HashMap<ObjectKey, u32>>,
    /// One lock per object: its full reconcile and targeted syncs never overlap.
    locks: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        stores: Stores,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        shards: Arc<Shards>,
    ) -> Self {
        Self {
            shards,
            connections: Arc::new(Registry::with_syncs_per_connection(
                Arc::clone(&metrics.ghl),
                config.syncs_per_connection,
            )),
            events: Feeds::new(config.webhook_backlog, metrics.feed.clone()),
            client,
            config,
            stores,
            recorder,
            metrics,
            backoff: Backoff::default(),
            oauth: OAuthManager::default(),
            ownership: Ownership::default(),
            targets: Targets::default(),
            installed: Listings::default(),
            wakes: broadcast::channel(4096).0,
            resyncs: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Sync options for `key` in `mode`: the operator's concurrency, its shard's fence.
    pub fn sync_options(&self, mode: Mode, key: &ObjectKey) -> SyncOptions {
        let mut options = SyncOptions::new(mode, Timestamp::now());
        options.apply.concurrency = self.config.apply_concurrency;
        options.apply.fence = self.fence_for(key);
        options
    }

    /// What decides `key`'s shard: the location of its connection (all connections of a
    /// location, and every object using them, share a shard); while that is unknown, the
    /// connection's namespace and name.
    pub fn shard_key(&self, key: &ObjectKey) -> String {
        fn at<K: kube::Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectRef<K> {
            ObjectRef::new(name).within(namespace)
        }
        let connection = match key.kind {
            Kind::GhlConnection => (key.namespace.clone(), key.name.clone()),
            Kind::ContactSyncPolicy => {
                match self.stores.policies.get(&at(&key.namespace, &key.name)) {
                    Some(p) => reference::target(&key.namespace, &p.spec.connection_ref),
                    None => (key.namespace.clone(), key.name.clone()),
                }
            }
            Kind::TagRule => match self.stores.rules.get(&at(&key.namespace, &key.name)) {
                Some(r) => reference::target(&key.namespace, &r.spec.connection_ref),
                None => (key.namespace.clone(), key.name.clone()),
            },
        };
        match self
            .stores
            .connections
            .get(&at::<GhlConnection>(&connection.0, &connection.1))
        {
            Some(c) => c.spec.location_id.clone(),
            None => format!("{}/{}", connection.0, connection.1),
        }
    }

    /// The shard `key` belongs to.
    pub fn shard_of(&self, key: &ObjectKey) -> u32 {
        if self.shards.count() <= 1 {
            return 0;
        }
        self.shards.of(&self.shard_key(key))
    }

    /// The fence `key`'s writes check: its shard's.
    pub fn fence_for(&self, key: &ObjectKey) -> Fence {
        self.shards.fence(self.shard_of(key))
    }

    /// Whether `key`'s Lease lapsed or moved (its writes are refused now): what a reconcile
    /// found is then not this process's to report or act on, and it runs again after
    /// [`super::shards::LAPSE_RETRY`].
    pub fn lapsed(&self, key: &ObjectKey) -> bool {
        let lapsed = !self.fence_for(key).is_open();
        if lapsed {
            tracing::info!(object = %key, "the object's Lease lapsed during the reconcile; not reporting");
        }
        lapsed
    }

    /// Starts a reconcile of `key` if this process holds its shard (`None`: another replica's).
    pub fn enter(&self, key: &ObjectKey) -> Option<Work> {
        self.shards.enter(self.shard_of(key))
    }

    /// Whether this process holds `location`'s shard (it alone takes its webhooks).
    pub fn holds_location(&self, location: &str) -> bool {
        self.shards.holds(self.shards.of(location))
    }

    /// Forgets what was kept about every object of a shard lost or given up (its feeds stop;
    /// whoever holds it next starts from the cluster's state).
    pub fn forget_shard(&self, shard: u32) {
        let mut keys: Vec<ObjectKey> = Vec::new();
        keys.extend(
            self.stores
                .connections
                .state()
                .iter()
                .map(|c| ObjectKey::of(Kind::GhlConnection, c.as_ref())),
        );
        keys.extend(
            self.stores
                .policies
                .state()
                .iter()
                .map(|p| ObjectKey::of(Kind::ContactSyncPolicy, p.as_ref())),
        );
        keys.extend(
            self.stores
                .rules
                .state()
                .iter()
                .map(|r| ObjectKey::of(Kind::TagRule, r.as_ref())),
        );
        for key in keys {
            if self.shard_of(&key) == shard {
                self.forget(&key);
            }
        }
    }

    /// Where an object in `namespace` stands with the connection `reference` names.
    pub fn connection(&self, namespace: &str, reference: &ConnectionRef) -> ConnectionState {
        reference::resolve(
            &self.stores.connections,
            &self.connections,
            self.config.allow_cross_namespace_refs,
            namespace,
            reference,
        )
    }

    /// Policies on `location` other than `except` for which `include` holds, that have not
    /// declared what they want since this process took the location's shard — while that is
    /// recent enough to wait.
    pub fn undeclared_policies(
        &self,
        location: &str,
        except: &ObjectKey,
        include: impl Fn(&ContactSyncPolicy) -> bool,
    ) -> Vec<ObjectKey> {
        let since = self.shards.held_since(self.shards.of(location));
        if since.is_none_or(|since| since.elapsed() > OWNERS_PATIENCE) {
            return Vec::new();
        }
        self.stores
            .policies
            .state()
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && include(p))
            .filter(|p| {
                let namespace = p.metadata.namespace.as_deref().unwrap_or_default();
                self.connection(namespace, &p.spec.connection_ref)
                    .location()
                    == Some(location)
            })
            .map(|p| ObjectKey::of(Kind::ContactSyncPolicy, p.as_ref()))
            .filter(|k| k != except && !self.ownership.has_declared(k))
            .collect()
    }

    /// The declarations of the other policies on `location` (owners gone from the caches
    /// dropped first).
    pub fn declarations(&self, location: &str, except: &ObjectKey) -> Vec<Arc<PolicyDeclaration>> {
        self.ownership.retain(|k| self.stores.contains(k));
        self.ownership.policies(location, except)
    }

    /// What the other owners on `location` want for tags (owners gone from the caches
    /// dropped first).
    pub fn tag_claims(&self, location: &str, except: &ObjectKey) -> TagClaims {
        self.ownership.retain(|k| self.stores.contains(k));
        self.ownership.tag_claims(location, except)
    }

    /// The object's lock, held by its reconcile and its targeted syncs.
    pub async fn lock(&self, key: &ObjectKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key.clone())
                .or_default(),
        );
        lock.lock_owned().await
    }

    /// Reconciles every object of `kind` on `location` now.
    pub fn wake_all(&self, kind: Kind, location: &str) {
        let on_location = |namespace: Option<&String>, reference: &ConnectionRef| {
            self.connection(namespace.map_or("", String::as_str), reference)
                .location()
                == Some(location)
        };
        let keys: Vec<ObjectKey> = match kind {
            Kind::TagRule => self
                .stores
                .rules
                .state()
                .iter()
                .filter(|r| on_location(r.metadata.namespace.as_ref(), &r.spec.connection_ref))
                .map(|r| ObjectKey::of(kind, r.as_ref()))
                .collect(),
            Kind::ContactSyncPolicy => self
                .stores
                .policies
                .state()
                .iter()
                .filter(|p| on_location(p.metadata.namespace.as_ref(), &p.spec.connection_ref))
                .map(|p| ObjectKey::of(kind, p.as_ref()))
                .collect(),
            Kind::GhlConnection => Vec::new(),
        };
        for key in keys {
            let _ = self.wakes.send(key);
        }
    }

    /// Publishes an Event (its note redacted); failures to publish are logged, never fatal.
    pub async fn event(&self, reference: &ObjectReference, notice: &Notice) {
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

    /// Counts a resync of `key`; true when this one should be deep (the first one is).
    pub fn deep_resync(&self, key: &ObjectKey) -> bool {
        let every = self.config.deep_resync_every.max(1);
        let mut counts = self.resyncs.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_default();
        let deep = n.is_multiple_of(every);
        *n = n.wrapping_add(1);
        deep
    }

    /// Forgets everything kept about an object that is gone: its backoff and resync count;
    /// for a connection its client, OAuth state and gauges; for a policy or rule what it
    /// owned (the others re-plan).
    pub fn forget(&self, key: &ObjectKey) {
        self.backoff.succeeded(key);
        self.metrics.objects.forget(key);
        self.resyncs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        match key.kind {
            Kind::GhlConnection => {
                let connection = (key.namespace.clone(), key.name.clone());
                self.events.remove(&connection);
                self.installed.forget(&connection);
                self.connections.remove(&connection);
                self.oauth.forget(&connection.0, &connection.1);
                self.metrics.forget_connection(&connection);
            }
            Kind::ContactSyncPolicy | Kind::TagRule => self.ownership.forget(key),
        }
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
