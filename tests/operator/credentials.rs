//! The credential lifecycle on the real API server with the sandbox's OAuth endpoints (short
//! token lifetimes, single-use refresh tokens): bootstrap from a code, refresh on time while
//! policies keep working, consumers and rollouts, crashes at every step, two processes at once,
//! and PIT age and changes.

use std::time::Duration;

use ghl_operator::crd::GhlConnection;
use ghl_operator::sandbox::{RunningSandbox, SandboxConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const READY: Duration = Duration::from_secs(60);

/// A sandbox whose access tokens live `ttl_s` seconds.
async fn sandbox(ttl_s: u64) -> RunningSandbox {
    start(SandboxConfig {
        search_lag: Duration::ZERO,
        access_token_ttl: Duration::from_secs(ttl_s),
        ..SandboxConfig::default()
    })
    .await
}

pub async fn mint_code(raw: &Raw, user_type: &str) -> String {
    raw.admin("POST", "oauth/code", Some(json!({"userType": user_type})))
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `examples/11-connection-oauth.yaml` pointed at the sandbox with `code`, renewing
/// `renew_before` before expiry, plus the example policy on it.
pub fn oauth_objects(sandbox: &RunningSandbox, code: &str, renew_before: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/11-connection-oauth.yaml"),
    )
    .unwrap();
    let mut docs = yaml_docs(&text);
    for doc in &mut docs {
        match (
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap(),
        ) {
            ("Secret", "acme-oauth-code") => doc["stringData"]["code"] = json!(code),
            ("GhlConnection", _) => {
                doc["spec"]["baseUrl"] = json!(sandbox.url);
                doc["spec"]["auth"]["oauth"]["renewBefore"] = json!(renew_before);
                doc["spec"]["auth"]["oauth"]
                    .as_object_mut()
                    .unwrap()
                    .remove("rotationSchedule");
                doc["spec"]["consumers"]["minInterval"] = json!("1s");
            }
            _ => {}
        }
    }
    let worker = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        // The worker opts in to restarts by this connection (nothing else is restarted).
        "metadata": {"name": "servis-worker",
                     "annotations": {"ghl.servis.ai/restart-on-rotation": "acme-oauth"}},
        "spec": {"selector": {"matchLabels": {"app": "w"}},
                 "template": {"metadata": {"labels": {"app": "w"}},
                              "spec": {"containers": [{"name": "w", "image": "busybox"}]}}}
    });
    docs.push(worker);
    let policy = json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "vip"},
        "spec": {"connectionRef": {"name": "acme-oauth"}, "resyncInterval": "2s",
                 "contacts": [{"email": "ada@example.com", "tags": ["vip"]}]}
    });
    docs.push(policy);
    docs
}

/// Puts a fresh authorization code in the code Secret; the connection and its policy recover.
async fn reconnect_with_a_new_code(client: &kube::Client, ns: &str, raw: &Raw) {
    let fresh = mint_code(raw, "Location").await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "acme-oauth-code",
                        "labels": {"ghl.servis.ai/secret-type": "oauth-code"}}, "stringData": {"code": fresh}});
    apply(client, ns, secret).await;
    wait_object(
        &connections(client, ns),
        "acme-oauth",
        "Ready with the new code",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
    wait_object(&policies(client, ns), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
}

async fn revision(client: &kube::Client, ns: &str) -> Option<i64> {
    let connection = connections(client, ns).get("acme-oauth").await.ok()?;
    Some(connection.status?.credentials?.revision)
}

fn stats_count(stats: &Value, status: &str) -> u64 {
    stats["byStatus"][status].as_u64().unwrap_or(0)
}

/// Token values (`sbx-at-…`, `sbx-rt-…`) must appear in no log, Event or status.
async fn assert_no_token_material(client: &kube::Client, ns: &str) {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let text =
        serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items).unwrap();
    assert!(
        !text.contains("sbx-at-") && !text.contains("sbx-rt-"),
        "token material in Events"
    );
    let status = serde_json::to_string(
        &connections(client, ns)
            .get("acme-oauth")
            .await
            .unwrap()
            .status,
    )
    .unwrap();
    assert!(
        !status.contains("sbx-"),
        "token material in status: {status}"
    );
}

