//! The HTTP surface: GHL's Contacts and OAuth routes (behind the [`gateway`]) and the admin
//! routes under `/__sandbox/` (outside GHL's paths, never rate limited or counted).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
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

pub fn router(app: Arc<App>) -> Router {
    let ghl = Router::new()
        .route("/contacts/", get(list_contacts).post(create_contact))
        .route("/contacts", get(list_contacts).post(create_contact))
        .route("/contacts/upsert", post(upsert_contact))
        .route("/contacts/search", post(search_contacts))
        .route("/contacts/business/{businessId}", get(contacts_by_business))
        .route(
            "/contacts/{contactId}",
            get(get_contact).put(update_contact).delete(delete_contact),
        )
        .route(
            "/contacts/{contactId}/tasks",
            get(list_tasks).post(create_task),
        )
        .route(
            "/contacts/{contactId}/tasks/{taskId}",
            get(get_task).put(update_task).delete(delete_task),
        )
        .route(
            "/contacts/{contactId}/tasks/{taskId}/completed",
            put(complete_task),
        )
        .route("/locations/{locationId}/tasks/search", post(search_tasks))
        .route("/locations/{locationId}/customFields", get(custom_fields))
        .route(
            "/contacts/{contactId}/notes",
            get(list_notes).post(create_note),
        )
        .route(
            "/contacts/{contactId}/notes/{id}",
            get(get_note).put(update_note).delete(delete_note),
        )
        .route("/contacts/{contactId}/appointments", get(list_appointments))
        .route(
            "/contacts/{contactId}/tags",
            post(add_tags).delete(remove_tags),
        )
        .route("/contacts/bulk/tags/update/{type}", post(bulk_tags))
        .route("/oauth/token", post(oauth_token))
        .route("/oauth/locationToken", post(location_token))
        .route("/oauth/installedLocations", get(installed_locations))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            gateway,
        ));
    let admin = Router::new()
        .route("/__sandbox/stats", get(admin_stats))
        .route("/__sandbox/state", get(admin_state))
        .route("/__sandbox/reset", post(admin_reset))
        .route("/__sandbox/oauth/code", post(admin_oauth_code))
        .route("/__sandbox/clock", post(admin_clock))
        .route("/__sandbox/webhook-keys", get(admin_webhook_keys))
        .route(
            "/__sandbox/contacts/{contactId}",
            axum::routing::patch(admin_edit_contact).delete(admin_delete_contact),
        )
        .route(
            "/__sandbox/contacts/{contactId}/appointments",
            post(admin_create_appointment),
        )
        .route(
            "/__sandbox/appointments/{appointmentId}",
            axum::routing::patch(admin_update_appointment),
        );
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

const READ: &str = "contacts.readonly";
const WRITE: &str = "contacts.write";

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

async fn get_contact(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| s.get_contact(&id))
}

async fn create_contact(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::CREATED, |s| {
        s.create_contact(&body)
    })
}

async fn update_contact(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.update_contact(&id, &body)
    })
}

async fn delete_contact(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| s.delete_contact(&id))
}

async fn upsert_contact(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| s.upsert_contact(&body))
}

async fn search_contacts(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| s.search(&body))
}

async fn list_contacts(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    RawQuery(q): RawQuery,
) -> Response {
    let query = query_map(q);
    with_store(&app, &p, READ, StatusCode::OK, |s| s.list_contacts(&query))
}

async fn contacts_by_business(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(business): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let query = query_map(q);
    with_store(&app, &p, READ, StatusCode::OK, |s| {
        s.contacts_by_business(&business, &query)
    })
}

async fn list_tasks(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| s.list_tasks(&id))
}

async fn create_task(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::CREATED, |s| {
        s.create_task(&id, &body)
    })
}

async fn get_task(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, task)): Path<(String, String)>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| {
        s.get_task(&contact, &task)
    })
}

async fn update_task(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, task)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.update_task(&contact, &task, &body)
    })
}

async fn complete_task(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, task)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.complete_task(&contact, &task, &body)
    })
}

async fn delete_task(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, task)): Path<(String, String)>,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.delete_task(&contact, &task)
    })
}

async fn search_tasks(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(location): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, "locations/tasks.readonly", StatusCode::OK, |s| {
        s.search_tasks(&location, &body)
    })
}

async fn custom_fields(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(location): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let model = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "model")
        .map(|(_, v)| v.into_owned());
    with_store(
        &app,
        &p,
        "locations/customFields.readonly",
        StatusCode::OK,
        |s| s.custom_fields(&location, model.as_deref()),
    )
}

async fn list_notes(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| s.list_notes(&id))
}

async fn create_note(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::CREATED, |s| {
        s.create_note(&id, &body)
    })
}

async fn get_note(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, note)): Path<(String, String)>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| {
        s.get_note(&contact, &note)
    })
}

async fn update_note(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, note)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.update_note(&contact, &note, &body)
    })
}

async fn delete_note(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path((contact, note)): Path<(String, String)>,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.delete_note(&contact, &note)
    })
}

async fn list_appointments(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
) -> Response {
    with_store(&app, &p, READ, StatusCode::OK, |s| s.list_appointments(&id))
}

async fn add_tags(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::CREATED, |s| {
        s.add_tags(&id, &body)
    })
}

async fn remove_tags(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::OK, |s| {
        s.remove_tags(&id, &body)
    })
}

async fn bulk_tags(
    State(app): State<Arc<App>>,
    Extension(p): Caller,
    Path(kind): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    with_store(&app, &p, WRITE, StatusCode::CREATED, |s| {
        s.bulk_tags(&kind, &body)
    })
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
        Err(e) => ApiError::bad_request(e).into_response(),
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

async fn admin_edit_contact(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    JsonBody(patch): JsonBody,
) -> Response {
    admin_change(&app, &query_map(q), |store| {
        store
            .edit_contact(&id, &patch)
            .map(|contact| json!({"contact": contact}))
    })
}

async fn admin_create_appointment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    JsonBody(body): JsonBody,
) -> Response {
    admin_change(&app, &query_map(q), |store| {
        store.create_appointment(&id, &body)
    })
}

async fn admin_update_appointment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    JsonBody(patch): JsonBody,
) -> Response {
    admin_change(&app, &query_map(q), |store| {
        store.update_appointment(&id, &patch)
    })
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

async fn admin_delete_contact(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    admin_change(&app, &query_map(q), |store| store.delete_contact(&id))
}
