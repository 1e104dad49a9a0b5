//! Ledgers across restores, on the test API server: a policy recreated under its old name (as
//! a Velero restore or a delete-and-recreate does) finds its predecessor's ledger, stops with
//! `LedgerFromPreviousOwner` and changes nothing in GHL; annotated
//! `ghl.servis.ai/adopt-ledger=<old uid>` it takes the ledger over and converges without
//! creating a contact twice. `ledger export` and `ledger import` carry a ledger to another
//! object, which must have none.

use std::process::Command;
use std::time::Duration;

use ghl_operator::crd::Kind;
use ghl_operator::engine::fence::Fence;
use ghl_operator::engine::state::StateStore;
use ghl_operator::engine::state::secret::{LedgerOwner, SecretLedgerStore};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

fn policy_doc(sandbox_url: &str) -> Value {
    examples(sandbox_url)
        .into_iter()
        .find(|d| d["kind"] == "ContactSyncPolicy")
        .unwrap()
}

async fn ledger_secrets(client: &kube::Client, namespace: &str) -> Vec<Secret> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    secrets
        .list(&ListParams::default().labels("ghl.servis.ai/owner-name=vip-customers"))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_restored_ledger_is_adopted_by_annotation_and_nothing_is_created_twice() {
    let Some((client, ns)) = setup("restore").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url));
    for doc in examples(&sandbox.url) {
        if doc["kind"] != "TagRule" {
            apply(&client, &ns.name, doc).await;
        }
    }
    let api = policies(&client, &ns.name);
    let synced = wait_object(&api, "vip-customers", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    let old_uid = synced.uid().unwrap();
    let contacts = sandbox_contacts(&raw).await;
    operator.stop().await;

    // The restore: the policy is gone and comes back with a new uid; its ledger Secrets stay
    // (orphaned, as a restore with its ownerReferences dropped leaves them).
    api.delete(
        "vip-customers",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    wait_for("the policy gone and its ledger orphaned", READY, || async {
        let gone = api.get_opt("vip-customers").await.ok()?.is_none();
        let secrets = ledger_secrets(&client, &ns.name).await;
        let orphaned = !secrets.is_empty()
            && secrets.iter().all(|s| {
                s.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(|r| r.is_empty())
            });
        (gone && orphaned).then_some(())
    })
    .await;
    apply(&client, &ns.name, policy_doc(&sandbox.url)).await;
    let operator = Operator::start(OperatorOptions::new(&ns.name, "op-1").allowing(&sandbox.url));
    let stopped = wait_object(
        &api,
        "vip-customers",
        "LedgerFromPreviousOwner",
        READY,
        |p| {
            condition(p, "Ready")
                .is_some_and(|(s, r)| s == "False" && r == "LedgerFromPreviousOwner")
        },
    )
    .await;
    assert_ne!(stopped.uid().unwrap(), old_uid);
    let message = condition_message(&stopped, "Ready").unwrap();
    assert!(
        message.contains(&old_uid) && message.contains("ghl.servis.ai/adopt-ledger"),
        "{message}"
    );
    assert_eq!(
        sandbox_contacts(&raw).await,
        contacts,
        "GHL untouched while it waits"
    );

    // Adopted by annotation: converges on the old ledger, creating nothing.
    api.patch(
        "vip-customers",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"ghl.servis.ai/adopt-ledger": old_uid}}}),
        ),
    )
    .await
    .unwrap();
    let adopted = wait_object(&api, "vip-customers", "Synced after adopting", READY, |p| {
        is_true(p, "Ready") && is_true(p, "Synced")
    })
    .await;
    let plan = adopted.status.as_ref().unwrap().plan.clone().unwrap();
    assert_eq!((plan.create, plan.adopt), (0, 0), "{plan:?}");
    let after = sandbox_contacts(&raw).await;
    assert_eq!(after.len(), contacts.len(), "no contact created twice");
    // The ledger is the new object's alone now.
    let new_uid = adopted.uid().unwrap();
    wait_for(
        "only the new owner's ledger objects left",
        READY,
        || async {
            let secrets = ledger_secrets(&client, &ns.name).await;
            let owners: Vec<String> = secrets
                .iter()
                .filter_map(|s| {
                    s.annotations()
                        .get("ghl.servis.ai/ledger-owner-uid")
                        .cloned()
                })
                .collect();
            (!owners.is_empty() && owners.iter().all(|u| *u == new_uid)).then_some(())
        },
    )
    .await;

    // Export, then import as another policy's ledger (one that has none), exactly.
    let file =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-ledger.json", ns.name));
    let export = Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
        .args([
            "ledger",
            "export",
            "contactsyncpolicy/vip-customers",
            "-n",
            &ns.name,
            "-f",
        ])
        .arg(&file)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported["kind"], "LedgerExport");
    assert_eq!(exported["owner"]["uid"], new_uid.as_str());
    let mut copy = policy_doc(&sandbox.url);
    copy["metadata"]["name"] = json!("vip-copy");
    copy["spec"]["mode"] = json!("Plan");
    apply(&client, &ns.name, copy).await;
    let import = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .args(["ledger", "import", "--name", name, "-n", &ns.name, "-f"])
            .arg(&file)
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .unwrap()
    };
    let imported = import("vip-copy");
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let owner_of = |name: &'static str| {
        let api = api.clone();
        async move { LedgerOwner::of(Kind::ContactSyncPolicy, &api.get(name).await.unwrap()) }
    };
    let original = SecretLedgerStore::new(
        client.clone(),
        owner_of("vip-customers").await,
        Fence::leased(),
    )
    .load()
    .await
    .unwrap();
    let copied =
        SecretLedgerStore::new(client.clone(), owner_of("vip-copy").await, Fence::leased())
            .load()
            .await
            .unwrap();
    assert_eq!(copied.contacts, original.contacts);
    assert!(!copied.contacts.is_empty());
    // Never over a ledger that exists.
    let again = import("vip-copy");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("has a ledger already"));

    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
