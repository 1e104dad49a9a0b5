//! The HTTP surface: GHL's Contacts and OAuth routes (behind the [`gateway`]) and the admin
//! routes under `/__sandbox/` (outside GHL's paths, never rate limited or counted).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};

use super::App;
use super::auth::{Principal, UserType};
use super::errors::{ApiError, ApiResult};
use super::gateway::gateway;
use super::store::Store;

/// Largest request body accepted (GHL's own limit is undocumented; 1 MiB is plenty).
const BODY_LIMIT: usize = 1 << 20;

/// What a route does to a location's store, given its call.
type Op = fn(&mut Store, &Call) -> ApiResult<Value>;

/// A route of GHL's API served from a location's store: the scope it needs and the status it
/// answers with.
struct StoreRoute {
    method: MethodFilter,
    path: &'static str,
    scope: &'static str,
    status: StatusCode,
    op: Op,
}

const fn route(
    method: MethodFilter,
    path: &'static str,
    scope: &'static str,
    status: StatusCode,
    op: Op,
) -> StoreRoute {
    StoreRoute {
        method,
        path,
        scope,
        status,
        op,
    }
}

const READ: &str = "contacts.readonly";
const WRITE: &str = "contacts.write";
const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const GET: MethodFilter = MethodFilter::GET;
const POST: MethodFilter = MethodFilter::POST;
const PUT: MethodFilter = MethodFilter::PUT;
const DELETE: MethodFilter = MethodFilter::DELETE;
const PATCH: MethodFilter = MethodFilter::PATCH;

/// GHL's Contacts API, as the sandbox serves it.
const GHL_ROUTES: &[StoreRoute] = &[
    route(GET, "/contacts/", READ, OK, |s, c| {
        s.list_contacts(&c.query)
    }),
    route(GET, "/contacts", READ, OK, |s, c| s.list_contacts(&c.query)),
    route(POST, "/contacts/", WRITE, CREATED, |s, c| {
        s.create_contact(&c.body)
    }),
    route(POST, "/contacts", WRITE, CREATED, |s, c| {
        s.create_contact(&c.body)
    }),
    route(POST, "/contacts/upsert", WRITE, OK, |s, c| {
        s.upsert_contact(&c.body)
    }),
    route(POST, "/contacts/search", READ, OK, |s, c| s.search(&c.body)),
    route(GET, "/contacts/business/{businessId}", READ, OK, |s, c| {
        s.contacts_by_business(c.id(0), &c.query)
    }),
    route(GET, "/contacts/{contactId}", READ, OK, |s, c| {
        s.get_contact(c.id(0))
    }),
    route(PUT, "/contacts/{contactId}", WRITE, OK, |s, c| {
        s.update_contact(c.id(0), &c.body)
    }),
    route(DELETE, "/contacts/{contactId}", WRITE, OK, |s, c| {
        s.delete_contact(c.id(0))
    }),
    route(GET, "/contacts/{contactId}/tasks", READ, OK, |s, c| {
        s.list_tasks(c.id(0))
    }),
    route(
        POST,
        "/contacts/{contactId}/tasks",
        WRITE,
        CREATED,
        |s, c| s.create_task(c.id(0), &c.body),
    ),
    route(
        GET,
        "/contacts/{contactId}/tasks/{taskId}",
        READ,
        OK,
        |s, c| s.get_task(c.id(0), c.id(1)),
    ),
    route(
        PUT,
        "/contacts/{contactId}/tasks/{taskId}",
        WRITE,
        OK,
        |s, c| s.update_task(c.id(0), c.id(1), &c.body),
    ),
    route(
        DELETE,
        "/contacts/{contactId}/tasks/{taskId}",
        WRITE,
        OK,
        |s, c| s.delete_task(c.id(0), c.id(1)),
    ),
    route(
        PUT,
        "/contacts/{contactId}/tasks/{taskId}/completed",
        WRITE,
        OK,
        |s, c| s.complete_task(c.id(0), c.id(1), &c.body),
    ),
    route(
        POST,
        "/locations/{locationId}/tasks/search",
        "locations/tasks.readonly",
        OK,
        |s, c| s.search_tasks(c.id(0), &c.body),
    ),
    route(
        GET,
        "/locations/{locationId}/customFields",
        "locations/customFields.readonly",
        OK,
        |s, c| s.custom_fields(c.id(0), c.query.get("model").map(String::as_str)),
    ),
    route(GET, "/contacts/{contactId}/notes", READ, OK, |s, c| {
        s.list_notes(c.id(0))
    }),
    route(
        POST,
        "/contacts/{contactId}/notes",
        WRITE,
        CREATED,
        |s, c| s.create_note(c.id(0), &c.body),
    ),
    route(GET, "/contacts/{contactId}/notes/{id}", READ, OK, |s, c| {
        s.get_note(c.id(0), c.id(1))
    }),
    route(
        PUT,
        "/contacts/{contactId}/notes/{id}",
        WRITE,
        OK,
        |s, c| s.update_note(c.id(0), c.id(1), &c.body),
    ),
    route(
        DELETE,
        "/contacts/{contactId}/notes/{id}",
        WRITE,
        OK,
        |s, c| s.delete_note(c.id(0), c.id(1)),
    ),
    route(
        GET,
        "/contacts/{contactId}/appointments",
        READ,
        OK,
        |s, c| s.list_appointments(c.id(0)),
    ),
    route(
        POST,
        "/contacts/{contactId}/tags",
        WRITE,
        CREATED,
        |s, c| s.add_tags(c.id(0), &c.body),
    ),
    route(DELETE, "/contacts/{contactId}/tags", WRITE, OK, |s, c| {
        s.remove_tags(c.id(0), &c.body)
    }),
    route(
        POST,
        "/contacts/bulk/tags/update/{type}",
        WRITE,
        CREATED,
        |s, c| s.bulk_tags(c.id(0), &c.body),
    ),
];

