//! The web console: every connection, policy, rule and feed on one page, a plan read field by
//! field and approved, new objects built from forms — with no power of its own. Each request
//! acts with the person's own Kubernetes identity (see [`session`] and [`access`]).
//!
//! - [`session`]: who is asking (a token, a session, the local login URL), CSRF (pure parts);
//! - [`access`]: the API server, as that person;
//! - [`view`]: what the pages show of each object (pure);
//! - [`forms`]: the New forms to manifests (pure);
//! - [`diff`]: a plan, field by field, with the person's credentials;
//! - `new`: the New forms' two routes each (show; preview, apply or download);
//! - [`pages`]: the HTML;
//! - this module: the routes, the security headers, serving.
//!
//! Served by `ghl-operator run --console-addr` (people's tokens) and `ghl-operator console`
//! (the kubeconfig's identity, on loopback, behind a one-time login URL).

pub mod access;
pub mod diff;
pub mod forms;
mod new;
pub mod pages;
pub mod session;
pub mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use jiff::Timestamp;
use kube::{Api, Client};
use serde::Deserialize;

use self::access::{AccessError, Backend, Hint, Seen};
use self::new::NewForm;
use self::session::{Identity, LOGIN_COOKIE, SESSION_COOKIE, Sessions};
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// Largest request body (the CSV form's ConfigMap is the biggest).
const MAX_BODY: usize = 1024 * 1024;

const STYLESHEET: &str = include_str!("console.css");

/// How people get in.
pub enum Entry {
    /// In the cluster: their own token, in an `Authorization: Bearer` header (an auth proxy)
    /// or pasted on the login page.
    Tokens,
    /// Local: whoever opens the one-time login URL (`/login/<secret>`), as the kubeconfig.
    LoginUrl(Mutex<Option<String>>),
}

/// The console's state.
pub struct Console {
    sessions: Sessions,
    backend: Backend,
    hint: Hint,
    entry: Entry,
}

impl Console {
    /// A console for people's own tokens (`run --console-addr`): `config` is where the API
    /// server is; its credentials are dropped.
    pub fn for_people(config: kube::Config, hint: Hint) -> Self {
        Self {
            sessions: Sessions::default(),
            backend: Backend::for_people(config),
            hint,
            entry: Entry::Tokens,
        }
    }

    /// The local console (`ghl-operator console`): the kubeconfig's client, and the secret of
    /// its one-time login URL.
    pub fn local(client: Client, hint: Hint) -> (Self, String) {
        let secret = session::random_id();
        let console = Self {
            sessions: Sessions::default(),
            backend: Backend::Local(client),
            hint,
            entry: Entry::LoginUrl(Mutex::new(Some(secret.clone()))),
        };
        (console, secret)
    }
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/login/{secret}", get(login_url))
        .route("/logout", post(logout))
        .route("/o/{namespace}/{kind}/{name}", get(object))
        .route("/o/{namespace}/{kind}/{name}/approve", post(approve))
        .route(
            forms::TagRuleForm::PATH,
            get(new::show::<forms::TagRuleForm>).post(new::submit::<forms::TagRuleForm>),
        )
        .route(
            forms::CsvPolicyForm::PATH,
            get(new::show::<forms::CsvPolicyForm>).post(new::submit::<forms::CsvPolicyForm>),
        )
        .route(
            forms::SinkForm::PATH,
            get(new::show::<forms::SinkForm>).post(new::submit::<forms::SinkForm>),
        )
        .route("/assets/console.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Serves the console on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Arc<Console>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(console))
        .with_graceful_shutdown(stop)
        .await
}

/// A strict CSP (nothing but this origin; no scripts at all), no framing, no sniffing, no
/// referrer, no caching of pages that show a person's view.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

/// The person behind a request, and their session (if it came through one).
struct Person {
    identity: Identity,
    session: Option<String>,
}

impl Console {
    /// Who is asking: a bearer header (in the cluster), else a live session.
    fn person(&self, headers: &HeaderMap, jar: &CookieJar) -> Option<Person> {
        if matches!(self.entry, Entry::Tokens)
            && let Some(token) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(session::parse_token)
        {
            return Some(Person {
                identity: Identity::Token(token),
                session: None,
            });
        }
        let id = jar.get(SESSION_COOKIE)?.value().to_owned();
        let identity = self.sessions.get(&id, Instant::now())?;
        Some(Person {
            identity,
            session: Some(id),
        })
    }

