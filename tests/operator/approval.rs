//! Approving a blocked plan by its hash: the plan over `safety` is recorded in status with its
//! hash; `ghl.servis.ai/approve-plan=<hash>` applies exactly it, once, and an Event says who
//! approved it; a plan that changed since is not approved by the old hash; a `mode: Plan`
//! policy is applied once by approval and then goes back to planning only.

use std::time::Duration;

use ghl_operator::crd::ContactSyncPolicy;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

fn plan_of(p: &ContactSyncPolicy) -> ghl_operator::crd::common::PlanSummary {
    p.status
        .as_ref()
        .and_then(|s| s.plan.clone())
        .unwrap_or_default()
}

fn contacts(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"email": format!("{prefix}{i}@example.com"), "tags": ["approved"]}))
        .collect()
}

/// Annotates `name` as the field manager `who` would.
async fn approve(api: &Api<ContactSyncPolicy>, name: &str, hash: &str, who: &str) {
    let patch = json!({"metadata": {"annotations": {"ghl.servis.ai/approve-plan": hash}}});
    let params = PatchParams {
        field_manager: Some(who.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Runs the binary as the kubectl plugin (`kubectl ghl ...`, installed as `kubectl-ghl`).
fn kubectl_ghl(args: &[&str]) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-ghl");
    if !plugin.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ghl-operator"), &plugin).unwrap();
    }
    let output = std::process::Command::new(&plugin)
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kubectl ghl {args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

async fn in_sandbox(raw: &Raw, prefix: &str) -> usize {
    sandbox_contacts(raw)
        .await
        .keys()
        .filter(|email| email.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn a_blocked_plan_is_applied_once_by_its_hash() {
    let Some((client, ns)) = setup("approval").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    apply_connection(&client, &ns.name, &sandbox.url).await;
    let policy = |name: &str, mode: &str, records: Vec<Value>| {
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": name},
               "spec": {"connectionRef": {"name": "acme"}, "mode": mode, "resyncInterval": "2s",
                        "safety": {"maxChanges": 2}, "contacts": records}})
    };
    apply(
        &client,
        &ns.name,
        policy("big", "Apply", contacts("big", 3)),
    )
    .await;
    let api = policies(&client, &ns.name);

    // Over maxChanges: stopped, with the plan's hash and why.
    let blocked = wait_object(&api, "big", "blocked", READY, |p| {
        plan_of(p).hash.is_some() && is_true(p, "Stalled")
    })
    .await;
    let first = plan_of(&blocked);
    let hash = first.hash.clone().unwrap();
    assert_eq!(first.create, 3);
    let why = first.blocked.clone().unwrap();
    assert!(why.contains("maxChanges") && why.contains(&hash), "{why}");

    // A wrong hash applies nothing.
    approve(&api, "big", "0123456789abcdef", "alice").await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let event = |reason: &'static str, name: &'static str| {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
        }
    };
    wait_for("an ApprovalOutdated Event", READY, || {
        event("ApprovalOutdated", "big")
    })
    .await;
    assert_eq!(in_sandbox(&raw, "big").await, 0);

    // `kubectl ghl status` shows it waiting; `kubectl ghl approve` approves what was
    // reviewed; the operator applies exactly that plan, once. Without the admission webhook
    // nobody vouches for who wrote the annotation, so the Event says the approver is unverified
    // rather than repeating the field manager the client chose.
    let listing = kubectl_ghl(&["status", "-n", &ns.name]);
    let line = listing
        .lines()
        .find(|l| l.contains(" big "))
        .unwrap_or_default();
    assert!(line.contains(&format!("{hash} (waiting)")), "{listing}");
    // Across namespaces (`-A`) it is named with its namespace.
    let everywhere = kubectl_ghl(&["status", "-A"]);
    let qualified = format!("{}/big ", ns.name);
    assert!(
        everywhere
            .lines()
            .any(|l| l.contains(&qualified) && l.contains(&hash)),
        "{everywhere}"
    );
    let approved = kubectl_ghl(&["approve", "big", "-n", &ns.name, "--hash", &hash]);
    assert!(
        approved.contains(&format!("approved plan {hash}")),
        "{approved}"
    );
    let applied = wait_object(&api, "big", "applied by approval", READY, |p| {
        plan_of(p).approved.as_deref() == Some(hash.as_str()) && is_true(p, "Synced")
    })
    .await;
    assert_eq!(in_sandbox(&raw, "big").await, 3);
    assert_eq!(plan_of(&applied).blocked, None, "applied, not waiting");
    let approved = wait_for("a PlanApproved Event", READY, || {
        event("PlanApproved", "big")
    })
    .await;
    let note = approved.note.unwrap_or_default();
    assert!(
        note.contains(&hash) && note.contains("approved by an unverified user"),
        "{note}"
    );
    assert!(!note.contains('@'), "{note}");

    // A larger plan later is blocked again: the old approval does not carry over.
    let patch = json!({"spec": {"contacts": contacts("big", 6)}});
    api.patch("big", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let again = wait_object(&api, "big", "blocked again", READY, |p| {
        plan_of(p).hash.as_deref().is_some_and(|h| h != hash) && is_true(p, "Stalled")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(in_sandbox(&raw, "big").await, 3, "{:?}", plan_of(&again));

    // mode: Plan — approved once, applied once, then planning only again.
    apply(&client, &ns.name, policy("dry", "Plan", contacts("dry", 1))).await;
    let planned = wait_object(&api, "dry", "planned", READY, |p| plan_of(p).hash.is_some()).await;
    assert!(plan_of(&planned).blocked.unwrap().starts_with("mode Plan"));
    approve(&api, "dry", &plan_of(&planned).hash.unwrap(), "bob").await;
    wait_for("the approved dry plan applied", READY, || async {
        (in_sandbox(&raw, "dry").await == 1).then_some(())
    })
    .await;
    let patch = json!({"spec": {"contacts": contacts("dry", 2)}});
    api.patch("dry", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_object(&api, "dry", "planned again", READY, |p| {
        plan_of(p).create == 1
            && p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(in_sandbox(&raw, "dry").await, 1, "back to planning only");

    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_tag_rule_in_mode_plan_is_applied_once_by_approval() {
    let Some((client, ns)) = setup("approval-rule").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    for i in 0..2 {
        raw.call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": "ve9EPM428h8vShlRW1KT",
                        "email": format!("lead{i}@rule.example")})),
        )
        .await;
    }
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    apply_connection(&client, &ns.name, &sandbox.url).await;
    let rule = |tag: &str| {
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "TagRule",
               "metadata": {"name": "leads"},
               "spec": {"connectionRef": {"name": "acme"}, "mode": "Plan", "resyncInterval": "2s",
                        "selector": {"filters": [
                            {"field": "email", "operator": "contains", "value": "@rule.example"}]},
                        "addTags": [tag]}})
    };
    apply(&client, &ns.name, rule("lead")).await;
    let api = rules(&client, &ns.name);
    let plan_of = |r: &ghl_operator::crd::TagRule| {
        r.status
            .as_ref()
            .and_then(|s| s.plan.clone())
            .unwrap_or_default()
    };
    let tagged = || async {
        sandbox_contacts(&raw)
            .await
            .values()
            .filter(|c| tags(c).contains(&"lead".to_owned()))
            .count()
    };

    // Planned, with a hash and why it waits; nothing written.
    let planned = wait_object(&api, "leads", "planned", READY, |r| {
        plan_of(r).hash.is_some()
    })
    .await;
    let plan = plan_of(&planned);
    assert_eq!(plan.update, 2);
    assert!(plan.blocked.as_deref().unwrap().starts_with("mode Plan"));
    let hash = plan.hash.unwrap();

    // A wrong hash applies nothing; the reviewed one, through the plugin, applies once.
    let annotate = |hash: String| {
        let api = api.clone();
        async move {
            let patch = json!({"metadata": {"annotations": {"ghl.servis.ai/approve-plan": hash}}});
            api.patch("leads", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    annotate("0123456789abcdef".into()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(tagged().await, 0, "a wrong hash applies nothing");
    let approved = kubectl_ghl(&["approve", "tagrule/leads", "-n", &ns.name, "--hash", &hash]);
    assert!(approved.contains(&hash), "{approved}");
    wait_for("the approved rule applied", READY, || async {
        (tagged().await == 2).then_some(())
    })
    .await;
    let applied = wait_object(&api, "leads", "approval recorded", READY, |r| {
        plan_of(r).approved.as_deref() == Some(hash.as_str())
    })
    .await;
    assert!(plan_of(&applied).blocked.is_none() || plan_of(&applied).hash.is_none());

    // Back to planning only: a new tag is planned, not written.
    let patch = json!({"spec": {"addTags": ["lead", "warm"]}});
    api.patch("leads", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_object(&api, "leads", "planned again", READY, |r| {
        plan_of(r).update == 2
            && r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warm = sandbox_contacts(&raw)
        .await
        .values()
        .filter(|c| tags(c).contains(&"warm".to_owned()))
        .count();
    assert_eq!(warm, 0, "back to planning only");
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
