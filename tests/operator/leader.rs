//! Two operator processes: exactly one leads (only it reconciles); when it is killed, the other
//! takes over within the Lease duration and carries on.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::*;
use crate::support::sandbox::{Raw, start_default};

const READY: Duration = Duration::from_secs(60);

async fn leaders(operators: &[&Operator]) -> Option<Vec<bool>> {
    let mut out = Vec::new();
    for op in operators {
        out.push(op.gauge("ghl_operator_leader").await? == 1.0);
    }
    Some(out)
}

#[tokio::test]
async fn one_of_two_processes_leads_and_the_other_takes_over_when_it_dies() {
    let Some((client, ns)) = setup("leader").await else {
        return;
    };
    let sandbox = start_default().await;
    let raw = Raw::new(&sandbox);
    let a = Operator::start(OperatorOptions::new(&ns.name, "op-a").allowing(&sandbox.url));
    let b = Operator::start(OperatorOptions::new(&ns.name, "op-b").allowing(&sandbox.url));
    let first = wait_for("exactly one leader", READY, || async {
        let flags = leaders(&[&a, &b]).await?;
        (flags.iter().filter(|l| **l).count() == 1).then_some(flags)
    })
    .await;
    // It stays that way.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        leaders(&[&a, &b]).await.unwrap(),
        first,
        "leadership is stable"
    );
    let (mut leader, standby) = if first[0] { (a, b) } else { (b, a) };

    for doc in examples(&sandbox.url) {
        apply(&client, &ns.name, doc).await;
    }
    let api = policies(&client, &ns.name);
    wait_object(&api, "vip-customers", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // The leader crashes; the standby takes the Lease and applies the next change.
    leader.kill();
    let patch = json!({"spec": {"contacts": [{"email": "ada@example.com", "tags": ["vip", "after-failover"]}]}});
    let updated = api
        .patch(
            "vip-customers",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_for("the standby leads", Duration::from_secs(30), || async {
        (standby.gauge("ghl_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    let generation = updated.metadata.generation;
    wait_object(
        &api,
        "vip-customers",
        "the change applied by the new leader",
        READY,
        |p| {
            p.status.as_ref().and_then(|s| s.observed_generation) == generation
                && is_true(p, "Synced")
        },
    )
    .await;
    assert_eq!(
        tags(&sandbox_contacts(&raw).await["ada@example.com"]),
        ["after-failover", "vip"]
    );
    assert!(standby.logs().contains("became the leader"));
    leader.assert_logs_clean();
    standby.stop().await;
    ns.delete().await;
}

/// A Lease taken by another process while this one's renewals failed, and free again when
/// they resume, ends this one's tenure: its fence stays closed (work of that tenure must never
/// write again), and a new tenure starts only with a fresh fence.
#[tokio::test]
async fn a_tenure_interrupted_by_another_holder_never_writes_again() {
    use ghl_operator::controller::runtime::leases::leader::{Attempt, Elector, LeaseConfig};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    let Some((client, ns)) = setup("tenure").await else {
        return;
    };
    let mut config = LeaseConfig::new(ns.name.clone(), "tenure".into(), "me".into());
    config.lease_duration = Duration::from_secs(30);
    let mut elector = Elector::new(client.clone(), config);
    let fence = elector.fence();
    assert!(matches!(
        elector.try_acquire_or_renew().await.unwrap(),
        Attempt::Held
    ));
    assert!(fence.is_open());

    // Another process takes it, then gives it up.
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &ns.name);
    for holder in [json!("thief"), json!(null)] {
        let patch = json!({"spec": {"holderIdentity": holder,
            "renewTime": MicroTime(jiff::Timestamp::now()), "leaseDurationSeconds": 1}});
        leases
            .patch("tenure", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    assert!(matches!(
        elector.try_acquire_or_renew().await.unwrap(),
        Attempt::HeldByOther
    ));
    assert!(!fence.is_open(), "the interrupted tenure's fence is closed");
    // A new tenure: a fresh fence, the old one still closed.
    let fresh = elector.fresh_fence();
    assert!(matches!(
        elector.try_acquire_or_renew().await.unwrap(),
        Attempt::Held
    ));
    assert!(fresh.is_open() && !fence.is_open());
    ns.delete().await;
}
