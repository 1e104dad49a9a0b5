//! The in-cluster ledger holds 100,000 contacts: sharded Secrets under the object size limit,
//! a journal on top, and a load that gives back exactly what was committed.

use std::time::Instant;

use ghl_operator::crd::Kind;
use ghl_operator::crd::vocabulary::{LEDGER_SECRET_TYPE, label};
use ghl_operator::engine::fence::Fence;
use ghl_operator::engine::ledger::{Change, ItemKind, KeyDigest, Ledger};
use ghl_operator::engine::state::StateStore;
use ghl_operator::engine::state::secret::{LedgerOwner, Naming, SecretLedgerStore};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::harness::*;

fn big_ledger(n: usize) -> Ledger {
    let mut ledger = Ledger::default();
    for i in 0..n {
        let id = format!("c{i:019}");
        for change in [
            Change::ContactBound {
                key: KeyDigest::of(&format!("p{i}@example.com")),
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

/// A ContactSyncPolicy that owns a ledger (the owner must exist, or the garbage collector
/// removes its Secrets).
async fn policy_owner(client: &Client, namespace: &str, name: &str) -> LedgerOwner {
    apply(client, namespace, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": name},
        "spec": {"connectionRef": {"name": "none"}, "mode": "Plan"}
    }))
    .await;
    let policy = policies(client, namespace).get(name).await.unwrap();
    LedgerOwner::of(Kind::ContactSyncPolicy, &policy)
}

#[tokio::test]
async fn a_ledger_of_100000_contacts_round_trips_through_sharded_secrets() {
    let Some((client, ns)) = setup("ledger").await else {
        return;
    };
    let owner = policy_owner(&client, &ns.name, "big").await;
    let store = SecretLedgerStore::new(client.clone(), owner.clone(), Fence::open());
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
    let loaded = SecretLedgerStore::new(client.clone(), owner, Fence::open())
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
            .by_key(&KeyDigest::of("p42@example.com"))
            .map(|(id, _)| id.as_str()),
        Some("c0000000000000000042")
    );
    ns.delete().await;
}

fn bound(email: &str, id: &str) -> Change {
    Change::ContactBound {
        key: KeyDigest::of(email),
        id: id.into(),
        created: true,
    }
}

/// A Secret that looks like a journal page of `owner`'s ledger claiming it created `id`.
/// A Secret with the ledger's labels: `name`, `type_`, owned by the policy or not, and the
/// labels of a `role` object of `generation`.
fn lookalike(
    owner: &LedgerOwner,
    name: &str,
    type_: &str,
    owned: bool,
    (role, generation): (&str, u64),
) -> Secret {
    let line = serde_json::to_string(&bound("forged@example.com", "c-forged")).unwrap();
    let mut secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            label::MANAGED_BY: label::MANAGED_BY_VALUE,
            label::OWNER_KIND: "ContactSyncPolicy",
            label::OWNER_NAME: owner.name,
            label::LEDGER_ROLE: role,
            label::LEDGER_INDEX: "0",
            label::LEDGER_GENERATION: generation.to_string(),
        }},
        "type": type_,
    }))
    .unwrap();
    secret.data = Some(
        [(
            "ledger".to_owned(),
            ByteString(format!("{line}\n").into_bytes()),
        )]
        .into(),
    );
    if owned {
        secret.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
                "apiVersion": owner.api_version, "kind": "ContactSyncPolicy",
                "name": owner.name, "uid": owner.uid,
            }))
            .unwrap(),
        ]);
    }
    secret
}

