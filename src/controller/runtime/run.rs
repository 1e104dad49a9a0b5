//! The `ghl-operator run` process: the metrics and health server, a preflight check, leader
//! election, and a clean stop on SIGTERM (in-flight reconciles finish, the Lease is given up)
//! or on a lost Lease (an error: the process should restart and stand by).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::sync::watch;

use crate::controller::context::{Context, OperatorConfig};
use crate::controller::intake::webhooks::Handler;
use crate::controller::registry::shards::Shards;
use crate::controller::runtime::leases::leader::{Elector, LeaseConfig};
use crate::controller::runtime::leases::manager::Manager;
use crate::controller::runtime::metrics::Metrics;
use crate::controller::runtime::scope::Scope;
use crate::controller::runtime::server::{self, Health};
use crate::controller::runtime::wiring::{self, Stop};
use crate::crd::GhlConnection;
use crate::credentials::keys::OperatorKeys;
use crate::engine::fence::Fence;
use crate::webhook::{PublicKeys, Receiver};

/// The webhook receiver's settings.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    pub addr: SocketAddr,
    /// Where the other replicas reach this receiver (`ip:port`), when sharded: each forwards
    /// the webhooks of shards it does not hold to their holder.
    pub advertise: Option<SocketAddr>,
    /// The keys webhooks are verified with.
    pub keys: PublicKeys,
}

/// How `ghl-operator run` runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: OperatorConfig,
    /// Watch one namespace only (default: all).
    /// The namespaces watched.
    pub scope: Scope,
    /// Objects of one kind reconciled at once.
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    /// `None` runs without leader election (one replica only).
    pub leader: Option<LeaseConfig>,
    /// More than 1: split the locations over this many shards, each with its own Lease
    /// (named after `leader`'s, which it needs); the replicas divide them.
    pub shards: u32,
    /// The operator's own namespace: its Leases and its keys live there.
    pub namespace: String,
    /// Serve GHL's webhooks (`POST /webhooks/ghl`).
    pub webhook: Option<WebhookOptions>,
    /// Serve the admission webhook that stamps approvals (and honour only stamped ones).
    pub admission: Option<crate::admission::AdmissionOptions>,
    /// Serve the web console here, for people's own tokens; the configuration says where the
    /// API server is (its credentials are dropped).
    pub console: Option<(SocketAddr, kube::Config)>,
}

/// How long in-flight reconciles may run on after a stop (the chart gives the pod 30 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// SIGTERM or Ctrl-C (also the sandbox's, which runs as a pod's PID 1 with `sandbox.enabled`).
pub async fn termination() {
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

/// Fails fast with a clear message when the API server is unreachable, the CRDs are missing,
/// or a watched namespace cannot be read.
async fn preflight(client: &Client, scope: &Scope) -> anyhow::Result<()> {
    let version = client
        .apiserver_version()
        .await
        .context("cannot reach the Kubernetes API server")?;
    tracing::info!(version = %version.git_version, "connected to the Kubernetes API server");
    for connections in scope.apis::<GhlConnection>(client) {
        let within = connections
            .namespace()
            .unwrap_or("all namespaces")
            .to_owned();
        match connections.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => anyhow::bail!(
                "the GhlConnection CRD is not installed: install the chart, or `ghl-operator crds | kubectl apply -f -`"
            ),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot list GhlConnections in {within} (check the operator's RBAC)")
                });
            }
        }
    }
    Ok(())
}

