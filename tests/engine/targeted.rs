//! Targeted syncs (the webhook path) plan from the contact the webhook carried: a person's
//! edit is repaired without reading the contact, and the echo of the repair costs nothing.

use std::collections::{BTreeMap, BTreeSet};

use ghl_operator::engine::desired::build;
use ghl_operator::engine::plan::PlanOptions;
use ghl_operator::engine::state::MemoryStore;
use ghl_operator::engine::targeted::{Scope, sync_contacts};
use ghl_operator::engine::{Mode, SyncOptions};
use ghl_operator::ghl::models::Contact;
use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::engine::{client, now, spec, sync};
use crate::support::sandbox::{Raw, start};

/// Calls the sandbox counted, by operation.
async fn calls(raw: &Raw) -> Value {
    raw.admin("GET", "stats", None).await["byOperation"].clone()
}

fn delta(after: &Value, before: &Value, operation: &str) -> u64 {
    after[operation].as_u64().unwrap_or(0) - before[operation].as_u64().unwrap_or(0)
}

/// The contact as the sandbox holds it: what its `ContactUpdate` webhook carries.
async fn carried(raw: &Raw, id: &str) -> Contact {
    let state = raw.admin("GET", "state", None).await;
    let contact = state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone();
    serde_json::from_value(contact).unwrap()
}

#[tokio::test]
async fn a_webhooks_contact_is_planned_from_without_a_read() {
    let sandbox = start(SandboxConfig::default()).await;
    let client = client(&sandbox);
    let raw = Raw::new(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(json!({"contacts": [
        {"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]}]}));
    sync(&client, &store, &spec, Mode::Apply).await;
    let state = raw.admin("GET", "state", None).await;
    let id = state["contacts"][0]["id"].as_str().unwrap().to_owned();

    // A person renames her in GHL; the webhook carries the contact as it now is.
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"firstName": "Eve"})),
    )
    .await;
    let scope = |contact: Contact| Scope {
        ids: BTreeSet::from([id.clone()]),
        snapshots: BTreeMap::from([(id.clone(), contact)]),
        ..Scope::default()
    };
    let targeted = |scope: Scope| {
        let (client, store, spec) = (&client, &store, &spec);
        async move {
            sync_contacts(
                client,
                store,
                build(spec, &[]).unwrap(),
                &scope,
                PlanOptions::for_spec(spec),
                SyncOptions::new(Mode::Apply, now()),
            )
            .await
            .expect("the targeted sync runs")
        }
    };
    let before = calls(&raw).await;
    let (outcome, _) = targeted(scope(carried(&raw, &id).await)).await;
    let after = calls(&raw).await;
    assert_eq!(outcome.plan().summary().update, 1, "the edit is repaired");
    assert_eq!(delta(&after, &before, "contacts.get"), 0, "nothing read");
    assert_eq!(delta(&after, &before, "contacts.update"), 1);
    assert_eq!(carried(&raw, &id).await.first_name.as_deref(), Some("Ada"));

    // The echo of that repair: the webhook carries what we wrote; nothing to do, no call.
    let before = calls(&raw).await;
    let (outcome, _) = targeted(scope(carried(&raw, &id).await)).await;
    let after = calls(&raw).await;
    assert_eq!(outcome.plan().summary().update, 0);
    let total = |stats: &Value| -> u64 {
        stats
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum()
    };
    assert_eq!(total(&after), total(&before), "the echo costs no call");

    // Without the contact (a tag or DND event carries none), it is read.
    let before = calls(&raw).await;
    targeted(Scope {
        ids: BTreeSet::from([id.clone()]),
        ..Scope::default()
    })
    .await;
    assert_eq!(delta(&calls(&raw).await, &before, "contacts.get"), 1);
}

#[tokio::test]
async fn a_record_managing_a_field_webhooks_may_not_carry_reads_the_contact() {
    let sandbox = start(SandboxConfig::default()).await;
    let client = client(&sandbox);
    let raw = Raw::new(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(json!({"contacts": [
        {"email": "ada@example.com", "timezone": "Europe/London"}]}));
    sync(&client, &store, &spec, Mode::Apply).await;
    let state = raw.admin("GET", "state", None).await;
    let id = state["contacts"][0]["id"].as_str().unwrap().to_owned();
    let contact: Contact = serde_json::from_value(state["contacts"][0].clone()).unwrap();
    let before = calls(&raw).await;
    sync_contacts(
        &client,
        &store,
        build(&spec, &[]).unwrap(),
        &Scope {
            ids: BTreeSet::from([id.clone()]),
            snapshots: BTreeMap::from([(id.clone(), contact)]),
            ..Scope::default()
        },
        PlanOptions::for_spec(&spec),
        SyncOptions::new(Mode::Apply, now()),
    )
    .await
    .unwrap();
    assert_eq!(delta(&calls(&raw).await, &before, "contacts.get"), 1);
}
