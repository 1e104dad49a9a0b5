//! The console in a real browser (Debian's chromium through chromium-driver, driven over
//! WebDriver by fantoccini) and over plain HTTP, against the operator on the test API server
//! with the sandbox:
//! - a ServiceAccount that can read namespace alpha logs in with its token and sees alpha's
//!   objects, none of beta's; without a token there is no data;
//! - a blocked plan's page shows its hash and the field-by-field diff (the account may read
//!   its Secrets), and its Approve button applies it (as the account);
//! - a TagRule built from the form exists;
//! - a POST without its CSRF token is refused;
//! - the local console serves nothing without its one-time login URL.
//!
//! With `GHL_CONSOLE_SCREENSHOTS=DIR`, each page is saved there as a PNG (docs/console/).

#[path = "../support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../operator/harness.rs"]
mod harness;

mod browser;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

/// A ServiceAccount in `namespace` that may read the GHL objects, Events, ConfigMaps and
/// Secrets there, approve (patch) policies and create TagRules — and nothing elsewhere; its
/// token.
async fn reader_token(client: &kube::Client, namespace: &str) -> String {
    for object in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "person"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "person"},
               "rules": [
                 {"apiGroups": ["ghl.servis.ai"], "resources": ["ghlconnections", "contactsyncpolicies", "tagrules"], "verbs": ["get", "list", "watch"]},
                 {"apiGroups": ["ghl.servis.ai"], "resources": ["contactsyncpolicies"], "verbs": ["patch", "approve"]},
                 {"apiGroups": ["ghl.servis.ai"], "resources": ["tagrules"], "verbs": ["create", "patch"]},
                 {"apiGroups": [""], "resources": ["events", "configmaps", "secrets"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "person"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "person"},
               "subjects": [{"kind": "ServiceAccount", "name": "person", "namespace": namespace}]}),
    ] {
        apply(client, namespace, object).await;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let issued = accounts
        .create_token_request("person", &PostParams::default(), &request)
        .await
        .unwrap();
    issued.status.unwrap().token
}

fn connection(sandbox_url: &str) -> Vec<Value> {
    examples(sandbox_url)
        .into_iter()
        .filter(|d| d["kind"] == "Secret" || d["kind"] == "GhlConnection")
        .collect()
}

fn policy(name: &str, emails: &[&str], max_changes: u32) -> Value {
    let contacts: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
    json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
           "metadata": {"name": name},
           "spec": {"connectionRef": {"name": "acme"}, "contacts": contacts,
                    "safety": {"maxChanges": max_changes}}})
}

