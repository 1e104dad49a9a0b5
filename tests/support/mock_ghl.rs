//! A wiremock-backed GHL double for request-shape tests: answers one canned response and lets
//! the test inspect exactly what the client sent.

use std::sync::Arc;
use std::time::Duration;

use ghl_operator::ghl::retry::RetryPolicy;
use ghl_operator::ghl::{ConnectionSettings, GhlClient, GhlMetrics, StaticToken};
use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const LOCATION: &str = "ve9EPM428h8vShlRW1KT";
pub const TOKEN: &str = "pit-test-token";

/// Settings pointing at `base_url`, with fast retries for tests.
pub fn settings(base_url: &str) -> ConnectionSettings {
    let mut settings = ConnectionSettings::new(base_url, LOCATION);
    settings.retry = RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retries: 3,
    };
    settings
}

pub fn client(base_url: &str) -> (GhlClient, Arc<GhlMetrics>) {
    client_with(settings(base_url))
}

pub fn client_with(settings: ConnectionSettings) -> (GhlClient, Arc<GhlMetrics>) {
    let metrics = Arc::new(GhlMetrics::default());
    let (client, _budget) = settings
        .connect(Arc::new(StaticToken::new(TOKEN)), Arc::clone(&metrics))
        .expect("client builds");
    (client, metrics)
}

/// Serves `status` + `body` to any request, runs `call` with a client, and returns the call's
/// result and the single request the server received.
pub async fn exchange<R>(
    status: u16,
    body: Value,
    call: impl AsyncFnOnce(&GhlClient) -> R,
) -> (R, Request) {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    let (client, _) = client(&server.uri());
    let result = call(&client).await;
    let mut requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "exactly one request expected");
    (result, requests.remove(0))
}

/// Asserts the headers every GHL request carries.
pub fn assert_ghl_headers(request: &Request) {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(header("version"), "2021-07-28");
    assert_eq!(header("accept"), "application/json");
    if !request.body.is_empty() {
        assert_eq!(header("content-type"), "application/json");
    }
}

/// The query string as sorted pairs.
pub fn query(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = request.url.query_pairs().into_owned().collect();
    pairs.sort();
    pairs
}
