//! Prune deletes only what the policy created, within `safety`; Plan mode writes nothing.

use ghl_operator::engine::Mode;
use ghl_operator::engine::state::MemoryStore;
use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::engine::{client, spec, sync};
use crate::support::sandbox::{Raw, start};

fn contacts(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"email": format!("p{i}@example.com"), "tags": ["batch"]}))
            .collect(),
    )
}

#[tokio::test]
async fn prune_respects_safety_and_ownership() {
    let seed: ghl_operator::sandbox::Seed =
        serde_json::from_value(json!({"contacts": [{"email": "p0@example.com", "tags": ["pre"]}]}))
            .unwrap();
    let sandbox = start(SandboxConfig {
        seed,
        search_lag: std::time::Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    sync(
        &client,
        &store,
        &spec(json!({"contacts": contacts(5)})),
        Mode::Apply,
    )
    .await;
    let raw = Raw::new(&sandbox);
    assert_eq!(
        raw.admin("GET", "state", None).await["contacts"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Drop all five with prune and maxDeletes 2: blocked, nothing deleted.
    let blocked = spec(json!({"prune": true, "safety": {"maxDeletes": 2}, "contacts": []}));
    let outcome = sync(&client, &store, &blocked, Mode::Apply).await;
    assert!(outcome.plan().blocked.is_some());
    assert!(outcome.report().is_none());
    assert_eq!(
        raw.admin("GET", "state", None).await["contacts"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // With room: the four we created are deleted; p0 (adopted) stays, minus our tag.
    let allowed = spec(json!({"prune": true, "safety": {"maxDeletes": 10}, "contacts": []}));
    let outcome = sync(&client, &store, &allowed, Mode::Apply).await;
    assert!(outcome.report().unwrap().failures.is_empty());
    let state = raw.admin("GET", "state", None).await;
    let left = state["contacts"].as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["email"], "p0@example.com");
    assert_eq!(left[0]["tags"], json!(["pre"]));
}

#[tokio::test]
async fn plan_mode_writes_nothing() {
    let sandbox = start(SandboxConfig::default()).await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let outcome = sync(
        &client,
        &store,
        &spec(json!({"contacts": contacts(3)})),
        Mode::Plan,
    )
    .await;
    assert_eq!(outcome.plan().summary().create, 3);
    assert!(outcome.report().is_none());
    let raw = Raw::new(&sandbox);
    let stats = raw.admin("GET", "stats", None).await;
    let writes: u64 = stats["byOperation"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            !op.ends_with(".search") && !op.ends_with(".get") && !op.ends_with(".list")
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(writes, 0, "{stats}");
}

#[tokio::test]
async fn tags_a_contact_was_created_with_are_removed_when_no_longer_declared() {
    let sandbox = crate::support::sandbox::start_default().await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let declare =
        |tags: Value| spec(json!({"contacts": [{"email": "t@example.com", "tags": tags}]}));
    sync(
        &client,
        &store,
        &declare(json!(["vip", "newsletter"])),
        Mode::Apply,
    )
    .await;
    // Someone adds a tag of their own in GHL.
    let raw = Raw::new(&sandbox);
    let state = raw.admin("GET", "state", None).await;
    let id = state["contacts"][0]["id"].as_str().unwrap().to_owned();
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"tags": ["vip", "newsletter", "theirs"]})),
    )
    .await;

    sync(&client, &store, &declare(json!(["vip"])), Mode::Apply).await;
    let state = raw.admin("GET", "state", None).await;
    let mut tags: Vec<&str> = state["contacts"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        ["theirs", "vip"],
        "our undeclared tag goes, theirs stays"
    );
}
