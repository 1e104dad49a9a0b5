//! Ownership between objects, end to end against the sandbox: a TagRule removing a tag a
//! policy declares, and two policies declaring the same contact. Each runs several rounds, as
//! resyncs would; nothing flips back and forth.

use std::sync::Arc;
use std::time::Duration;

use ghl_operator::crd::tag_rule::TagRuleSpec;
use ghl_operator::engine::desired::build;
use ghl_operator::engine::ownership::{
    PolicyDeclaration, Seniority, TagDeclarations, hold_yielded, removals, yield_messages,
    yielded_to_seniors,
};
use ghl_operator::engine::plan::PlanOptions;
use ghl_operator::engine::state::{MemoryStore, StateStore};
use ghl_operator::engine::tag_rule::{RuleItems, observe_rule, settle_rule};
use ghl_operator::engine::{Mode, SyncOptions, SyncOutcome, sync_policy};
use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::engine::{client, now, spec};
use crate::support::sandbox::{Raw, start};

fn seniority(name: &str, day: u32) -> Seniority {
    Seniority {
        created: Some(format!("2030-01-{day:02}T00:00:00Z").parse().unwrap()),
        namespace: "crm".into(),
        name: name.into(),
    }
}

/// Writes of `operation` the sandbox counted.
async fn count(raw: &Raw, operation: &str) -> u64 {
    let stats = raw.admin("GET", "stats", None).await;
    stats["byOperation"][operation].as_u64().unwrap_or(0)
}

