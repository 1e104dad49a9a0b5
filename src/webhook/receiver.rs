//! `POST /webhooks/ghl`: GHL's webhooks, checked in this order and answered within
//! milliseconds (the work happens later, behind [`Intake`]):
//!
//! | check                                   | answer                                   |
//! |-----------------------------------------|------------------------------------------|
//! | no signature header (before the body)    | 401                                      |
//! | body over 256 KiB (declared or read)     | 413                                      |
//! | body not sent within 10 s                | 408                                      |
//! | more than 512 requests in flight         | 429                                      |
//! | signature wrong (raw bytes)              | 401                                      |
//! | not a GHL webhook                          | 400                                      |
//! | `timestamp` outside ±5 minutes (replay)  | 401                                      |
//! | `webhookId` seen already                 | 200, not processed again                 |
//! | no connection serves the location        | 202, counted                             |
//! | another replica holds the location       | forwarded to it: 200 if it took it       |
//! | the backlog is full (or not the leader)  | 429 — the only answer GHL retries        |
//! | accepted                                 | 200                                      |
//!
//! A forwarded webhook goes to the address its holder advertised (`ip:port`, on its shard
//! membership Lease), with GHL's signature headers: the holder checks it again, exactly as
//! if GHL had sent it there, and never forwards it further.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::payload::{Change, Webhook};
use super::replay::SeenIds;
use super::verify::PublicKeys;

/// The path GHL posts to.
pub const PATH: &str = "/webhooks/ghl";
/// Largest body accepted (GHL's are a few KiB).
pub const MAX_BODY: usize = 256 * 1024;
/// How long a body may take to arrive once its headers have.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handled at once; more are shed with 429 (GHL retries it). With [`MAX_BODY`] this
/// bounds what bodies in flight can hold to 128 MiB.
pub const MAX_IN_FLIGHT: usize = 512;
/// How far a webhook's `timestamp` may be from now.
pub const FRESHNESS: Duration = Duration::from_secs(300);
/// `webhookId`s remembered (several minutes of GHL's traffic for many locations).
pub const SEEN_CAPACITY: usize = 100_000;
/// The header of a webhook one replica forwarded to another (never forwarded again).
pub const FORWARDED: &str = "x-ghl-operator-forwarded";
/// How long a forward may take before GHL is answered 429 (it answers within milliseconds).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// The headers a forward carries: what the holder needs to verify the body.
const FORWARDED_HEADERS: [&str; 3] = ["content-type", "x-ghl-signature", "x-wh-signature"];

/// Where accepted webhooks go.
pub trait Intake: Send + Sync {
    /// Whether a connection the operator serves has this location.
    fn knows(&self, location: &str) -> bool;
    /// Whether an agency connection the operator serves belongs to this company (app
    /// installs name the company, and often a location no connection has yet).
    fn knows_company(&self, company: &str) -> bool;
    /// Takes a webhook for processing: refused when it cannot now (the backlog is full, or
    /// this process is not the leader), so that GHL retries it; or accepted once what it
    /// announced is stored.
    fn admit(&self, webhook: Webhook, received: Instant) -> Admission;
    /// Where another replica that holds the webhook's location takes webhooks (`ip:port`), when
    /// one does and said where.
    fn elsewhere(&self, _webhook: &Webhook) -> Option<String> {
        None
    }
}

/// Whether a webhook was taken.
pub enum Admission {
    Refused,
    Accepted,
    /// Accepted once this answers true (what it announced is stored); false: refused.
    Storing(BoxFuture<'static, bool>),
}

impl From<bool> for Admission {
    fn from(accepted: bool) -> Self {
        if accepted {
            Admission::Accepted
        } else {
            Admission::Refused
        }
    }
}

/// What to do with one webhook.
pub enum Decision {
    Answer(Outcome),
    /// Pass it to the replica at this address.
    Forward(String),
    /// Answer once what the webhook `id` announced is stored (2xx), or not (429).
    Store {
        id: String,
        stored: BoxFuture<'static, bool>,
    },
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Answer(outcome) => f.debug_tuple("Answer").field(outcome).finish(),
            Decision::Forward(address) => f.debug_tuple("Forward").field(address).finish(),
            Decision::Store { id, .. } => f.debug_struct("Store").field("id", id).finish(),
        }
    }
}

