//! A TagRule's tasks and notes end to end against the sandbox: created once per contact and
//! key, never rewritten (a completed task stays completed, an edit stays), created once even
//! when the create's answer is lost, completed as the contact leaves with
//! `onLeave: CompleteTasks`, and deleted with the rule under `deletionPolicy: Delete`.

use std::time::Duration;

use ghl_operator::crd::tag_rule::TagRuleSpec;
use ghl_operator::engine::ownership::TagDeclarations;
use ghl_operator::engine::state::{MemoryStore, StateStore};
use ghl_operator::engine::tag_rule::{
    RuleItems, RulePlan, observe_rule, release_rule, settle_rule,
};
use ghl_operator::engine::{Mode, SyncOptions, SyncOutcome};
use ghl_operator::ghl::GhlClient;
use ghl_operator::sandbox::SandboxConfig;
use serde_json::json;

use crate::support::engine::{client, now};
use crate::support::sandbox::{Raw, start};

fn hot_leads(on_leave: &str) -> TagRuleSpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "acme"},
        "selector": {"filters": [{"field": "tags", "operator": "eq", "value": "lead-hot"}]},
        "tasks": [{"key": "call", "title": "Call the hot lead", "body": "Within a day", "dueIn": "24h"}],
        "notes": [{"key": "why", "body": "Tagged lead-hot"}],
        "onLeave": on_leave,
        "deletionPolicy": "Delete"
    }))
    .unwrap()
}

/// One resync of the rule.
async fn settle(
    client: &GhlClient,
    store: &MemoryStore,
    rule: &TagRuleSpec,
) -> SyncOutcome<RulePlan> {
    let ledger = store.load().await.unwrap();
    let seen = observe_rule(client, rule, &ledger, None, 4).await.unwrap();
    settle_rule(
        client,
        store,
        ledger,
        rule,
        &RuleItems::of(rule).unwrap(),
        &seen,
        &TagDeclarations::default(),
        &SyncOptions::new(Mode::Apply, now()),
    )
    .await
    .unwrap()
}

async fn create_contact(raw: &Raw, email: &str, tags: &[&str]) -> String {
    let answer = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": "ve9EPM428h8vShlRW1KT", "email": email, "tags": tags})),
        )
        .await;
    answer.json["contact"]["id"].as_str().unwrap().to_owned()
}

