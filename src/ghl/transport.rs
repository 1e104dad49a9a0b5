//! The transport stack: the [`Transport`] trait, the reqwest implementation, and the budget
//! decorator. (The retry decorator lives in `retry.rs`.) Only this module touches reqwest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use secrecy::ExposeSecret;
use url::Url;

use super::auth::TokenSource;
use super::budget::RequestBudget;
use super::error::{GhlError, Result};
use super::headers::RateLimitSnapshot;
use super::metrics::GhlMetrics;
use super::request::{ApiRequest, ApiResponse, RequestAuth, RequestBody};

/// Sends one described request and returns the 2xx answer or a classified error.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        (**self).send(request).await
    }
}

/// Timeouts of the HTTP transport.
#[derive(Clone, Copy, Debug)]
pub struct HttpTimeouts {
    /// Whole request, from sending to the end of the body.
    pub request: Duration,
    pub connect: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(30),
            connect: Duration::from_secs(10),
        }
    }
}

/// Talks HTTP to GHL (or the sandbox) with reqwest over rustls.
pub struct HttpTransport {
    http: reqwest::Client,
    base_url: Url,
    /// The base URL's path without a trailing slash ("" for a bare host).
    base_path: String,
    api_version: String,
    token: Option<Arc<dyn TokenSource>>,
    metrics: Arc<GhlMetrics>,
}

impl HttpTransport {
    /// `token` authorizes [`RequestAuth::Connection`] requests; without one they fail with
    /// [`GhlError::Token`].
    pub fn new(
        base_url: &str,
        api_version: impl Into<String>,
        token: Option<Arc<dyn TokenSource>>,
        timeouts: HttpTimeouts,
        metrics: Arc<GhlMetrics>,
    ) -> std::result::Result<Self, BuildError> {
        Self::over(
            http_client(timeouts)?,
            base_url,
            api_version,
            token,
            metrics,
        )
    }

