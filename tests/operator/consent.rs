//! Connecting a GHL account through the operator's own redirect URI: a new OAuth connection
//! publishes a consent link; following it (the sandbox's consent screen, `&locationId=`)
//! brings the browser back to the operator's `/oauth/callback`, which completes the connection
//! within seconds; a replayed or tampered callback is refused and spends nothing; a consent
//! for another location than the declared one is refused and nothing is stored.

use std::time::{Duration, Instant};

use ghl_operator::crd::GhlConnection;
use ghl_operator::sandbox::SandboxConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};
use crate::webhooks::key_files;

const READY: Duration = Duration::from_secs(60);
const OTHER: &str = "locConsentOther00002";

fn connection(name: &str, sandbox_url: &str, port: u16) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "app", "labels": {"ghl.servis.ai/secret-type": "oauth-client"}},
               "stringData": {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
               "metadata": {"name": name},
               "spec": {"locationId": "ve9EPM428h8vShlRW1KT", "baseUrl": sandbox_url,
                        "auth": {"oauth": {
                            "clientSecretRef": {"name": "app"},
                            "tokenSecretRef": {"name": format!("{name}-tokens")},
                            "redirectUri": format!("http://127.0.0.1:{port}/oauth/callback"),
                            "authorizationUrl": format!("{sandbox_url}/oauth/chooselocation"),
                            "scopes": ["contacts.readonly", "contacts.write"]}}}}),
    ]
}

fn consent_url(c: &GhlConnection) -> Option<String> {
    c.status.as_ref()?.consent.as_ref().map(|c| c.url.clone())
}

async fn token_calls(raw: &Raw) -> u64 {
    raw.admin("GET", "stats", None).await["byOperation"]["oauth.token"]
        .as_u64()
        .unwrap_or(0)
}

/// A browser: follows redirects, answers the last page (status, URL, text).
async fn open(url: &str) -> (u16, String, String) {
    let answer = reqwest::get(url).await.unwrap();
    let status = answer.status().as_u16();
    let at = answer.url().to_string();
    (status, at, answer.text().await.unwrap())
}

