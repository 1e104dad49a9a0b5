//! What travels through the transport stack: a described request and a raw response.
//!
//! The typed client builds an [`ApiRequest`]; the decorators (budget, retry) and the HTTP
//! transport only look at its [`Operation`], never at endpoint-specific types.

use std::fmt;

use bytes::Bytes;
use reqwest::Method;
use secrecy::SecretString;

use super::budget::RateLimitSnapshot;

/// Every GHL operation the product uses. A bounded set: safe as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    GetContact,
    CreateContact,
    UpdateContact,
    DeleteContact,
    UpsertContact,
    ListContacts,
    SearchContacts,
    ContactsByBusiness,
    ListTasks,
    GetTask,
    CreateTask,
    UpdateTask,
    CompleteTask,
    DeleteTask,
    SearchLocationTasks,
    ListNotes,
    GetNote,
    CreateNote,
    UpdateNote,
    DeleteNote,
    ListAppointments,
    AddTags,
    RemoveTags,
    BulkTags,
    OAuthToken,
    LocationToken,
}

impl Operation {
    /// Stable name for metrics, logs and errors.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            GetContact => "contacts.get",
            CreateContact => "contacts.create",
            UpdateContact => "contacts.update",
            DeleteContact => "contacts.delete",
            UpsertContact => "contacts.upsert",
            ListContacts => "contacts.list",
            SearchContacts => "contacts.search",
            ContactsByBusiness => "contacts.by_business",
            ListTasks => "tasks.list",
            GetTask => "tasks.get",
            CreateTask => "tasks.create",
            UpdateTask => "tasks.update",
            CompleteTask => "tasks.complete",
            DeleteTask => "tasks.delete",
            SearchLocationTasks => "tasks.search",
            ListNotes => "notes.list",
            GetNote => "notes.get",
            CreateNote => "notes.create",
            UpdateNote => "notes.update",
            DeleteNote => "notes.delete",
            ListAppointments => "appointments.list",
            AddTags => "tags.add",
            RemoveTags => "tags.remove",
            BulkTags => "tags.bulk",
            OAuthToken => "oauth.token",
            LocationToken => "oauth.location_token",
        }
    }

    /// Whether sending the request twice has the same effect as sending it once, so that a
    /// lost answer can safely be retried. Creates are not: a retried create that had in fact
    /// succeeded makes a duplicate. A token refresh is not: the refresh token is single-use.
    pub fn is_idempotent(self) -> bool {
        use Operation::*;
        !matches!(
            self,
            CreateContact | CreateTask | CreateNote | OAuthToken | LocationToken
        )
    }

    /// Whether the request counts against the location's request budget.
    pub fn uses_location_budget(self) -> bool {
        !matches!(self, Operation::OAuthToken | Operation::LocationToken)
    }

    /// Whether GHL requires the `Version` header (the token endpoint declares none).
    pub fn sends_version_header(self) -> bool {
        !matches!(self, Operation::OAuthToken)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
