//! A PR plan against the cluster: `ghl-operator plan -f <the PR's files> --kubeconfig ...`
//! reads what the operator owns (its ledgers) and the connection and token from the cluster,
//! read-only, and prints the counts the operator then reports for the same spec — adoptions
//! the operator already made plan as nothing, and prunes show. Without the cluster, the same
//! plan sees none of that.

use std::path::Path;
use std::time::Duration;

use ghl_operator::crd::ContactSyncPolicy;
use kube::Api;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

fn policy(mode: &str, emails: &[(&str, &str)]) -> Value {
    let contacts: Vec<Value> = emails
        .iter()
        .map(|(email, name)| json!({"email": email, "firstName": name}))
        .collect();
    json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
           "metadata": {"name": "pr"},
           "spec": {"connectionRef": {"name": "acme"}, "mode": mode, "prune": true,
                    "resyncInterval": "2s", "contacts": contacts}})
}

/// Runs `ghl-operator plan -o json` on `manifest` with `extra` flags: (create, adopt, update,
/// delete) and the text.
async fn cli_plan(
    dir: &Path,
    manifest: &Value,
    namespace: &str,
    extra: &[&str],
) -> ((u64, u64, u64, u64), String) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("policy.yaml"), manifest.to_string()).unwrap();
    // Async: the sandbox answers from this test's runtime meanwhile.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args(["plan", "-o", "json", "-n", namespace, "-f"])
        .arg(dir)
        .args(extra)
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "plan {extra:?}: {text}{errors}");
    let reports: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let summary = &reports[0]["summary"];
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {text}"))
    };
    ((n("create"), n("adopt"), n("update"), n("delete")), text)
}

#[tokio::test]
async fn a_ci_plan_against_the_cluster_prints_the_operators_counts() {
    let Some((client, ns)) = setup("pr-plan").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    apply_connection(&client, &ns.name, &sandbox.url).await;
    // Merged and applied: a, b and c (the operator creates them and owns them).
    let merged = policy(
        "Apply",
        &[
            ("a@pr.example", "Ann"),
            ("b@pr.example", "Bob"),
            ("c@pr.example", "Cy"),
        ],
    );
    apply(&client, &ns.name, merged.clone()).await;
    let api: Api<ContactSyncPolicy> = policies(&client, &ns.name);
    wait_object(&api, "pr", "Synced", READY, |p| is_true(p, "Synced")).await;
    // Someone created d in GHL by hand.
    raw.call(
        "POST",
        "/contacts/",
        Some(json!({"locationId": "ve9EPM428h8vShlRW1KT", "email": "d@pr.example"})),
    )
    .await;

    // The PR: b renamed, c dropped (pruned), d declared (adopted), e new.
    let proposed = policy(
        "Plan",
        &[
            ("a@pr.example", "Ann"),
            ("b@pr.example", "Robert"),
            ("d@pr.example", "Dee"),
            ("e@pr.example", "Eve"),
        ],
    );
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pr-plan-{}", ns.name));
    let kubeconfig = kubeconfig_path();
    let (from_cluster, text) = cli_plan(
        &work,
        &proposed,
        &ns.name,
        &["--kubeconfig", kubeconfig.to_str().unwrap()],
    )
    .await;
    // Create e; adopt d; update b and the adopted d (named); delete c (pruned).
    assert_eq!(from_cluster, (1, 1, 2, 1), "{text}");
    assert!(
        !text.contains("Robert") && !text.contains("b@pr.example"),
        "no personal data: {text}"
    );
    // Nor anything GHL holds: no contact id, no current value, unless --show-values.
    let held = sandbox_contacts(&raw).await;
    let ids: Vec<String> = held
        .values()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    assert!(ids.len() >= 4);
    for id in &ids {
        assert!(!text.contains(id.as_str()), "contact id {id} in {text}");
    }
    assert!(!text.contains("\"Bob\""), "a current GHL value in {text}");
    let (_, shown) = cli_plan(
        &work,
        &proposed,
        &ns.name,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--show-values",
        ],
    )
    .await;
    assert!(ids.iter().any(|id| shown.contains(id.as_str())), "{shown}");

    // Only the namespaces named are planned: nothing of another is read.
    let mut placed = proposed.clone();
    placed["metadata"]["namespace"] = json!(ns.name);
    let other = work.join("other-namespace");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("policy.yaml"), placed.to_string()).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args(["plan", "-o", "json", "-n", "somewhere-else", "-f"])
        .arg(&other)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{answer}");
    assert!(
        answer.contains(&format!(
            "namespace {} was not named with --namespace",
            ns.name
        )),
        "{answer}"
    );

    // Without the cluster's ledger (the connection and token given by hand), the same PR
    // sees no ownership: everything GHL holds is an adoption and nothing can be pruned.
    let mut connection = examples(&sandbox.url)
        .into_iter()
        .find(|d| d["kind"] == "GhlConnection")
        .unwrap();
    connection["metadata"]["namespace"] = json!(ns.name);
    let blind_dir = work.join("blind");
    std::fs::create_dir_all(&blind_dir).unwrap();
    std::fs::write(blind_dir.join("connection.yaml"), connection.to_string()).unwrap();
    let (blind, _) = cli_plan(
        &blind_dir,
        &proposed,
        &ns.name,
        &["--token", "pit-sandbox-token", "--state", "blind.json"],
    )
    .await;
    assert_eq!(
        blind,
        (1, 3, 2, 0),
        "without the ledger: a, b and d adopted (b and d updated), nothing pruned"
    );

    // A PR that points the connection at another host never gets the cluster's token sent
    // there: the plan names why and reaches no other host.
    let mut repointed = connection.clone();
    repointed["spec"]["baseUrl"] = json!("http://127.0.0.1:9/elsewhere");
    let elsewhere = work.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("connection.yaml"), repointed.to_string()).unwrap();
    std::fs::write(elsewhere.join("policy.yaml"), proposed.to_string()).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args(["plan", "-o", "json", "-n", &ns.name, "-f"])
        .arg(&elsewhere)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{answer}");
    assert!(
        answer.contains("only sent to its baseUrl in the cluster"),
        "{answer}"
    );

    // The operator, given the PR's spec (mode: Plan), reports the same counts.
    apply(&client, &ns.name, proposed).await;
    let planned = wait_object(&api, "pr", "the PR's spec planned", READY, |p| {
        p.status.as_ref().is_some_and(|s| {
            s.observed_generation == p.metadata.generation
                && s.plan.as_ref().is_some_and(|plan| plan.blocked.is_some())
        })
    })
    .await;
    let plan = planned.status.unwrap().plan.unwrap();
    assert_eq!(
        (
            u64::from(plan.create),
            u64::from(plan.adopt),
            u64::from(plan.update),
            u64::from(plan.delete)
        ),
        from_cluster,
        "the CI plan printed what the operator plans"
    );

    // Reading the cluster wrote nothing there: the ledger is the operator's alone.
    let logs = operator.logs();
    assert!(
        !logs.contains("changed under this process"),
        "no ledger conflict"
    );
    operator.stop().await;
    ns.delete().await;
}
