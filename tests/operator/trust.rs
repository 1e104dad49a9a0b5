//! Trust between tenants and toward GHL (issue "Trust II"): who may borrow an agency grant,
//! whose token Secret a connection may write, who may approve a plan, and what a hostile base
//! URL or Secret reference can get out of the cluster.

use std::time::Duration;

use ghl_operator::crd::GhlConnection;
use ghl_operator::sandbox::SandboxConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use crate::credentials::{mint_code, oauth_objects};
use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const READY: Duration = Duration::from_secs(60);

const B: &str = "locStoreB00000000002";
const C: &str = "locStoreC00000000003";

/// A connection for `location` borrowing the agency grant of `agency` (`namespace/name`), its
/// location token in Secret `token`.
fn borrower(name: &str, location: &str, url: &str, agency: (&str, &str), token: &str) -> Value {
    json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
           "metadata": {"name": name},
           "spec": {"locationId": location, "baseUrl": url, "auth": {"agencyGrant": {
               "connectionRef": {"namespace": agency.0, "name": agency.1},
               "tokenSecretRef": {"name": token}}}}})
}

fn reason_of(connection: &GhlConnection) -> Option<String> {
    condition(connection, "Ready").map(|(_, reason)| reason)
}

/// An agency grant serves the namespaces and locations its connection lists as grantees, and
/// nothing else; a connection cannot take over another connection's token Secret by naming it.
#[tokio::test]
async fn an_agency_grant_serves_only_its_grantees_and_token_secrets_serve_one_connection() {
    let Some((client, ns)) = setup("grantees").await else {
        return;
    };
    let tenant = TestNamespace::create(&client, "grantees-tenant").await;
    let sandbox = start(SandboxConfig {
        other_locations: vec![B.into(), C.into()],
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Company").await;
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options
        .extra_args
        .push(format!("--watch-namespace={}", tenant.name));
    let operator = Operator::start(options);
    for mut doc in oauth_objects(&sandbox, &code, "10m") {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["oauth"]["userType"] = json!("Company");
            doc["spec"]["auth"]["oauth"]["companyId"] = json!("sandboxCompany000001");
            // One tenant namespace, for location B only.
            doc["spec"]["auth"]["oauth"]["grantees"] =
                json!([{"namespace": tenant.name, "locationIds": [B]}]);
        }
        apply(&client, &ns.name, doc).await;
    }
    let agency = (ns.name.as_str(), "acme-oauth");
    let url = sandbox.url.as_str();
    apply(
        &client,
        &tenant.name,
        borrower("store-b", B, url, agency, "store-b-token"),
    )
    .await;
    apply(
        &client,
        &tenant.name,
        borrower("store-c", C, url, agency, "store-c-token"),
    )
    .await;
    apply(
        &client,
        &ns.name,
        borrower("own-b", B, url, agency, "own-b-token"),
    )
    .await;

    let tenants = connections(&client, &tenant.name);
    wait_object(&tenants, "store-b", "Ready", READY, |c| is_true(c, "Ready")).await;
    for (api, name) in [
        (&tenants, "store-c"),
        (&connections(&client, &ns.name), "own-b"),
    ] {
        let refused = wait_object(api, name, "NotAGrantee", READY, |c| {
            reason_of(c).as_deref() == Some("NotAGrantee")
        })
        .await;
        assert!(!is_true(&refused, "Ready"), "{name}");
    }
    let tenant_secrets: Api<Secret> = Api::namespaced(client.clone(), &tenant.name);
    assert!(
        tenant_secrets
            .get_opt("store-c-token")
            .await
            .unwrap()
            .is_none(),
        "nothing minted for a location the agency did not grant"
    );

    // A newer connection naming store-b's token Secret is refused, and the Secret is untouched.
    let before = tenant_secrets.get("store-b-token").await.unwrap();
    assert_eq!(
        before.metadata.annotations.as_ref().unwrap()["ghl.servis.ai/token-of"],
        "store-b",
        "the token Secret names the connection it serves"
    );
    apply(
        &client,
        &tenant.name,
        borrower("thief", B, url, agency, "store-b-token"),
    )
    .await;
    let refused = wait_object(&tenants, "thief", "SecretNotOwned", READY, |c| {
        reason_of(c).as_deref() == Some("SecretNotOwned")
    })
    .await;
    let message = condition_message(&refused, "Ready").unwrap_or_default();
    assert!(message.contains("GhlConnection store-b"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = tenant_secrets.get("store-b-token").await.unwrap();
    assert_eq!(
        after.data, before.data,
        "store-b's tokens are not overwritten"
    );

    operator.stop().await;
    tenant.delete().await;
    ns.delete().await;
}
