//! Hostile objects next to a healthy tenant: each one gets a clear condition or Event, no
//! foreign host receives a request, no Secret or workload it names is touched, the process
//! never restarts, and the healthy policy stays Synced.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

/// A host nobody may send anything to; counts the connections it receives.
async fn foreign_host() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, hits)
}

fn connection(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
           "metadata": {"name": name}, "spec": spec})
}

fn pit(secret: &str, key: &str) -> Value {
    json!({"privateIntegrationToken": {"secretRef": {"name": secret, "key": key}}})
}

/// What a hostile object must end up showing.
enum Expect {
    /// Condition `type` has this reason.
    Condition {
        kind: &'static str,
        name: &'static str,
        type_: &'static str,
        reason: &'static str,
    },
    /// A Warning Event with this reason regarding the object.
    Warning {
        name: &'static str,
        reason: &'static str,
    },
    /// The first sink of the connection reports this in `lastError`.
    SinkRefused { name: &'static str },
}

async fn holds(client: &kube::Client, ns: &str, expect: &Expect) -> bool {
    match expect {
        Expect::Condition {
            kind,
            name,
            type_,
            reason,
        } => {
            let found = match *kind {
                "GhlConnection" => connections(client, ns)
                    .get(name)
                    .await
                    .ok()
                    .and_then(|o| condition(&o, type_)),
                "ContactSyncPolicy" => policies(client, ns)
                    .get(name)
                    .await
                    .ok()
                    .and_then(|o| condition(&o, type_)),
                _ => rules(client, ns)
                    .get(name)
                    .await
                    .ok()
                    .and_then(|o| condition(&o, type_)),
            };
            found.is_some_and(|(_, r)| r == *reason)
        }
        Expect::Warning { name, reason } => {
            let events: Api<Event> = Api::namespaced(client.clone(), ns);
            events
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items.iter().any(|e| {
                        e.reason.as_deref() == Some(reason)
                            && e.type_.as_deref() == Some("Warning")
                            && e.involved_object.name.as_deref() == Some(name)
                    })
                })
                .unwrap_or(false)
        }
        Expect::SinkRefused { name } => connections(client, ns)
            .get(name)
            .await
            .ok()
            .and_then(|c| serde_json::to_value(c.status).ok())
            .and_then(|s| {
                s["export"]["sinks"][0]["lastError"]
                    .as_str()
                    .map(str::to_owned)
            })
            .is_some_and(|e| e.contains("not allowed")),
    }
}

