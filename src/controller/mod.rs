//! The operator: one kube-runtime controller per kind, sharing a [`context::Context`].
//!
//! - [`connection`], [`policy`], [`tag_rule`]: the reconcilers;
//! - [`connections`]: one GHL client and budget per GhlConnection;
//! - [`ledger_store`]: policies' and rules' ledgers in Secrets they own;
//! - [`triggers`]: what else makes an object reconcile (Secrets, ConfigMaps, connections);
//! - [`conditions`], [`backoff`], [`error`]: the status contract and failure handling;
//! - [`leader`], [`server`]: leader election on a Lease, and `/metrics`, `/healthz`, `/readyz`.

pub mod backoff;
pub mod conditions;
mod connection;
pub mod connections;
pub mod context;
mod credential;
pub mod error;
pub mod leader;
pub mod ledger_store;
mod policy;
pub mod server;
mod tag_rule;
pub mod triggers;

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{Predicate, WatchStreamExt, predicates};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::registry::Registry as MetricsRegistry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use self::context::{Context, Metrics, OperatorConfig, Stores};
use self::leader::{Elector, LeaseConfig};
use self::server::Health;
use self::triggers::SourceKind;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// How `ghl-operator run` runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: OperatorConfig,
    /// Watch one namespace only (default: all).
    pub watch_namespace: Option<String>,
    /// Objects of one kind reconciled at once.
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    /// `None` runs without leader election (one replica only).
    pub leader: Option<LeaseConfig>,
    /// This process's name in Events (usually the pod name).
    pub instance: String,
}

/// A stop signal every task can wait on.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    fn stopped(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Fails fast with a clear message when the API server is unreachable or the CRDs are missing.
async fn preflight(client: &Client, namespace: Option<&str>) -> anyhow::Result<()> {
    let version = client
        .apiserver_version()
        .await
        .context("cannot reach the Kubernetes API server")?;
    tracing::info!(version = %version.git_version, "connected to the Kubernetes API server");
    let connections: Api<GhlConnection> = api(client, namespace);
    match connections.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => anyhow::bail!(
            "the GhlConnection CRD is not installed: install the chart, or `ghl-operator crds | kubectl apply -f -`"
        ),
        Err(e) => Err(e).context("cannot list GhlConnections (check the operator's RBAC)"),
    }
}

/// A kind's object stream: its own spec changes (status-only updates are ignored, so writing
/// status does not reconcile again), deletions marked by the API server, and annotation edits
/// (a user's way to ask for a reconcile now).
fn objects<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        )
}

/// Logs the outcome of each reconcile the controller reports (errors are already handled by
/// the error policy; these are the runtime's own, such as a missing object).
async fn drain<K: Resource, E: std::fmt::Display + 'static, S>(kind: &'static str, results: S)
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
                tracing::debug!(kind, %error, "controller event");
            }
        })
        .await;
}

