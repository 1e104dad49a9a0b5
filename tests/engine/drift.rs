//! Drift made in GHL is planned and repaired.

use std::time::Duration;

use ghl_operator::engine::Mode;
use ghl_operator::engine::SyncOptions;
use ghl_operator::engine::observe::ObserveOptions;
use ghl_operator::engine::state::MemoryStore;

use crate::support::engine::sync_with;
use ghl_operator::sandbox::SandboxConfig;
use serde_json::json;

use crate::support::engine::{client, now, spec, sync};
use crate::support::sandbox::{Raw, start};

#[tokio::test]
async fn drift_is_planned_and_repaired() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
    .await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(json!({"fieldPolicy": {"phone": "InitOnly"}, "contacts": [
        {"email": "ada@example.com", "firstName": "Ada", "city": "London", "phone": "+14155550100", "tags": ["vip"],
         "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z"}],
         "notes": [{"key": "n", "body": "Met at the summit"}]}]}));
    sync(&client, &store, &spec, Mode::Apply).await;
    let raw = Raw::new(&sandbox);
    let state = raw.admin("GET", "state", None).await;
    let id = state["contacts"][0]["id"].as_str().unwrap().to_owned();
    let task_id = state["tasks"][0]["id"].as_str().unwrap().to_owned();
    let note_id = state["notes"][0]["id"].as_str().unwrap().to_owned();

    // A person edits the contact in GHL: city, phone (InitOnly), a tag, the task and the note.
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"city": "Paris", "phone": "+14155550111", "tags": ["other"]})),
    )
    .await;
    raw.call(
        "PUT",
        &format!("/contacts/{id}/tasks/{task_id}"),
        Some(json!({"title": "Changed"})),
    )
    .await;
    raw.call(
        "PUT",
        &format!("/contacts/{id}/notes/{note_id}"),
        Some(json!({"body": "Edited"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A deep plan sees all of it; the phone is InitOnly and stays as the person left it.
    let mut options = SyncOptions::new(Mode::Plan, now());
    options.observe = ObserveOptions {
        deep: true,
        ..ObserveOptions::new(now())
    };
    let plan = sync_with(&client, &store, &spec, options.clone())
        .await
        .unwrap()
        .into_plan();
    let c = &plan.contacts[0];
    assert!(c.drifted);
    let changed: Vec<String> = c.changes.iter().map(|ch| ch.attribute.name()).collect();
    assert_eq!(changed, ["city"]);
    assert_eq!(c.add_tags, ["vip".to_owned()].into());
    assert_eq!(c.items.len(), 2, "{:?}", c.items);
    assert_eq!(plan.counts().drifted, 1);

    options.mode = Mode::Apply;
    let repaired = sync_with(&client, &store, &spec, options.clone())
        .await
        .unwrap();
    assert_eq!(
        repaired.report().unwrap().writes,
        4,
        "city, tag, task, note: one write each"
    );
    let state = raw.admin("GET", "state", None).await;
    assert_eq!(state["contacts"][0]["city"], "London");
    assert_eq!(state["contacts"][0]["phone"], "+14155550111");
    assert_eq!(state["contacts"][0]["tags"], json!(["other", "vip"]));
    assert_eq!(state["tasks"][0]["title"], "Call");
    assert_eq!(state["notes"][0]["body"], "Met at the summit");

    options.mode = Mode::Plan;
    let after = sync_with(&client, &store, &spec, options)
        .await
        .unwrap()
        .into_plan();
    assert!(after.is_empty());
}

#[tokio::test]
async fn a_contact_deleted_in_ghl_is_recreated() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(json!({"contacts": [{"email": "ada@example.com", "tags": ["vip"]}]}));
    sync(&client, &store, &spec, Mode::Apply).await;
    let raw = Raw::new(&sandbox);
    let id = raw.admin("GET", "state", None).await["contacts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.admin("DELETE", &format!("contacts/{id}"), None).await;
    let repair = sync(&client, &store, &spec, Mode::Apply).await;
    assert_eq!(
        repair.plan().contacts[0].replaces.as_deref(),
        Some(id.as_str())
    );
    let state = raw.admin("GET", "state", None).await;
    assert_eq!(state["contacts"].as_array().unwrap().len(), 1);
    assert_ne!(state["contacts"][0]["id"], id.as_str());
    assert!(
        sync(&client, &store, &spec, Mode::Plan)
            .await
            .plan()
            .is_empty()
    );
}
