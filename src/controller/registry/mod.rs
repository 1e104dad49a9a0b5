//! Registries: what this process knows of who serves whom and who owns what, kept in memory
//! and read by every reconcile. No I/O of their own.
//!
//! - [`clients`]: one live GHL client and budget per GhlConnection, and its readiness;
//! - [`reference`]: where an object stands with the connection it names (usable or why not);
//! - [`declarations`]: what every owner declares on each location (a policy's records, a
//!   rule's tags), and which contacts each policy's ledger holds;
//! - [`shards`]: the shards this process holds and the [`Fence`] each write checks;
//! - [`installed`]: when an agency connection last listed its installed locations;
//! - [`triggers`]: pure mappers from a change (a Secret, a declaration, a connection's
//!   readiness) to the objects it makes reconcile.
//!
//! [`Registry`] holds them with the controllers' caches; it is the part of the
//! [`Context`](super::context::Context) a reconcile reads to find its connection and its peers.

pub mod clients;
pub mod declarations;
pub mod installed;
pub mod reference;
pub mod shards;
pub mod triggers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::broadcast;

use self::clients::Clients;
use self::declarations::Declarations;
use self::installed::Listings;
use self::reference::ConnectionState;
use self::shards::{Shards, Work};
use super::object::ObjectKey;
use crate::crd::common::ConnectionRef;
use crate::crd::owner::Owner;
use crate::crd::{ContactSyncPolicy, GhlConnection, Kind, TagRule};
use crate::engine::fence::Fence;
use crate::engine::ownership::{PolicyDeclaration, TagDeclarations};

/// How long after this process takes a location's shard the owners on it wait for each
/// other to declare what they want (a restart must not let a junior policy or a rule act
/// before its seniors).
pub const OWNERS_PATIENCE: Duration = Duration::from_secs(120);

/// The controllers' caches (reflector stores).
#[derive(Clone)]
pub struct Stores {
    pub connections: Store<GhlConnection>,
    pub policies: Store<ContactSyncPolicy>,
    pub rules: Store<TagRule>,
}

fn at<K: kube::Resource<DynamicType = ()>>(namespace: &str, name: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

impl Stores {
    /// The namespaces holding cached objects (where the console looks for a person who may
    /// not list cluster-wide).
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .connections
            .state()
            .iter()
            .filter_map(|o| o.metadata.namespace.clone())
            .chain(
                self.policies
                    .state()
                    .iter()
                    .filter_map(|o| o.metadata.namespace.clone()),
            )
            .chain(
                self.rules
                    .state()
                    .iter()
                    .filter_map(|o| o.metadata.namespace.clone()),
            )
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Whether the object is in the cache (and so still exists, as far as we know).
    pub fn contains(&self, key: &ObjectKey) -> bool {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        match key.kind {
            Kind::GhlConnection => self.connections.get(&at(namespace, name)).is_some(),
            Kind::ContactSyncPolicy => self.policies.get(&at(namespace, name)).is_some(),
            Kind::TagRule => self.rules.get(&at(namespace, name)).is_some(),
        }
    }

    /// Every object of the three kinds in the caches.
    pub fn keys(&self) -> Vec<ObjectKey> {
        let connections = self.connections.state();
        let policies = self.policies.state();
        let rules = self.rules.state();
        connections
            .iter()
            .map(|c| ObjectKey::of(Kind::GhlConnection, c.as_ref()))
            .chain(
                policies
                    .iter()
                    .map(|p| ObjectKey::of(Kind::ContactSyncPolicy, p.as_ref())),
            )
            .chain(
                rules
                    .iter()
                    .map(|r| ObjectKey::of(Kind::TagRule, r.as_ref())),
            )
            .collect()
    }

    /// The connection a policy or rule names (its own, for a connection), while it is cached.
    fn connection_of(&self, key: &ObjectKey) -> Option<(String, String)> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        match key.kind {
            Kind::GhlConnection => Some((key.namespace.clone(), key.name.clone())),
            Kind::ContactSyncPolicy => self
                .policies
                .get(&at(namespace, name))
                .map(|p| reference::target(namespace, &p.spec.connection_ref)),
            Kind::TagRule => self
                .rules
                .get(&at(namespace, name))
                .map(|r| reference::target(namespace, &r.spec.connection_ref)),
        }
    }
}

