//! What travels through the transport stack: a described request and a raw response.
//!
//! The typed client builds an [`ApiRequest`]; the decorators (budget, retry) and the HTTP
//! transport only look at its [`Operation`], never at endpoint-specific types.

use bytes::Bytes;
use reqwest::Method;
use secrecy::SecretString;

use super::headers::RateLimitSnapshot;
use super::operation::Operation;

/// How a request is authorized.
#[derive(Clone, Debug)]
pub enum RequestAuth {
    /// The connection's current token, from its [`TokenSource`](super::auth::TokenSource).
    Connection,
    /// An explicit bearer token (e.g. an agency token minting a location token).
    Bearer(SecretString),
    /// No `Authorization` header (the OAuth token endpoint authenticates by form fields).
    None,
}

/// A request body.
#[derive(Clone, Debug)]
pub enum RequestBody {
    Empty,
    /// Serialized JSON.
    Json(Bytes),
    /// `application/x-www-form-urlencoded` fields. May carry secrets; never logged.
    Form(Vec<(&'static str, SecretString)>),
}

/// A request described independently of the HTTP library.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub operation: Operation,
    pub method: Method,
    /// Path below the base URL, already percent-encoded (e.g. `/contacts/abc/tasks`).
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: RequestBody,
    pub auth: RequestAuth,
}

impl ApiRequest {
    pub fn new(operation: Operation, method: Method, path: String) -> Self {
        Self {
            operation,
            method,
            path,
            query: Vec::new(),
            body: RequestBody::Empty,
            auth: RequestAuth::Connection,
        }
    }

    pub fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    pub fn json(mut self, body: Bytes) -> Self {
        self.body = RequestBody::Json(body);
        self
    }

    pub fn form(mut self, fields: Vec<(&'static str, SecretString)>) -> Self {
        self.body = RequestBody::Form(fields);
        self
    }

    pub fn auth(mut self, auth: RequestAuth) -> Self {
        self.auth = auth;
        self
    }
}

/// A successful (2xx) response.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
    /// The `X-RateLimit-*` headers, when GHL sent them.
    pub rate_limit: Option<RateLimitSnapshot>,
}

/// Percent-encodes one path segment (ids come from GHL or users and are not trusted to be URL-safe).
pub fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