async fn operations(raw: &Raw, operation: &str) -> u64 {
    let stats = raw.admin("GET", "stats", None).await;
    stats["byOperation"][operation].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_hot_lead_gets_its_task_and_note_once_and_a_completed_task_stays_completed() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let client = client(&sandbox);
    let lead = create_contact(&raw, "lead@example.com", &["lead-hot"]).await;
    let cold = create_contact(&raw, "cold@example.com", &[]).await;
    let rule = hot_leads("Keep");
    let store = MemoryStore::default();

    let first = settle(&client, &store, &rule).await;
    assert!(matches!(first, SyncOutcome::Applied { .. }), "{first:?}");
    assert_eq!(first.plan().changes(), 2, "a task and a note");
    let (tasks, notes) = raw.items_of(&lead).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["title"], "Call the hot lead");
    assert_eq!(tasks[0]["completed"], false);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["body"], "Tagged lead-hot");
    assert_eq!(raw.items_of(&cold).await, (vec![], vec![]), "not matched");

    // A person completes the task and rewords it: three resyncs leave both alone.
    let task = tasks[0]["id"].as_str().unwrap();
    raw.call(
        "PUT",
        &format!("/contacts/{lead}/tasks/{task}/completed"),
        Some(json!({"completed": true})),
    )
    .await;
    raw.call(
        "PUT",
        &format!("/contacts/{lead}/tasks/{task}"),
        Some(json!({"title": "Called: call back Friday"})),
    )
    .await;
    let writes = operations(&raw, "tasks.create").await + operations(&raw, "tasks.update").await;
    for round in 0..3 {
        let again = settle(&client, &store, &rule).await;
        assert!(
            matches!(again, SyncOutcome::InSync { .. }),
            "round {round}: {again:?}"
        );
    }
    let (tasks, notes) = raw.items_of(&lead).await;
    assert_eq!(tasks.len(), 1, "exactly one such task: {tasks:?}");
    assert_eq!(tasks[0]["completed"], true, "never reopened");
    assert_eq!(tasks[0]["title"], "Called: call back Friday", "edits stay");
    assert_eq!(notes.len(), 1);
    assert_eq!(
        operations(&raw, "tasks.create").await + operations(&raw, "tasks.update").await,
        writes,
        "no task write after the first"
    );

    // A person deletes the note: it is not recreated either.
    let note = notes[0]["id"].as_str().unwrap();
    raw.call("DELETE", &format!("/contacts/{lead}/notes/{note}"), None)
        .await;
    assert!(matches!(
        settle(&client, &store, &rule).await,
        SyncOutcome::InSync { .. }
    ));
    assert!(raw.items_of(&lead).await.1.is_empty());

    // The rule's text changes: the plan says the created task is kept as it is.
    let mut reworded = rule.clone();
    reworded.tasks[0].title = "Call the hot lead today".into();
    let kept = settle(&client, &store, &reworded).await;
    assert!(matches!(kept, SyncOutcome::InSync { .. }), "{kept:?}");
    assert_eq!(kept.plan().kept.get("task call"), Some(&1));
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_not_repeated() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        faults: "seed=3,drop=1,on=tasks.create".parse().unwrap(),
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let client = client(&sandbox);
    let lead = create_contact(&raw, "lead@example.com", &["lead-hot"]).await;
    let rule = hot_leads("Keep");
    let store = MemoryStore::default();
    for _ in 0..3 {
        settle(&client, &store, &rule).await;
    }
    let (tasks, notes) = raw.items_of(&lead).await;
    assert_eq!(tasks.len(), 1, "every create's answer was lost: {tasks:?}");
    assert_eq!(notes.len(), 1);
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["byOperationAndStatus"]["tasks.create"]["dropped"], 1,
        "the create happened and its answer was lost: {stats}"
    );
    let owned = store.load().await.unwrap();
    let task = owned.contacts[lead.as_str()]
        .items(ghl_operator::engine::ledger::ItemKind::Task)
        .get("call")
        .cloned()
        .unwrap();
    assert_eq!(
        task.id.as_deref(),
        tasks[0]["id"].as_str(),
        "bound to the one GHL holds"
    );
}

#[tokio::test]
async fn leaving_completes_the_tasks_once_and_deleting_the_rule_deletes_what_it_created() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let client = client(&sandbox);
    let lead = create_contact(&raw, "lead@example.com", &["lead-hot"]).await;
    let rule = hot_leads("CompleteTasks");
    let store = MemoryStore::default();
    settle(&client, &store, &rule).await;

    raw.admin(
        "PATCH",
        &format!("contacts/{lead}"),
        Some(json!({"tags": ["lead-cold"]})),
    )
    .await;
    let left = settle(&client, &store, &rule).await;
    assert_eq!(left.plan().changes(), 1, "{:?}", left.plan().changes);
    let (tasks, notes) = raw.items_of(&lead).await;
    assert_eq!(tasks[0]["completed"], true, "completed as it left");
    assert_eq!(notes.len(), 1, "notes stay");
    let completions = operations(&raw, "tasks.complete").await;
    for _ in 0..2 {
        assert!(matches!(
            settle(&client, &store, &rule).await,
            SyncOutcome::InSync { .. }
        ));
    }
    assert_eq!(
        operations(&raw, "tasks.complete").await,
        completions,
        "once"
    );

    // Back in: remembered, so nothing is created again.
    raw.admin(
        "PATCH",
        &format!("contacts/{lead}"),
        Some(json!({"tags": ["lead-hot"]})),
    )
    .await;
    let back = settle(&client, &store, &rule).await;
    assert!(matches!(back, SyncOutcome::InSync { .. }), "{back:?}");
    assert_eq!(raw.items_of(&lead).await.0.len(), 1);

    // Deleted with `deletionPolicy: Delete`: what it created goes.
    let released = release_rule(
        &client,
        &store,
        &rule,
        &TagDeclarations::default(),
        &SyncOptions::new(Mode::Apply, now()),
    )
    .await
    .unwrap();
    assert!(
        matches!(released, SyncOutcome::Applied { .. }),
        "{released:?}"
    );
    assert_eq!(raw.items_of(&lead).await, (vec![], vec![]));
}
