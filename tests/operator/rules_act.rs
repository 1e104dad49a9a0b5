//! Rules that act, on the test API server with the sandbox posting signed webhooks: a contact
//! tagged `lead-hot` in GHL's UI gets the rule's task and note within 3 s; a task a person
//! completes stays completed through three resyncs, with exactly one such task; a contact that
//! leaves keeps its task, or has it completed with `onLeave: CompleteTasks`.

use std::time::{Duration, Instant};

use ghl_operator::sandbox::FaultSpec;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::Raw;
use crate::webhooks::{connection, create_contact, operator, sandbox, wait_ready};

const READY: Duration = Duration::from_secs(60);
/// What the issue promises, with no slack.
const TAG_TO_TASK: Duration = Duration::from_secs(3);

fn hot_leads(name: &str, key: &str, on_leave: &str, resync: &str) -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "TagRule", "metadata": {"name": name},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": resync,
                 "selector": {"filters": [{"field": "tags", "operator": "eq", "value": "lead-hot"}]},
                 "tasks": [{"key": key, "title": format!("Call the hot lead ({name})"), "dueIn": "24h"}],
                 "notes": [{"key": "why", "body": format!("Tagged lead-hot ({name})")}],
                 "onLeave": on_leave}
    })
}

/// Tags the contact the way a person in GHL's UI does (the sandbox posts the webhook).
async fn tag_in_ui(raw: &Raw, id: &str, tags: &[&str]) {
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"tags": tags})),
    )
    .await;
}

/// `status.lastSyncTime` of the rule.
async fn last_sync(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    let rule = rules(client, ns).get(name).await.ok()?;
    let status = serde_json::to_value(rule.status?).ok()?;
    status["lastSyncTime"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_hot_lead_tagged_in_ghl_gets_its_task_within_three_seconds_and_keeps_it_completed() {
    let Some((client, ns)) = setup("rules-act").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let operator = operator(&ns.name, "op-0", &sandbox, port, None, &[]);
    for doc in connection(&sandbox.url, None) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let mut leads = Vec::new();
    for i in 0..5 {
        leads.push(create_contact(&raw, &format!("lead{i}@example.com")).await);
    }
    apply(
        &client,
        &ns.name,
        hot_leads("hot-leads", "call", "Keep", "2s"),
    )
    .await;
    wait_object(
        &rules(&client, &ns.name),
        "hot-leads",
        "Synced",
        READY,
        |r| is_true(r, "Synced"),
    )
    .await;

    // Tagged in the UI one after another: each gets its task and note through the webhook.
    let mut latencies = Vec::new();
    for id in &leads {
        let tagged = Instant::now();
        tag_in_ui(&raw, id, &["lead-hot"]).await;
        wait_for("the rule's task and note", TAG_TO_TASK, || async {
            let (tasks, notes) = raw.items_of(id).await;
            (tasks.len() == 1 && notes.len() == 1).then_some(())
        })
        .await;
        latencies.push(tagged.elapsed());
    }
    latencies.sort();
    eprintln!(
        "tag to task and note: median {:?}, max {:?} over {} contacts",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );

    // A person completes the first lead's task: three resyncs later it is still completed, and
    // still the only one.
    let lead = &leads[0];
    let (tasks, _) = raw.items_of(lead).await;
    let task = tasks[0]["id"].as_str().unwrap().to_owned();
    raw.call(
        "PUT",
        &format!("/contacts/{lead}/tasks/{task}/completed"),
        Some(json!({"completed": true})),
    )
    .await;
    let mut syncs = vec![last_sync(&client, &ns.name, "hot-leads").await];
    let deadline = Instant::now() + Duration::from_secs(30);
    while syncs.len() <= 3 {
        assert!(
            Instant::now() < deadline,
            "three resyncs in 30 s: {syncs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = last_sync(&client, &ns.name, "hot-leads").await;
        if syncs.last() != Some(&now) {
            syncs.push(now);
        }
    }
    let (tasks, notes) = raw.items_of(lead).await;
    assert_eq!(tasks.len(), 1, "exactly one such task: {tasks:?}");
    assert_eq!(tasks[0]["id"], task.as_str());
    assert_eq!(tasks[0]["completed"], true, "never reopened");
    assert_eq!(notes.len(), 1);
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["byOperation"]["tasks.create"], 5,
        "one task per contact, ever: {stats}"
    );
    assert!(stats["byOperation"]["tasks.update"].is_null(), "{stats}");
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_contact_that_leaves_keeps_its_task_or_has_it_completed() {
    let Some((client, ns)) = setup("rules-leave").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let operator = operator(&ns.name, "op-0", &sandbox, port, None, &[]);
    for doc in connection(&sandbox.url, None) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let lead = create_contact(&raw, "lead@example.com").await;
    tag_in_ui(&raw, &lead, &["lead-hot"]).await;
    apply(&client, &ns.name, hot_leads("keeps", "call", "Keep", "1h")).await;
    apply(
        &client,
        &ns.name,
        hot_leads("completes", "follow-up", "CompleteTasks", "1h"),
    )
    .await;
    let title = |name: &str| format!("Call the hot lead ({name})");
    wait_for("both rules' tasks", READY, || async {
        (raw.items_of(&lead).await.0.len() == 2).then_some(())
    })
    .await;

    // It cools down in the UI: the webhook wakes both rules.
    tag_in_ui(&raw, &lead, &["lead-cold"]).await;
    let tasks = wait_for(
        "the completing rule's task completed",
        Duration::from_secs(10),
        || async {
            let (tasks, _) = raw.items_of(&lead).await;
            tasks
                .iter()
                .any(|t| t["title"] == title("completes").as_str() && t["completed"] == true)
                .then_some(tasks)
        },
    )
    .await;
    let kept = tasks
        .iter()
        .find(|t| t["title"] == title("keeps").as_str())
        .expect("the keeping rule's task is still there");
    assert_eq!(kept["completed"], false, "onLeave: Keep leaves it open");
    let (_, notes) = raw.items_of(&lead).await;
    assert_eq!(notes.len(), 2, "notes stay with both");
    for name in ["keeps", "completes"] {
        wait_object(
            &rules(&client, &ns.name),
            name,
            "matching nothing",
            READY,
            |r| r.status.as_ref().is_some_and(|s| s.matched == 0) && is_true(r, "Synced"),
        )
        .await;
    }
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
