//! The everyday life of the examples: they become Ready and GHL holds what they declare; an
//! edit is applied; drift made in GHL is repaired; `mode: Plan` writes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ghl_operator::sandbox::{SandboxConfig, Seed, SeedContact};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::harness::*;
use crate::support::sandbox::{Raw, start};

const READY: Duration = Duration::from_secs(60);

/// A sandbox holding one bigcorp contact the example TagRule matches.
async fn sandbox() -> ghl_operator::sandbox::RunningSandbox {
    let contact: SeedContact = serde_json::from_value(json!({
        "email": "ceo@bigcorp.com", "firstName": "Big", "tags": ["smb"],
        "notes": [{"body": "Wants the enterprise plan next quarter"}]
    }))
    .unwrap();
    start(SandboxConfig {
        search_lag: Duration::ZERO,
        seed: Seed {
            contacts: vec![contact],
            ..Seed::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

#[tokio::test]
async fn the_examples_become_ready_and_ghl_holds_what_they_declare() {
    let Some((client, ns)) = setup("examples").await else {
        return;
    };
    let sandbox = sandbox().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }

    let connection = wait_object(
        &connections(&client, &ns.name),
        "acme",
        "Ready",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
    assert!(is_true(&connection, "Authenticated"));
    let status = connection.status.clone().unwrap();
    assert_eq!(status.observed_generation, connection.metadata.generation);
    assert!(
        status.budget.is_some_and(|b| b.window_limit.is_some()),
        "budget reported"
    );
    let policy = wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "Ready and Synced",
        READY,
        |p| is_true(p, "Ready") && is_true(p, "Synced"),
    )
    .await;
    let status = policy.status.clone().unwrap();
    assert_eq!(status.counts.as_ref().unwrap().desired, 3);
    assert!(status.last_sync_time.is_some() && status.last_successful_sync_time.is_some());
    assert!(!is_true(&policy, "Stalled") && !is_true(&policy, "Reconciling"));

    // GHL holds the declared contacts with their tags, task and note.
    let contacts = sandbox_contacts(&raw).await;
    let ada = &contacts["ada@example.com"];
    assert_eq!(tags(ada), ["newsletter", "vip"]);
    assert_eq!(ada["companyName"], "Analytical Engines");
    assert_eq!(tags(&contacts["grace@example.com"]), ["navy", "vip"]);
    assert!(contacts.contains_key("alan@example.com"));
    let state = raw.admin("GET", "state", None).await;
    let ada_id = ada["id"].as_str().unwrap();
    assert!(
        state["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["contactId"] == ada_id && t["title"] == "Kickoff call")
    );
    assert!(
        state["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["contactId"] == ada_id)
    );

    // The ledger lives in Secrets the policy owns, and holds no personal data either.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns.name);
    let ledgers = secrets
        .list(&ListParams::default().labels("ghl.servis.ai/owner-name=vip-customers"))
        .await
        .unwrap()
        .items;
    assert!(!ledgers.is_empty());
    for secret in &ledgers {
        let text: String = secret
            .data
            .iter()
            .flatten()
            .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned())
            .collect();
        for personal in FORBIDDEN_IN_LOGS {
            assert!(
                !text.contains(personal),
                "ledger {:?} holds {personal:?}",
                secret.metadata.name
            );
        }
    }

    // The TagRule tagged the bigcorp contact.
    wait_object(
        &rules(&client, &ns.name),
        "enterprise-domain",
        "Ready",
        READY,
        |r| is_true(r, "Ready"),
    )
    .await;
    let ceo = &sandbox_contacts(&raw).await["ceo@bigcorp.com"];
    assert_eq!(tags(ceo), ["enterprise"]);

    // An Event tells a human what was applied, without personal data.
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), &ns.name);
    let applied = wait_for("a PlanApplied Event", READY, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("PlanApplied")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("vip-customers")
        })
    })
    .await;
    let note = applied.note.unwrap_or_default();
    assert!(note.contains("GHL writes"), "{note}");
    assert!(!note.contains('@'), "no email in Events: {note}");

    // Metrics: bounded labels (kinds and results, never object names or emails).
    let metrics = operator.metrics().await.expect("metrics served");
    assert!(
        metrics.contains("ghl_operator_reconciles_total{kind=\"ContactSyncPolicy\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("ghl_operator_leader 1"));
    assert!(!metrics.contains("vip-customers") && !metrics.contains("example.com"));
    assert!(
        metrics.contains(
            "ghl_operator_object_conditions{kind=\"ContactSyncPolicy\",condition=\"Synced\"} 1"
        ),
        "{metrics}"
    );
    // The chart's alerts and dashboard name only what this scrape exports (the OAuth gauges:
    // the OAuth test's scrape).
    let absent = [
        &crate::monitoring::FIRST_FAILURE[..],
        &crate::monitoring::OAUTH_ONLY[..],
        &crate::monitoring::SINK_ONLY[..],
    ]
    .concat();
    crate::monitoring::check_against_scrape(&metrics, &absent);
    assert!(
        reqwest::get(operator.metrics_url.replace("/metrics", "/readyz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );

    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_edited_policy_is_applied_and_observed_generation_follows() {
    let Some((client, ns)) = setup("edit").await else {
        return;
    };
    let sandbox = sandbox().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    let api = policies(&client, &ns.name);
    let before = wait_object(&api, "vip-customers", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // Ada gets another tag; the ConfigMap source loses Alan (not pruned: prune is off) and
    // gains a contact.
    let patch = json!({"spec": {"contacts": [{
        "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
        "tags": ["vip", "newsletter", "gold"]
    }]}});
    api.patch(
        "vip-customers",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let generation = before.metadata.generation.unwrap() + 1;
    wait_object(
        &api,
        "vip-customers",
        "observedGeneration follows and Synced",
        READY,
        |p| {
            p.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
                && is_true(p, "Synced")
        },
    )
    .await;
    assert_eq!(
        tags(&sandbox_contacts(&raw).await["ada@example.com"]),
        ["gold", "newsletter", "vip"]
    );

    // A change in a referenced ConfigMap reconciles the policy too (it is watched).
    apply(&client, &ns.name, json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vip-batch-1"},
        "data": {"contacts.csv": "email,firstName,tags\ngrace@example.com,Grace,vip;navy;admiral\n"}
    }))
    .await;
    wait_for("the ConfigMap change reaches GHL", READY, || async {
        let contacts = sandbox_contacts(&raw).await;
        (tags(&contacts["grace@example.com"]) == ["admiral", "navy", "vip"]).then_some(())
    })
    .await;
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn drift_made_in_ghl_is_detected_and_repaired_on_the_next_resync() {
    let Some((client, ns)) = setup("drift").await else {
        return;
    };
    let sandbox = sandbox().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in examples(&sandbox.url) {
        if doc["kind"] == "ContactSyncPolicy" {
            doc["spec"]["resyncInterval"] = json!("3s");
        }
        apply(&client, &ns.name, doc).await;
    }
    let api = policies(&client, &ns.name);
    wait_object(&api, "vip-customers", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // Watch the policy so a short-lived Drifted=True is not missed between polls.
    let drifted_seen = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn({
        let seen = Arc::clone(&drifted_seen);
        let api = api.clone();
        async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(policy)) = stream.next().await {
                if is_true(&policy, "Drifted") {
                    seen.store(true, Ordering::SeqCst);
                }
            }
        }
    });

    // Someone removes a tag in GHL's UI.
    let ada_id = sandbox_contacts(&raw).await["ada@example.com"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.admin(
        "PATCH",
        &format!("contacts/{ada_id}"),
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    wait_for("the tag is restored", READY, || async {
        let contacts = sandbox_contacts(&raw).await;
        (tags(&contacts["ada@example.com"]) == ["newsletter", "vip"]).then_some(())
    })
    .await;
    wait_for("Drifted=True reported", Duration::from_secs(10), || async {
        drifted_seen.load(Ordering::SeqCst).then_some(())
    })
    .await;
    // The next resync finds nothing to repair.
    wait_object(&api, "vip-customers", "Drifted back to False", READY, |p| {
        crate::harness::condition(p, "Drifted").is_some_and(|(s, _)| s == "False")
            && is_true(p, "Synced")
    })
    .await;
    watch.abort();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn mode_plan_shows_the_plan_and_writes_nothing() {
    let Some((client, ns)) = setup("plan").await else {
        return;
    };
    let sandbox = sandbox().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for mut doc in examples(&sandbox.url) {
        if doc["kind"] == "ContactSyncPolicy" || doc["kind"] == "TagRule" {
            doc["spec"]["mode"] = json!("Plan");
        }
        apply(&client, &ns.name, doc).await;
    }
    let policy = wait_object(
        &policies(&client, &ns.name),
        "vip-customers",
        "Ready (plan only)",
        READY,
        |p| {
            crate::harness::condition(p, "Ready")
                .is_some_and(|(s, r)| s == "True" && r == "PlanOnly")
        },
    )
    .await;
    let plan = policy.status.unwrap().plan.expect("plan summary in status");
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(
        plan.create, 5,
        "3 contacts, plus Ada's task and note: {text}"
    );
    assert!(!is_true(
        &policies(&client, &ns.name)
            .get("vip-customers")
            .await
            .unwrap(),
        "Synced"
    ));
    wait_object(
        &rules(&client, &ns.name),
        "enterprise-domain",
        "Ready (plan only)",
        READY,
        |r| {
            crate::harness::condition(r, "Ready")
                .is_some_and(|(s, r)| s == "True" && r == "PlanOnly")
        },
    )
    .await;

    // Nothing was written to GHL: only reads were made.
    let stats = raw.admin("GET", "stats", None).await;
    let writes: Vec<_> = stats["byOperation"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|op| {
            ![".get", ".list", ".search", ".by_business"]
                .iter()
                .any(|read| op.ends_with(read))
        })
        .cloned()
        .collect();
    assert!(
        writes.is_empty(),
        "mode Plan wrote to GHL: {writes:?} ({stats})"
    );
    let contacts = sandbox_contacts(&raw).await;
    assert_eq!(contacts.keys().collect::<Vec<_>>(), ["ceo@bigcorp.com"]);
    assert_eq!(tags(&contacts["ceo@bigcorp.com"]), ["smb"]);
    operator.stop().await;
    ns.delete().await;
}
