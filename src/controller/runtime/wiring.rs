//! The three kube-runtime controllers and what makes each reconcile: its objects' spec and
//! annotation changes, the Secrets and ConfigMaps they read, their connection's readiness,
//! other owners on the same location changing what they want — and, on deletion, forgetting
//! what the process kept about them.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use kube::{Client, Resource};
use tokio::sync::watch;
use tracing::Instrument;

use crate::controller::context::Context;
use crate::controller::error::error_policy;
use crate::controller::intake::feeds;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::kinds::connection;
use crate::controller::reconcile::pipeline::{self, Synced};
use crate::controller::registry::Stores;
use crate::controller::registry::triggers::{self, SourceKind};
use crate::controller::runtime::scope::{self, Scope, Watched};
use crate::controller::runtime::targeted;
use crate::crd::Kind;
use crate::crd::owner::Owner;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// Every reconcile's span: which object, the connection it goes through and that connection's
/// location, as fields a log query can select on (`location="…"` follows one sub-account).
fn reconcile_span(
    kind: Kind,
    namespace: &str,
    name: &str,
    connection: &str,
    location: &str,
) -> tracing::Span {
    tracing::info_span!(
        "reconcile",
        kind = kind.as_str(),
        namespace,
        name,
        connection,
        location,
    )
}

/// A connection's span: it is its own connection.
fn connection_span(obj: &GhlConnection) -> tracing::Span {
    use kube::ResourceExt;
    reconcile_span(
        Kind::GhlConnection,
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
        &obj.name_any(),
        &obj.spec.location_id,
    )
}

/// A policy's or rule's span: its connection (in its own namespace unless the reference names
/// another) and that connection's location, from the cache (empty while it is not there).
fn owner_span<K: Owner + crate::controller::reconcile::pipeline::Synced>(
    obj: &K,
    connections: &Store<GhlConnection>,
) -> tracing::Span {
    use kube::ResourceExt;
    let namespace = obj.namespace().unwrap_or_default();
    let reference = obj.connection_ref();
    let home = reference
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.clone());
    let location = connections
        .get(&ObjectRef::new(&reference.name).within(&home))
        .map(|c| c.spec.location_id.clone())
        .unwrap_or_default();
    reconcile_span(
        K::KIND,
        &namespace,
        &obj.name_any(),
        &reference.name,
        &location,
    )
}

/// Publishes the change feed's Events as the operator's.
fn feed_events(
    ctx: &Arc<Context>,
) -> impl Fn(
    k8s_openapi::api::core::v1::ObjectReference,
    feeds::FeedEvent,
) -> futures::future::BoxFuture<'static, ()>
+ Send
+ Sync
+ 'static {
    let ctx = Arc::clone(ctx);
    move |reference, event| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            let notice = crate::controller::reconcile::verdict::Notice {
                warning: event.warning,
                reason: event.reason,
                action: crate::crd::vocabulary::action::EXPORT,
                note: event.note,
            };
            ctx.publish(&reference, &notice).await;
        })
    }
}

/// A stop signal every task can wait on.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn new(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    pub fn stopped(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// A kind's object stream: its own spec changes (status-only updates are ignored, so writing
/// status does not reconcile again), deletions marked by the API server, and annotation edits
/// (a user's way to ask for a reconcile now). `gone` hears of every object deleted for good.
fn objects<K: Watched>(
    client: &Client,
    scope: &Scope,
    (reader, writer): (Store<K>, reflector::store::Writer<K>),
    gone: impl Fn(&K) + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    reflector::reflector(writer, scope::objects(client, scope, reader))
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(obj) = event {
                gone(obj);
            }
        })
        .touched_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        )
}

/// Forgets an object of `kind` once it is deleted.
fn forgetting<K: Resource>(ctx: &Arc<Context>, kind: Kind) -> impl Fn(&K) + Send + 'static {
    let ctx = Arc::clone(ctx);
    move |obj| ctx.forget(&ObjectKey::of(kind, obj))
}