/// What happened to a webhook (a bounded metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    BadSignature,
    Malformed,
    Stale,
    TooLarge,
    UnknownLocation,
    Overloaded,
    Forwarded,
    /// The body did not arrive within [`BODY_TIMEOUT`].
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::BadSignature,
        Outcome::Malformed,
        Outcome::Stale,
        Outcome::TooLarge,
        Outcome::UnknownLocation,
        Outcome::Overloaded,
        Outcome::Forwarded,
        Outcome::TimedOut,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::BadSignature => "bad_signature",
            Outcome::Malformed => "malformed",
            Outcome::Stale => "stale",
            Outcome::TooLarge => "too_large",
            Outcome::UnknownLocation => "unknown_location",
            Outcome::Overloaded => "overloaded",
            Outcome::Forwarded => "forwarded",
            Outcome::TimedOut => "timed_out",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Outcome::Accepted | Outcome::Duplicate | Outcome::Forwarded => StatusCode::OK,
            Outcome::BadSignature | Outcome::Stale => StatusCode::UNAUTHORIZED,
            Outcome::Malformed => StatusCode::BAD_REQUEST,
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::UnknownLocation => StatusCode::ACCEPTED,
            Outcome::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Outcome::TimedOut => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `ghl_operator_webhooks_total{result}`.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    results: Family<ResultLabel, Counter>,
}

impl WebhookMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.sub_registry_with_prefix("ghl_operator").register(
            "webhooks",
            "GHL webhooks received, by result: accepted, duplicate, bad_signature, malformed, stale, too_large, unknown_location, overloaded, forwarded (to the replica holding the location), timed_out (a body too slow to arrive)",
            metrics.results.clone(),
        );
        // Every result starts at 0, so `increase()` sees the first one (alerts on bad
        // signatures fire on the first forged delivery, not the second).
        for outcome in Outcome::ALL {
            metrics
                .results
                .get_or_create(&ResultLabel {
                    result: outcome.label(),
                })
                .inc_by(0);
        }
        metrics
    }

    fn count(&self, outcome: Outcome) {
        self.results
            .get_or_create(&ResultLabel {
                result: outcome.label(),
            })
            .inc();
    }

    /// How many webhooks had `outcome`.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.results
            .get_or_create(&ResultLabel {
                result: outcome.label(),
            })
            .get()
    }
}

/// The receiver's state.
pub struct Receiver {
    keys: PublicKeys,
    seen: Mutex<SeenIds>,
    intake: Arc<dyn Intake>,
    metrics: WebhookMetrics,
    /// Forwards to other replicas.
    http: reqwest::Client,
}

impl Receiver {
    pub fn new(keys: PublicKeys, intake: Arc<dyn Intake>, metrics: WebhookMetrics) -> Self {
        Self {
            keys,
            seen: Mutex::new(SeenIds::new(SEEN_CAPACITY)),
            intake,
            metrics,
            http: {
                crate::tls::install_default_provider();
                reqwest::Client::builder()
                    .no_proxy()
                    // The body carries contact data: to the advertised address, nowhere else.
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(FORWARD_TIMEOUT)
                    .build()
                    .unwrap_or_default()
            },
        }
    }

    /// Decides on one webhook, as a replica that does not forward (forwards answered 429).
    pub async fn decide(&self, headers: &HeaderMap, body: &[u8], now: jiff::Timestamp) -> Outcome {
        match self.route(headers, body, now) {
            Decision::Answer(outcome) => outcome,
            Decision::Forward(_) => Outcome::Overloaded,
            Decision::Store { id, stored } => self.settle(&id, stored).await,
        }
    }

    /// Accepted once stored; otherwise refused, and its id forgotten so GHL's retry is taken.
    async fn settle(&self, id: &str, stored: BoxFuture<'static, bool>) -> Outcome {
        if stored.await {
            Outcome::Accepted
        } else {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget(id);
            Outcome::Overloaded
        }
    }

    /// Decides on one webhook (everything but reading the body and forwarding it).
    pub fn route(&self, headers: &HeaderMap, body: &[u8], now: jiff::Timestamp) -> Decision {
        match self.check(headers, body, now) {
            Ok(webhook) => self.take(webhook),
            Err(outcome) => Decision::Answer(outcome),
        }
    }

