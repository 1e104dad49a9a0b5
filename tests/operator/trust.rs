//! Trust between tenants and toward GHL (issue "Trust II"): who may borrow an agency grant,
//! whose token Secret a connection may write, who may approve a plan, and what a hostile base
//! URL or Secret reference can get out of the cluster.

use std::time::{Duration, Instant};

use ghl_operator::crd::GhlConnection;
use ghl_operator::sandbox::SandboxConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
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

/// A client that acts as `user` (the admin impersonating them, as the API server's audit log
/// would name them).
async fn acting_as(user: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    kube::Client::try_from(config).unwrap()
}

fn plan_of(p: &ghl_operator::crd::ContactSyncPolicy) -> ghl_operator::crd::common::PlanSummary {
    p.status
        .as_ref()
        .and_then(|s| s.plan.clone())
        .unwrap_or_default()
}

async fn annotate_approval(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    hash: &str,
) -> Result<(), kube::Error> {
    use kube::api::{Patch, PatchParams};
    let patch = json!({"metadata": {"annotations": {"ghl.servis.ai/approve-plan": hash}}});
    policies(client, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// With the admission webhook, an approval is an authorization: it needs the RBAC verb
/// `approve`, a person other than the author of the spec whose plan it approves, and it is
/// recorded with the user the API server authenticated. An approval the webhook did not stamp
/// (written while it was bypassed) is refused, and nothing is applied.
#[tokio::test]
async fn an_approval_needs_the_approve_verb_and_another_person_than_the_author() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

    let Some((client, ns)) = setup("admit").await else {
        return;
    };
    let sandbox = crate::support::sandbox::start_default().await;
    let raw = Raw::new(&sandbox);
    let port = free_port();
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    // Tests run side by side on one API server: each operator registers its own configuration.
    let configuration = format!("ghl-operator-approvals-{}", ns.name);
    options.extra_args.extend([
        format!("--admission-addr=127.0.0.1:{port}"),
        format!("--admission-url=https://127.0.0.1:{port}"),
        format!("--admission-configuration={configuration}"),
    ]);
    let operator = Operator::start(options);

    // alice writes policies; bob writes them and may approve their plans.
    let rules = |approve: bool| {
        let mut verbs = vec!["get", "list", "watch", "create", "update", "patch"];
        if approve {
            verbs.push("approve");
        }
        json!([{"apiGroups": ["ghl.servis.ai"], "resources": ["contactsyncpolicies"], "verbs": verbs}])
    };
    for (user, approve) in [("alice", false), ("bob", true)] {
        apply(
            &client,
            &ns.name,
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": user}, "rules": rules(approve)}),
        )
        .await;
        apply(
            &client,
            &ns.name,
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    }
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    wait_for("the webhook registered", READY, || async {
        configurations.get_opt(&configuration).await.ok().flatten()
    })
    .await;
    apply_connection(&client, &ns.name, &sandbox.url).await;

    // alice creates a policy over its safety limit: her spec, stamped with her name.
    let alice = acting_as("alice").await;
    let bob = acting_as("bob").await;
    let policy = |n: usize| {
        let contacts: Vec<Value> = (0..n)
            .map(|i| json!({"email": format!("big{i}@example.com")}))
            .collect();
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "big", "namespace": ns.name},
               "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "2s",
                        "safety": {"maxChanges": 1}, "contacts": contacts}})
    };
    let as_alice = policies(&alice, &ns.name);
    as_alice
        .patch(
            "big",
            &PatchParams::apply("alice"),
            &Patch::Apply(&policy(3)),
        )
        .await
        .expect("alice may write policies");
    let api = policies(&client, &ns.name);
    let blocked = wait_object(&api, "big", "blocked over maxChanges", READY, |p| {
        plan_of(p).hash.is_some() && plan_of(p).blocked.is_some()
    })
    .await;
    let annotations = blocked.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("ghl.servis.ai/spec-author")
            .map(String::as_str),
        Some("alice"),
        "{annotations:?}"
    );
    let hash = plan_of(&blocked).hash.unwrap();

    // alice may not approve (no verb `approve`); bob, with it, may not approve a plan in the
    // same request as a spec change; nobody forges a stamp.
    let denied = annotate_approval(&alice, &ns.name, "big", &hash)
        .await
        .expect_err("alice has no approve verb");
    assert!(denied.to_string().contains("may not approve"), "{denied}");
    let forged = json!({"metadata": {"annotations": {"ghl.servis.ai/approved-by": "bob"}}});
    as_alice
        .patch("big", &PatchParams::default(), &Patch::Merge(&forged))
        .await
        .unwrap();
    let after = api.get("big").await.unwrap();
    assert!(
        !after
            .annotations()
            .contains_key("ghl.servis.ai/approved-by"),
        "a stamp written by hand is put back"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sandbox_contacts(&raw).await.len(), 0, "nothing applied yet");

    // bob approves alice's plan: applied once, recorded as approved by bob.
    annotate_approval(&bob, &ns.name, "big", &hash)
        .await
        .expect("bob may approve alice's plan");
    let applied = wait_object(&api, "big", "applied by bob's approval", READY, |p| {
        plan_of(p).approved.as_deref() == Some(hash.as_str()) && is_true(p, "Synced")
    })
    .await;
    assert_eq!(plan_of(&applied).approved_by.as_deref(), Some("bob"));
    assert_eq!(sandbox_contacts(&raw).await.len(), 3);

    // bob grows the policy: his own spec change, which he may not approve himself.
    policies(&bob, &ns.name)
        .patch(
            "big",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&policy(6)),
        )
        .await
        .expect("bob may write policies");
    let again = wait_object(&api, "big", "blocked again", READY, |p| {
        plan_of(p).hash.as_deref().is_some_and(|h| h != hash) && plan_of(p).blocked.is_some()
    })
    .await;
    let second = plan_of(&again).hash.unwrap();
    let own = annotate_approval(&bob, &ns.name, "big", &second)
        .await
        .expect_err("bob may not approve his own change");
    assert!(own.to_string().contains("another person"), "{own}");

    // With the webhook bypassed (its configuration deleted), an annotation alone is no
    // approval: refused, said so, nothing applied.
    configurations
        .delete(&configuration, &DeleteParams::default())
        .await
        .unwrap();
    // The API server drops the webhook a moment later: until then each approval written is
    // sealed anew. Probe with approvals of no plan until a write comes back unsealed.
    let seal = |p: &ghl_operator::crd::ContactSyncPolicy| {
        p.annotations().get("ghl.servis.ai/approval-seal").cloned()
    };
    let mut previous = seal(&api.get("big").await.unwrap());
    let probes = Instant::now();
    for n in 0.. {
        let patch = json!({"metadata": {"annotations": {"ghl.servis.ai/approve-plan": format!("probe{n}")}}});
        let written = api
            .patch("big", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let now = seal(&written);
        if now == previous {
            break;
        }
        previous = now;
        assert!(
            probes.elapsed() < READY,
            "the webhook configuration was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    annotate_approval(&client, &ns.name, "big", &second)
        .await
        .expect("no webhook to refuse it");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    wait_for("an ApprovalRefused Event", READY, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("ApprovalRefused")
                && e.note.as_deref().is_some_and(|n| n.contains(&second))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sandbox_contacts(&raw).await.len(),
        3,
        "the unstamped approval applied nothing"
    );

    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}

/// A listener that answers every request with `status` (and `location` when given), and
/// counts what it received: a stand-in for an allowed host that may not be GHL.
async fn listener(status: u16, location: Option<String>) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    let mut answer = wiremock::ResponseTemplate::new(status).set_body_string("{}");
    if let Some(location) = location {
        answer = answer.insert_header("location", location.as_str());
    }
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// The examples' PIT connection on `base_url`, its Secret `secret` (labeled or not).
fn pit_connection(name: &str, base_url: &str, secret: &str, labeled: bool) -> Vec<Value> {
    let labels = if labeled {
        json!({"ghl.servis.ai/secret-type": "pit"})
    } else {
        json!({})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": secret, "labels": labels},
               "stringData": {"token": "s3cr3t-database-password"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
               "metadata": {"name": name},
               "spec": {"locationId": "ve9EPM428h8vShlRW1KT", "baseUrl": base_url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": secret, "key": "token"}}}}}),
    ]
}

/// Nothing leaves the cluster on a Secret's behalf unless the Secret says what it is for, and
/// no redirect carries a credential past the host the connection was allowed to reach.
#[tokio::test]
async fn an_unlabeled_secret_sends_nothing_and_no_redirect_is_followed() {
    let Some((client, ns)) = setup("doors").await else {
        return;
    };
    let host = listener(200, None).await;
    let target = listener(200, None).await;
    let proxy = listener(307, Some(format!("{}/steal", target.uri()))).await;
    let options = OperatorOptions::new(&ns.name, "op-0")
        .allowing(&host.uri())
        .allowing(&proxy.uri());
    let operator = Operator::start(options);

    // An unrelated Secret named as a token: not read, nothing sent, the label to add named.
    for doc in pit_connection("borrowed", &host.uri(), "db-password", false) {
        apply(&client, &ns.name, doc).await;
    }
    let refused = wait_object(
        &connections(&client, &ns.name),
        "borrowed",
        "SecretNotUsable",
        READY,
        |c| reason_of(c).as_deref() == Some("SecretNotUsable"),
    )
    .await;
    let message = condition_message(&refused, "Ready").unwrap_or_default();
    assert!(message.contains("ghl.servis.ai/secret-type"), "{message}");

    // A redirecting base URL gets the request it was allowed to get; where it points gets
    // nothing, and the connection says why.
    for doc in pit_connection("proxied", &proxy.uri(), "proxy-pit", true) {
        apply(&client, &ns.name, doc).await;
    }
    let redirected = wait_object(
        &connections(&client, &ns.name),
        "proxied",
        "not Ready after a redirect",
        READY,
        |c| condition(c, "Ready").is_some_and(|(status, _)| status == "False") && proxy_seen(c),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let message = condition_message(&redirected, "Ready").unwrap_or_default();
    assert!(message.contains("307"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    assert!(!proxy.received_requests().await.unwrap().is_empty());
    assert_eq!(
        target.received_requests().await.unwrap().len(),
        0,
        "the redirect target received nothing"
    );
    assert_eq!(
        host.received_requests().await.unwrap().len(),
        0,
        "the unlabeled Secret's value was never sent"
    );
    assert!(!operator.logs().contains("s3cr3t"));
    operator.stop().await;
    ns.delete().await;
}

/// The connection's Ready condition reports a call that reached the (redirecting) proxy.
fn proxy_seen(connection: &GhlConnection) -> bool {
    condition_message(connection, "Ready").is_some_and(|m| m.contains("redirect"))
}