/// Logs the outcome of each reconcile the controller reports (errors are already handled by
/// the error policy; these are the runtime's own, such as a missing object).
async fn drain<K: Resource, E: std::fmt::Display + 'static, S>(kind: Kind, results: S)
where
    S: futures::Stream<
            Item = Result<
                (ObjectRef<K>, Action),
                kube::runtime::controller::Error<E, watcher::Error>,
            >,
        >,
{
    results
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(kind = kind.as_str(), %error, "controller event");
            }
        })
        .await;
}

/// The three caches (reflector stores), made before the controllers run so the
/// [`Context`] can read them.
pub struct Caches {
    connections: (
        Store<GhlConnection>,
        reflector::store::Writer<GhlConnection>,
    ),
    policies: (
        Store<ContactSyncPolicy>,
        reflector::store::Writer<ContactSyncPolicy>,
    ),
    rules: (Store<TagRule>, reflector::store::Writer<TagRule>),
}

impl Caches {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let connections = reflector::store::<GhlConnection>();
        let policies = reflector::store::<ContactSyncPolicy>();
        let rules = reflector::store::<TagRule>();
        Self {
            connections: (connections.0, connections.1),
            policies: (policies.0, policies.1),
            rules: (rules.0, rules.1),
        }
    }

    pub fn stores(&self) -> Stores {
        Stores {
            connections: self.connections.0.clone(),
            policies: self.policies.0.clone(),
            rules: self.rules.0.clone(),
        }
    }
}

/// What the three controllers share.
struct Shared<'a> {
    client: &'a Client,
    scope: &'a Scope,
    ctx: Arc<Context>,
    config: ControllerConfig,
    stop: &'a Stop,
}

/// Runs the three controllers (and what webhooks cause) until `stop`.
pub async fn run_controllers(
    client: &Client,
    ctx: &Arc<Context>,
    caches: Caches,
    scope: &Scope,
    concurrency: u16,
    stop: &Stop,
) {
    let stores = caches.stores();
    let shared = Shared {
        client,
        scope,
        ctx: Arc::clone(ctx),
        config: ControllerConfig::default()
            .concurrency(concurrency)
            .debounce(Duration::from_millis(500)),
        stop,
    };
    tracing::info!(namespace = %scope.describe(), "controllers started");
    let publish_feed_events = feed_events(ctx);
    futures::join!(
        run_connections(&shared, caches.connections),
        run_policies(&shared, caches.policies, &stores),
        run_rules(&shared, caches.rules, &stores),
        targeted::run(Arc::clone(ctx), stop.stopped()),
        feeds::write_statuses(
            &ctx.client,
            &ctx.intake.feeds,
            &publish_feed_events,
            stop.stopped()
        ),
        // Raced with the stop: a stop before the caches fill ends the streams that fill them.
        async {
            tokio::select! {
                () = wait_synced(&stores) => tracing::info!("caches synced"),
                _ = stop.stopped() => {}
            }
        },
    );
}

/// GhlConnections: their objects, and the Secrets they read.
async fn run_connections(
    shared: &Shared<'_>,
    (reader, writer): (
        Store<GhlConnection>,
        reflector::store::Writer<GhlConnection>,
    ),
) {
    let ctx = &shared.ctx;
    let store = reader.clone();
    let results = Controller::for_stream(
        objects(
            shared.client,
            shared.scope,
            (reader.clone(), writer),
            forgetting(ctx, Kind::GhlConnection),
        ),
        reader,
    )
    .with_config(shared.config.clone())
    .watches_stream(
        scope::metadata::<Secret>(shared.client, shared.scope),
        move |secret| triggers::connections_reading(&store, &secret),
    )
    .reconcile_all_on(triggers::on_shards_gained(ctx.registry.shards.subscribe()))
    // An install webhook asks agency connections to list their locations again.
    .reconcile_on(triggers::woken::<GhlConnection>(
        ctx.registry.subscribe_wakes(),
    ))
    .graceful_shutdown_on(shared.stop.stopped())
    .run(
        |obj, ctx| {
            let span = connection_span(&obj);
            connection::reconcile(obj, ctx).instrument(span)
        },
        |obj, error, ctx| {
            error_policy(
                &ObjectKey::of(Kind::GhlConnection, obj.as_ref()),
                error,
                &ctx,
            )
        },
        Arc::clone(ctx),
    );
    drain(Kind::GhlConnection, results).await;
}