    /// The checks every replica makes, the forwarded-to one again.
    fn check(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: jiff::Timestamp,
    ) -> Result<Webhook, Outcome> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if self
            .keys
            .verify(header("x-ghl-signature"), header("x-wh-signature"), body)
            .is_err()
        {
            return Err(Outcome::BadSignature);
        }
        let Ok(webhook) = Webhook::parse(body) else {
            return Err(Outcome::Malformed);
        };
        if !webhook.fresh(now, FRESHNESS) {
            return Err(Outcome::Stale);
        }
        Ok(webhook)
    }

    /// Admits a checked webhook here, or names the replica to pass it to.
    fn take(&self, webhook: Webhook) -> Decision {
        // Held while admitting, so that two deliveries of one id are never both processed.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&webhook.webhook_id) {
            return Decision::Answer(Outcome::Duplicate);
        }
        let known = match &webhook.change {
            Change::Installation { company_id } => self.intake.knows_company(company_id),
            _ => webhook.location_id.is_empty() || self.intake.knows(&webhook.location_id),
        };
        if !known {
            return Decision::Answer(Outcome::UnknownLocation);
        }
        // The holder remembers the id (a retry may come back here and be forwarded again).
        if let Some(address) = self.intake.elsewhere(&webhook) {
            return Decision::Forward(address);
        }
        let id = webhook.webhook_id.clone();
        match self.intake.admit(webhook, Instant::now()) {
            Admission::Refused => Decision::Answer(Outcome::Overloaded),
            Admission::Accepted => {
                seen.insert(&id);
                Decision::Answer(Outcome::Accepted)
            }
            // Remembered now, so a repeat meanwhile is not processed twice; forgotten if it
            // cannot be stored.
            Admission::Storing(stored) => {
                seen.insert(&id);
                Decision::Store { id, stored }
            }
        }
    }

    /// Passes a webhook to the replica at `address`: forwarded if it took it, else 429 (GHL
    /// retries).
    async fn forward(&self, address: &str, headers: &HeaderMap, body: Bytes) -> Outcome {
        let mut request = self
            .http
            .post(format!("http://{address}{PATH}"))
            .header(FORWARDED, "1")
            .body(body);
        for name in FORWARDED_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.clone());
            }
        }
        match request.send().await {
            // Only a 200 means it took it (a 202 — a location its cache does not know yet —
            // would lose the webhook: GHL retries nothing but a 429).
            Ok(answer) if answer.status() == StatusCode::OK => Outcome::Forwarded,
            Ok(answer) => {
                tracing::debug!(
                    status = answer.status().as_u16(),
                    "the replica holding the location did not take a forwarded webhook"
                );
                Outcome::Overloaded
            }
            Err(error) => {
                tracing::debug!(%error, "could not forward a webhook");
                Outcome::Overloaded
            }
        }
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let outcome = match admissible(&headers) {
        Err(outcome) => outcome,
        Ok(()) => match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => match receiver.route(&headers, &bytes, jiff::Timestamp::now()) {
                Decision::Answer(outcome) => outcome,
                // Forwarded once already: the shards moved meanwhile; GHL retries.
                Decision::Forward(_) if headers.contains_key(FORWARDED) => Outcome::Overloaded,
                Decision::Forward(address) => receiver.forward(&address, &headers, bytes).await,
                Decision::Store { id, stored } => receiver.settle(&id, stored).await,
            },
            Err(error) => unread(&error),
        },
    };
    receiver.metrics.count(outcome);
    if outcome != Outcome::Accepted && outcome != Outcome::Duplicate {
        tracing::debug!(result = outcome.label(), "webhook not accepted");
    }
    outcome.status()
}

/// The checks made before a byte of the body is read: a signature header is there, and the
/// declared length is within [`MAX_BODY`].
fn admissible(headers: &HeaderMap) -> Result<(), Outcome> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !super::verify::signed(header("x-ghl-signature"), header("x-wh-signature")) {
        return Err(Outcome::BadSignature);
    }
    let declared = header("content-length").and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(Outcome::TooLarge);
    }
    Ok(())
}