    fn csrf(&self, person: &Person) -> String {
        self.sessions
            .csrf(&person.identity, person.session.as_deref())
    }

    #[expect(
        clippy::result_large_err,
        reason = "the error is the page to answer, built once per request"
    )]
    fn client(&self, person: &Person) -> Result<Client, Response> {
        self.backend
            .client(&person.identity)
            .map_err(|e| failure(&e, None))
    }

    /// What to answer a request without a person: the login page (in the cluster), or 401
    /// (the local console serves nothing without its login URL).
    fn unauthenticated(&self) -> Response {
        match self.entry {
            Entry::Tokens => Redirect::to("/login").into_response(),
            Entry::LoginUrl(_) => (
                StatusCode::UNAUTHORIZED,
                Html(
                    pages::message(
                        "Log in",
                        "Open the login URL ghl-operator console printed.",
                        None,
                    )
                    .into_string(),
                ),
            )
                .into_response(),
        }
    }
}

fn page(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// An API error as a page: 403 says what RBAC refused; other errors say what failed (never a
/// token: errors carry none).
fn failure(error: &AccessError, csrf: Option<&str>) -> Response {
    let (status, text) = match error {
        AccessError::Api(kube::Error::Api(e)) if e.code == 403 || e.code == 401 => (
            StatusCode::FORBIDDEN,
            format!(
                "The API server refused this to your identity: {}",
                e.message
            ),
        ),
        AccessError::Api(kube::Error::Api(e)) => (
            StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_GATEWAY),
            e.message.clone(),
        ),
        other => (StatusCode::BAD_GATEWAY, other.to_string()),
    };
    (status, page(pages::message("Not possible", &text, csrf))).into_response()
}

async fn overview(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    let Some(person) = console.person(&headers, &jar) else {
        return console.unauthenticated();
    };
    let csrf = console.csrf(&person);
    let client = match console.client(&person) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let seen = match Seen::load(&client, &(console.hint)()).await {
        Ok(seen) => seen,
        Err(e) => return failure(&e, Some(&csrf)),
    };
    let now = Timestamp::now();
    let connections: Vec<_> = seen
        .connections
        .iter()
        .map(|c| view::connection_row(c, now))
        .collect();
    let owners: Vec<_> = seen
        .policies
        .iter()
        .map(|p| view::policy_row(p, now))
        .chain(seen.rules.iter().map(|r| view::rule_row(r, now)))
        .collect();
    page(pages::overview(
        &seen.namespaces(),
        &connections,
        &owners,
        &csrf,
    ))
}

async fn login_page(State(console): State<Arc<Console>>, jar: CookieJar) -> Response {
    if !matches!(console.entry, Entry::Tokens) {
        return console.unauthenticated();
    }
    let value = session::random_id();
    let cookie = Cookie::build((LOGIN_COOKIE, value.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/login")
        .build();
    (jar.add(cookie), page(pages::login(&value, None))).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    token: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    jar: CookieJar,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !matches!(console.entry, Entry::Tokens) {
        return console.unauthenticated();
    }
    // Double submit: the form's value must be the cookie's (set by our login page).
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned());
    if expected.as_deref() != Some(form.csrf.as_str()) || form.csrf.is_empty() {
        return (
            StatusCode::FORBIDDEN,
            page(pages::message(
                "Log in",
                "The login form expired: open the login page again.",
                None,
            )),
        )
            .into_response();
    }
    let retry = |text: &str| {
        (
            StatusCode::UNAUTHORIZED,
            page(pages::login(&form.csrf, Some(text))),
        )
            .into_response()
    };
    let Some(token) = session::parse_token(&form.token) else {
        return retry("That is not a bearer token.");
    };
    let identity = Identity::Token(token);
    // The API server decides: a token it does not accept starts no session.
    let accepted = match console.backend.client(&identity) {
        Ok(client) => client.apiserver_version().await.is_ok(),
        Err(_) => false,
    };
    if !accepted {
        return retry("The API server did not accept that token.");
    }
    let id = console.sessions.start(identity, Instant::now());
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    (
        jar.remove(Cookie::build(LOGIN_COOKIE).path("/login"))
            .add(cookie),
        Redirect::to("/"),
    )
        .into_response()
}

async fn login_url(
    State(console): State<Arc<Console>>,
    Path(secret): Path<String>,
    jar: CookieJar,
) -> Response {
    let Entry::LoginUrl(slot) = &console.entry else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // One time: the first to open it is in; the URL is worth nothing after.
    let matched = {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        let ok = slot.as_deref() == Some(secret.as_str());
        if ok {
            *slot = None;
        }
        ok
    };
    if !matched {
        return console.unauthenticated();
    }
    let id = console.sessions.start(Identity::Local, Instant::now());
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    (jar.add(cookie), Redirect::to("/")).into_response()
}

/// A missing CSRF token is an empty one (refused by the check, with a 403, not a 422).
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The person of a POST whose CSRF token is theirs; else the answer to give.
#[expect(
    clippy::result_large_err,
    reason = "the error is the page to answer, built once per request"
)]
fn checked(
    console: &Console,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &str,
) -> Result<Person, Response> {
    let Some(person) = console.person(headers, jar) else {
        return Err(StatusCode::UNAUTHORIZED.into_response());
    };
    if !console
        .sessions
        .csrf_ok(&person.identity, person.session.as_deref(), csrf)
    {
        return Err((
            StatusCode::FORBIDDEN,
            page(pages::message(
                "Refused",
                "This form did not come from this console (its CSRF token is missing or wrong).",
                None,
            )),
        )
            .into_response());
    }
    Ok(person)
}

