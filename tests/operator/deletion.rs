//! Deleting policies: `Orphan` leaves GHL alone, `Delete` removes exactly what the policy
//! created (nothing else), and deletion never hangs when the connection is already gone.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

fn policy(name: &str, connection: &str, email: &str, deletion: &str) -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
        "metadata": {"name": name},
        "spec": {"connectionRef": {"name": connection}, "deletionPolicy": deletion,
                 "contacts": [{"email": email, "tags": ["managed"],
                               "notes": [{"key": "n", "body": "hello"}]}]}
    })
}

fn connection(sandbox_url: &str, name: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-pit"), "labels": {"ghl.servis.ai/secret-type": "pit"}},
               "stringData": {"token": "pit-sandbox-token"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection", "metadata": {"name": name},
               "spec": {"locationId": "ve9EPM428h8vShlRW1KT", "baseUrl": sandbox_url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": format!("{name}-pit"), "key": "token"}}}}}),
    ]
}

#[tokio::test]
async fn orphan_keeps_ghl_data_and_delete_removes_exactly_what_the_policy_owns() {
    let Some((client, ns)) = setup("deletion").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    // A contact the operator does not own, holding the same tag.
    raw.call("POST", "/contacts/", Some(json!({"locationId": sandbox.location_id, "email": "other@example.org", "tags": ["managed"]})))
        .await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in connection(&sandbox.url, "acme") {
        apply(&client, &ns.name, doc).await;
    }
    apply(
        &client,
        &ns.name,
        policy("keep", "acme", "orphan@example.com", "Orphan"),
    )
    .await;
    apply(
        &client,
        &ns.name,
        policy("remove", "acme", "delete@example.com", "Delete"),
    )
    .await;
    let api = policies(&client, &ns.name);
    let kept = wait_object(&api, "keep", "Synced", READY, |p| is_true(p, "Synced")).await;
    let removed = wait_object(&api, "remove", "Synced", READY, |p| is_true(p, "Synced")).await;
    assert!(kept.finalizers().is_empty(), "no finalizer with Orphan");
    assert_eq!(removed.finalizers(), ["ghl.servis.ai/cleanup"]);

    // Ledgers live in Secrets the policies own.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let ledgers = |owner: &'static str| {
        let secrets = secrets.clone();
        async move {
            let selector = format!("ghl.servis.ai/owner-name={owner}");
            secrets
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap()
                .items
        }
    };
    let keep_ledger = ledgers("keep").await;
    assert!(!keep_ledger.is_empty());
    assert!(
        keep_ledger
            .iter()
            .all(|s| s.owner_references().iter().any(|o| o.name == "keep"))
    );

    api.delete("keep", &DeleteParams::default()).await.unwrap();
    api.delete("remove", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("both policies gone", READY, || async {
        (api.get_opt("keep").await.ok()?.is_none() && api.get_opt("remove").await.ok()?.is_none())
            .then_some(())
    })
    .await;
    let contacts = sandbox_contacts(&raw).await;
    assert!(
        contacts.contains_key("orphan@example.com"),
        "Orphan leaves the contact"
    );
    assert!(
        !contacts.contains_key("delete@example.com"),
        "Delete removes the contact it created"
    );
    assert_eq!(
        tags(&contacts["other@example.org"]),
        ["managed"],
        "nothing it did not own"
    );
    let state = raw.admin("GET", "state", None).await;
    assert_eq!(
        state["notes"].as_array().unwrap().len(),
        1,
        "only the orphaned contact's note remains"
    );
    // The ledger Secrets are garbage-collected with their owner.
    wait_for("ledger Secrets collected", READY, || async {
        ledgers("keep").await.is_empty().then_some(())
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn deleting_a_policy_whose_connection_is_gone_does_not_hang() {
    let Some((client, ns)) = setup("gone").await else {
        return;
    };
    let sandbox = start_default().await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in connection(&sandbox.url, "acme") {
        apply(&client, &ns.name, doc).await;
    }
    apply(
        &client,
        &ns.name,
        policy("remove", "acme", "delete@example.com", "Delete"),
    )
    .await;
    let api = policies(&client, &ns.name);
    wait_object(&api, "remove", "Synced", READY, |p| is_true(p, "Synced")).await;

    connections(&client, &ns.name)
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    api.delete("remove", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the policy is gone", READY, || async {
        api.get_opt("remove").await.ok()?.is_none().then_some(())
    })
    .await;
    // The data stays in GHL (nothing could remove it) and an Event says so.
    let raw = Raw::new(&sandbox);
    assert!(
        sandbox_contacts(&raw)
            .await
            .contains_key("delete@example.com")
    );
    operator.stop().await;
    ns.delete().await;
}