/// Who serves whom and who owns what.
pub struct Registry {
    pub stores: Stores,
    pub clients: Arc<Clients>,
    pub declarations: Declarations,
    pub shards: Arc<Shards>,
    pub listings: Listings,
    /// Objects to reconcile now (e.g. the TagRules of a location a webhook named).
    wakes: broadcast::Sender<ObjectKey>,
    /// Whether objects may name a connection in another namespace.
    cross_namespace: bool,
}

impl Registry {
    pub fn new(
        stores: Stores,
        clients: Arc<Clients>,
        shards: Arc<Shards>,
        cross_namespace: bool,
    ) -> Self {
        Self {
            stores,
            clients,
            declarations: Declarations::default(),
            shards,
            listings: Listings::default(),
            wakes: broadcast::channel(4096).0,
            cross_namespace,
        }
    }

    /// Where an object in `namespace` stands with the connection `reference` names.
    pub fn connection(&self, namespace: &str, reference: &ConnectionRef) -> ConnectionState {
        reference::resolve(
            &self.stores.connections,
            &self.clients,
            self.cross_namespace,
            namespace,
            reference,
        )
    }

    /// What decides `key`'s shard: the location of its connection (all connections of a
    /// location, and every object using them, share a shard); while that is unknown, the
    /// connection's namespace and name.
    pub fn shard_key(&self, key: &ObjectKey) -> String {
        let (namespace, name) = self
            .stores
            .connection_of(key)
            .unwrap_or_else(|| (key.namespace.clone(), key.name.clone()));
        match self.stores.connections.get(&at(&namespace, &name)) {
            Some(c) => c.spec.location_id.clone(),
            None => format!("{namespace}/{name}"),
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

    /// Starts a reconcile of `key` if this process holds its shard (`None`: another replica's).
    pub fn enter(&self, key: &ObjectKey) -> Option<Work> {
        self.shards.enter(self.shard_of(key))
    }

    /// Whether `key`'s Lease lapsed or moved (its writes are refused now): what a reconcile
    /// found is then not this process's to report or act on, and it runs again after
    /// [`shards::LAPSE_RETRY`].
    pub fn lapsed(&self, key: &ObjectKey) -> bool {
        let lapsed = !self.fence_for(key).is_open();
        if lapsed {
            tracing::info!(object = %key, "the object's Lease lapsed during the reconcile; not reporting");
        }
        lapsed
    }

    /// Whether this process holds `location`'s shard (it alone takes its webhooks).
    pub fn holds_location(&self, location: &str) -> bool {
        self.shards.holds(self.shards.of(location))
    }

    /// The objects of `store` whose connection is on `location`.
    fn on_location<K: Owner>(&self, store: &Store<K>, location: &str) -> Vec<Arc<K>> {
        store
            .state()
            .into_iter()
            .filter(|o| {
                let namespace = o.meta().namespace.as_deref().unwrap_or_default();
                self.connection(namespace, o.connection_ref()).location() == Some(location)
            })
            .collect()
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
        let since: Option<Instant> = self.shards.held_since(self.shards.of(location));
        if since.is_none_or(|since| since.elapsed() > OWNERS_PATIENCE) {
            return Vec::new();
        }
        self.on_location(&self.stores.policies, location)
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && include(p))
            .map(|p| ObjectKey::of(Kind::ContactSyncPolicy, p.as_ref()))
            .filter(|k| k != except && !self.declarations.has_declared(k))
            .collect()
    }

    /// The declarations of the other policies on `location` (owners gone from the caches
    /// dropped first).
    pub fn policy_declarations(
        &self,
        location: &str,
        except: &ObjectKey,
    ) -> Vec<Arc<PolicyDeclaration>> {
        self.declarations.retain(|k| self.stores.contains(k));
        self.declarations.policies(location, except)
    }

    /// What the other owners on `location` declare for tags (owners gone from the caches
    /// dropped first).
    pub fn tag_declarations(&self, location: &str, except: &ObjectKey) -> TagDeclarations {
        self.declarations.retain(|k| self.stores.contains(k));
        self.declarations.tags(location, except)
    }

    /// Objects asked to reconcile now, as they are asked.
    pub fn subscribe_wakes(&self) -> broadcast::Receiver<ObjectKey> {
        self.wakes.subscribe()
    }

    /// Reconciles `key` now.
    pub fn wake(&self, key: ObjectKey) {
        // No receiver only means no controller listens (tests).
        let _ = self.wakes.send(key);
    }

    /// Reconciles every TagRule on `location` now.
    pub fn wake_rules(&self, location: &str) {
        for rule in self.on_location(&self.stores.rules, location) {
            self.wake(ObjectKey::of(Kind::TagRule, rule.as_ref()));
        }
    }
}
