//! servis-ai's export endpoint, as a source for `contactsFrom[].http`: serves one document
//! under `/export/` (and `/private/`) with an ETag and answers `304` to a matching
//! `If-None-Match`. For the demo and the tests it can also fail with a status, redirect
//! (`/export/moved.json`), or require an `Authorization` header. Counts what it was asked, per
//! path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Default)]
struct Inner {
    document: String,
    /// Answer this status instead of the document.
    fail: Option<StatusCode>,
    /// Required `Authorization` value.
    authorization: Option<String>,
    /// Requests per path, and how many were answered 304.
    asked: BTreeMap<String, u64>,
    not_modified: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(inner: &Shared) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running export endpoint.
#[derive(Clone)]
pub struct ExportServer {
    pub addr: SocketAddr,
    inner: Shared,
}

fn etag(document: &str) -> String {
    format!(
        "\"{:016x}\"",
        crate::engine::ledger::fingerprint([document])
    )
}

async fn serve(
    State(inner): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&inner);
    *inner.asked.entry(path.clone()).or_default() += 1;
    if path == "moved.json" {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "/export/leads.json")],
        )
            .into_response();
    }
    if let Some(status) = inner.fail {
        return status.into_response();
    }
    if let Some(wanted) = &inner.authorization
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(wanted)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let tag = etag(&inner.document);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        inner.not_modified += 1;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (
        [
            (header::ETAG, tag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        inner.document.clone(),
    )
        .into_response()
}

impl ExportServer {
    /// Serves `document` on 127.0.0.1, on a free port.
    pub async fn start(document: &str) -> std::io::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            document: document.to_owned(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/export/{path}", get(serve))
            .route("/private/{path}", get(serve))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `document` from now on (with a new ETag when it differs).
    pub fn set_document(&self, document: &str) {
        lock(&self.inner).document = document.to_owned();
    }

    /// Answers `status` instead of the document (`None`: serves it again).
    pub fn fail_with(&self, status: Option<u16>) {
        lock(&self.inner).fail = status.and_then(|s| StatusCode::from_u16(s).ok());
    }

    /// Answers 401 unless the request carries `Authorization: <value>`.
    pub fn require_authorization(&self, value: &str) {
        lock(&self.inner).authorization = Some(value.to_owned());
    }

    /// Requests for any path.
    pub fn asked(&self) -> u64 {
        lock(&self.inner).asked.values().sum()
    }

    /// Requests whose last path segment is `name`.
    pub fn asked_for(&self, name: &str) -> u64 {
        lock(&self.inner).asked.get(name).copied().unwrap_or(0)
    }

    /// Requests answered 304.
    pub fn not_modified(&self) -> u64 {
        lock(&self.inner).not_modified
    }
}