/// A kind that goes through [`pipeline`]: its objects reconcile on their own changes, when
/// their connection's readiness changes, when this process gains a shard, when `owners` (another
/// owner on the location changing what it declares) names them, and when a webhook wakes them;
/// `more` adds what else makes the kind reconcile.
async fn run_synced<K>(
    shared: &Shared<'_>,
    store: (Store<K>, reflector::store::Writer<K>),
    owners: impl futures::Stream<Item = ObjectRef<K>> + Send + 'static,
    more: impl FnOnce(Controller<K>) -> Controller<K>,
) where
    K: Synced + Debug,
{
    let ctx = &shared.ctx;
    let reader = store.0.clone();
    let registry = &ctx.registry;
    let readiness = triggers::on_connection_change(registry.clients.subscribe(), reader.clone());
    let objects = objects(shared.client, shared.scope, store, forgetting(ctx, K::KIND));
    let controller = Controller::for_stream(objects, reader)
        .with_config(shared.config.clone())
        .reconcile_on(readiness)
        .reconcile_all_on(triggers::on_shards_gained(registry.shards.subscribe()))
        .reconcile_on(owners)
        .reconcile_on(triggers::woken::<K>(registry.subscribe_wakes()));
    let connections = ctx.registry.stores.connections.clone();
    let results = more(controller)
        .graceful_shutdown_on(shared.stop.stopped())
        .run(
            move |obj, ctx| {
                let span = owner_span(obj.as_ref(), &connections);
                pipeline::reconcile::<K>(obj, ctx).instrument(span)
            },
            |obj, error, ctx| error_policy(&ObjectKey::of(K::KIND, obj.as_ref()), error, &ctx),
            Arc::clone(ctx),
        );
    drain(K::KIND, results).await;
}

/// ContactSyncPolicies: also the ConfigMaps and Secrets they read their records from, and
/// their seniors on the location changing what they declare.
async fn run_policies(
    shared: &Shared<'_>,
    store: (
        Store<ContactSyncPolicy>,
        reflector::store::Writer<ContactSyncPolicy>,
    ),
    stores: &Stores,
) {
    let (by_config_map, by_secret) = (store.0.clone(), store.0.clone());
    let (juniors, homes) = (store.0.clone(), stores.connections.clone());
    let changes = shared.ctx.registry.declarations.subscribe();
    let owners = triggers::on_broadcast(changes, move |change| {
        triggers::policies_after(change, &juniors, &homes)
    });
    let config_maps = scope::metadata::<ConfigMap>(shared.client, shared.scope);
    let secrets = scope::metadata::<Secret>(shared.client, shared.scope);
    run_synced(shared, store, owners, |controller| {
        controller
            .watches_stream(config_maps, move |cm| {
                triggers::policies_reading(&by_config_map, SourceKind::ConfigMap, &cm)
            })
            .watches_stream(secrets, move |secret| {
                triggers::policies_reading(&by_secret, SourceKind::Secret, &secret)
            })
    })
    .await;
}

/// TagRules: also any other owner on the location changing what it wants.
async fn run_rules(
    shared: &Shared<'_>,
    store: (Store<TagRule>, reflector::store::Writer<TagRule>),
    stores: &Stores,
) {
    let (others, homes) = (store.0.clone(), stores.connections.clone());
    let changes = shared.ctx.registry.declarations.subscribe();
    let owners = triggers::on_broadcast(changes, move |change| {
        triggers::rules_after(change, &others, &homes)
    });
    run_synced(shared, store, owners, |controller| controller).await;
}

/// Resolves once the three caches hold their first full listing.
async fn wait_synced(stores: &Stores) {
    let _ = futures::join!(
        ready_of(&stores.connections),
        ready_of(&stores.policies),
        ready_of(&stores.rules)
    );
}

async fn ready_of<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> bool {
    store.wait_until_ready().await.is_ok()
}