/// Why a body could not be read: over the limit, or too slow to arrive.
fn unread(error: &axum::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<tower_http::timeout::TimeoutError>() {
            return Outcome::TimedOut;
        }
        source = cause.source();
    }
    Outcome::TooLarge
}

/// The receiver's routes: at most [`MAX_IN_FLIGHT`] requests at once (more are shed with
/// 429), each body within [`BODY_TIMEOUT`].
pub fn router(receiver: Arc<Receiver>) -> Router {
    let shed = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |_: tower::BoxError| async { StatusCode::TOO_MANY_REQUESTS },
        ))
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ));
    Router::new()
        .route(PATH, post(receive))
        .layer(shed)
        .with_state(receiver)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;
    use crate::sandbox::webhooks::Keys;

    #[derive(Default)]
    struct Recorder {
        admitted: AtomicUsize,
        full: AtomicBool,
        /// Where the location `far` is held (another replica), if anywhere.
        far: std::sync::Mutex<Option<String>>,
        /// `far` is not known here (a cache behind).
        far_unknown: AtomicBool,
    }

    impl Intake for Recorder {
        fn knows(&self, location: &str) -> bool {
            location == "loc" || (location == "far" && !self.far_unknown.load(Ordering::SeqCst))
        }

        fn elsewhere(&self, webhook: &Webhook) -> Option<String> {
            (webhook.location_id == "far")
                .then(|| self.far.lock().unwrap().clone())
                .flatten()
        }

        fn knows_company(&self, company: &str) -> bool {
            company == "co"
        }

        fn admit(&self, _: Webhook, _: Instant) -> Admission {
            if self.full.load(Ordering::SeqCst) {
                return Admission::Refused;
            }
            self.admitted.fetch_add(1, Ordering::SeqCst);
            Admission::Accepted
        }
    }

    fn signed(value: serde_json::Value) -> (HeaderMap, Vec<u8>) {
        let body = serde_json::to_vec(&value).unwrap();
        let (ed, _) = Keys::get().sign(&body);
        let mut headers = HeaderMap::new();
        headers.insert("x-ghl-signature", HeaderValue::from_str(&ed).unwrap());
        (headers, body)
    }

    fn event(id: &str, location: &str, at: &str) -> serde_json::Value {
        json!({"type": "ContactUpdate", "locationId": location, "webhookId": id,
               "timestamp": at, "id": "c1"})
    }

    /// A replica's receiver on a local port: its address, its intake and its metrics.
    async fn replica() -> (String, Arc<Recorder>, WebhookMetrics) {
        let keys = Keys::get();
        let recorder = Arc::new(Recorder::default());
        let metrics = WebhookMetrics::default();
        let receiver = Receiver::new(
            PublicKeys::from_pems(&[&keys.ed25519_public_pem]).unwrap(),
            Arc::clone(&recorder) as Arc<dyn Intake>,
            metrics.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(Arc::new(receiver))).await;
        });
        (address, recorder, metrics)
    }

    #[tokio::test]
    async fn a_webhook_for_another_replicas_location_is_forwarded_to_it_once() {
        let (a, a_intake, a_metrics) = replica().await;
        let (b, b_intake, b_metrics) = replica().await;
        // `far` is b's; a knows where b is, and b (wrongly) believes it is a's.
        *a_intake.far.lock().unwrap() = Some(b.clone());
        let now = jiff::Timestamp::now().to_string();
        let http = reqwest::Client::new();
        let post = |to: &str, value: serde_json::Value| {
            let (headers, body) = signed(value);
            let request = http
                .post(format!("http://{to}{PATH}"))
                .header("content-type", "application/json")
                .headers(headers)
                .body(body);
            async move { request.send().await.unwrap().status().as_u16() }
        };

        // Held by b: a forwards it with GHL's signature, b checks and takes it.
        assert_eq!(post(&a, event("f1", "far", &now)).await, 200);
        assert_eq!(b_intake.admitted.load(Ordering::SeqCst), 1);
        assert_eq!(a_intake.admitted.load(Ordering::SeqCst), 0);
        assert_eq!(a_metrics.get(Outcome::Forwarded), 1);
        assert_eq!(b_metrics.get(Outcome::Accepted), 1);
        // GHL's retry of it reaching a again: b remembers the id.
        assert_eq!(post(&a, event("f1", "far", &now)).await, 200);
        assert_eq!(b_intake.admitted.load(Ordering::SeqCst), 1);
        assert_eq!(b_metrics.get(Outcome::Duplicate), 1);

        // The replicas disagree (a shard moving): forwarded once, never again — 429.
        *b_intake.far.lock().unwrap() = Some(a.clone());
        assert_eq!(post(&a, event("f2", "far", &now)).await, 429);
        assert_eq!(b_metrics.get(Outcome::Overloaded), 1);
        assert_eq!(a_metrics.get(Outcome::Overloaded), 1);

        // Forged on the way: the holder checks the signature itself.
        let body = serde_json::to_vec(&event("f3", "far", &now)).unwrap();
        let (forged, _) = Keys::get().sign(b"something else");
        let status = http
            .post(format!("http://{a}{PATH}"))
            .header("x-ghl-signature", forged)
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401, "a checks it before forwarding");

        // The holder does not know the location yet (202): not taken, so 429, GHL retries.
        *b_intake.far.lock().unwrap() = None;
        b_intake.far_unknown.store(true, Ordering::SeqCst);
        assert_eq!(post(&a, event("f5", "far", &now)).await, 429);
        assert_eq!(b_metrics.get(Outcome::UnknownLocation), 1);

        // An address that redirects: the body goes nowhere else.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redirector = listener.local_addr().unwrap().to_string();
        let to_b = format!("http://{b}{PATH}");
        let app = Router::new().route(
            PATH,
            axum::routing::post(move || async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, to_b)],
                )
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        b_intake.far_unknown.store(false, Ordering::SeqCst);
        *a_intake.far.lock().unwrap() = Some(redirector);
        let before = b_metrics.get(Outcome::Accepted) + b_metrics.get(Outcome::Overloaded);
        assert_eq!(post(&a, event("f6", "far", &now)).await, 429);
        assert_eq!(
            b_metrics.get(Outcome::Accepted) + b_metrics.get(Outcome::Overloaded),
            before,
            "not followed to b"
        );

        // The holder gone: 429, GHL retries.
        *a_intake.far.lock().unwrap() = Some("127.0.0.1:9".into());
        assert_eq!(post(&a, event("f4", "far", &now)).await, 429);
        assert_eq!(b_intake.admitted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn every_answer_in_order() {
        let keys = Keys::get();
        let recorder = Arc::new(Recorder::default());
        let receiver = Receiver::new(
            PublicKeys::from_pems(&[&keys.ed25519_public_pem, &keys.rsa_public_pem]).unwrap(),
            Arc::clone(&recorder) as Arc<dyn Intake>,
            WebhookMetrics::default(),
        );
        let now: jiff::Timestamp = "2030-01-01T00:01:00Z".parse().unwrap();
        let at = "2030-01-01T00:00:00Z";

        let (headers, body) = signed(event("w1", "loc", at));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Accepted
        );
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Duplicate
        );
        assert_eq!(
            recorder.admitted.load(Ordering::SeqCst),
            1,
            "processed once"
        );

        let (mut forged, body2) = signed(event("w2", "loc", at));
        assert_eq!(
            receiver
                .decide(&forged, b"{\"type\":\"ContactDelete\"}", now)
                .await,
            Outcome::BadSignature
        );
        forged.remove("x-ghl-signature");
        assert_eq!(
            receiver.decide(&forged, &body2, now).await,
            Outcome::BadSignature
        );

        let (headers, body) = signed(event("w3", "loc", "2029-12-31T23:50:00Z"));
        assert_eq!(receiver.decide(&headers, &body, now).await, Outcome::Stale);

        let (headers, body) = signed(event("w4", "elsewhere", at));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::UnknownLocation
        );

        let (headers, body) = signed(json!({"hello": "world"}));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Malformed
        );

        // An install on a location no connection has yet: known by its company.
        let install = |id: &str, company: &str| {
            json!({"type": "INSTALL", "webhookId": id, "timestamp": at, "appId": "app",
                   "companyId": company, "locationId": "brand-new"})
        };
        let (headers, body) = signed(install("w6", "co"));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Accepted
        );
        let (headers, body) = signed(install("w7", "another-agency"));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::UnknownLocation
        );

        recorder.full.store(true, Ordering::SeqCst);
        let (headers, body) = signed(event("w5", "loc", at));
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Overloaded
        );
        recorder.full.store(false, Ordering::SeqCst);
        assert_eq!(
            receiver.decide(&headers, &body, now).await,
            Outcome::Accepted,
            "GHL's retry of a 429 is processed"
        );
    }

    /// A body that never ends: what a slow or hostile client sends.
    fn endless() -> Body {
        use futures::StreamExt as _;
        let chunks =
            futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from_static(b"x")))
                .then(|chunk| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    chunk
                });
        Body::from_stream(chunks)
    }

    #[tokio::test]
    async fn before_the_body_unsigned_and_oversized_requests_are_refused() {
        use tower::ServiceExt;
        let keys = Keys::get();
        let receiver = Arc::new(Receiver::new(
            PublicKeys::from_pems(&[&keys.ed25519_public_pem]).unwrap(),
            Arc::new(Recorder::default()),
            WebhookMetrics::default(),
        ));
        let app = router(Arc::clone(&receiver));
        let post = |headers: &[(&str, &str)], body: Body| {
            let mut request = axum::http::Request::post(PATH);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.body(body).unwrap()
        };
        let declared = (5 * 1024 * 1024).to_string();
        // (case, headers, body, status, outcome): the body never ends, so an answer proves
        // it was not read.
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Body, StatusCode, Outcome);
        let cases: Vec<Case> = vec![
            (
                "unsigned, declaring 5 MB",
                vec![("content-length", declared.as_str())],
                endless(),
                StatusCode::UNAUTHORIZED,
                Outcome::BadSignature,
            ),
            (
                "unsigned, no length",
                vec![],
                endless(),
                StatusCode::UNAUTHORIZED,
                Outcome::BadSignature,
            ),
            (
                "signed, declaring 5 MB",
                vec![
                    ("x-ghl-signature", "c2ln"),
                    ("content-length", declared.as_str()),
                ],
                endless(),
                StatusCode::PAYLOAD_TOO_LARGE,
                Outcome::TooLarge,
            ),
            (
                "signed, undeclared, over the limit",
                vec![("x-ghl-signature", "c2ln")],
                Body::from(vec![b'x'; MAX_BODY + 1]),
                StatusCode::PAYLOAD_TOO_LARGE,
                Outcome::TooLarge,
            ),
            (
                "signed, small, wrong",
                vec![("x-ghl-signature", "c2ln")],
                Body::from("{}"),
                StatusCode::UNAUTHORIZED,
                Outcome::BadSignature,
            ),
        ];
        for (case, headers, body, status, outcome) in cases {
            let before = receiver.metrics.get(outcome);
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                app.clone().oneshot(post(&headers, body)),
            )
            .await
            .unwrap_or_else(|_| panic!("{case}: no answer without the body"))
            .unwrap();
            assert_eq!(answer.status(), status, "{case}");
            assert_eq!(receiver.metrics.get(outcome), before + 1, "{case}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_cut_off() {
        use tower::ServiceExt;
        let receiver = Arc::new(Receiver::new(
            PublicKeys::ghl(),
            Arc::new(Recorder::default()),
            WebhookMetrics::default(),
        ));
        let stalled =
            Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let request = axum::http::Request::post(PATH)
            .header("x-ghl-signature", "c2ln")
            .body(stalled)
            .unwrap();
        let answer = router(Arc::clone(&receiver))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(receiver.metrics.get(Outcome::TimedOut), 1);
    }

    #[tokio::test]
    async fn past_the_in_flight_limit_requests_are_shed_with_429() {
        use tower::ServiceExt;
        let receiver = Arc::new(Receiver::new(
            PublicKeys::ghl(),
            Arc::new(Recorder::default()),
            WebhookMetrics::default(),
        ));
        let app = router(Arc::clone(&receiver));
        // Every slot taken by a body that stalls.
        let mut held = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            let stalled =
                Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
            let request = axum::http::Request::post(PATH)
                .header("x-ghl-signature", "c2ln")
                .body(stalled)
                .unwrap();
            held.push(tokio::spawn(app.clone().oneshot(request)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let request = axum::http::Request::post(PATH)
            .header("x-ghl-signature", "c2ln")
            .body(Body::from("{}"))
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        for task in held {
            task.abort();
        }
    }
}