#[tokio::test]
async fn hostile_objects_get_clear_conditions_and_touch_nothing() {
    let Some((client, ns)) = setup("hostile").await else {
        return;
    };
    let sandbox = start_default().await;
    let (foreign, hits) = foreign_host().await;
    let mut operator =
        Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));

    // The healthy tenant: the examples.
    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    let before = sandbox_contacts(&Raw::new(&sandbox)).await;

    // What the hostile objects point at: an unrelated Secret and a workload that did not opt in.
    let victims = [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password"},
               "stringData": {"password": "hunter2-do-not-leak"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-oauth",
               "labels": {"ghl.servis.ai/secret-type": "oauth-client"}},
               "stringData": {"client_id": "id", "client_secret": "secret"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "billing"},
               "spec": {"selector": {"matchLabels": {"app": "b"}},
                        "template": {"metadata": {"labels": {"app": "b"}},
                                     "spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}),
    ];
    for doc in victims {
        apply(&client, &ns.name, doc).await;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let secret_before = secrets.get("db-password").await.unwrap();
    let deployment_before = deployments.get("billing").await.unwrap();

    let location = &sandbox.location_id;
    let table: Vec<(&str, Value, Expect)> = vec![
        (
            "a token sent to any host",
            connection(
                "exfil",
                json!({"locationId": location, "baseUrl": foreign,
                                       "auth": pit("db-password", "password")}),
            ),
            Expect::Condition {
                kind: "GhlConnection",
                name: "exfil",
                type_: "Ready",
                reason: "BaseUrlNotAllowed",
            },
        ),
        (
            "the cloud metadata endpoint",
            connection(
                "metadata",
                json!({"locationId": location, "baseUrl": "http://169.254.169.254/latest",
                                          "auth": pit("db-password", "password")}),
            ),
            Expect::Condition {
                kind: "GhlConnection",
                name: "metadata",
                type_: "Ready",
                reason: "BaseUrlNotAllowed",
            },
        ),
        (
            "tokenSecretRef naming a Secret the operator did not create",
            connection(
                "takeover",
                json!({"locationId": location, "baseUrl": sandbox.url, "auth": {"oauth": {
                "clientSecretRef": {"name": "app-oauth"}, "tokenSecretRef": {"name": "db-password"}}}}),
            ),
            Expect::Condition {
                kind: "GhlConnection",
                name: "takeover",
                type_: "Ready",
                reason: "SecretNotOwned",
            },
        ),
        (
            "consumers.secretName naming a Secret the operator did not create",
            connection(
                "publish",
                json!({"locationId": location, "baseUrl": sandbox.url,
                                         "auth": pit("acme-pit", "token"),
                                         "consumers": {"secretName": "db-password"}}),
            ),
            Expect::Warning {
                name: "publish",
                reason: "SecretNotOwned",
            },
        ),
        (
            "rolloutRestartTargets naming a workload that did not opt in",
            connection(
                "restart",
                json!({"locationId": location, "baseUrl": sandbox.url,
                                         "auth": pit("acme-pit", "token"),
                                         "consumers": {"rolloutRestartTargets": [{"kind": "Deployment", "name": "billing"}]}}),
            ),
            Expect::Warning {
                name: "restart",
                reason: "RolloutNotPermitted",
            },
        ),
        (
            "a change feed to a URL the installer did not allow",
            connection(
                "feed",
                json!({"locationId": location, "baseUrl": sandbox.url,
                                      "auth": pit("acme-pit", "token"),
                                      "export": {"sinks": [{"name": "out", "url": format!("{foreign}/steal"),
                                                            "signingSecretRef": {"name": "db-password", "key": "password"}}]}}),
            ),
            Expect::SinkRefused { name: "feed" },
        ),
        (
            "contactsFrom reading a Secret that holds no records",
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "echo"},
                   "spec": {"connectionRef": {"name": "acme"},
                            "contactsFrom": [{"secretRef": {"name": "db-password", "key": "password"}, "format": "csv"}]}}),
            Expect::Condition {
                kind: "ContactSyncPolicy",
                name: "echo",
                type_: "Ready",
                reason: "InvalidSpec",
            },
        ),
        (
            "a duration of 2^64 seconds",
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "forever"},
                   "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "18446744073709551615s",
                            "contacts": [{"email": "forever@example.com"}]}}),
            Expect::Condition {
                kind: "ContactSyncPolicy",
                name: "forever",
                type_: "Ready",
                reason: "InvalidSpec",
            },
        ),
        (
            "a TagRule touching the whole location",
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "TagRule", "metadata": {"name": "everyone"},
                   "spec": {"connectionRef": {"name": "acme"}, "selector": {}, "addTags": ["everyone"],
                            "safety": {"maxChanges": 1}}}),
            Expect::Condition {
                kind: "TagRule",
                name: "everyone",
                type_: "Ready",
                reason: "SafetyLimitExceeded",
            },
        ),
    ];
    for (_, doc, _) in &table {
        apply(&client, &ns.name, doc.clone()).await;
    }
    for (case, _, expect) in &table {
        wait_for(case, READY, || async {
            holds(&client, &ns.name, expect).await.then_some(())
        })
        .await;
    }

    // Give the hostile objects a few more reconciles to misbehave.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a foreign host was contacted"
    );
    let secret_after = secrets.get("db-password").await.unwrap();
    assert_eq!(
        secret_after.resource_version(),
        secret_before.resource_version(),
        "the unrelated Secret was written"
    );
    assert!(secret_after.owner_references().is_empty());
    let deployment_after = deployments.get("billing").await.unwrap();
    assert_eq!(
        deployment_after.metadata.generation, deployment_before.metadata.generation,
        "the workload that did not opt in was restarted"
    );
    let everything = serde_json::to_string(&(
        policies(&client, &ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
        connections(&client, &ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
        Api::<Event>::namespaced(client.clone(), &ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    ))
    .unwrap();
    assert!(
        !everything.contains("hunter2"),
        "Secret content echoed into status or Events"
    );
    let after = sandbox_contacts(&Raw::new(&sandbox)).await;
    assert!(
        after
            .values()
            .all(|c| !tags(c).contains(&"everyone".to_owned())),
        "the over-limit TagRule wrote"
    );
    assert_eq!(
        after.len(),
        before.len(),
        "no contact created or deleted by the hostile objects"
    );

    // The healthy tenant never noticed; the process never restarted.
    let healthy = policies(&client, &ns.name)
        .get("vip-customers")
        .await
        .unwrap();
    assert!(is_true(&healthy, "Ready") && is_true(&healthy, "Synced"));
    assert!(
        operator
            .wait_exit(Duration::from_millis(200))
            .await
            .is_none(),
        "the operator exited"
    );
    let logs = operator.logs();
    assert!(
        !logs.contains("panicked"),
        "a panic in {}",
        operator.log.display()
    );
    assert!(
        !logs.contains("hunter2"),
        "Secret content in {}",
        operator.log.display()
    );
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
