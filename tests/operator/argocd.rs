//! The chart's Argo CD health check (`charts/ghl-operator/files/argocd-health.lua`), run by a
//! real Lua 5.1 (the dialect of Argo CD's gopher-lua) against objects the operator wrote:
//! Healthy, Progressing, Degraded and Suspended, for the three kinds.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::start_default;

const READY: Duration = Duration::from_secs(60);

/// `value` as a Lua table constructor (JSON nulls left out, as Argo CD's conversion does).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().filter(|v| !v.is_null()).map(lua).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte}")),
        }
    }
    out.push('"');
    out
}

/// What the health script says of `object`: (status, message).
pub fn health(object: &impl Serialize) -> (String, String) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ghl-operator/files/argocd-health.lua");
    let object = serde_json::to_value(object).unwrap();
    let program = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\t\", hs.message)\n",
        lua(&object),
        lua_string(script.to_str().unwrap())
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "argocd-{}.lua",
        object["metadata"]["uid"].as_str().unwrap_or("object")
    ));
    std::fs::write(&file, program).unwrap();
    let output = Command::new("lua5.1")
        .arg(&file)
        .output()
        .expect("lua5.1 runs (scripts/install-test-deps.sh installs it)");
    assert!(
        output.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('\t').unwrap();
    (status.to_owned(), message.to_owned())
}

fn assert_health(object: &impl Serialize, expected: &str, what: &str) {
    let (status, message) = health(object);
    println!("{what}: {status} ({message})");
    assert_eq!(status, expected, "{what}: {message}");
}

#[test]
fn lua_literals_escape_what_they_must() {
    assert_eq!(
        lua(&json!({"a": [1, null, "x\"\n"], "b": null})),
        r#"{["a"] = {1, "x\"\10"}}"#
    );
}

#[tokio::test]
async fn the_health_check_reads_every_state_the_operator_writes() {
    let Some((client, ns)) = setup("argocd").await else {
        return;
    };
    let sandbox = start_default().await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    // A plan-only policy with a change pending, an invalid one, and a connection whose token
    // GHL refuses (with a policy waiting on it).
    for doc in [
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "planned"},
               "spec": {"connectionRef": {"name": "acme"}, "mode": "Plan",
                        "contacts": [{"email": "planned@example.com"}]}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "invalid"},
               "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "0s",
                        "contacts": [{"email": "invalid@example.com"}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-pit", "labels": {"ghl.servis.ai/secret-type": "pit"}},
               "stringData": {"token": "not-a-token"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
               "metadata": {"name": "refused"},
               "spec": {"locationId": sandbox.location_id, "baseUrl": sandbox.url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": "wrong-pit", "key": "token"}}}}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "waiting"},
               "spec": {"connectionRef": {"name": "refused"},
                        "contacts": [{"email": "waiting@example.com"}]}}),
    ] {
        apply(&client, &ns.name, doc).await;
    }
    let (connections, policies) = (connections(&client, &ns.name), policies(&client, &ns.name));
    let rules = rules(&client, &ns.name);

    let acme = wait_object(&connections, "acme", "Ready", READY, |c| {
        is_true(c, "Ready")
    })
    .await;
    assert_health(&acme, "Healthy", "a ready connection");
    let synced = wait_object(&policies, "vip-customers", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    assert_health(&synced, "Healthy", "a synced policy");
    let rule = wait_object(&rules, "enterprise-domain", "Ready", READY, |r| {
        is_true(r, "Ready")
    })
    .await;
    assert_health(&rule, "Healthy", "a ready tag rule");

    let planned = wait_object(&policies, "planned", "planned", READY, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.plan.as_ref())
            .is_some_and(|plan| plan.create > 0)
    })
    .await;
    assert_health(&planned, "Suspended", "mode Plan with a change pending");

    let invalid = wait_object(&policies, "invalid", "Stalled", READY, |p| {
        is_true(p, "Stalled")
    })
    .await;
    assert_health(&invalid, "Degraded", "an invalid spec");

    let refused = wait_object(&connections, "refused", "refused", READY, |c| {
        condition(c, "Authenticated").is_some_and(|(status, _)| status == "False")
    })
    .await;
    assert_health(&refused, "Degraded", "a refused credential");
    // Its policy is stalled too, naming the connection: nothing moves until it is fixed.
    let waiting = wait_object(&policies, "waiting", "waiting", READY, |p| {
        condition(p, "Ready").is_some_and(|(status, _)| status == "False")
    })
    .await;
    assert_health(&waiting, "Degraded", "a policy on a refused connection");

    // Edited and not yet observed: the same object one generation ahead.
    let mut edited = synced.clone();
    edited.metadata.generation = edited.metadata.generation.map(|g| g + 1);
    assert_health(
        &edited,
        "Progressing",
        "a policy not observed since its edit",
    );
    let mut fresh = synced.clone();
    fresh.status = None;
    assert_health(&fresh, "Progressing", "a policy the operator has not seen");

    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
