//! `GET /oauth/callback`: where GHL sends the browser back after a person consented, on the
//! public (webhook) listener. The `state` names the connection and must verify for it; the
//! code is kept in the connection's consent Secret (created once, owned by the connection,
//! labeled as an `oauth-code`) and the connection exchanges it under its shard's fence, with
//! the care of every single-use spend. The answer waits a little for the outcome and says it
//! in a small page that names the connection and the location, nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::crd::vocabulary::{condition, label, reason};
use crate::crd::{GhlConnection, Kind};
use crate::credentials::oauth::consent::{self, CALLBACK_PATH, CODE_KEY, STATE_KEY};
use crate::refs::SecretRole;

/// How long the answer waits for the connection to be authenticated.
const WAIT: Duration = Duration::from_secs(20);

/// The router: `GET /oauth/callback`.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route(CALLBACK_PATH, get(callback))
        .with_state(ctx)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, line: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1><p>{}</p></body></html>",
            escape(title),
            escape(title),
            escape(line)
        )),
    )
}

async fn callback(
    State(ctx): State<Arc<Context>>,
    RawQuery(query): RawQuery,
) -> (StatusCode, Html<String>) {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let refused = |line: &str| page(StatusCode::BAD_REQUEST, "Not connected", line);
    if let Some(error) = query.get("error") {
        return refused(&format!("GHL answered {error}: nothing was granted"));
    }
    let (Some(code), Some(state)) = (query.get("code"), query.get("state")) else {
        return refused("the link carries no code or no state");
    };
    let named = match consent::parse(state) {
        Ok(named) => named,
        Err(why) => return refused(&why.to_string()),
    };
    let Some(connection) = ctx
        .registry
        .stores
        .connections
        .state()
        .into_iter()
        .find(|c| {
            c.namespace().as_deref() == Some(named.namespace.as_str()) && c.name_any() == named.name
        })
    else {
        return refused("the consent link is not for a connection the operator serves");
    };
    let uid = connection.metadata.uid.clone().unwrap_or_default();
    if let Err(why) = consent::verify(&ctx.credentials.keys, &named, &uid, Timestamp::now()) {
        return refused(&why.to_string());
    }
    let before = revision(&connection);
    match keep(&ctx, &connection, &uid, code, state).await {
        Ok(()) => {}
        Err(Keep::Used) => return refused("this consent link was used already"),
        Err(Keep::Failed(why)) => {
            tracing::warn!(connection = %named.name, "could not keep the consent's code: {why}");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not connected yet",
                "the operator could not keep the code; open the consent link again",
            );
        }
    }
    let key = ObjectKey::of(Kind::GhlConnection, connection.as_ref());
    ctx.registry.wake(key);
    outcome(&ctx, &named.namespace, &named.name, before).await
}

/// The grant's revision in status (a new one means the exchange went through).
fn revision(connection: &GhlConnection) -> Option<i64> {
    connection
        .status
        .as_ref()
        .and_then(|s| s.credentials.as_ref())
        .map(|c| c.revision)
}

enum Keep {
    /// The state brought a code already.
    Used,
    Failed(String),
}

/// Keeps `code` in the connection's consent Secret, unless `state` brought one already.
async fn keep(
    ctx: &Context,
    connection: &GhlConnection,
    uid: &str,
    code: &str,
    state: &str,
) -> Result<(), Keep> {
    let namespace = connection.namespace().unwrap_or_default();
    let name = consent::code_secret_name(&connection.name_any(), uid);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let state_digest = crate::engine::ledger::key_digest(state);
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(|e| Keep::Failed(e.to_string()))?;
    if let Some(existing) = &existing {
        let owned = existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid);
        if !owned {
            return Err(Keep::Failed(format!(
                "Secret {name} is in the way: it is not this connection's"
            )));
        }
        let used = existing
            .data
            .as_ref()
            .and_then(|d| d.get(STATE_KEY))
            .is_some_and(|b| b.0 == state_digest.as_bytes());
        if used {
            return Err(Keep::Used);
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            resource_version: existing
                .as_ref()
                .and_then(|s| s.metadata.resource_version.clone()),
            labels: Some(BTreeMap::from([
                (
                    label::MANAGED_BY.to_owned(),
                    label::MANAGED_BY_VALUE.to_owned(),
                ),
                (
                    label::SECRET_TYPE.to_owned(),
                    SecretRole::OAuthCode.label_value().to_owned(),
                ),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "ghl.servis.ai/v1alpha1".to_owned(),
                kind: "GhlConnection".to_owned(),
                name: connection.name_any(),
                uid: uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (CODE_KEY.to_owned(), ByteString(code.as_bytes().to_vec())),
            (STATE_KEY.to_owned(), ByteString(state_digest.into_bytes())),
        ])),
        ..Secret::default()
    };
    let written = match existing {
        None => secrets.create(&PostParams::default(), &secret).await,
        Some(_) => {
            secrets
                .replace(&name, &PostParams::default(), &secret)
                .await
        }
    };
    match written {
        Ok(_) => Ok(()),
        // Another callback with this state won the race.
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Keep::Used),
        Err(e) => Err(Keep::Failed(e.to_string())),
    }
}

/// Waits for the connection to report the consent's outcome, and says it.
async fn outcome(
    ctx: &Context,
    namespace: &str,
    name: &str,
    before: Option<i64>,
) -> (StatusCode, Html<String>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let title = format!("{namespace}/{name}");
    loop {
        let current = ctx
            .registry
            .stores
            .connections
            .state()
            .into_iter()
            .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == name);
        if let Some(connection) = current {
            let ready = connection.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == condition::AUTHENTICATED)
                    .cloned()
            });
            let renewed = revision(&connection) != before;
            match ready {
                Some(c) if c.status == "True" && renewed => {
                    return page(
                        StatusCode::OK,
                        "Connected",
                        &format!(
                            "connected {title} to location {}",
                            connection.spec.location_id
                        ),
                    );
                }
                Some(c) if c.reason == reason::CONSENT_REFUSED => {
                    return page(
                        StatusCode::BAD_REQUEST,
                        "Not connected",
                        &format!("{title}: {}", c.message),
                    );
                }
                _ => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return page(
                StatusCode::ACCEPTED,
                "Consent received",
                &format!("{title} is being connected; kubectl ghl status shows when it is"),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