/// The webhook receiver. Standbys answer webhooks with 429 (GHL retries them) until they lead.
async fn serve_webhooks(
    webhook: &WebhookOptions,
    ctx: &Arc<Context>,
    metrics: &Metrics,
    stop: &Stop,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let receiver = Receiver::new(
        webhook.keys.clone(),
        Arc::new(Handler(Arc::clone(ctx))),
        metrics.webhooks.clone(),
    );
    let app = crate::webhook::receiver::router(Arc::new(receiver))
        .merge(crate::controller::intake::consent::router(Arc::clone(ctx)));
    let served = server::serve_router(
        webhook.addr,
        app,
        "POST /webhooks/ghl and GET /oauth/callback",
        stop.stopped(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", webhook.addr))?;
    ctx.intake
        .callback_served
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(served)
}

/// Runs the controllers until SIGTERM / Ctrl-C (graceful: in-flight reconciles finish and
/// the Lease is given up) or until leadership is lost (an error: the process should restart).
///
/// One piece: the process' life in order — serve, wait to lead, reconcile, drain, step down —
/// with the shutdown paths of each step next to it.
pub async fn run(client: Client, options: RunOptions) -> anyhow::Result<()> {
    let mut registry = MetricsRegistry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop::new(stop_rx);
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

    preflight(&client, &options.scope).await?;
    let caches = wiring::Caches::new();
    let reporter = Reporter {
        controller: crate::crd::vocabulary::FIELD_MANAGER.to_owned(),
        instance: Some(options.config.identity.clone()),
    };
    let sharding = match (&options.leader, options.shards) {
        (Some(lease), n) if n > 1 => Some((lease.clone(), n)),
        (None, n) if n > 1 => anyhow::bail!("--shards needs leader election (its Leases)"),
        _ => None,
    };
    let mut elector = match sharding {
        Some(_) => None,
        None => options
            .leader
            .clone()
            .map(|config| Elector::new(client.clone(), config)),
    };
    let shards = match &sharding {
        Some((_, n)) => Shards::leased(*n),
        None => Shards::single(elector.as_ref().map_or_else(Fence::open, Elector::fence)),
    };
    let keys = OperatorKeys::load_or_create(&client, &options.namespace).await?;
    // Every replica serves the admission webhook (the API server calls any of them).
    if let Some(admission) = &options.admission {
        crate::admission::start(
            &client,
            &options.namespace,
            keys.clone(),
            options.scope.clone(),
            admission,
            stop.stopped(),
        )
        .await?;
    }
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.config.clone(),
        caches.stores(),
        Recorder::new(client.clone(), reporter),
        Arc::clone(&metrics),
        Arc::clone(&shards),
        keys,
    ));
    let webhooks = match &options.webhook {
        Some(webhook) => Some(serve_webhooks(webhook, &ctx, &metrics, &stop).await?),
        None => None,
    };
    // Every replica serves the console: it acts as each person, never as the operator.
    if let Some((addr, config)) = &options.console {
        let stores = caches.stores();
        let watched = options.scope.clone();
        let hint: crate::console::access::Hint = Arc::new(move || {
            let mut namespaces = watched.namespaces();
            namespaces.extend(stores.namespaces());
            namespaces.sort();
            namespaces.dedup();
            namespaces
        });
        let console = Arc::new(crate::console::Console::for_people(config.clone(), hint));
        let (listener, local) = crate::console::bind(*addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (--console-addr)"))?;
        tracing::info!(addr = %local, "serving the console (each request as its person)");
        let stop = stop.stopped();
        tokio::spawn(async move {
            if let Err(error) = crate::console::serve(listener, console, stop).await {
                tracing::warn!(%error, "the console stopped");
            }
        });
    }
    health.set_ready(true);

    if let Some(elector) = elector.as_mut() {
        tracing::info!(lease = %elector.config().name, identity = %elector.config().identity, "waiting to become the leader");
        tokio::select! {
            _ = elector.acquire() => {},
            _ = stop.stopped() => {
                let _ = server.await;
                if let Some(webhooks) = webhooks {
                    let _ = webhooks.await;
                }
                return Ok(());
            }
        }
        tracing::info!("became the leader");
    }
    // Sharded: the shards come and go while the controllers run.
    let manager = sharding.map(|(lease, _)| {
        tracing::info!(shards = shards.count(), identity = %lease.identity, "sharding");
        let forget = Arc::clone(&ctx);
        let mut manager = Manager::new(
            client.clone(),
            lease,
            Arc::clone(&shards),
            metrics.shards_held.clone(),
            move |shard| forget.forget_shard(shard),
        )
        .advertising(
            options
                .webhook
                .as_ref()
                .and_then(|w| w.advertise)
                .map(|a| a.to_string()),
        );
        let stop = stop.clone();
        tokio::spawn(async move {
            manager.run(stop.stopped()).await;
            manager
        })
    });
    if manager.is_none() {
        metrics.leader.set(1);
        metrics.shards_held.set(1);
    }

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

    ctx.intake.feeds.set_leading(true);
    tokio::spawn(crate::controller::intake::sources::refresh(
        Arc::clone(&ctx),
        stop.stopped(),
    ));
    let controllers = wiring::run_controllers(
        &client,
        &ctx,
        caches,
        &options.scope,
        options.concurrency,
        &stop,
    );
    // In-flight reconciles get a grace period after the stop, then are dropped mid-step:
    // every step is safe to repeat, and the kubelet's SIGKILL would come anyway.
    tokio::select! {
        () = controllers => tracing::debug!("controllers stopped"),
        () = async {
            stop.stopped().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "in-flight reconciles did not finish within the grace period; leaving them"
        ),
    }
    ctx.intake.feeds.set_leading(false);
    // Changes already taken from GHL go out before the process does, if they can.
    ctx.intake.feeds.drain(Duration::from_secs(10)).await;
    metrics.leader.set(0);
    if let Some(manager) = manager
        && let Ok(mut manager) = manager.await
    {
        manager.step_down_all().await;
    }
    metrics.shards_held.set(0);
    let lost = *lost_rx.borrow_and_update();
    if let Some(holder) = holder
        && let Ok(mut elector) = holder.await
        && !lost
    {
        elector.step_down().await;
    }
    terminate.abort();
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(webhooks) = webhooks {
        let _ = webhooks.await;
    }
    if lost {
        anyhow::bail!("lost the leader Lease; exiting so a fresh process can stand by");
    }
    tracing::info!("stopped");
    Ok(())
}
