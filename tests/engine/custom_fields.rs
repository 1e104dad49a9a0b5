//! Custom fields by key: one spec naming `contact.tier` serves two locations whose field ids
//! differ; each contact carries its own location's id. A key a location lacks fails only its
//! record, and nothing is pruned meanwhile.

use std::sync::Arc;
use std::time::Duration;

use ghl_operator::engine::Mode;
use ghl_operator::engine::state::MemoryStore;
use ghl_operator::ghl::{ConnectionSettings, GhlApi, GhlClient, GhlMetrics, StaticToken};
use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::engine::{spec, sync};
use crate::support::sandbox::{Raw, start};

const SECOND: &str = "locSecond00000000002";

fn client_for(url: &str, location: &str, token: &str) -> GhlClient {
    ConnectionSettings::new(url, location)
        .connect(
            Arc::new(StaticToken::new(token.to_owned())),
            Arc::new(GhlMetrics::default()),
        )
        .unwrap()
        .0
}

/// The custom fields of the one contact in `location`, as GHL answers them (`[{id, value}]`).
async fn fields_of(raw: &Raw, client: &GhlClient) -> Vec<Value> {
    let search = raw
        .call(
            "POST",
            "/contacts/search",
            Some(json!({"locationId": client.location_id(), "pageLimit": 10})),
        )
        .await;
    let contact = &search.json["contacts"][0];
    contact["customFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn one_spec_writes_each_locations_own_field_ids() {
    let sandbox = start(SandboxConfig {
        other_locations: vec![SECOND.into()],
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let clients: Vec<(GhlClient, Raw)> = sandbox
        .locations
        .iter()
        .map(|(location, token)| {
            let mut raw = Raw::new(&sandbox);
            raw.token = token.clone();
            (client_for(&sandbox.url, location, token), raw)
        })
        .collect();
    let spec = spec(json!({
        "fieldPolicy": {"customFields.contact.pincode": "InitOnly"},
        "contacts": [{"email": "ada@example.com",
                      "customFields": {"contact.tier": "gold", "contact.pincode": "75001"}}]}));

    let mut ids = Vec::new();
    for (client, raw) in &clients {
        let definitions = client.custom_fields(false).await.unwrap();
        let id = |key: &str| {
            definitions
                .iter()
                .find(|d| d.field_key.as_deref() == Some(key))
                .map(|d| d.id.clone())
                .unwrap()
        };
        let (tier, pincode) = (id("contact.tier"), id("contact.pincode"));
        let store = MemoryStore::default();
        let outcome = sync(client, &store, &spec, Mode::Apply).await;
        assert!(
            outcome.plan().failures.is_empty(),
            "{:?}",
            outcome.plan().failures
        );
        let mut got = fields_of(raw, client).await;
        got.sort_by_key(|f| f["id"].as_str().unwrap_or_default().to_owned());
        let mut want = vec![
            json!({"id": tier, "value": "gold"}),
            json!({"id": pincode, "value": "75001"}),
        ];
        want.sort_by_key(|f| f["id"].as_str().unwrap_or_default().to_owned());
        assert_eq!(got, want, "{}", client.location_id());

        // In sync on the next run: the key compares with the id GHL answers.
        let again = sync(client, &store, &spec, Mode::Plan).await;
        assert!(again.plan().is_empty(), "no drift from naming by key");

        // A person changes the InitOnly field (by key in fieldPolicy): left alone.
        let contact_id = raw
            .call(
                "POST",
                "/contacts/search",
                Some(json!({"locationId": client.location_id(), "pageLimit": 1})),
            )
            .await
            .json["contacts"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        raw.call(
            "PUT",
            &format!("/contacts/{contact_id}"),
            Some(json!({"customFields": [{"id": pincode, "field_value": "10115"}]})),
        )
        .await;
        let after = sync(client, &store, &spec, Mode::Plan).await;
        assert!(after.plan().is_empty(), "InitOnly by key applies to the id");

        // A key this location does not have fails its record only; nothing is pruned.
        let broken = spec_with_unknown_key();
        let failed = sync(client, &store, &broken, Mode::Plan).await;
        let failure = &failed.plan().failures[0];
        assert_eq!(failure.reason, "UnknownCustomField");
        assert_eq!(failure.field.as_deref(), Some("customFields.contact.nope"));
        assert!(
            failed.plan().releases.is_empty(),
            "nothing released meanwhile"
        );
        ids.push(tier);
    }
    assert_ne!(ids[0], ids[1], "the two locations' ids differ");
}

fn spec_with_unknown_key() -> ghl_operator::crd::contact_sync_policy::ContactSyncPolicySpec {
    spec(json!({"prune": true, "contacts": [
        {"email": "grace@example.com", "customFields": {"contact.nope": "x"}}]}))
}

#[tokio::test]
async fn a_tag_rule_selects_by_custom_field_key_in_each_location() {
    use ghl_operator::crd::tag_rule::TagRuleSpec;
    use ghl_operator::engine::ledger::Ledger;
    use ghl_operator::engine::tag_rule::observe_rule;

    let sandbox = start(SandboxConfig {
        other_locations: vec![SECOND.into()],
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let rule: TagRuleSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "c"},
        "selector": {"filters": [
            {"field": "customFields.contact.tier", "operator": "eq", "value": "gold"}]},
        "addTags": ["gold-tier"]}))
    .unwrap();
    let missing: TagRuleSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "c"},
        "selector": {"filters": [
            {"field": "customFields.contact.nope", "operator": "exists"}]},
        "addTags": ["x"]}))
    .unwrap();
    for (location, token) in &sandbox.locations {
        let client = client_for(&sandbox.url, location, token);
        let mut raw = Raw::new(&sandbox);
        raw.token = token.clone();
        let tier = ghl_operator::sandbox::field_id(location, "contact.tier");
        for (email, value) in [
            ("gold@example.com", "gold"),
            ("plain@example.com", "silver"),
        ] {
            raw.call(
                "POST",
                "/contacts/",
                Some(json!({"locationId": location, "email": email,
                            "customFields": [{"id": tier, "field_value": value}]})),
            )
            .await;
        }
        let seen = observe_rule(&client, &rule, &Ledger::default(), None, 4)
            .await
            .unwrap();
        assert_eq!(seen.matched.len(), 1, "{location}: only the gold contact");
        let refused = observe_rule(&client, &missing, &Ledger::default(), None, 4)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("contact.nope"), "{refused}");
    }
}