/// Runs the controllers until SIGTERM / Ctrl-C (graceful: in-flight reconciles finish and
/// the Lease is released) or until leadership is lost (an error: the process should restart).
pub async fn run(client: Client, options: RunOptions) -> anyhow::Result<()> {
    let mut registry = MetricsRegistry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop(stop_rx);
    let server = server::serve(
        options.metrics_addr,
        Arc::new(registry),
        Arc::clone(&health),
        stop.stopped(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", options.metrics_addr))?;
    let terminate = tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            termination().await;
            tracing::info!("stopping: finishing in-flight reconciles");
            let _ = stop_tx.send(true);
        }
    });

    let namespace = options.watch_namespace.as_deref();
    preflight(&client, namespace).await?;
    health.set_ready(true);

    let mut elector = options
        .leader
        .clone()
        .map(|config| Elector::new(client.clone(), config));
    if let Some(elector) = elector.as_mut() {
        tracing::info!(lease = %elector.config().name, identity = %elector.config().identity, "waiting to become the leader");
        tokio::select! {
            _ = elector.acquire() => {},
            _ = stop.stopped() => {
                let _ = server.await;
                return Ok(());
            }
        }
        tracing::info!("became the leader");
    }
    metrics.leader.set(1);

    // Leadership lost → stop everything and exit with an error.
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let holder = elector.map(|mut elector| {
        let stop_tx = stop_tx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = elector.hold() => {
                    let _ = lost_tx.send(true);
                    let _ = stop_tx.send(true);
                }
                _ = stop.stopped() => {},
            }
            elector
        })
    });

    run_controllers(&client, &options, Arc::clone(&metrics), &stop).await;
    metrics.leader.set(0);
    let lost = *lost_rx.borrow_and_update();
    if let Some(holder) = holder
        && let Ok(mut elector) = holder.await
        && !lost
    {
        elector.release().await;
    }
    terminate.abort();
    let _ = stop_tx.send(true);
    let _ = server.await;
    if lost {
        anyhow::bail!("lost the leader Lease; exiting so a fresh process can stand by");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn run_controllers(
    client: &Client,
    options: &RunOptions,
    metrics: Arc<Metrics>,
    stop: &Stop,
) {
    let namespace = options.watch_namespace.as_deref();
    let (connections_reader, connections_writer) = reflector::store::<GhlConnection>();
    let (policies_reader, policies_writer) = reflector::store::<ContactSyncPolicy>();
    let (rules_reader, rules_writer) = reflector::store::<TagRule>();
    let stores = Stores {
        connections: connections_reader.clone(),
        policies: policies_reader.clone(),
        rules: rules_reader.clone(),
    };
    let reporter = Reporter {
        controller: crate::crd::vocabulary::FIELD_MANAGER.to_owned(),
        instance: Some(options.instance.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.config.clone(),
        stores,
        recorder,
        metrics,
    ));
    let config = ControllerConfig::default()
        .concurrency(options.concurrency)
        .debounce(Duration::from_millis(500));
    // Metadata-only watches: a change is all that matters, the reconciler reads the content.
    let secrets: Api<PartialObjectMeta<Secret>> = api(client, namespace);
    let config_maps: Api<PartialObjectMeta<ConfigMap>> = api(client, namespace);
    let metadata = watcher::Config::default;

    let connections = {
        let store = connections_reader.clone();
        Controller::for_stream(
            objects(api::<GhlConnection>(client, namespace), connections_writer),
            connections_reader,
        )
        .with_config(config.clone())
        .watches_stream(
            watcher(secrets.clone(), metadata())
                .default_backoff()
                .touched_objects(),
            move |secret| triggers::connections_reading(&store, &secret),
        )
        .graceful_shutdown_on(stop.stopped())
        .run(
            connection::reconcile,
            |obj, error, ctx| {
                error::error_policy(connection::KIND, &key_of(obj.as_ref()), error, &ctx)
            },
            Arc::clone(&ctx),
        )
    };
    let policies = {
        let (by_config_map, by_secret) = (policies_reader.clone(), policies_reader.clone());
        let changes =
            triggers::on_connection_change(ctx.connections.subscribe(), policies_reader.clone());
        Controller::for_stream(
            objects(api::<ContactSyncPolicy>(client, namespace), policies_writer),
            policies_reader,
        )
        .with_config(config.clone())
        .watches_stream(
            watcher(config_maps, metadata())
                .default_backoff()
                .touched_objects(),
            move |cm| triggers::policies_reading(&by_config_map, SourceKind::ConfigMap, &cm),
        )
        .watches_stream(
            watcher(secrets, metadata())
                .default_backoff()
                .touched_objects(),
            move |secret| triggers::policies_reading(&by_secret, SourceKind::Secret, &secret),
        )
        .reconcile_on(changes)
        .graceful_shutdown_on(stop.stopped())
        .run(
            policy::reconcile,
            |obj, error, ctx| error::error_policy(policy::KIND, &key_of(obj.as_ref()), error, &ctx),
            Arc::clone(&ctx),
        )
    };
    let rules = {
        let changes =
            triggers::on_connection_change(ctx.connections.subscribe(), rules_reader.clone());
        Controller::for_stream(
            objects(api::<TagRule>(client, namespace), rules_writer),
            rules_reader,
        )
        .with_config(config)
        .reconcile_on(changes)
        .graceful_shutdown_on(stop.stopped())
        .run(
            tag_rule::reconcile,
            |obj, error, ctx| {
                error::error_policy(tag_rule::KIND, &key_of(obj.as_ref()), error, &ctx)
            },
            Arc::clone(&ctx),
        )
    };
    tracing::info!(
        namespace = namespace.unwrap_or("(all)"),
        "controllers started"
    );
    futures::join!(
        drain(connection::KIND, connections),
        drain(policy::KIND, policies),
        drain(tag_rule::KIND, rules),
        wait_synced(&ctx.stores).map(|_| tracing::info!("caches synced")),
    );
}

fn key_of<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
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