    /// [`HttpTransport::new`] over an HTTP client built by [`http_client`], which many
    /// transports may share: one TLS configuration and one connection pool for every location
    /// an operator serves, instead of one each.
    pub fn over(
        http: reqwest::Client,
        base_url: &str,
        api_version: impl Into<String>,
        token: Option<Arc<dyn TokenSource>>,
        metrics: Arc<GhlMetrics>,
    ) -> std::result::Result<Self, BuildError> {
        let mut base_url = Url::parse(base_url).map_err(|e| BuildError::BaseUrl {
            url: base_url.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(BuildError::BaseUrl {
                url: base_url.to_string(),
                reason: "the scheme must be http or https".into(),
            });
        }
        // Paths are joined below the base URL's path.
        let base_path = base_url.path().trim_end_matches('/').to_owned();
        base_url.set_query(None);
        Ok(Self {
            http,
            base_url,
            base_path,
            api_version: api_version.into(),
            token,
            metrics,
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(&format!("{}{}", self.base_path, path));
        url
    }
}

/// The HTTP client GHL is called through: no redirects, `timeouts`, our user agent.
pub fn http_client(timeouts: HttpTimeouts) -> std::result::Result<reqwest::Client, BuildError> {
    crate::tls::install_default_provider();
    reqwest::Client::builder()
        // A redirect would carry the bearer token or the token form elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeouts.request)
        .connect_timeout(timeouts.connect)
        .user_agent(concat!("ghl-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::Http(e.to_string()))
}

/// The transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid GHL base URL {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        let operation = request.operation;
        let mut builder = self
            .http
            .request(request.method.clone(), self.url(&request.path))
            .header(ACCEPT, "application/json");
        if operation.sends_version_header() {
            builder = builder.header("Version", &self.api_version);
        }
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        match &request.auth {
            RequestAuth::Connection => {
                let source = self.token.as_ref().ok_or(GhlError::Token {
                    operation,
                    source: super::auth::TokenError::Missing,
                })?;
                let token = source
                    .access_token()
                    .await
                    .map_err(|source| GhlError::Token { operation, source })?;
                builder = builder.bearer_auth(token.expose_secret());
            }
            RequestAuth::Bearer(token) => builder = builder.bearer_auth(token.expose_secret()),
            RequestAuth::None => {}
        }
        builder = match &request.body {
            RequestBody::Empty => builder,
            RequestBody::Json(bytes) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            RequestBody::Form(fields) => {
                let exposed: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (*k, v.expose_secret()))
                    .collect();
                builder.form(&exposed)
            }
        };

        let started = Instant::now();
        let outcome = async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = read_body(response).await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        }
        .await;
        let took = started.elapsed();

        let (status, headers, body) = match outcome {
            Ok((status, _, None)) => {
                self.metrics.observe_request(operation, Some(status), took);
                return Err(GhlError::MalformedResponse {
                    operation,
                    status,
                    detail: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            Ok((status, headers, Some(body))) => (status, headers, body),
            Err(error) => {
                self.metrics.observe_request(operation, None, took);
                tracing::debug!(operation = %operation, took_ms = took.as_millis() as u64, "GHL request failed in transport");
                return Err(transport_error(operation, error));
            }
        };
        self.metrics.observe_request(operation, Some(status), took);
        tracing::debug!(operation = %operation, status, took_ms = took.as_millis() as u64, "GHL request");
        answer(operation, status, &headers, body)
    }
}

/// A complete answer: the 2xx response, or the error its status and body describe.
fn answer(
    operation: super::operation::Operation,
    status: u16,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<ApiResponse> {
    let rate_limit = RateLimitSnapshot::from_headers(headers);
    if (300..400).contains(&status) {
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| Url::parse(l).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "(none)".to_owned());
        return Err(GhlError::Redirected {
            operation,
            status,
            to,
        });
    }
    if (200..300).contains(&status) {
        Ok(ApiResponse {
            status,
            body,
            rate_limit,
        })
    } else {
        Err(GhlError::from_status(
            operation,
            status,
            &body,
            retry_after(headers),
            rate_limit,
        ))
    }
}

fn transport_error(operation: super::operation::Operation, error: reqwest::Error) -> GhlError {
    if error.is_timeout() {
        GhlError::Timeout {
            operation,
            source: error,
        }
    } else {
        let detail = if error.is_connect() {
            "connection refused or unreachable"
        } else if error.is_body() || error.is_decode() {
            "the answer broke off"
        } else {
            "the request failed"
        };
        GhlError::Connection {
            operation,
            detail: detail.to_owned(),
            source: error,
        }
    }
}

/// Largest answer read from GHL (a page of 100 contacts is a few hundred KB); a longer one is
/// refused as malformed rather than held in memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Longest `Retry-After` believed: a larger number (or a hostile one) is cut to this.
pub const MAX_RETRY_AFTER_HEADER: Duration = Duration::from_secs(3600);

/// The body, or `None` when it is longer than [`MAX_BODY_BYTES`] (declared or as read).
async fn read_body(mut response: reqwest::Response) -> reqwest::Result<Option<bytes::Bytes>> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// `Retry-After` in seconds (GHL does not document it; honoured when present), at most
/// [`MAX_RETRY_AFTER_HEADER`]. HTTP dates are not supported and ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER_HEADER))
}

/// Spends the location's request budget for every request that counts against it, and feeds
/// GHL's rate-limit headers back into it.
pub struct Budgeted<T> {
    inner: T,
    budget: Arc<RequestBudget>,
}

impl<T> Budgeted<T> {
    pub fn new(inner: T, budget: Arc<RequestBudget>) -> Self {
        Self { inner, budget }
    }
}

#[async_trait]
impl<T: Transport> Transport for Budgeted<T> {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        if !request.operation.uses_location_budget() {
            return self.inner.send(request).await;
        }
        self.budget.acquire().await;
        let result = self.inner.send(request).await;
        match &result {
            Ok(response) => self
                .budget
                .observe(response.rate_limit.as_ref(), false, None),
            Err(error) => self.budget.observe(
                error.rate_limit(),
                error.status() == Some(429),
                error.retry_after(),
            ),
        }
        result
    }
}
