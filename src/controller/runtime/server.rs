//! The operator's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process
//! is alive) and `/readyz` (it can serve: connected to the API server, and either a standby or
//! the leader with its caches filled).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// What the probes report.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "could not encode metrics\n".to_owned(),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The router (separate from the listener for tests).
pub fn router(registry: Arc<Registry>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

/// Binds `addr` (before returning, so a bad address fails start-up) and serves until `stop`.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    serve_router(
        addr,
        router(registry, health),
        "/metrics, /healthz and /readyz",
        stop,
    )
    .await
}

/// How long a client may take to send a request's headers: a connection that trickles them
/// is closed (a slow client cannot hold the listener's memory).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long requests in flight get to finish after `stop`.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `addr` and serves `app` (named `what` in the logs) until `stop`.
pub async fn serve_router(
    addr: SocketAddr,
    app: Router,
    what: &'static str,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "serving {what}");
    Ok(tokio::spawn(serve_on(listener, None, app, what, stop)))
}

/// [`serve_router`] over TLS with `tls`.
pub async fn serve_router_tls(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    what: &'static str,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "serving {what} (TLS)");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    Ok(tokio::spawn(serve_on(
        listener,
        Some(acceptor),
        app,
        what,
        stop,
    )))
}

/// Serves `app` on `listener` (TLS with `tls`) until `stop`, HTTP/1 and HTTP/2, each
/// request's headers (and a TLS handshake) within [`HEADER_TIMEOUT`]; then lets requests in
/// flight finish (for at most [`DRAIN`]).
async fn serve_on(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    what: &'static str,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "the server of {what} could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
        match &tls {
            None => {
                tokio::spawn(serve_connection(builder, stream, app, watcher));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A handshake that does not finish in time is dropped.
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                    {
                        serve_connection(builder, stream, app, watcher).await;
                    }
                });
            }
        }
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("the server of {what} stopped with requests in flight");
    }
}

/// Serves one connection, watched for the graceful shutdown.
async fn serve_connection<I>(
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    io: I,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let service = TowerToHyperService::new(app);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let connection = watcher.watch(connection);
    // A client that goes away is no error of ours.
    let _ = connection.await;
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    use super::*;

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_health_and_metrics_are_exposed() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("probe_total_things", "a test counter", counter.clone());
        counter.inc();
        let health = Arc::new(Health::default());
        let app = router(Arc::new(registry), Arc::clone(&health));
        assert_eq!(get_path(app.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get_path(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.set_ready(true);
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        let (status, body) = get_path(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("probe_total_things_total 1"), "{body}");
    }
}
