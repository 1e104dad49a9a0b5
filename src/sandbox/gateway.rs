//! What every GHL API request goes through before and after its handler, in GHL's order:
//! the `Version` header, the bearer token, the location's rate limit, then (for tests) an
//! injected fault; afterwards the `X-RateLimit-*` headers and the request counters.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::App;
use super::errors::ApiError;
use super::faults::{Fault, decide};

/// The operation a route serves (the same names the client's metrics use).
pub fn operation_name(method: &Method, route: &str) -> &'static str {
    match (method.as_str(), route) {
        ("GET", "/contacts/{contactId}") => "contacts.get",
        ("PUT", "/contacts/{contactId}") => "contacts.update",
        ("DELETE", "/contacts/{contactId}") => "contacts.delete",
        ("POST", "/contacts/" | "/contacts") => "contacts.create",
        ("GET", "/contacts/" | "/contacts") => "contacts.list",
        ("POST", "/contacts/upsert") => "contacts.upsert",
        ("POST", "/contacts/search") => "contacts.search",
        ("GET", "/contacts/business/{businessId}") => "contacts.by_business",
        ("GET", "/contacts/{contactId}/tasks") => "tasks.list",
        ("POST", "/contacts/{contactId}/tasks") => "tasks.create",
        ("GET", "/contacts/{contactId}/tasks/{taskId}") => "tasks.get",
        ("PUT", "/contacts/{contactId}/tasks/{taskId}") => "tasks.update",
        ("DELETE", "/contacts/{contactId}/tasks/{taskId}") => "tasks.delete",
        ("PUT", "/contacts/{contactId}/tasks/{taskId}/completed") => "tasks.complete",
        ("POST", "/locations/{locationId}/tasks/search") => "tasks.search",
        ("GET", "/locations/{locationId}/customFields") => "custom_fields.list",
        ("GET", "/contacts/{contactId}/notes") => "notes.list",
        ("POST", "/contacts/{contactId}/notes") => "notes.create",
        ("GET", "/contacts/{contactId}/notes/{id}") => "notes.get",
        ("PUT", "/contacts/{contactId}/notes/{id}") => "notes.update",
        ("DELETE", "/contacts/{contactId}/notes/{id}") => "notes.delete",
        ("GET", "/contacts/{contactId}/appointments") => "appointments.list",
        ("POST", "/contacts/{contactId}/tags") => "tags.add",
        ("DELETE", "/contacts/{contactId}/tags") => "tags.remove",
        ("POST", "/contacts/bulk/tags/update/{type}") => "tags.bulk",
        ("POST", "/oauth/token") => "oauth.token",
        ("POST", "/oauth/locationToken") => "oauth.location_token",
        ("GET", "/oauth/installedLocations") => "oauth.installed_locations",
        _ => "unknown",
    }
}

/// The middleware around every GHL route.
pub async fn gateway(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let operation = operation_name(request.method(), &route);
    let index = app.stats.next_index();

    let mut location = None;
    let (response, outcome) = handle(&app, operation, index, request, next, &mut location).await;
    if let Some(outcome) = outcome {
        app.stats.record(operation, &outcome, location.as_deref());
    }
    response
}

async fn handle(
    app: &Arc<App>,
    operation: &'static str,
    index: u64,
    mut request: Request,
    next: Next,
    location: &mut Option<String>,
) -> (Response, Option<String>) {
    let reject = |e: ApiError| {
        let status = e.status.to_string();
        (e.into_response(), Some(status))
    };
    // The token endpoint authenticates by form fields and declares no Version header.
    if operation != "oauth.token" {
        match request
            .headers()
            .get("version")
            .and_then(|v| v.to_str().ok())
        {
            Some(v) if v == app.api_version => {}
            Some(_) => return reject(ApiError::bad_request("Version header is not supported")),
            None => return reject(ApiError::bad_request("version header was not found")),
        }
    }
    let mut rate_headers = None;
    if operation != "oauth.token" {
        let auth = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let principal = match app.tokens().authenticate(auth.as_deref(), app.clock.now()) {
            Ok(p) => p,
            Err(e) => return reject(e),
        };
        let bucket = principal
            .location_id
            .clone()
            .unwrap_or_else(|| principal.company_id.clone());
        let verdict = app.rate_limiter.check(&bucket);
        *location = Some(bucket);
        if !verdict.allowed {
            let mut response = ApiError::too_many_requests().into_response();
            response.headers_mut().extend(verdict.headers);
            return (response, Some("429".into()));
        }
        rate_headers = Some(verdict.headers);
        request.extensions_mut().insert(principal);
    }

    let fault = decide(&app.faults, index, operation);
    if let Fault::ServerError(status) = fault {
        return reject(ApiError::server_error(status));
    }
    let mut response = next.run(request).await;
    if let Some(headers) = rate_headers {
        response.headers_mut().extend(headers);
    }
    let status = response.status().as_u16();
    match fault {
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (response, Some(status.to_string()))
        }
        Fault::Timeout => {
            // Carried out, never answered: the client gives up first.
            app.stats.record(operation, "timeout", location.as_deref());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (response, None)
        }
        Fault::Drop => (broken(response).await, Some("dropped".into())),
        Fault::CreatedBut422 if (200..300).contains(&status) => {
            reject(ApiError::unprocessable(vec![
                "contact could not be created".into(),
            ]))
        }
        _ => (response, Some(status.to_string())),
    }
}

/// The same answer with a body that breaks off: the client sees the connection drop.
async fn broken(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let full = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = full.slice(..full.len() / 2);
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(full.len().max(1) as u64),
    );
    let stream = futures::stream::iter([
        Ok::<Bytes, std::io::Error>(half),
        Err(std::io::Error::other(
            "connection dropped by fault injection",
        )),
    ]);
    Response::from_parts(parts, Body::from_stream(stream))
}
