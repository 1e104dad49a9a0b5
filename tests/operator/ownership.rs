//! Ownership between objects on the test API server: a TagRule that would remove a tag a
//! ContactSyncPolicy declares, and two policies declaring the same contact. Over three resync
//! periods the conflict is reported, the older owner keeps what it declares, and nobody
//! writes the same thing back and forth.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);
/// The resync interval of the objects here; the tests watch three of them.
const RESYNC: &str = "2s";
const THREE_RESYNCS: Duration = Duration::from_secs(7);

/// The connection of the examples, pointed at `url`.
fn connection(url: &str) -> Vec<Value> {
    examples(url)
        .into_iter()
        .filter(|d| d["kind"] == "Secret" || d["kind"] == "GhlConnection")
        .collect()
}

fn policy(name: &str, contacts: Value) -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
        "metadata": {"name": name},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": RESYNC, "contacts": contacts}
    })
}

/// Calls the sandbox counted for `operation`.
async fn count(raw: &Raw, operation: &str) -> u64 {
    raw.admin("GET", "stats", None).await["byOperation"][operation]
        .as_u64()
        .unwrap_or(0)
}

/// The message of condition `type_`.
fn message<K: kube::Resource + serde::Serialize>(obj: &K, type_: &str) -> String {
    serde_json::to_value(obj).unwrap()["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .and_then(|c| c["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_tag_rule_leaves_a_tag_a_policy_declares_and_reports_the_conflict() {
    let Some((client, ns)) = setup("tagfight").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in connection(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    apply(
        &client,
        &ns.name,
        policy(
            "vip",
            json!([{"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]}]),
        ),
    )
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    let (adds, removes) = (
        count(&raw, "tags.add").await,
        count(&raw, "tags.remove").await,
    );

    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "TagRule", "metadata": {"name": "no-vip"},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": RESYNC,
                 "selector": {"filters": [{"field": "email", "operator": "contains", "value": "ada@"}]},
                 "removeTags": ["vip"]}
    }))
    .await;
    let rule = wait_object(
        &rules(&client, &ns.name),
        "no-vip",
        "Conflict",
        READY,
        |r| condition(r, "Conflict").is_some_and(|(s, why)| s == "True" && why == "TagConflict"),
    )
    .await;
    let said = message(&rule, "Conflict");
    assert!(
        said.contains(&format!("ContactSyncPolicy {}/vip", ns.name)) && said.contains("\"vip\""),
        "{said}"
    );
    assert!(is_true(&rule, "Ready"), "a conflict stops nothing else");

    tokio::time::sleep(THREE_RESYNCS).await;
    let rule = rules(&client, &ns.name).get("no-vip").await.unwrap();
    let status = rule.status.clone().unwrap();
    assert_eq!(
        (status.matched, status.compliant, status.conflicted),
        (1, 0, 1),
        "{status:?}"
    );
    assert!(is_true(&rule, "Conflict"));
    let ada = &sandbox_contacts(&raw).await["ada@example.com"];
    assert_eq!(tags(ada), ["vip"]);
    let writes = count(&raw, "tags.add").await - adds + count(&raw, "tags.remove").await - removes;
    assert!(writes <= 1, "{writes} tag writes on a contact both want");
    let policy = policies(&client, &ns.name).get("vip").await.unwrap();
    assert!(is_true(&policy, "Synced") && !is_true(&policy, "Conflict"));

    // A restarted operator reconciles the rule and the policy at once: the rule waits for the
    // policy to declare first, so still nothing is flipped.
    operator.stop().await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-1").allowing(&sandbox.url));
    tokio::time::sleep(THREE_RESYNCS).await;
    assert_eq!(
        tags(&sandbox_contacts(&raw).await["ada@example.com"]),
        ["vip"]
    );
    let after_restart =
        count(&raw, "tags.add").await - adds + count(&raw, "tags.remove").await - removes;
    assert_eq!(after_restart, writes, "no tag write after the restart");

    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn of_two_policies_declaring_a_contact_the_older_keeps_it() {
    let Some((client, ns)) = setup("twopolicies").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in connection(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    apply(
        &client,
        &ns.name,
        policy(
            "older",
            json!([{"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]}]),
        ),
    )
    .await;
    wait_object(
        &policies(&client, &ns.name),
        "older",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    // Creation timestamps have a one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply(
        &client,
        &ns.name,
        policy(
            "younger",
            json!([
                {"email": "ada@example.com", "firstName": "Augusta", "tags": ["newsletter"]},
                {"email": "alan@example.com", "firstName": "Alan"}
            ]),
        ),
    )
    .await;
    let younger = wait_object(
        &policies(&client, &ns.name),
        "younger",
        "Conflict and Synced",
        READY,
        |p| {
            condition(p, "Conflict").is_some_and(|(s, why)| s == "True" && why == "RecordConflict")
                && is_true(p, "Synced")
        },
    )
    .await;
    let said = message(&younger, "Conflict");
    assert!(
        said.contains(&format!("ContactSyncPolicy {}/older", ns.name))
            && said.contains("contacts[0]"),
        "{said}"
    );
    let writes = |raw: Raw| async move {
        count(&raw, "contacts.update").await
            + count(&raw, "contacts.upsert").await
            + count(&raw, "tags.add").await
            + count(&raw, "tags.remove").await
    };
    let settled = writes(Raw::new(&sandbox)).await;

    tokio::time::sleep(THREE_RESYNCS).await;
    let contacts = sandbox_contacts(&raw).await;
    assert_eq!(contacts.len(), 2, "no duplicate: {contacts:?}");
    assert_eq!(contacts["ada@example.com"]["firstName"], "Ada");
    assert_eq!(tags(&contacts["ada@example.com"]), ["vip"]);
    assert_eq!(contacts["alan@example.com"]["firstName"], "Alan");
    assert_eq!(
        writes(Raw::new(&sandbox)).await,
        settled,
        "no alternating writes"
    );
    let older = policies(&client, &ns.name).get("older").await.unwrap();
    assert!(
        !is_true(&older, "Conflict"),
        "the older policy has no conflict"
    );
    let younger = policies(&client, &ns.name).get("younger").await.unwrap();
    assert!(is_true(&younger, "Ready") && is_true(&younger, "Conflict"));

    operator.stop().await;
    ns.delete().await;
}