/// Changes a person makes in GHL's UI (not GHL's API: not counted, webhooks sent), under
/// `/__sandbox/`, on `?locationId=` (default the first location).
const ADMIN_ROUTES: &[StoreRoute] = &[
    route(PATCH, "/__sandbox/contacts/{contactId}", "", OK, |s, c| {
        s.edit_contact(c.id(0), &c.body)
            .map(|contact| json!({"contact": contact}))
    }),
    route(DELETE, "/__sandbox/contacts/{contactId}", "", OK, |s, c| {
        s.delete_contact(c.id(0))
    }),
    route(
        POST,
        "/__sandbox/contacts/{contactId}/appointments",
        "",
        OK,
        |s, c| s.create_appointment(c.id(0), &c.body),
    ),
    route(
        PATCH,
        "/__sandbox/appointments/{appointmentId}",
        "",
        OK,
        |s, c| s.update_appointment(c.id(0), &c.body),
    ),
];

/// One call to a store route: its path parameters in order, its query and its JSON body.
struct Call {
    ids: Vec<String>,
    query: BTreeMap<String, String>,
    body: Value,
}

impl Call {
    fn id(&self, n: usize) -> &str {
        self.ids.get(n).map_or("", String::as_str)
    }
}

/// The routes of `table`, each answered by running its op on a store: `admin` routes on the
/// store `?locationId=` names, the others on the caller's location after its scope is checked.
fn store_routes(table: &'static [StoreRoute], admin: bool) -> Router<Arc<App>> {
    let mut by_path: BTreeMap<&str, MethodRouter<Arc<App>>> = BTreeMap::new();
    for entry in table {
        let handler = move |State(app): State<Arc<App>>,
                            principal: Option<Extension<Principal>>,
                            Path(ids): Path<Vec<String>>,
                            RawQuery(q): RawQuery,
                            JsonBody(body): JsonBody| async move {
            let call = Call {
                ids,
                query: query_map(q),
                body,
            };
            match (admin, principal) {
                (true, _) => admin_change(&app, &call.query, |s| (entry.op)(s, &call)),
                (false, Some(Extension(p))) => {
                    with_store(&app, &p, entry.scope, entry.status, |s| {
                        (entry.op)(s, &call)
                    })
                }
                (false, None) => ApiError::unauthorized("no token").into_response(),
            }
        };
        let methods = by_path.remove(entry.path).unwrap_or_default();
        by_path.insert(entry.path, methods.on(entry.method, handler));
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
}

pub fn router(app: Arc<App>) -> Router {
    let ghl = store_routes(GHL_ROUTES, false)
        .route("/oauth/token", post(oauth_token))
        .route("/oauth/locationToken", post(location_token))
        .route("/oauth/installedLocations", get(installed_locations))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            gateway,
        ));
    let admin = store_routes(ADMIN_ROUTES, true)
        .route("/__sandbox/stats", get(admin_stats))
        .route("/__sandbox/state", get(admin_state))
        .route("/__sandbox/reset", post(admin_reset))
        .route("/__sandbox/oauth/code", post(admin_oauth_code))
        .route("/__sandbox/clock", post(admin_clock))
        .route("/__sandbox/installations", post(admin_installation))
        .route("/__sandbox/webhook-keys", get(admin_webhook_keys))
        // GHL's marketplace consent screen: a page a browser opens, not the API.
        .route(super::consent::PATH, get(choose_location));
    ghl.merge(admin)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(404, "Cannot find the requested route")
}

