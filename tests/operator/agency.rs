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

/// GHL's INSTALL or UNINSTALL webhook for `location` of the sandbox's company.
fn installation(kind: &str, location: &str, id: &str) -> Value {
    json!({"type": kind, "appId": "sandbox", "companyId": "sandboxCompany000001",
           "locationId": location, "webhookId": id,
           "timestamp": jiff::Timestamp::now().to_string()})
}

#[tokio::test]
async fn an_agency_with_provision_keeps_a_connection_per_installed_location() {
    let Some((client, ns)) = setup("fleet").await else {
        return;
    };
    const B: &str = "locFleetB00000000002";
    const C: &str = "locFleetC00000000003";
    let child_b = "acme-oauth-locfleetb00000000002";
    let child_c = "acme-oauth-locfleetc00000000003";
    let sandbox = start(SandboxConfig {
        other_locations: vec![B.into(), C.into()],
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    // The app is not installed on C yet.
    raw.admin(
        "POST",
        "installations",
        Some(json!({"locationId": C, "installed": false})),
    )
    .await;
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
    let mut agency = Value::Null;
    for mut doc in oauth_objects(&sandbox, &code, "10m") {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["oauth"]["userType"] = json!("Company");
            doc["spec"]["auth"]["oauth"]["companyId"] = json!("sandboxCompany000001");
            doc["spec"]["provision"] = json!({
                "template": {"rateLimit": {"sharePercent": 50}},
                "onUninstall": "Delete"});
            agency = doc.clone();
        }
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);

    // One child for B (the agency serves its own location; C is not installed).
    let b = wait_object(&api, child_b, "B's connection Ready", READY, |c| {
        is_true(c, "Ready")
    })
    .await;
    assert_eq!(b.spec.location_id, B);
    assert_eq!(
        b.metadata.labels.as_ref().unwrap()["ghl.servis.ai/agency"],
        "acme-oauth"
    );
    let owner = &b.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("GhlConnection", "acme-oauth")
    );
    assert_eq!(b.spec.rate_limit.as_ref().unwrap().share_percent, Some(50));
    let listed = wait_object(&api, "acme-oauth", "one child", READY, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.provisioned.as_ref())
            .is_some_and(|p| p.children == 1)
    })
    .await;
    assert!(api.get_opt(child_c).await.unwrap().is_none(), "{listed:?}");

    // The app is installed on C: its connection follows the webhook within seconds.
    raw.admin(
        "POST",
        "installations",
        Some(json!({"locationId": C, "installed": true})),
    )
    .await;
    let installed_at = std::time::Instant::now();
    assert_eq!(
        post_signed_webhook(port, &installation("INSTALL", C, "fleet-install-c")).await,
        200
    );
    wait_object(&api, child_c, "C's connection Ready", READY, |c| {
        is_true(c, "Ready")
    })
    .await;
    eprintln!("INSTALL → child Ready in {:?}", installed_at.elapsed());

    // A person changes B's share by hand; a template change reaches C and leaves B's edit.
    api.patch(
        child_b,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"rateLimit": {"sharePercent": 80}}})),
    )
    .await
    .unwrap();
    agency["spec"]["provision"]["template"]["rateLimit"]["sharePercent"] = json!(60);
    apply(&client, &ns.name, agency.clone()).await;
    wait_object(&api, child_c, "the template rolled out to C", READY, |c| {
        c.spec.rate_limit.as_ref().and_then(|r| r.share_percent) == Some(60)
    })
    .await;
    let reported = wait_object(&api, "acme-oauth", "B reported as edited", READY, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.provisioned.as_ref())
            .is_some_and(|p| p.hand_edited.iter().any(|n| n == child_b))
    })
    .await;
    let b = api.get(child_b).await.unwrap();
    assert_eq!(
        b.spec.rate_limit.unwrap().share_percent,
        Some(80),
        "the person's edit stays: {:?}",
        reported.status
    );

    // Uninstalled from B with onUninstall: Delete: its connection goes, with an Event.
    raw.admin(
        "POST",
        "installations",
        Some(json!({"locationId": B, "installed": false})),
    )
    .await;
    assert_eq!(
        post_signed_webhook(port, &installation("UNINSTALL", B, "fleet-uninstall-b")).await,
        200
    );
    wait_for("B's connection deleted", READY, || async {
        api.get_opt(child_b).await.unwrap().is_none().then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    wait_for("the agency's Events", READY, || async {
        let reasons: Vec<String> = events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme-oauth"))
            .filter_map(|e| e.reason)
            .collect();
        ["Provisioned", "HandEdited", "Deprovisioned"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(())
    })
    .await;
    assert!(api.get_opt(child_c).await.unwrap().is_some(), "C stays");
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0, "{stats}");
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