/// A plain HTTP client that keeps cookies but follows no redirect (to see them).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_person_sees_their_namespaces_approves_a_plan_and_builds_a_rule() {
    ghl_operator::tls::install_default_provider();
    let Some((client, alpha)) = setup("console-alpha").await else {
        return;
    };
    let beta = TestNamespace::create(&client, "console-beta").await;
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let port = free_port();
    let mut options = OperatorOptions::new(&alpha.name, "op-0").allowing(&sandbox.url);
    options.extra_args.extend([
        format!("--watch-namespace={}", beta.name),
        format!("--console-addr=127.0.0.1:{port}"),
    ]);
    let operator = Operator::start(options);
    for (namespace, objects) in [
        (&alpha.name, {
            let mut docs = connection(&sandbox.url);
            docs.push(policy("small", &["small@example.com"], 100));
            docs.push(policy(
                "big",
                &["b1@example.com", "b2@example.com", "b3@example.com"],
                1,
            ));
            docs
        }),
        (&beta.name, {
            let mut docs = connection(&sandbox.url);
            docs.push(policy("beta-only", &["beta@example.com"], 100));
            docs
        }),
    ] {
        for doc in objects {
            apply(&client, namespace, doc).await;
        }
    }
    let policies = policies(&client, &alpha.name);
    let blocked = wait_object(&policies, "big", "a blocked plan", READY, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .is_some_and(|plan| plan.blocked.is_some() && plan.hash.is_some())
    })
    .await;
    let hash = blocked.status.unwrap().plan.unwrap().hash.unwrap();
    wait_object(&policies, "small", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    wait_object(
        &crate::harness::policies(&client, &beta.name),
        "beta-only",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    let token = reader_token(&client, &alpha.name).await;
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the console listening", READY, || async {
        reqwest::get(format!("{base}/login")).await.ok().map(drop)
    })
    .await;

    // No token, no data: every page sends you to log in.
    let anonymous = http();
    for path in ["/", &format!("/o/{}/contactsyncpolicy/big", alpha.name)] {
        let answer = anonymous.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(answer.headers()["location"], "/login");
    }
    let login = anonymous.get(format!("{base}/login")).send().await.unwrap();
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    let page = login.text().await.unwrap();
    assert!(!page.contains("big") && !page.contains(&alpha.name));
    // A bearer token from an auth proxy works without a session; a wrong one does not.
    let proxied = http()
        .get(format!("{base}/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    assert!(proxied.text().await.unwrap().contains("big"));

    // The browser: log in with the ServiceAccount's token.
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/login")).await;
    browser.screenshot("login").await;
    browser.fill("#token", &token).await;
    browser.click("#login").await;
    let overview = browser
        .wait_text("the overview", "Policies and rules")
        .await;
    browser.screenshot("overview").await;
    for seen in ["acme", "small", "big", &alpha.name, &hash] {
        assert!(overview.contains(seen), "alpha's {seen} on the overview");
    }
    for unseen in ["beta-only", &beta.name] {
        assert!(!overview.contains(unseen), "nothing of beta: {unseen}");
    }
    // Every object's state: Ready and Synced of each, the waiting plan.
    assert!(overview.contains("CredentialsAccepted"));
    assert!(overview.contains("waiting for approval"));

    // The blocked plan: its hash, the diff field by field, and Approve.
    browser
        .goto(&format!("{base}/o/{}/contactsyncpolicy/big", alpha.name))
        .await;
    let page = browser.wait_text("the plan's page", "Field by field").await;
    browser.screenshot("plan").await;
    assert_eq!(browser.text("#plan-hash").await, hash);
    let diff = browser.text("#plan-diff").await;
    assert!(
        diff.contains("+ contact") && diff.contains("email"),
        "{diff}"
    );
    assert!(
        !diff.contains("b1@example.com"),
        "personal values stay (sensitive)"
    );
    assert!(page.contains("Approve plan"));
    browser.click("#approve").await;
    wait_object(&policies, "big", "the approved plan applied", READY, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .is_some_and(|plan| plan.approved.as_deref() == Some(hash.as_str()))
    })
    .await;
    let contacts = sandbox_contacts(&raw).await;
    for email in ["b1@example.com", "b2@example.com", "b3@example.com"] {
        assert!(
            contacts.values().any(|c| c["email"] == email),
            "{email} created in GHL after the approval"
        );
    }

    // A TagRule from the form: preview (YAML and the API server's dry run), then Apply.
    browser.goto(&format!("{base}/new/tagrule")).await;
    browser.screenshot("new-tagrule").await;
    browser.fill("input[name=namespace]", &alpha.name).await;
    browser.fill("input[name=name]", "hot-leads").await;
    browser.fill("input[name=connection]", "acme").await;
    browser.select("select[name=field1]", "tags").await;
    browser.select("select[name=op1]", "contains").await;
    browser.fill("input[name=value1]", "lead-hot").await;
    browser.fill("input[name=add_tags]", "hot").await;
    browser.click("#preview").await;
    let preview = browser.wait_text("the preview", "Dry run").await;
    browser.screenshot("new-tagrule-preview").await;
    assert!(preview.contains("kind: TagRule") && preview.contains("lead-hot"));
    assert!(browser.text("#dry-run").await.contains("accepts it"));
    browser.click("#apply").await;
    let rules = crate::harness::rules(&client, &alpha.name);
    let rule = wait_for("the TagRule created", READY, || async {
        rules.get_opt("hot-leads").await.ok().flatten()
    })
    .await;
    assert_eq!(rule.spec.add_tags, ["hot"]);
    // The API server records who wrote it: the person, through the console.
    let managers: Vec<String> = rule
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == "ghl-console"), "{managers:?}");
    browser.close().await;

    // A POST without its CSRF token is refused, with a session and all.
    let person = http();
    let login = person
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let login_csrf = login
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let logged_in = person
        .post(format!("{base}/login"))
        .form(&[("csrf", login_csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 303, "logged in");
    for form in [
        vec![("hash", hash.as_str())],
        vec![("hash", hash.as_str()), ("csrf", "forged")],
    ] {
        let refused = person
            .post(format!(
                "{base}/o/{}/contactsyncpolicy/small/approve",
                alpha.name
            ))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{form:?}");
    }
    let small = policies.get("small").await.unwrap();
    assert!(
        !small
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("ghl.servis.ai/approve-plan"),
        "nothing written"
    );

    operator.assert_logs_clean();
    assert!(
        !operator.logs().contains(&token),
        "the token never reaches a log"
    );
    operator.stop().await;
    beta.delete().await;
    alpha.delete().await;
}

#[tokio::test]
async fn the_local_console_serves_nothing_without_its_login_url() {
    ghl_operator::tls::install_default_provider();
    let Some((_client, ns)) = setup("console-local").await else {
        return;
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args(["console", "--addr", "127.0.0.1:0", "-n", &ns.name])
        .env("KUBECONFIG", kubeconfig_path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let url = loop {
        let line = tokio::time::timeout(READY, lines.next_line())
            .await
            .expect("the console prints its login URL")
            .unwrap()
            .expect("a line");
        if let Some(url) = line.trim().strip_prefix("http://") {
            break format!("http://{url}");
        }
    };
    let base = url.split("/login/").next().unwrap().to_owned();
    let stranger = http();
    for path in ["/", "/login", "/new/tagrule", "/login/guessed"] {
        let answer = stranger.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }
    // Not even a bearer token: the local console is the kubeconfig's identity.
    let bearer = stranger
        .get(format!("{base}/"))
        .bearer_auth("some-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    let person = http();
    let opened = person.get(&url).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    let overview = person.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    assert!(overview.text().await.unwrap().contains("Overview"));
    // One time: the URL is worth nothing now.
    let again = http().get(&url).send().await.unwrap();
    assert_eq!(again.status(), 401);
    let _ = child.kill().await;
    ns.delete().await;
}
