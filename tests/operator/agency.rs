//! One agency consent serving three sub-accounts: an agency (`userType: Company`) connection
//! on the first location, two connections borrowing its grant (`auth.agencyGrant`) for the
//! others, a policy on each — through several refreshes of short-lived tokens.

use std::time::Duration;

use ghl_operator::sandbox::SandboxConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use crate::credentials::{mint_code, oauth_objects};
use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const READY: Duration = Duration::from_secs(60);

/// A connection for `location` borrowing `acme-oauth`'s agency grant.
fn borrower(name: &str, location: &str, url: &str, renew_before: Option<&str>) -> Value {
    let mut grant = json!({"connectionRef": {"name": "acme-oauth"},
                           "tokenSecretRef": {"name": format!("{name}-token")}});
    if let Some(renew_before) = renew_before {
        grant["renewBefore"] = json!(renew_before);
    }
    json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
           "metadata": {"name": name},
           "spec": {"locationId": location, "baseUrl": url, "auth": {"agencyGrant": grant}}})
}

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
            borrower(name, location, &sandbox.url, Some("10s")),
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
        let contacts = location_contacts(&raw, location).await;
        let emails: Vec<&str> = contacts
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
        async move { (location_contacts(raw, &location).await.len() == 2).then_some(()) }
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

/// An agency connection's status lists the installed locations no connection serves yet; an
/// install webhook has it list them again at once (the check interval is an hour here), and
/// creates nothing.
#[tokio::test]
async fn an_agency_lists_its_installed_locations_and_an_install_refreshes_them() {
    let Some((client, ns)) = setup("installed").await else {
        return;
    };
    const B: &str = "locStoreB00000000002";
    const C: &str = "locStoreC00000000003";
    let sandbox = start(SandboxConfig {
        other_locations: vec![B.into(), C.into()],
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Company").await;
    let port = free_port();
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options.args = Some(vec![
        "run".to_owned(),
        format!("--lease-duration={}s", LEASE_DURATION.as_secs()),
        "--connection-check-interval=1h".to_owned(),
        "--default-resync=1m".to_owned(),
    ]);
    options
        .extra_args
        .push(format!("--webhook-addr=127.0.0.1:{port}"));
    for file in crate::webhooks::key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    let operator = Operator::start(options);
    for mut doc in oauth_objects(&sandbox, &code, "10s") {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["oauth"]["userType"] = json!("Company");
            doc["spec"]["auth"]["oauth"]["companyId"] = json!("sandboxCompany000001");
        }
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let installed = |c: &ghl_operator::crd::GhlConnection| {
        c.status
            .as_ref()
            .and_then(|s| s.installed_locations.clone())
    };
    let first = wait_object(
        &api,
        "acme-oauth",
        "installed locations listed",
        READY,
        |c| installed(c).is_some(),
    )
    .await;
    let listed = installed(&first).unwrap();
    assert_eq!(
        (listed.count, listed.served, listed.available.clone()),
        (3, 1, vec![B.to_owned(), C.to_owned()]),
        "{listed:?}"
    );

    // A connection for B borrows the grant; the hour-long interval keeps the list as it was...
    apply(
        &client,
        &ns.name,
        borrower("store-b", B, &sandbox.url, None),
    )
    .await;
    wait_object(&api, "store-b", "Ready", READY, |c| is_true(c, "Ready")).await;
    let still = api.get("acme-oauth").await.unwrap();
    assert_eq!(installed(&still).unwrap().available, [B, C]);

    // ... until GHL says the app was installed somewhere in the company.
    let install = json!({"type": "INSTALL", "appId": "sandbox",
        "companyId": "sandboxCompany000001", "locationId": C,
        "webhookId": "install-1", "timestamp": jiff::Timestamp::now().to_string()});
    assert_eq!(post_signed_webhook(port, &install).await, 200);
    let after = wait_object(&api, "acme-oauth", "listed again", READY, |c| {
        installed(c).is_some_and(|l| l.served == 2)
    })
    .await;
    assert_eq!(installed(&after).unwrap().available, [C]);

    // Nothing was created for C: two connections, two location tokens (A's and B's).
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 2);
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["byOperation"]["oauth.location_token"], 2, "{stats}");
    assert!(stats["byOperation"]["oauth.installed_locations"].as_u64() >= Some(2));
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
