//! The in-cluster ledger holds 100,000 contacts: sharded Secrets under the object size limit,
//! a journal on top, and a load that gives back exactly what was committed.

use std::time::Instant;

use ghl_operator::controller::ledger_store::{LedgerOwner, SecretLedgerStore};
use ghl_operator::engine::ledger::{Change, ItemKind, Ledger, key_digest};
use ghl_operator::engine::state::StateStore;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::harness::*;

fn big_ledger(n: usize) -> Ledger {
    let mut ledger = Ledger::default();
    for i in 0..n {
        let id = format!("c{i:019}");
        for change in [
            Change::ContactBound {
                key: key_digest(&format!("p{i}@example.com")),
                id: id.clone(),
                created: true,
            },
            Change::TagsAdded {
                id: id.clone(),
                tags: ["vip".to_owned(), format!("batch-{}", i % 10)].into(),
            },
            Change::ItemBound {
                id: id.clone(),
                kind: ItemKind::Task,
                key: "kickoff".into(),
                item_id: format!("t{i:019}"),
                fingerprint: i as u64,
            },
            Change::ItemBound {
                id: id.clone(),
                kind: ItemKind::Note,
                key: "origin".into(),
                item_id: format!("n{i:019}"),
                fingerprint: i as u64,
            },
        ] {
            ledger.apply(&change);
        }
    }
    ledger
}

#[tokio::test]
async fn a_ledger_of_100000_contacts_round_trips_through_sharded_secrets() {
    let Some((client, ns)) = setup("ledger").await else {
        return;
    };
    // The owner must exist, or the garbage collector removes its Secrets.
    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "big"},
        "spec": {"connectionRef": {"name": "none"}, "mode": "Plan"}
    }))
    .await;
    let policy = policies(&client, &ns.name).get("big").await.unwrap();
    let owner = LedgerOwner {
        kind: ghl_operator::controller::object::Kind::ContactSyncPolicy,
        namespace: ns.name.clone(),
        name: "big".into(),
        uid: policy.uid().unwrap(),
        api_version: ghl_operator::crd::ContactSyncPolicy::api_version(&()).into_owned(),
    };
    let store = SecretLedgerStore::new(client.clone(), owner.clone());
    let mut ledger = big_ledger(100_000);
    let started = Instant::now();
    store.compact(&ledger).await.expect("compacts");
    eprintln!("compacted 100,000 contacts in {:?}", started.elapsed());

    // A few commits on top go to the journal.
    let extra = vec![
        Change::TagsReleased {
            id: "c0000000000000000007".into(),
            tags: ["vip".to_owned()].into(),
        },
        Change::ContactForgotten {
            id: "c0000000000000000008".into(),
        },
    ];
    store.commit(&extra).await.unwrap();
    for change in &extra {
        ledger.apply(change);
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let objects = secrets
        .list(&ListParams::default().labels("ghl.servis.ai/owner-name=big"))
        .await
        .unwrap()
        .items;
    let sizes: Vec<usize> = objects
        .iter()
        .map(|s| s.data.iter().flatten().map(|(_, v)| v.0.len()).sum())
        .collect();
    assert!(objects.len() > 1, "sharded");
    assert!(
        sizes.iter().all(|size| *size < 800 * 1024),
        "every object well under 1 MiB: {sizes:?}"
    );
    eprintln!(
        "{} Secrets, largest {} bytes",
        objects.len(),
        sizes.iter().max().unwrap()
    );

    // A fresh store (another process) loads exactly the same ledger.
    let loaded = SecretLedgerStore::new(client.clone(), owner)
        .load()
        .await
        .unwrap();
    assert_eq!(loaded.contacts.len(), 99_999);
    assert!(
        loaded == ledger,
        "the loaded ledger equals the committed one"
    );
    assert_eq!(
        loaded
            .by_key(&key_digest("p42@example.com"))
            .map(|(id, _)| id.as_str()),
        Some("c0000000000000000042")
    );
    ns.delete().await;
}