async fn ledger_objects(client: &Client, namespace: &str, owner: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut names: Vec<String> = secrets
        .list(&ListParams::default().labels(&format!("ghl.servis.ai/owner-name={owner}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    names.sort();
    names
}

/// Writers that lost a race fail instead of erasing commits, lookalike Secrets are never
/// read (nor deleted), a closed fence writes nothing, and a compaction that did not finish
/// is invisible.
#[tokio::test]
async fn the_ledger_cannot_be_overwritten_forged_or_half_compacted() {
    let Some((client, ns)) = setup("ledger-trust").await else {
        return;
    };
    let owner = policy_owner(&client, &ns.name, "guarded").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let store = || SecretLedgerStore::new(client.clone(), owner.clone(), Fence::open());
    let base = owner.base_name(Naming::Owned);
    let name = |suffix: &str| format!("{base}-{suffix}");

    // Two processes load the same ledger; the second commits first.
    let (a, b) = (store(), store());
    a.load().await.unwrap();
    a.commit(&[bound("a@example.com", "c-a")]).await.unwrap();
    b.load().await.unwrap();
    a.commit(&[bound("a2@example.com", "c-a2")]).await.unwrap();
    b.commit(&[bound("b@example.com", "c-b")])
        .await
        .expect_err("b read the page before a's second commit: its write must conflict");
    let loaded = store().load().await.unwrap();
    let ids: Vec<&str> = loaded.contacts.keys().map(|id| id.as_str()).collect();
    assert_eq!(ids, ["c-a", "c-a2"], "nothing erased, nothing half-written");

    // Lookalikes: the ledger's labels, but not its type or not owned by the policy (never
    // read: loads go by name); and an owned shard of a generation the head does not name (an
    // unfinished compaction).
    for (name, type_, owned, labels) in [
        ("forged-opaque", "Opaque", true, ("journal", 0)),
        ("forged-unowned", LEDGER_SECRET_TYPE, false, ("journal", 0)),
        (&*name("g1-shard-0"), LEDGER_SECRET_TYPE, true, ("shard", 1)),
    ] {
        secrets
            .create(
                &PostParams::default(),
                &lookalike(&owner, name, type_, owned, labels),
            )
            .await
            .unwrap();
    }
    let loaded = store().load().await.unwrap();
    assert!(
        !loaded.contacts.contains_key("c-forged"),
        "a lookalike never becomes ownership (and so never a GHL delete)"
    );

    // A process whose fence closed (Lease lost) writes nothing.
    let fenced = || SecretLedgerStore::new(client.clone(), owner.clone(), Fence::leased());
    let before = ledger_objects(&client, &ns.name, "guarded").await;
    let late = fenced();
    late.load().await.unwrap();
    let refused = late.commit(&[bound("late@example.com", "c-late")]).await;
    assert!(refused.unwrap_err().to_string().contains("leader Lease"));
    // (A store that never loaded always compacts.)
    let refused = fenced().compact(&loaded).await;
    assert!(refused.unwrap_err().to_string().contains("leader Lease"));
    assert_eq!(ledger_objects(&client, &ns.name, "guarded").await, before);

    // Compaction switches to a new generation at once and removes only the old one.
    store().compact(&loaded).await.unwrap();
    let after = ledger_objects(&client, &ns.name, "guarded").await;
    assert_eq!(
        after,
        [
            "forged-opaque".to_owned(),
            "forged-unowned".to_owned(),
            name("g1-shard-0"),
            name("head"),
        ],
        "the unfinished generation's shard was replaced, lookalikes left alone"
    );
    let reloaded = store().load().await.unwrap();
    assert!(
        reloaded == loaded,
        "the compacted ledger equals the journal it replaced"
    );

    // A Secret at one of the ledger's names that is not the policy's stops the load, named.
    let squatter = name("g1-journal-0");
    secrets
        .create(
            &PostParams::default(),
            &lookalike(&owner, &squatter, LEDGER_SECRET_TYPE, false, ("journal", 1)),
        )
        .await
        .unwrap();
    let refused = store().load().await.unwrap_err().to_string();
    assert!(refused.contains(&squatter), "{refused}");
    secrets
        .delete(&squatter, &Default::default())
        .await
        .unwrap();
    assert!(store().load().await.unwrap() == loaded);

    // A cleanup a compaction could not finish (here: generation 1 left behind by the
    // compaction to 2) is finished by the next one, from the names the head recorded.
    store().compact(&loaded).await.unwrap();
    secrets
        .create(
            &PostParams::default(),
            &lookalike(
                &owner,
                &name("g1-shard-0"),
                LEDGER_SECRET_TYPE,
                true,
                ("shard", 1),
            ),
        )
        .await
        .unwrap();
    store().compact(&loaded).await.unwrap();
    assert_eq!(
        ledger_objects(&client, &ns.name, "guarded").await,
        [
            "forged-opaque".to_owned(),
            "forged-unowned".to_owned(),
            name("g3-shard-0"),
            name("head"),
        ],
    );
    assert!(store().load().await.unwrap() == loaded);
    ns.delete().await;
}

/// A ledger written under the names used before (no uid digest) is read, written to, and
/// moved to the new names by its next compaction; a policy whose name nests in another's
/// (`vip` and `vip-g1`: the same names before) shares no object with it; and a Secret at a
/// retired name that is not the ledger's is never deleted.
#[tokio::test]
async fn legacy_ledgers_move_to_names_no_other_owner_can_take() {
    let Some((client, ns)) = setup("ledger-names").await else {
        return;
    };
    let vip = policy_owner(&client, &ns.name, "vip").await;
    let nested = policy_owner(&client, &ns.name, "vip-g1").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let store =
        |owner: &LedgerOwner| SecretLedgerStore::new(client.clone(), owner.clone(), Fence::open());

    // A legacy ledger: generation 0's journal under the old name.
    let legacy_page = "ghl-ledger-contactsyncpolicy-vip-journal-0";
    secrets
        .create(
            &PostParams::default(),
            &lookalike(&vip, legacy_page, LEDGER_SECRET_TYPE, true, ("journal", 0)),
        )
        .await
        .unwrap();
    let loaded = store(&vip).load().await.unwrap();
    assert!(
        loaded.contacts.contains_key("c-forged"),
        "the legacy page is read"
    );

    // Commits before the move go on the legacy page; the compaction moves everything.
    let writer = store(&vip);
    let mut ledger = writer.load().await.unwrap();
    let change = bound("new@example.com", "c-new");
    writer.commit(std::slice::from_ref(&change)).await.unwrap();
    ledger.apply(&change);
    assert!(store(&vip).load().await.unwrap() == ledger);
    let compactor = store(&vip);
    let before = compactor.load().await.unwrap();
    // (A short journal is left alone by a store that loaded it: this one compacts anyway.)
    store(&vip).compact(&before).await.unwrap();
    let base = vip.base_name(Naming::Owned);
    assert_eq!(
        ledger_objects(&client, &ns.name, "vip").await,
        [format!("{base}-g1-shard-0"), format!("{base}-head")],
        "the legacy page is gone, the ledger lives under the new names"
    );
    assert!(store(&vip).load().await.unwrap() == ledger);

    // The nested name's ledger: generation 0 and 1 of its own, nothing of vip's touched.
    let other = store(&nested);
    let mut theirs = other.load().await.unwrap();
    assert!(theirs.contacts.is_empty(), "vip's objects are not vip-g1's");
    let change = bound("other@example.com", "c-other");
    other.commit(std::slice::from_ref(&change)).await.unwrap();
    theirs.apply(&change);
    store(&nested).compact(&theirs).await.unwrap();
    assert!(store(&nested).load().await.unwrap() == theirs);
    assert!(store(&vip).load().await.unwrap() == ledger);

    // A Secret at a retired name that is not vip's survives vip's cleanups.
    store(&vip).compact(&ledger).await.unwrap();
    let stranger = format!("{base}-g1-shard-0");
    secrets
        .create(
            &PostParams::default(),
            &lookalike(&vip, &stranger, "Opaque", false, ("shard", 1)),
        )
        .await
        .unwrap();
    store(&vip).compact(&ledger).await.unwrap();
    assert!(
        secrets.get_opt(&stranger).await.unwrap().is_some(),
        "not the ledger's: never deleted"
    );
    assert!(store(&vip).load().await.unwrap() == ledger);
    ns.delete().await;
}
