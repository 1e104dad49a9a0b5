//! A downstream system for the change feed: an HTTP server that checks each delivery's
//! Standard Webhooks signature and keeps the CloudEvents it accepted. It can be slow, or fail
//! a number of deliveries first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ghl_operator::feed::signature::SigningKey;
use serde_json::Value;

/// The signing secret the tests give their sinks.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One accepted delivery.
#[derive(Clone, Debug)]
pub struct Received {
    pub event: Value,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    /// Deliveries refused (with `fail_status`, 503 unless set) before accepting any.
    fail_first: AtomicU64,
    fail_status: AtomicU16,
    delay: Mutex<Duration>,
    bad_signatures: AtomicU64,
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    inner: Arc<Inner>,
    pub url: String,
    pub addr: SocketAddr,
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = *inner.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = SigningKey::from_secret(SECRET.as_bytes()).unwrap();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    if header("content-type") != "application/cloudevents+json"
        || !key.verify(
            &header("webhook-id"),
            timestamp,
            &body,
            &header("webhook-signature"),
        )
    {
        inner.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    if inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::from_u16(inner.fail_status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    assert_eq!(
        event["id"],
        header("webhook-id").as_str(),
        "webhook-id is the event id"
    );
    inner.received.lock().unwrap().push(Received {
        event,
        at: Instant::now(),
    });
    StatusCode::NO_CONTENT
}

impl Sink {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        inner.fail_status.store(503, Ordering::SeqCst);
        let app = Router::new()
            .route("/hooks/ghl", post(receive))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            inner,
            url: format!("http://{addr}/hooks/ghl"),
            addr,
        }
    }

    /// Answers every delivery this much later.
    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    /// Refuses the next `n` deliveries with 503.
    pub fn fail_next(&self, n: u64) {
        self.fail_next_with(n, 503);
    }

    /// Answers the next `n` deliveries with `status` (a 5xx the feed retries, a 4xx it gives
    /// up); `n` 0 accepts again.
    pub fn fail_next_with(&self, n: u64, status: u16) {
        self.inner.fail_status.store(status, Ordering::SeqCst);
        self.inner.fail_first.store(n, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn bad_signatures(&self) -> u64 {
        self.inner.bad_signatures.load(Ordering::SeqCst)
    }

    /// The contacts of the events received, in order.
    pub fn subjects(&self) -> Vec<Value> {
        self.received()
            .iter()
            .map(|r| r.event["subject"].clone())
            .collect()
    }

    /// The newest event about `contact`, if any.
    pub fn latest(&self, contact: &str) -> Option<Received> {
        self.received()
            .into_iter()
            .rev()
            .find(|r| r.event["subject"] == contact)
    }
}