#[tokio::test]
async fn a_connection_is_completed_by_consenting_through_the_operator() {
    let Some((client, ns)) = setup("consent").await else {
        return;
    };
    let sandbox = start(SandboxConfig {
        other_locations: vec![OTHER.into()],
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let port = free_port();
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options
        .extra_args
        .push(format!("--webhook-addr=127.0.0.1:{port}"));
    for file in key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    let operator = Operator::start(options);
    let applied = Instant::now();
    for doc in connection("acme", &sandbox.url, port) {
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let waiting = wait_object(&api, "acme", "a consent link", READY, |c| {
        consent_url(c).is_some()
    })
    .await;
    assert_eq!(
        condition(&waiting, "Authenticated")
            .map(|(_, r)| r)
            .as_deref(),
        Some("ConsentRequired")
    );
    let url = consent_url(&waiting).unwrap();
    assert!(
        url.contains("state=") && url.contains("client_id=sandbox-client-id"),
        "{url}"
    );
    assert_eq!(
        condition(&waiting, "RedirectUriServed"),
        Some(("True".into(), "CallbackServed".into()))
    );

    // `ghl-operator connect` (also `kubectl ghl connect`) prints the link and waits.
    let connect = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args(["connect", "acme", "-n", &ns.name, "--timeout", "60s"])
        .env("KUBECONFIG", kubeconfig_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The consent screen lists the locations; choosing one comes back to the operator.
    let (status, _, page) = open(&url).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("ve9EPM428h8vShlRW1KT") && page.contains(OTHER),
        "{page}"
    );
    let before = token_calls(&raw).await;
    let (status, callback, page) = open(&format!("{url}&locationId=ve9EPM428h8vShlRW1KT")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(
            "connected {}/acme to location ve9EPM428h8vShlRW1KT",
            ns.name
        )),
        "{page}"
    );
    assert!(callback.contains("/oauth/callback?code="), "{callback}");
    let connected = wait_object(&api, "acme", "Authenticated", READY, |c| {
        is_true(c, "Authenticated") && is_true(c, "Ready")
    })
    .await;
    eprintln!(
        "apply → Authenticated in {:?}; {} token call(s)",
        applied.elapsed(),
        token_calls(&raw).await - before
    );
    assert!(consent_url(&connected).is_none(), "no link once connected");
    let connected_cli = connect.wait_with_output().await.unwrap();
    let printed = String::from_utf8_lossy(&connected_cli.stdout);
    assert!(connected_cli.status.success(), "{printed}");
    assert!(printed.contains(&url), "the link printed: {printed}");
    assert!(
        printed.contains("connected to location ve9EPM428h8vShlRW1KT with an OAuth grant"),
        "{printed}"
    );
    assert_eq!(token_calls(&raw).await - before, 1, "one code exchange");

    // A policy on it converges.
    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "vip"},
        "spec": {"connectionRef": {"name": "acme"}, "contacts": [{"email": "consented@example.com"}]}}))
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // The same callback again, or with its state changed: refused, nothing spent.
    let spent = token_calls(&raw).await;
    let (status, _, page) = open(&callback).await;
    assert_eq!(status, 400, "{page}");
    let tampered = callback.replace("state=", "state=x");
    let (status, _, _) = open(&tampered).await;
    assert_eq!(status, 400);
    let forged = callback.replacen(&ns.name, "default", 1);
    let (status, _, _) = open(&forged).await;
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        token_calls(&raw).await,
        spent,
        "nothing spent at /oauth/token"
    );

    // Consenting for another location than the declared one: refused, nothing stored.
    for doc in connection("wrong", &sandbox.url, port) {
        apply(&client, &ns.name, doc).await;
    }
    let waiting = wait_object(&api, "wrong", "a consent link", READY, |c| {
        consent_url(c).is_some()
    })
    .await;
    let url = consent_url(&waiting).unwrap();
    let (status, _, page) = open(&format!("{url}&locationId={OTHER}")).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains(OTHER) && page.contains("declares"), "{page}");
    let refused = wait_object(&api, "wrong", "ConsentRefused", READY, |c| {
        condition(c, "Authenticated").is_some_and(|(_, r)| r == "ConsentRefused")
    })
    .await;
    let again = wait_object(&api, "wrong", "a new link to try again", READY, |c| {
        consent_url(c).is_some_and(|u| u != url)
    })
    .await;
    assert!(consent_url(&again).is_some());
    let why = condition_message(&refused, "Authenticated").unwrap_or_default();
    assert!(
        why.contains(OTHER) && why.contains("nothing was stored"),
        "{why}"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    wait_for("a ConsentRefused Warning", READY, || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ConsentRefused")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("wrong")
            })
            .then_some(())
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let tokens = secrets.get_opt("wrong-tokens").await.unwrap();
    assert!(
        tokens
            .and_then(|s| s.data)
            .is_none_or(|d| !d.contains_key("access_token")),
        "no tokens kept from a refused grant"
    );

    // A redirect URI that is not the operator's callback: a clear condition, and no link a
    // consent could not come back through.
    let mut elsewhere = connection("elsewhere", &sandbox.url, port);
    elsewhere[1]["spec"]["auth"]["oauth"]["redirectUri"] =
        json!(format!("http://127.0.0.1:{port}/callback"));
    for doc in elsewhere {
        apply(&client, &ns.name, doc).await;
    }
    let unserved = wait_object(&api, "elsewhere", "RedirectUriServed=False", READY, |c| {
        condition(c, "RedirectUriServed").is_some_and(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(
        condition(&unserved, "RedirectUriServed").map(|(_, r)| r),
        Some("RedirectUriNotServed".into())
    );
    assert!(
        condition_message(&unserved, "RedirectUriServed")
            .is_some_and(|m| m.contains("/oauth/callback")),
        "the message says what the path must be"
    );
    assert!(consent_url(&unserved).is_none(), "no link");
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