#[tokio::test]
async fn oauth_bootstraps_from_a_code_and_refreshes_on_time_without_a_401() {
    let Some((client, ns)) = setup("oauth").await else {
        return;
    };
    // Tokens live 40 s; renewBefore 1s plus the 30 s skew margin: a refresh every ~9 s.
    let sandbox = sandbox(40).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in oauth_objects(&sandbox, &code, "1s") {
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let ready = wait_object(&api, "acme-oauth", "Ready", READY, |c| {
        is_true(c, "Ready") && is_true(c, "Authenticated")
    })
    .await;
    let facts = ready.status.unwrap().credentials.unwrap();
    assert_eq!(serde_json::to_value(facts.type_).unwrap(), "OAuth");
    assert!(facts.expires_at.is_some() && facts.renewal_time.is_some());
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // The token Secret holds the pair; the consumer Secret the access token.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let tokens = secrets.get("acme-oauth-tokens").await.unwrap();
    let data = tokens.data.clone().unwrap();
    for key in [
        "access_token",
        "refresh_token",
        "expires_at",
        "revision",
        "scope",
    ] {
        assert!(data.contains_key(key), "token Secret has {key}");
    }
    let first = facts.revision;

    // Three more refreshes while the policy resyncs every 2 s.
    wait_for("three refreshes", Duration::from_secs(90), || async {
        (revision(&client, &ns.name).await? >= first + 3).then_some(())
    })
    .await;
    wait_object(
        &policies(&client, &ns.name),
        "vip",
        "still Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats_count(&stats, "401"),
        0,
        "no request was refused: {stats}"
    );
    assert_eq!(stats["refreshTokenReuse"], 0);

    // The consumer Secret follows the current token; the worker was rolled for it.
    let current = secrets
        .get("acme-oauth-tokens")
        .await
        .unwrap()
        .data
        .unwrap()["access_token"]
        .clone();
    wait_for(
        "the consumer Secret has the current token",
        READY,
        || async {
            let consumer = secrets.get("acme-ghl-access-token").await.ok()?;
            let token = consumer.data?.get("token")?.clone();
            let now = secrets.get("acme-oauth-tokens").await.ok()?.data?["access_token"].clone();
            (token == now).then_some(())
        },
    )
    .await;
    let _ = current;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let worker = wait_for("the worker rolled", READY, || async {
        let worker = deployments.get("servis-worker").await.ok()?;
        let rolled = worker
            .spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .contains_key("kubectl.kubernetes.io/restartedAt");
        rolled.then_some(worker)
    })
    .await;
    assert!(
        worker
            .metadata
            .annotations
            .unwrap()
            .contains_key("ghl.servis.ai/restarted-for-revision")
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "CredentialsRotated"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "RolloutRestarted"),
        "{reasons:?}"
    );
    let metrics = operator.metrics().await.unwrap();
    assert!(
        metrics.contains("ghl_operator_credential_expiry_timestamp_seconds{"),
        "{metrics}"
    );
    assert!(metrics.contains("ghl_operator_credential_rotations_total{credential=\"oauth\"}"));
    assert!(metrics.contains("ghl_operator_credential_refresh_failures{"));
    let absent = [
        &crate::monitoring::FIRST_FAILURE[..],
        &crate::monitoring::SINK_ONLY[..],
    ]
    .concat();
    crate::monitoring::check_against_scrape(&metrics, &absent);

    assert_no_token_material(&client, &ns.name).await;
    let logs = operator.logs();
    assert!(
        !logs.contains("sbx-at-") && !logs.contains("sbx-rt-") && !logs.contains(&code),
        "token material in logs"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_used_code_gives_a_clear_condition_and_a_new_code_recovers() {
    let Some((client, ns)) = setup("usedcode").await else {
        return;
    };
    let sandbox = sandbox(3600).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    // Someone else already exchanged it.
    let form = [
        ("client_id", "sandbox-client-id"),
        ("client_secret", "sandbox-client-secret"),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("user_type", "Location"),
    ];
    let used = raw
        .http
        .post(format!("{}/oauth/token", sandbox.url))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(used.status().is_success());
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in oauth_objects(&sandbox, &code, "10m") {
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    wait_object(&api, "acme-oauth", "AuthorizationCodeInvalid", READY, |c| {
        condition(c, "Authenticated")
            .is_some_and(|(s, r)| s == "False" && r == "AuthorizationCodeInvalid")
    })
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "waiting", READY, |p| {
        condition(p, "Ready").is_some_and(|(s, r)| s == "False" && r == "ConnectionNotReady")
    })
    .await;
    // No loop: the bad code is tried once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["byOperation"]["oauth.token"], 2,
        "ours and the earlier exchange only: {stats}"
    );

    reconnect_with_a_new_code(&client, &ns.name, &raw).await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_agency_grant_mints_location_tokens() {
    let Some((client, ns)) = setup("agency").await else {
        return;
    };
    let sandbox = sandbox(3600).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Company").await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in oauth_objects(&sandbox, &code, "10m") {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["oauth"]["userType"] = json!("Company");
            doc["spec"]["auth"]["oauth"]["companyId"] = json!("sandboxCompany000001");
        }
        apply(&client, &ns.name, doc).await;
    }
    wait_object(
        &connections(&client, &ns.name),
        "acme-oauth",
        "Ready",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    let stats = raw.admin("GET", "stats", None).await;
    assert!(
        stats["byOperation"]["oauth.location_token"]
            .as_u64()
            .unwrap()
            >= 1,
        "{stats}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        secrets
            .get("acme-oauth-tokens")
            .await
            .unwrap()
            .data
            .unwrap()
            .contains_key("location_access_token")
    );
    operator.stop().await;
    ns.delete().await;
}

/// Runs the operator with `GHL_CRASH_POINT=point` until it aborts there (or `within` passes).
async fn crash_at(ns: &str, sandbox: &str, point: &str, within: Duration) -> bool {
    let mut options = OperatorOptions::new(ns, "op-0").allowing(sandbox);
    options.env = vec![("GHL_CRASH_POINT".into(), point.into())];
    let mut operator = Operator::start(options);
    let exited = operator.wait_exit(within).await;
    operator.kill();
    exited.is_some_and(|s| !s.success())
}

#[tokio::test]
async fn crashes_at_any_step_of_a_refresh_never_lose_the_connection_or_reuse_a_token() {
    let Some((client, ns)) = setup("crash").await else {
        return;
    };
    // A refresh every ~3 s (34 s tokens, renewBefore 1s, 30 s margin).
    let sandbox = sandbox(34).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    for doc in oauth_objects(&sandbox, &code, "1s") {
        apply(&client, &ns.name, doc).await;
    }
    // Steps where a crash leaves a state the next process continues from; many times in a row.
    let points = ["before-claim", "after-persist", "after-install"];
    let mut crashes = 0;
    for round in 0..9 {
        let point = points[round % points.len()];
        if crash_at(&ns.name, &sandbox.url, point, Duration::from_secs(20)).await {
            crashes += 1;
        }
        let stats = raw.admin("GET", "stats", None).await;
        assert_eq!(
            stats["refreshTokenReuse"], 0,
            "after a crash at {point}: {stats}"
        );
    }
    assert!(
        crashes >= 6,
        "the crash points were reached ({crashes} of 9)"
    );
    // A normal process carries on with the stored pair.
    let before = revision(&client, &ns.name).await.unwrap_or(0);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    let api = connections(&client, &ns.name);
    wait_object(&api, "acme-oauth", "Ready after the crashes", READY, |c| {
        is_true(c, "Ready")
    })
    .await;
    wait_for("a refresh after the crashes", READY, || async {
        (revision(&client, &ns.name).await? > before).then_some(())
    })
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0);
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_refresh_interrupted_after_spending_is_never_repeated_and_asks_for_a_new_code() {
    let Some((client, ns)) = setup("spent").await else {
        return;
    };
    let sandbox = sandbox(34).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    for doc in oauth_objects(&sandbox, &code, "1s") {
        apply(&client, &ns.name, doc).await;
    }
    // Bootstrap, then die between GHL's answer and storing it: GHL has rotated the pair and
    // the answer is gone — the one window single-use refresh tokens leave open.
    assert!(
        crash_at(
            &ns.name,
            &sandbox.url,
            "after-spend",
            Duration::from_secs(30)
        )
        .await,
        "bootstrap exchange crash"
    );
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    let api = connections(&client, &ns.name);
    wait_object(&api, "acme-oauth", "ReauthorizationRequired", READY, |c| {
        condition(c, "Authenticated")
            .is_some_and(|(s, r)| s == "False" && r == "ReauthorizationRequired")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0, "never spent twice: {stats}");
    assert_eq!(
        stats["byOperation"]["oauth.token"], 1,
        "no retry loop: {stats}"
    );
    // A new code reconnects.
    reconnect_with_a_new_code(&client, &ns.name, &raw).await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn two_active_processes_never_spend_the_same_refresh_token() {
    let Some((client, ns)) = setup("twoproc").await else {
        return;
    };
    let sandbox = sandbox(34).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    for doc in oauth_objects(&sandbox, &code, "1s") {
        apply(&client, &ns.name, doc).await;
    }
    // No leader election: both reconcile the same connection at once (a split brain).
    let start = |identity: &str| {
        let mut options = OperatorOptions::new(&ns.name, identity).allowing(&sandbox.url);
        options.extra_args.push("--no-leader-election".into());
        Operator::start(options)
    };
    let a = start("op-a");
    let b = start("op-b");
    wait_object(
        &connections(&client, &ns.name),
        "acme-oauth",
        "Ready",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
    let first = revision(&client, &ns.name).await.unwrap();
    wait_for("five refreshes", Duration::from_secs(90), || async {
        (revision(&client, &ns.name).await? >= first + 5).then_some(())
    })
    .await;
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0, "{stats}");
    let connection: GhlConnection = connections(&client, &ns.name)
        .get("acme-oauth")
        .await
        .unwrap();
    assert!(is_true(&connection, "Authenticated"));
    a.stop().await;
    b.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_pit_change_is_picked_up_at_once_and_its_age_raises_rotation_due() {
    let Some((client, ns)) = setup("pitage").await else {
        return;
    };
    let sandbox = crate::support::sandbox::start_default().await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in examples(&sandbox.url) {
        if doc["kind"] == "GhlConnection" {
            doc["spec"]["auth"]["privateIntegrationToken"]["maxAge"] = json!("4s");
        }
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let ready = wait_object(&api, "acme", "Ready, within maxAge", READY, |c| {
        is_true(c, "Ready")
            && condition(c, "RotationDue").is_some_and(|(s, r)| s == "False" && r == "WithinMaxAge")
    })
    .await;
    let first = ready.status.unwrap().credentials.unwrap().revision;
    wait_object(&api, "acme", "RotationDue", READY, |c| {
        condition(c, "RotationDue").is_some_and(|(s, r)| s == "True" && r == "MaxAgeExceeded")
    })
    .await;
    // The age is recorded in the connection's status (it survives restarts), as a
    // fingerprint, not the value; the user's Secret is never written.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let pit = secrets.get("acme-pit").await.unwrap();
    assert!(
        pit.metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("ghl.servis.ai/")),
        "the operator wrote to the user's Secret"
    );
    let credentials = api
        .get("acme")
        .await
        .unwrap()
        .status
        .unwrap()
        .credentials
        .unwrap();
    let fingerprint = credentials.fingerprint.expect("a fingerprint");
    assert!(!fingerprint.contains("pit-sandbox-token") && credentials.last_rotated_at.is_some());

    // A new value (refused by GHL) is picked up at once: new revision, not ready, with the reason.
    apply(
        &client,
        &ns.name,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "acme-pit", "labels": {"ghl.servis.ai/secret-type": "pit"}},
                                   "stringData": {"token": "pit-wrong-token"}}),
    )
    .await;
    wait_object(
        &api,
        "acme",
        "refused with a new revision",
        Duration::from_secs(20),
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.credentials.as_ref())
                .is_some_and(|f| f.revision > first)
                && condition(c, "Authenticated")
                    .is_some_and(|(s, r)| s == "False" && r == "CredentialsRejected")
                && condition(c, "RotationDue").is_some_and(|(s, _)| s == "False")
        },
    )
    .await;
    operator.stop().await;
    ns.delete().await;
}