/// The contact's tags, sorted.
fn tags(contact: &Value) -> Vec<String> {
    let mut tags: Vec<String> = contact["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

async fn contact(raw: &Raw, email: &str) -> Value {
    let state = raw.admin("GET", "state", None).await;
    state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == email)
        .cloned()
        .unwrap_or_else(|| panic!("{email} exists"))
}

#[tokio::test]
async fn a_rule_leaves_a_tag_a_policy_declares_and_reports_the_conflict() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let client = client(&sandbox);
    let policy = spec(json!({"contacts": [
        {"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]},
        {"email": "grace@example.com", "firstName": "Grace", "tags": ["vip"]}
    ]}));
    let rule: TagRuleSpec = serde_json::from_value(json!({
        "connectionRef": {"name": "acme"},
        "selector": {"filters": [{"field": "tags", "operator": "eq", "value": "vip"}]},
        "removeTags": ["vip"], "addTags": ["reviewed"]
    }))
    .unwrap();
    let (policy_store, rule_store) = (MemoryStore::default(), MemoryStore::default());
    let mut conflicts = Vec::new();
    for round in 0..3 {
        let desired = build(&policy, &[]).unwrap();
        let mut declaration =
            PolicyDeclaration::new("ContactSyncPolicy crm/vip", seniority("vip", 1), &desired);
        let outcome = sync_policy(
            &client,
            &policy_store,
            desired,
            PlanOptions::for_spec(&policy),
            SyncOptions::new(Mode::Apply, now()),
        )
        .await
        .unwrap();
        declaration.set_removing(removals(outcome.plan()));
        let ledger = rule_store.load().await.unwrap();
        let seen = observe_rule(&client, &rule, &ledger, None, 4)
            .await
            .unwrap();
        let declared = TagDeclarations {
            policies: vec![Arc::new(declaration)],
            rules: Vec::new(),
        };
        let settled = settle_rule(
            &client,
            &rule_store,
            ledger,
            &rule,
            &RuleItems::default(),
            &seen,
            &declared,
            &SyncOptions::new(Mode::Apply, now()),
        )
        .await
        .unwrap();
        let plan = settled.plan();
        assert_eq!(plan.matched, 2, "round {round}");
        assert_eq!(plan.conflicted, 2, "round {round}: both contacts keep vip");
        conflicts = plan.conflicts.clone();
        if round > 0 {
            assert!(
                matches!(settled, SyncOutcome::InSync { .. }),
                "round {round}: nothing left to do"
            );
        }
    }
    assert_eq!(
        conflicts,
        ["ContactSyncPolicy crm/vip wants the opposite for tag \"vip\" on 2 contact(s)"]
    );
    for email in ["ada@example.com", "grace@example.com"] {
        assert_eq!(
            tags(&contact(&raw, email).await),
            ["reviewed", "vip"],
            "{email}"
        );
    }
    assert_eq!(count(&raw, "tags.remove").await, 0, "vip never removed");
    assert_eq!(
        count(&raw, "tags.add").await,
        2,
        "one add per contact (reviewed), nothing re-added"
    );
}

#[tokio::test]
async fn the_younger_of_two_policies_leaves_a_shared_contact_to_the_older() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let client = client(&sandbox);
    let older = spec(json!({"contacts": [
        {"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]}
    ]}));
    let younger = spec(json!({"prune": true, "contacts": [
        {"email": "ADA@example.com", "firstName": "Augusta", "tags": ["newsletter"]},
        {"email": "alan@example.com", "firstName": "Alan"}
    ]}));
    let (older_store, younger_store) = (MemoryStore::default(), MemoryStore::default());
    let older_declared = Arc::new(PolicyDeclaration::new(
        "ContactSyncPolicy crm/older",
        seniority("older", 1),
        &build(&older, &[]).unwrap(),
    ));
    let younger_declared = Arc::new(PolicyDeclaration::new(
        "ContactSyncPolicy crm/younger",
        seniority("younger", 2),
        &build(&younger, &[]).unwrap(),
    ));
    let everyone = vec![Arc::clone(&older_declared), Arc::clone(&younger_declared)];
    let mut updates_after_first_round = 0;
    for round in 0..3 {
        // Alternate who goes first, as two controllers would.
        let order: [(&_, &MemoryStore, Seniority); 2] = if round % 2 == 0 {
            [
                (&older, &older_store, seniority("older", 1)),
                (&younger, &younger_store, seniority("younger", 2)),
            ]
        } else {
            [
                (&younger, &younger_store, seniority("younger", 2)),
                (&older, &older_store, seniority("older", 1)),
            ]
        };
        for (policy, store, me) in order {
            let mut desired = build(policy, &[]).unwrap();
            let yielded = yielded_to_seniors(&me, &desired, &everyone);
            if me.name == "younger" {
                assert_eq!(
                    yielded.len(),
                    1,
                    "the shared record is left to the older policy"
                );
                assert_eq!(
                    yield_messages(&yielded),
                    [
                        "1 record(s) declared first by ContactSyncPolicy crm/older are left to it (contacts[0])"
                    ]
                );
            } else {
                assert!(yielded.is_empty());
            }
            hold_yielded(&mut desired, &yielded);
            sync_policy(
                &client,
                store,
                desired,
                PlanOptions::for_spec(policy),
                SyncOptions::new(Mode::Apply, now()),
            )
            .await
            .unwrap();
        }
        if round == 0 {
            updates_after_first_round = count(&raw, "contacts.update").await
                + count(&raw, "contacts.upsert").await
                + count(&raw, "tags.add").await
                + count(&raw, "tags.remove").await;
        }
    }
    let ada = contact(&raw, "ada@example.com").await;
    assert_eq!(ada["firstName"], "Ada", "the older policy's values");
    assert_eq!(tags(&ada), ["vip"]);
    assert_eq!(contact(&raw, "alan@example.com").await["firstName"], "Alan");
    let state = raw.admin("GET", "state", None).await;
    assert_eq!(
        state["contacts"].as_array().unwrap().len(),
        2,
        "no duplicate"
    );
    let later = count(&raw, "contacts.update").await
        + count(&raw, "contacts.upsert").await
        + count(&raw, "tags.add").await
        + count(&raw, "tags.remove").await;
    assert_eq!(later, updates_after_first_round, "no alternating writes");

    // The older policy goes: the younger takes the contact over (and, pruning, still never
    // deletes what it did not create).
    let mut desired = build(&younger, &[]).unwrap();
    let yielded = yielded_to_seniors(&seniority("younger", 2), &desired, &[]);
    assert!(yielded.is_empty());
    hold_yielded(&mut desired, &yielded);
    sync_policy(
        &client,
        &younger_store,
        desired,
        PlanOptions::for_spec(&younger),
        SyncOptions::new(Mode::Apply, now()),
    )
    .await
    .unwrap();
    let ada = contact(&raw, "ada@example.com").await;
    assert_eq!(ada["firstName"], "Augusta");
    assert_eq!(tags(&ada), ["newsletter", "vip"]);
}
