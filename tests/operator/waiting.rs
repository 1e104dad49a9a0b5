//! A connection GHL refuses: it is not Authenticated, and its policy waits with a clear reason
//! instead of failing in a loop; fixing the Secret brings both back without touching them.

use std::time::Duration;

use ghl_operator::crd::ContactSyncPolicy;
use serde_json::json;

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_refused_token_stops_the_connection_and_its_policy_waits_until_the_secret_is_fixed() {
    let Some((client, ns)) = setup("badtoken").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in examples(&sandbox.url) {
        if doc["kind"] == "Secret" {
            doc["stringData"]["token"] = json!("pit-wrong-token");
        }
        apply(&client, &ns.name, doc).await;
    }

    let connection = wait_object(
        &connections(&client, &ns.name),
        "acme",
        "refused",
        READY,
        |c| {
            condition(c, "Authenticated")
                .is_some_and(|(s, r)| s == "False" && r == "CredentialsRejected")
        },
    )
    .await;
    assert!(!is_true(&connection, "Ready"));
    assert!(is_true(&connection, "Stalled"));
    // The policy waits, and says why.
    let ready_message = |p: &ghl_operator::crd::ContactSyncPolicy| {
        serde_json::to_value(p).unwrap()["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
            .and_then(|c| c["message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let policy = wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "waiting, with the reason",
        READY,
        |p| {
            condition(p, "Ready").is_some_and(|(s, r)| s == "False" && r == "ConnectionNotReady")
                && ready_message(p).contains("CredentialsRejected")
        },
    )
    .await;
    let message = ready_message(&policy);
    assert!(
        message.contains("acme") && message.contains("not ready"),
        "{message}"
    );
    assert!(
        sandbox_contacts(&raw).await.is_empty(),
        "nothing written while refused"
    );

    // Fix the Secret: the watch on it re-checks the connection, whose readiness wakes the policy.
    apply(
        &client,
        &ns.name,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "acme-pit", "labels": {"ghl.servis.ai/secret-type": "pit"}},
            "stringData": {"token": "pit-sandbox-token"}
        }),
    )
    .await;
    wait_object(
        &connections(&client, &ns.name),
        "acme",
        "Authenticated",
        READY,
        |c| is_true(c, "Authenticated"),
    )
    .await;
    wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    assert_eq!(sandbox_contacts(&raw).await.len(), 3);
    operator.stop().await;
    ns.delete().await;
}

/// A policy may name a connection of another namespace only when that connection lists the
/// policy's namespace in `spec.allowedNamespaces`.
#[tokio::test]
async fn a_cross_namespace_reference_is_refused_unless_the_connection_allows_it() {
    let Some((client, ns)) = setup("crossns").await else {
        return;
    };
    let other = TestNamespace::create(&client, "crossns-owner").await;
    let mut options = OperatorOptions::new(&ns.name, "op-0");
    options
        .extra_args
        .push(format!("--watch-namespace={}", other.name));
    let operator = Operator::start(options);
    let connection = |allowed: &[&str]| {
        json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": "acme"},
            "spec": {"locationId": "loc-x", "baseUrl": "http://127.0.0.1:1",
                     "allowedNamespaces": allowed,
                     "auth": {"privateIntegrationToken": {"secretRef": {"name": "none", "key": "token"}}}}
        })
    };
    apply(&client, &other.name, connection(&[])).await;
    apply(
        &client,
        &ns.name,
        json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
            "metadata": {"name": "elsewhere"},
            "spec": {"connectionRef": {"name": "acme", "namespace": other.name},
                     "contacts": [{"email": "ada@example.com"}]}
        }),
    )
    .await;
    let denied = |p: &ContactSyncPolicy| {
        condition(p, "Stalled")
            .is_some_and(|(s, r)| s == "True" && r == "CrossNamespaceReferenceDenied")
    };
    wait_object(
        &policies(&client, &ns.name),
        "elsewhere",
        "refused",
        READY,
        denied,
    )
    .await;

    // The connection's owner allows the namespace: the reference is no longer refused (the
    // connection itself is not usable here: its Secret does not exist).
    apply(&client, &other.name, connection(&[&ns.name])).await;
    let policy = wait_object(
        &policies(&client, &ns.name),
        "elsewhere",
        "allowed",
        READY,
        |p| {
            condition(p, "Ready").is_some_and(|(_, r)| r != "CrossNamespaceReferenceDenied")
                && !denied(p)
        },
    )
    .await;
    assert_eq!(
        condition(&policy, "Ready").map(|(_, r)| r).as_deref(),
        Some("ConnectionNotReady"),
        "now waiting for the connection itself"
    );
    operator.stop().await;
    other.delete().await;
    ns.delete().await;
}
