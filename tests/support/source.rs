//! servis-ai's export endpoint, as a source for `contactsFrom[].http`: serves one document
//! under `/export/` with an ETag and answers `304` to a matching `If-None-Match`; it can fail
//! with a status, redirect, or require a header. Counts what it was asked, per path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Default)]
struct Inner {
    document: String,
    /// Answer this status instead of the document.
    fail: Option<u16>,
    /// Required `Authorization` value.
    authorization: Option<String>,
    /// Requests per path, and how many were answered 304.
    asked: BTreeMap<String, u64>,
    not_modified: u64,
}

/// A running source.
#[derive(Clone)]
pub struct Source {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn etag(document: &str) -> String {
    format!(
        "\"{:016x}\"",
        ghl_operator::engine::ledger::fingerprint([document])
    )
}

async fn serve(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    *inner.asked.entry(path.clone()).or_default() += 1;
    if path == "moved.json" {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "/export/leads.json")],
        )
            .into_response();
    }
    if let Some(status) = inner.fail {
        return StatusCode::from_u16(status).unwrap().into_response();
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

impl Source {
    /// Serves `document` on 127.0.0.1.
    pub async fn start(document: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            document: document.to_owned(),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/export/{path}", get(serve))
            .route("/private/{path}", get(serve))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_document(&self, document: &str) {
        self.inner.lock().unwrap().document = document.to_owned();
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.inner.lock().unwrap().fail = status;
    }

    pub fn require_authorization(&self, value: &str) {
        self.inner.lock().unwrap().authorization = Some(value.to_owned());
    }

    /// Requests for any path.
    pub fn asked(&self) -> u64 {
        self.inner.lock().unwrap().asked.values().sum()
    }

    /// Requests whose last path segment is `name`.
    pub fn asked_for(&self, name: &str) -> u64 {
        self.inner
            .lock()
            .unwrap()
            .asked
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn not_modified(&self) -> u64 {
        self.inner.lock().unwrap().not_modified
    }
}
