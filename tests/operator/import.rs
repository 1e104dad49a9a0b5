//! `import` at size: 5,000 contacts go to CSV ConfigMaps the policy reads through `contactsFrom`,
//! each small enough for client-side `kubectl apply` (which copies the object into a 256 KiB
//! annotation); applied as printed, the operator adopts every contact and writes nothing.

use std::time::Duration;

use ghl_operator::sandbox::{RateLimit, SandboxConfig};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const CONTACTS: usize = 5_000;

/// Writes that would change GHL, from the sandbox's counters.
async fn writes(raw: &Raw) -> u64 {
    let stats = raw.admin("GET", "stats", None).await;
    stats["byOperation"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            [
                "create", "update", "delete", "add", "remove", "complete", "bulk", "upsert",
            ]
            .iter()
            .any(|w| op.ends_with(w))
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn an_import_of_5000_contacts_applies_as_printed_and_is_adopted_without_writes() {
    let Some((client, ns)) = setup("import").await else {
        return;
    };
    let seed: ghl_operator::sandbox::seed::Seed = serde_json::from_value(json!({
        "contacts": (0..CONTACTS).map(|i| json!({
            "email": format!("member{i}@import.example"),
            "firstName": format!("Member {i}"),
            "tags": ["imported", format!("cohort-{}", i % 7)],
        })).collect::<Vec<_>>()
    }))
    .unwrap();
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        rate_limit: RateLimit {
            requests: 10_000,
            window: Duration::from_secs(10),
        },
        seed,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);

    // `ghl-operator import` as a user runs it, against the connection's manifest.
    let connection = examples(&sandbox.url)
        .into_iter()
        .find(|d| d["kind"] == "GhlConnection")
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("import-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("connection.yaml"), connection.to_string()).unwrap();
    // Async: the sandbox answers from this test's runtime meanwhile.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args([
            "import",
            "--skip-notes",
            "--name",
            "members",
            "-n",
            &ns.name,
        ])
        .args(["--base-url", &sandbox.url, "--token", &sandbox.token, "-f"])
        .arg(dir.join("connection.yaml"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs = yaml_docs(&text);
    let maps: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ConfigMap").collect();
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ContactSyncPolicy")
        .unwrap();
    assert!(maps.len() > 1, "split over ConfigMaps: {}", maps.len());
    assert!(
        policy["spec"]["contacts"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let sources = policy["spec"]["contactsFrom"].as_array().unwrap();
    assert_eq!(sources.len(), maps.len());
    assert!(
        sources.iter().all(|s| s["format"] == "csv"),
        "flat records are written as CSV: {sources:?}"
    );

    // Applied as kubectl's client-side apply does it: the whole object also in the
    // last-applied annotation (the API server refuses annotations over 256 KiB).
    apply_connection(&client, &ns.name, &sandbox.url).await;
    for doc in &docs {
        let mut doc = doc.clone();
        doc["metadata"]["namespace"] = json!(ns.name);
        let last_applied = doc.to_string();
        doc["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/last-applied-configuration": last_applied});
        apply(&client, &ns.name, doc).await;
    }

    // The operator adopts all 5,000 and writes nothing to GHL.
    let before = writes(&raw).await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    let synced = wait_object(
        &policies(&client, &ns.name),
        "members",
        "Synced",
        Duration::from_secs(120),
        |p| is_true(p, "Synced"),
    )
    .await;
    let status = synced.status.as_ref().unwrap();
    let counts = status.counts.clone().unwrap_or_default();
    assert_eq!(
        (counts.desired, counts.failed),
        (CONTACTS as u32, 0),
        "{counts:?}"
    );
    let plan = status.plan.clone().unwrap_or_default();
    assert_eq!(
        (plan.adopt, plan.create, plan.update, plan.delete),
        (CONTACTS as u32, 0, 0, 0),
        "every contact adopted as it is"
    );
    assert_eq!(
        writes(&raw).await,
        before,
        "adopting an import writes nothing"
    );
    operator.stop().await;
    ns.delete().await;
}