/// `renewBefore` past the token's lifetime (20 s tokens, `renewBefore: 1m`) would refresh in
/// a loop; the operator refreshes at half the lifetime instead and says so. With 5xx answers
/// and broken connections injected at the token endpoint (some after GHL rotated the pair), a
/// refresh token is never presented twice: an unclear answer asks for a new code instead.
#[tokio::test]
async fn a_renew_before_past_the_lifetime_refreshes_at_half_of_it_and_never_reuses_a_token() {
    let Some((client, ns)) = setup("loop").await else {
        return;
    };
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        access_token_ttl: Duration::from_secs(20),
        faults: "seed=11,on=oauth.token,5xx=0.15,drop=0.1".parse().unwrap(),
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in oauth_objects(&sandbox, &code, "1m") {
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let window = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let mut codes = 1;
    let mut adjusted = false;
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(connection) = api.get("acme-oauth").await else {
            continue;
        };
        adjusted |= condition(&connection, "RenewalAdjusted")
            .is_some_and(|(s, r)| s == "True" && r == "RenewBeforeTooLong");
        // An unclear answer from the token endpoint: a person supplies a new code.
        let stuck = condition(&connection, "Authenticated").is_some_and(|(s, r)| {
            s == "False" && (r == "ReauthorizationRequired" || r == "AuthorizationCodeInvalid")
        });
        if stuck {
            let fresh = mint_code(&raw, "Location").await;
            apply(
                &client,
                &ns.name,
                json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "acme-oauth-code", "labels": {"ghl.servis.ai/secret-type": "oauth-code"}},
                "stringData": {"code": fresh}}),
            )
            .await;
            codes += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["refreshTokenReuse"], 0,
        "a refresh token was presented twice: {stats}"
    );
    assert!(adjusted, "the RenewalAdjusted warning condition was shown");
    // At most one refresh per half lifetime (10 s), plus one exchange per code supplied.
    let token_calls = stats["byOperation"]["oauth.token"].as_u64().unwrap_or(0);
    let bound = window.as_secs() / 10 + 1 + codes;
    assert!(
        token_calls <= bound,
        "{token_calls} token calls in {window:?} (bound {bound}, {codes} codes): {stats}"
    );
    assert!(token_calls >= 3, "the connection kept refreshing: {stats}");
    eprintln!("{token_calls} token calls in {window:?}, {codes} code(s) supplied");
    operator.stop().await;
    ns.delete().await;
}

