//! `ghl-operator demo --oauth`: the consent, as the operator does it, in a few lines — a
//! consent link with a sealed single-use `state`, the sandbox's consent screen, the browser
//! sent back to a `/oauth/callback` (served here on loopback, as the operator serves it on its
//! webhook listener), the code exchanged once, a replayed callback refused, and the new access
//! token reading the location. No token value is printed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::credentials::keys::OperatorKeys;
use crate::credentials::oauth::consent;
use crate::ghl::GhlMetrics;
use crate::ghl::models::UserTypeParam;
use crate::ghl::oauth::{ClientCredentials, OAuthClient};
use crate::ghl::retry::RetryPolicy;
use crate::ghl::transport::HttpTimeouts;
use crate::sandbox::RunningSandbox;
use crate::sandbox::config::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

/// The connection the demo's state names (as `examples/11-connection-oauth.yaml` does).
const NAMESPACE: &str = "crm";
const CONNECTION: &str = "acme-oauth";
const UID: &str = "demo-connection-uid";

/// What the callback shares with the demo.
struct Callback {
    keys: OperatorKeys,
    used: Mutex<HashSet<String>>,
    codes: mpsc::UnboundedSender<SecretString>,
}

#[derive(Deserialize)]
struct Returned {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /oauth/callback`: the state must be this connection's, unexpired and unused.
async fn callback(
    State(cb): State<Arc<Callback>>,
    Query(returned): Query<Returned>,
) -> (StatusCode, String) {
    let (Some(code), Some(state)) = (returned.code, returned.state) else {
        return (StatusCode::BAD_REQUEST, "no code or state".into());
    };
    let checked = consent::parse(&state)
        .and_then(|named| consent::verify(&cb.keys, &named, UID, Timestamp::now()));
    if let Err(refused) = checked {
        return (StatusCode::BAD_REQUEST, refused.to_string());
    }
    if !cb
        .used
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(state)
    {
        return (
            StatusCode::BAD_REQUEST,
            "this consent link was already used; open the current one".into(),
        );
    }
    let _ = cb.codes.send(SecretString::from(code));
    (
        StatusCode::OK,
        format!("connected {NAMESPACE}/{CONNECTION}: you can close this page"),
    )
}

/// Runs the consent against `sandbox` and prints each step.
pub async fn run(sandbox: &RunningSandbox) -> anyhow::Result<()> {
    let keys = OperatorKeys::ephemeral();
    let (codes, mut received) = mpsc::unbounded_channel();
    let shared = Arc::new(Callback {
        keys: keys.clone(),
        used: Mutex::new(HashSet::new()),
        codes,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect_uri = format!(
        "http://{}{}",
        listener.local_addr()?,
        consent::CALLBACK_PATH
    );
    let app = axum::Router::new()
        .route(consent::CALLBACK_PATH, get(callback))
        .with_state(shared);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let nonce = format!("{:x}", rand::random::<u64>());
    let (state, expires_at) = consent::issue(
        &keys,
        (NAMESPACE, CONNECTION, UID),
        &nonce,
        Timestamp::now(),
    );
    let scopes = ["contacts.readonly".to_owned(), "contacts.write".to_owned()];
    let link = consent::url(&consent::Request {
        authorization_url: &format!("{}/oauth/chooselocation", sandbox.url),
        client_id: DEFAULT_CLIENT_ID,
        redirect_uri: &redirect_uri,
        scopes: &scopes,
        state: &state,
        company: false,
    })?;
    println!("The connection has no grant: Authenticated=False, reason ConsentRequired, and");
    println!("status.consent.url (good until {expires_at}, once):");
    println!("  {link}");
    println!("(`kubectl ghl connect {CONNECTION} --open` prints it and opens it.)");

    // The person picks the location; the sandbox-only `&locationId=` picks it at once.
    let browser = reqwest::Client::new();
    let chosen = format!("{link}&locationId={}", sandbox.location_id);
    let page = browser.get(&chosen).send().await?;
    let back_at = page.url().clone();
    println!(
        "A person chooses location {}; GHL sends the browser back to {} → {} \"{}\"",
        sandbox.location_id,
        back_at.path(),
        page.status().as_u16(),
        page.text().await?
    );
    let code = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("the callback received no code within 30 s"))?;

    let oauth = OAuthClient::new(
        &sandbox.url,
        crate::crd::connection::DEFAULT_API_VERSION,
        HttpTimeouts::default(),
        RetryPolicy::default(),
        Arc::new(GhlMetrics::default()),
    )?;
    let app_credentials = ClientCredentials {
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.to_owned().into(),
    };
    let grant = oauth
        .exchange_code(
            &app_credentials,
            &code,
            Some(&redirect_uri),
            UserTypeParam::Location,
        )
        .await
        .context("exchanging the code")?;
    let granted = grant.location_id.clone().unwrap_or_default();
    if granted != sandbox.location_id {
        return Err(anyhow!(
            "the grant names location {granted}, not the declared {}: nothing would be stored",
            sandbox.location_id
        ));
    }
    println!(
        "The code is exchanged once at /oauth/token: a grant for location {granted}, scopes [{}], \
         access token good for {} s (in a cluster: stored in the token Secret, refreshed before expiry).",
        grant.tokens.scope.as_deref().unwrap_or_default(),
        grant.tokens.expires_in.unwrap_or_default()
    );

    let replay = browser.get(back_at.as_str()).send().await?;
    println!(
        "The same callback again: {} \"{}\" — nothing is spent.",
        replay.status().as_u16(),
        replay.text().await?
    );

    let read = browser
        .get(format!("{}/contacts/", sandbox.url))
        .query(&[("locationId", sandbox.location_id.as_str()), ("limit", "1")])
        .header("Version", crate::crd::connection::DEFAULT_API_VERSION)
        .bearer_auth(grant.tokens.access_token.expose_secret())
        .send()
        .await?;
    println!(
        "The new access token reads the location: GET /contacts/ → {}.",
        read.status().as_u16()
    );
    server.abort();
    Ok(())
}