/// A JSON body, refused the way GHL refuses bad ones (400 for unparsable, 413 for huge).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(json!({})));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|_| ApiError {
            status: 400,
            body: json!({"statusCode": 400, "message": "Unexpected token in JSON body", "error": "Bad Request"}),
        })
    }
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: 413,
                body: json!({"statusCode": 413, "message": "request entity too large", "error": "Payload Too Large"}),
            }
        } else {
            ApiError::bad_request("could not read the request body")
        }
    })
}

/// Form fields (`application/x-www-form-urlencoded`).
pub struct FormBody(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        Ok(FormBody(
            url::form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

fn query_map(raw: Option<String>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Checks the scope and the token's location, runs `work` on the store, sends the webhooks it
/// recorded, and answers `status` with its JSON.
fn with_store(
    app: &App,
    principal: &Principal,
    scope: &str,
    status: StatusCode,
    work: impl FnOnce(&mut Store) -> ApiResult<Value>,
) -> Response {
    let result = principal.require(scope).and_then(|()| {
        let location = principal.location()?;
        let mut store = app
            .store_of(location)
            .ok_or_else(ApiError::forbidden_location)?;
        let answer = work(&mut store);
        let events = store.take_events();
        drop(store);
        app.webhooks.send(location, events);
        answer
    });
    match result {
        Ok(body) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

type Caller = Extension<Principal>;

/// GHL's consent screen ([`super::consent`]).
async fn choose_location(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    use super::consent::{Screen, decide, page, redirect};
    let query = query_map(q);
    let locations: Vec<String> = app
        .store_index
        .keys()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let client_id = app.tokens().client_id().to_owned();
    match decide(&query, &client_id, &locations, &app.company_id) {
        Screen::Choose(choices) => axum::response::Html(page(&choices)).into_response(),
        Screen::Chosen {
            location,
            company,
            scopes,
        } => {
            let (user_type, location) = if company {
                (UserType::Company, app.store().location_id().to_owned())
            } else {
                (UserType::Location, location)
            };
            let now = app.clock.now();
            let code = app
                .tokens()
                .mint_code(user_type, &location, &app.company_id, scopes, now);
            axum::response::Redirect::to(&redirect(&query, &code)).into_response()
        }
        Screen::Refused(why) => (axum::http::StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn oauth_token(State(app): State<Arc<App>>, FormBody(form): FormBody) -> Response {
    let now = app.clock.now();
    match app.tokens().token(&form, now) {
        Ok(grant) => Json(grant).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn location_token(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    FormBody(form): FormBody,
) -> Response {
    let now = app.clock.now();
    match app.tokens().location_token(&p, &form, now) {
        Ok(grant) => Json(grant).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn installed_locations(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    RawQuery(q): RawQuery,
) -> Response {
    match app.tokens().installed_locations(&p, &query_map(q)) {
        Ok(page) => Json(page).into_response(),
        Err(e) => e.into_response(),
    }
}

// ----- admin -----

async fn admin_stats(State(app): State<Arc<App>>) -> Json<Value> {
    let reuse = app.tokens().refresh_token_reuse;
    Json(app.stats.to_json(reuse))
}

async fn admin_state(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let query = query_map(q);
    let mut state = match admin_store(&app, &query) {
        Ok(store) => store.dump(),
        Err(e) => return e.into_response(),
    };
    // `?parts=contacts` (comma-separated) keeps a poll cheap.
    if let Some(parts) = query.get("parts")
        && let Some(object) = state.as_object_mut()
    {
        let keep: Vec<&str> = parts.split(',').map(str::trim).collect();
        object.retain(|key, _| key == "locationId" || keep.contains(&key.as_str()));
    }
    Json(state).into_response()
}

/// The store an admin route acts on: `?locationId=` (default: the first location).
fn admin_store<'a>(
    app: &'a App,
    query: &BTreeMap<String, String>,
) -> ApiResult<std::sync::MutexGuard<'a, Store>> {
    match query.get("locationId") {
        None => Ok(app.store()),
        Some(location) => app
            .store_of(location)
            .ok_or_else(|| ApiError::not_found("Location")),
    }
}

async fn admin_reset(State(app): State<Arc<App>>) -> Response {
    match app.reset() {
        Ok(()) => Json(json!({"reset": true})).into_response(),
        Err(e) => ApiError::bad_request(e.to_string()).into_response(),
    }
}

async fn admin_oauth_code(State(app): State<Arc<App>>, JsonBody(body): JsonBody) -> Response {
    let user_type = match body.get("userType").and_then(Value::as_str) {
        None | Some("Location") => UserType::Location,
        Some("Company") => UserType::Company,
        Some(other) => {
            return ApiError::unprocessable(vec![format!(
                "userType must be Location or Company, got {other}"
            )])
            .into_response();
        }
    };
    let scopes = body.get("scopes").and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    });
    let location = match body.get("locationId").and_then(Value::as_str) {
        None => app.store().location_id().to_owned(),
        Some(location) if app.store_of(location).is_some() => location.to_owned(),
        Some(_) => return ApiError::not_found("Location").into_response(),
    };
    let now = app.clock.now();
    let code = app
        .tokens()
        .mint_code(user_type, &location, &app.company_id, scopes, now);
    Json(json!({"code": code})).into_response()
}

/// `{"locationId": ID, "installed": bool}`: installs or uninstalls the app on a location (the
/// caller posts GHL's INSTALL / UNINSTALL webhook itself).
async fn admin_installation(State(app): State<Arc<App>>, JsonBody(body): JsonBody) -> Response {
    let (Some(location), Some(installed)) = (
        body.get("locationId").and_then(Value::as_str),
        body.get("installed").and_then(Value::as_bool),
    ) else {
        return ApiError::unprocessable(vec![
            "locationId (string) and installed (boolean) are required".into(),
        ])
        .into_response();
    };
    if app.tokens().set_installed(location, installed) {
        Json(json!({"locationId": location, "installed": installed})).into_response()
    } else {
        ApiError::not_found("Location").into_response()
    }
}

async fn admin_clock(State(app): State<Arc<App>>, JsonBody(body): JsonBody) -> Response {
    match body.get("advanceSeconds").and_then(Value::as_i64) {
        Some(seconds) => {
            let now = app.clock.advance(seconds);
            Json(json!({"now": super::clock::iso(now)})).into_response()
        }
        None => ApiError::unprocessable(vec!["advanceSeconds must be an integer".into()])
            .into_response(),
    }
}

async fn admin_webhook_keys() -> Json<Value> {
    Json(super::webhooks::Keys::get().public_keys_json())
}

/// Runs an admin change on a location's store (`?locationId=`, default the first) and sends
/// the webhooks it causes.
fn admin_change(
    app: &App,
    query: &BTreeMap<String, String>,
    change: impl FnOnce(&mut Store) -> ApiResult<Value>,
) -> Response {
    let result = admin_store(app, query).and_then(|mut store| {
        let result = change(&mut store);
        let events = store.take_events();
        let location = store.location_id().to_owned();
        drop(store);
        app.webhooks.send(&location, events);
        result
    });
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}