/// A read-only grant behind an `Apply` policy: reported once on the policy (not Ready,
/// naming the missing scope), with no write attempted; a `Plan` policy on it still plans.
#[tokio::test]
async fn a_read_only_grant_is_reported_and_nothing_is_written() {
    let Some((client, ns)) = setup("readonly").await else {
        return;
    };
    let sandbox = sandbox(86_399).await;
    let raw = Raw::new(&sandbox);
    let code = raw
        .admin(
            "POST",
            "oauth/code",
            Some(json!({"userType": "Location", "scopes": ["contacts.readonly"]})),
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in oauth_objects(&sandbox, &code, "1h") {
        apply(&client, &ns.name, doc).await;
    }
    apply(
        &client,
        &ns.name,
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "look-only"},
               "spec": {"connectionRef": {"name": "acme-oauth"}, "mode": "Plan",
                        "contacts": [{"email": "look@example.com"}]}}),
    )
    .await;
    let api = policies(&client, &ns.name);
    let refused = wait_object(&api, "vip", "MissingScope", READY, |p| {
        condition(p, "Ready")
            .is_some_and(|(status, reason)| status == "False" && reason == "MissingScope")
    })
    .await;
    let ready = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.contains("contacts.write"),
        "{}",
        ready.message
    );
    // The connection says so too: it declares contacts.write, GHL did not grant it.
    let connection = wait_object(
        &connections(&client, &ns.name),
        "acme-oauth",
        "ScopesGranted False",
        READY,
        |c| {
            condition(c, "ScopesGranted")
                .is_some_and(|(status, reason)| status == "False" && reason == "ScopesNotGranted")
        },
    )
    .await;
    assert!(
        is_true(&connection, "Ready"),
        "the connection itself stays usable"
    );
    let planned = wait_object(&api, "look-only", "planned", READY, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .is_some_and(|plan| plan.create == 1)
    })
    .await;
    assert!(
        is_true(&planned, "Ready"),
        "plan-only works with read scopes"
    );
    // A few connection checks later: still no write attempted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = raw.admin("GET", "stats", None).await;
    let writes: u64 = [
        "contacts.create",
        "contacts.update",
        "contacts.upsert",
        "tags.add",
        "tags.remove",
        "tasks.create",
        "notes.create",
    ]
    .iter()
    .map(|op| stats["byOperation"][op].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(writes, 0, "{stats}");
    assert!(sandbox_contacts(&raw).await.is_empty());
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_refresh_without_a_clear_answer_keeps_the_connection_serving_until_its_token_expires() {
    let Some((client, ns)) = setup("serving").await else {
        return;
    };
    // 90 s tokens renewed 30 s before expiry (less the 30 s safety margin): the first refresh
    // is due 30 s after bootstrap, and the access token then has a minute to serve.
    let sandbox = sandbox(90).await;
    let raw = Raw::new(&sandbox);
    let code = mint_code(&raw, "Location").await;
    for doc in oauth_objects(&sandbox, &code, "30s") {
        apply(&client, &ns.name, doc).await;
    }
    let api = connections(&client, &ns.name);
    let first = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    wait_object(&api, "acme-oauth", "Authenticated", READY, |c| {
        is_true(c, "Authenticated")
    })
    .await;
    first.stop().await;
    let bootstrapped: GhlConnection = api.get("acme-oauth").await.unwrap();
    let expires_at = bootstrapped
        .status
        .as_ref()
        .and_then(|s| s.credentials.as_ref())
        .and_then(|c| c.expires_at.clone())
        .expect("expiresAt after the bootstrap")
        .0;
    // The refresh is spent at GHL and its answer lost: the refresh token may be gone.
    assert!(
        crash_at(
            &ns.name,
            &sandbox.url,
            "after-spend",
            Duration::from_secs(40)
        )
        .await,
        "the refresh reached its crash point"
    );
    assert!(
        jiff::Timestamp::now() < expires_at,
        "the crash came before the access token expired"
    );
    // It serves /oauth/callback (the example's redirectUri), so a consent link can be offered.
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options
        .extra_args
        .push(format!("--webhook-addr=127.0.0.1:{}", free_port()));
    for file in crate::webhooks::key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    let operator = Operator::start(options);
    // Still serving, saying so, with the consent link ready.
    let serving = wait_object(&api, "acme-oauth", "RenewalFailed", READY, |c| {
        condition(c, "Authenticated").is_some_and(|(s, r)| s == "True" && r == "RenewalFailed")
            && is_true(c, "Ready")
    })
    .await;
    let status = serving.status.clone().unwrap();
    assert!(
        status
            .consent
            .as_ref()
            .is_some_and(|c| c.url.contains("state=")),
        "the consent link is ready before the token expires: {:?}",
        status.consent
    );
    let message = condition_message(&serving, "Authenticated").unwrap();
    assert!(message.contains("serves until"), "{message}");
    // The refresh token is given up in the Secret itself, not only by a claim a later write
    // could clear.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let tokens = secrets.get("acme-oauth-tokens").await.unwrap();
    let data = tokens.data.unwrap_or_default();
    assert!(data.contains_key("access_token") && !data.contains_key("refresh_token"));
    // Policies keep working on the access token: a new tag is applied.
    apply(
        &client,
        &ns.name,
        json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "vip"},
            "spec": {"connectionRef": {"name": "acme-oauth"}, "resyncInterval": "2s",
                     "contacts": [{"email": "ada@example.com", "tags": ["vip", "renewal-failed"]}]}
        }),
    )
    .await;
    wait_for(
        "the edit applied on the old access token",
        READY,
        || async {
            let state = raw.admin("GET", "state", None).await;
            let text = state.to_string();
            (text.contains("renewal-failed") && jiff::Timestamp::now() < expires_at).then_some(())
        },
    )
    .await;
    // At expiry, and only then, the connection asks for consent.
    let expired = wait_object(
        &api,
        "acme-oauth",
        "ReauthorizationRequired at expiry",
        Duration::from_secs(90),
        |c| {
            condition(c, "Authenticated")
                .is_some_and(|(s, r)| s == "False" && r == "ReauthorizationRequired")
        },
    )
    .await;
    // (An access token is not served in its last 30 s.)
    assert!(
        jiff::Timestamp::now() >= expires_at - jiff::SignedDuration::from_secs(30),
        "consent was asked for only once the token expired"
    );
    assert!(expired.status.unwrap().consent.is_some());
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["refreshTokenReuse"], 0, "never spent twice: {stats}");
    assert_eq!(
        stats["byOperation"]["oauth.token"], 2,
        "the exchange and the one refresh, never retried: {stats}"
    );
    assert_no_token_material(&client, &ns.name).await;
    operator.stop().await;
    ns.delete().await;
}