async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let person = match checked(&console, &headers, &jar, &form.csrf) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(id) = &person.session {
        console.sessions.end(id);
    }
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Redirect::to("/login"),
    )
        .into_response()
}

/// The kinds a URL may name.
fn kind_of(kind: &str) -> Option<&'static str> {
    match kind {
        "ghlconnection" => Some("GhlConnection"),
        "contactsyncpolicy" => Some("ContactSyncPolicy"),
        "tagrule" => Some("TagRule"),
        _ => None,
    }
}

async fn object(
    State(console): State<Arc<Console>>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    let Some(person) = console.person(&headers, &jar) else {
        return console.unauthenticated();
    };
    let csrf = console.csrf(&person);
    let client = match console.client(&person) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(kind) = kind_of(&kind) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = Timestamp::now();
    let recent = access::events(&client, &namespace, kind, &name).await;
    let result: Result<Response, AccessError> = async {
        Ok(match kind {
            "GhlConnection" => {
                let c: GhlConnection = Api::namespaced(client.clone(), &namespace)
                    .get(&name)
                    .await?;
                let status = c.status.clone().unwrap_or_default();
                page(pages::connection(
                    &view::connection_row(&c, now),
                    &status.conditions,
                    status.installed_locations.as_ref(),
                    &recent,
                    &csrf,
                ))
            }
            "ContactSyncPolicy" => {
                let p: ContactSyncPolicy = Api::namespaced(client.clone(), &namespace)
                    .get(&name)
                    .await?;
                let diff = diff::policy(client.clone(), &p)
                    .await
                    .map_err(|e| e.to_string());
                let status = p.status.clone().unwrap_or_default();
                page(pages::owner(
                    &view::policy_row(&p, now),
                    &status.conditions,
                    diff.as_deref().map_err(String::as_str),
                    &recent,
                    None,
                    &csrf,
                ))
            }
            _ => {
                let r: TagRule = Api::namespaced(client.clone(), &namespace)
                    .get(&name)
                    .await?;
                let diff = diff::rule(client.clone(), &r)
                    .await
                    .map_err(|e| e.to_string());
                let status = r.status.clone().unwrap_or_default();
                page(pages::owner(
                    &view::rule_row(&r, now),
                    &status.conditions,
                    diff.as_deref().map_err(String::as_str),
                    &recent,
                    None,
                    &csrf,
                ))
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| failure(&e, Some(&csrf)))
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hash: String,
}

async fn approve(
    State(console): State<Arc<Console>>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::Form(form): axum::Form<ApproveForm>,
) -> Response {
    let person = match checked(&console, &headers, &jar, &form.csrf) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = console.csrf(&person);
    let client = match console.client(&person) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let hash = form.hash.trim();
    if hash.is_empty() || hash.len() > 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            page(pages::message("Refused", "Not a plan hash.", Some(&csrf))),
        )
            .into_response();
    }
    let written = match kind_of(&kind) {
        Some("ContactSyncPolicy") => {
            access::approve::<ContactSyncPolicy>(&client, &namespace, &name, hash).await
        }
        Some("TagRule") => access::approve::<TagRule>(&client, &namespace, &name, hash).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match written {
        Ok(()) => Redirect::to(&format!("/o/{namespace}/{kind}/{name}")).into_response(),
        Err(e) => failure(&e, Some(&csrf)),
    }
}

/// Binds `addr` and returns the listener and the address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
