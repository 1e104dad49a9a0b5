//! One agency consent serving three sub-accounts: an agency (`userType: Company`) connection
//! on the first location, two connections borrowing its grant (`auth.agencyGrant`) for the
//! others, a policy on each — through several refreshes of short-lived tokens.

use std::time::Duration;

use ghl_operator::sandbox::SandboxConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;

use crate::credentials::{mint_code, oauth_objects};
use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const READY: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_agency_grant_serves_three_locations_through_refreshes() {
    let Some((client, ns)) = setup("agency3").await else {
        return;
    };
    let sandbox = start(SandboxConfig {
        other_locations: vec!["locStoreB00000000002".into(), "locStoreC00000000003".into()],
        search_lag: Duration::ZERO,
        access_token_ttl: Duration::from_secs(30),
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Company").await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in oauth_objects(&sandbox, &code, "10s") {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["oauth"]["userType"] = json!("Company");
            doc["spec"]["auth"]["oauth"]["companyId"] = json!("sandboxCompany000001");
        }
        apply(&client, &ns.name, doc).await;
    }
    let stores = [("store-b", 1), ("store-c", 2)];
    for (name, at) in stores {
        let location = &sandbox.locations[at].0;
        apply(
            &client,
            &ns.name,
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
                   "metadata": {"name": name},
                   "spec": {"locationId": location, "baseUrl": sandbox.url,
                            "auth": {"agencyGrant": {"connectionRef": {"name": "acme-oauth"},
                                                     "tokenSecretRef": {"name": format!("{name}-token")},
                                                     "renewBefore": "10s"}}}}),
        )
        .await;
        apply(
            &client,
            &ns.name,
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
                   "metadata": {"name": format!("{name}-vip")},
                   "spec": {"connectionRef": {"name": name}, "resyncInterval": "2s",
                            "contacts": [{"email": format!("{name}@example.com"), "tags": ["vip"]}]}}),
        )
        .await;
    }
    for name in ["acme-oauth", "store-b", "store-c"] {
        wait_object(&connections(&client, &ns.name), name, "Ready", READY, |c| {
            is_true(c, "Ready")
        })
        .await;
    }
    for name in ["vip", "store-b-vip", "store-c-vip"] {
        wait_object(&policies(&client, &ns.name), name, "Synced", READY, |p| {
            is_true(p, "Synced")
        })
        .await;
    }
    // Each location holds its own contact, written with its own location token.
    for (at, email) in [
        (0, "ada@example.com"),
        (1, "store-b@example.com"),
        (2, "store-c@example.com"),
    ] {
        let location = &sandbox.locations[at].0;
        let state = raw
            .admin("GET", &format!("state?locationId={location}"), None)
            .await;
        let emails: Vec<&str> = state["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["email"].as_str())
            .collect();
        assert_eq!(emails, [email], "{location}");
    }

    // 30 s tokens renewed 10 s (plus margin) ahead: through a minute, each token is renewed
    // more than once, the agency's by its single-use refresh token, the others by minting.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats = raw.admin("GET", "stats", None).await;
    let count = |operation: &str| stats["byOperation"][operation].as_u64().unwrap_or(0);
    println!(
        "agency grant over 60 s: {} token calls (exchange + refreshes), {} location tokens minted, {} refresh tokens reused",
        count("oauth.token"),
        count("oauth.location_token"),
        stats["refreshTokenReuse"]
    );
    assert_eq!(stats["refreshTokenReuse"], 0, "{stats}");
    assert!(
        count("oauth.token") >= 3,
        "one exchange, then refreshes: {stats}"
    );
    assert!(
        count("oauth.location_token") >= 6,
        "three locations, each renewed: {stats}"
    );
    for (name, _) in stores {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        let secret = secrets.get(&format!("{name}-token")).await.unwrap();
        assert_eq!(
            secret.metadata.labels.unwrap_or_default()["app.kubernetes.io/managed-by"],
            "ghl-operator",
            "created and owned by the operator"
        );
    }
    // Still working after the renewals: a new record reaches the third location.
    apply(
        &client,
        &ns.name,
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "store-c-vip"},
               "spec": {"connectionRef": {"name": "store-c"}, "resyncInterval": "2s",
                        "contacts": [{"email": "store-c@example.com", "tags": ["vip"]},
                                     {"email": "later@example.com"}]}}),
    )
    .await;
    let location = sandbox.locations[2].0.clone();
    wait_for("the new record in the third location", READY, || {
        let raw = &raw;
        let location = location.clone();
        async move {
            let state = raw
                .admin("GET", &format!("state?locationId={location}"), None)
                .await;
            state["contacts"]
                .as_array()
                .is_some_and(|c| c.len() == 2)
                .then_some(())
        }
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}
