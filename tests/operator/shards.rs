//! Two replicas with `--shards 2`: they divide the two shards between them, converge 40
//! locations with no object reconciled by both, and when one is SIGKILLed the other takes its
//! shard over within the Lease duration and carries on with its objects.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ghl_operator::sandbox::SandboxConfig;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};
use crate::webhooks::key_files;

const LOCATIONS: usize = 40;
const READY: Duration = Duration::from_secs(120);

fn location(i: usize) -> String {
    format!("shardLocation{i:07}")
}

/// A replica with `--shards=2`, taking webhooks on `webhook_port` and advertising it.
fn sharded(namespace: &str, identity: &str, sandbox_url: &str, webhook_port: u16) -> Operator {
    sharded_with(namespace, identity, sandbox_url, webhook_port, &[])
}

/// [`sharded`], with more flags.
pub fn sharded_with(
    namespace: &str,
    identity: &str,
    sandbox_url: &str,
    webhook_port: u16,
    extra: &[String],
) -> Operator {
    let mut options = OperatorOptions::new(namespace, identity).allowing(sandbox_url);
    options.extra_args.extend(extra.iter().cloned());
    options.extra_args.extend([
        "--shards=2".into(),
        format!("--webhook-addr=127.0.0.1:{webhook_port}"),
        "--advertise-address=127.0.0.1".into(),
    ]);
    for file in key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    Operator::start(options)
}

/// The objects a process's log says it reconciled (its "reconciling" lines).
pub fn reconciled(operator: &Operator) -> BTreeSet<String> {
    operator
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "reconciling")
        .filter_map(|line| line["object"].as_str().map(str::to_owned))
        .collect()
}

pub async fn held(operator: &Operator) -> Option<f64> {
    operator.gauge("ghl_operator_shards_held").await
}

#[tokio::test]
async fn two_replicas_divide_the_shards_and_one_takes_over_when_the_other_dies() {
    let Some((client, ns)) = setup("shards").await else {
        return;
    };
    let sandbox = start(SandboxConfig {
        location_id: location(0),
        other_locations: (1..LOCATIONS).map(location).collect(),
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = sharded(&ns.name, "op-a", &sandbox.url, port_a);
    let b = sharded(&ns.name, "op-b", &sandbox.url, port_b);
    // Generous: under the whole suite's load the first division has been seen to take longer.
    wait_for("one shard each", Duration::from_secs(120), || async {
        (held(&a).await? == 1.0 && held(&b).await? == 1.0).then_some(())
    })
    .await;

    for i in 0..LOCATIONS {
        let (location, token) = &sandbox.locations[i];
        for doc in [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("pit-{i:02}"), "labels": {"ghl.servis.ai/secret-type": "pit"}},
                   "stringData": {"token": token}}),
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
                   "metadata": {"name": format!("loc-{i:02}")},
                   "spec": {"locationId": location, "baseUrl": sandbox.url,
                            "auth": {"privateIntegrationToken": {"secretRef": {"name": format!("pit-{i:02}"), "key": "token"}}}}}),
            json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
                   "metadata": {"name": format!("vip-{i:02}")},
                   "spec": {"connectionRef": {"name": format!("loc-{i:02}")},
                            "contacts": [{"email": format!("l{i:02}@example.com"), "tags": ["vip"]}]}}),
        ] {
            apply(&client, &ns.name, doc).await;
        }
    }
    let api = policies(&client, &ns.name);
    for i in 0..LOCATIONS {
        wait_object(&api, &format!("vip-{i:02}"), "Synced", READY, |p| {
            is_true(p, "Synced")
        })
        .await;
    }
    // Every location got its contact, once.
    for (location, _) in &sandbox.locations {
        let contacts = location_contacts(&raw, location).await;
        assert_eq!(contacts.len(), 1, "one contact in {location}: {contacts:?}");
    }

    // No object was reconciled by both, and both did their share.
    let (by_a, by_b) = (reconciled(&a), reconciled(&b));
    let both: Vec<&String> = by_a.intersection(&by_b).collect();
    assert!(both.is_empty(), "reconciled by both replicas: {both:?}");
    let everything: BTreeSet<String> = (0..LOCATIONS)
        .flat_map(|i| {
            [
                format!("GhlConnection/{}/loc-{i:02}", ns.name),
                format!("ContactSyncPolicy/{}/vip-{i:02}", ns.name),
            ]
        })
        .collect();
    let union: BTreeSet<String> = by_a.union(&by_b).cloned().collect();
    assert_eq!(union, everything, "every object reconciled by one of them");
    assert!(!by_a.is_empty() && !by_b.is_empty(), "both replicas worked");
    eprintln!(
        "replica a reconciled {} objects, replica b {}",
        by_a.len(),
        by_b.len()
    );

    // A webhook for one of b's locations that reaches a (GHL posts to the Service, any
    // replica) is forwarded to b, which repairs the edit it announces at once.
    let theirs = (0..LOCATIONS)
        .find(|i| by_b.contains(&format!("ContactSyncPolicy/{}/vip-{i:02}", ns.name)))
        .expect("a policy on b's shard");
    let location_b = &sandbox.locations[theirs].0;
    let id = location_contacts(&raw, location_b).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"tags": []})),
    )
    .await;
    let edited = Instant::now();
    let event = json!({"type": "ContactUpdate", "locationId": location_b,
        "webhookId": "to-the-wrong-replica", "timestamp": jiff::Timestamp::now().to_string(), "id": id});
    assert_eq!(post_signed_webhook(port_a, &event).await, 200);
    wait_for("b repaired the edit", Duration::from_secs(10), || async {
        let contacts = location_contacts(&raw, location_b).await;
        (tags(&contacts[0]) == ["vip"]).then_some(())
    })
    .await;
    eprintln!(
        "repaired through the other replica after {:?}",
        edited.elapsed()
    );
    assert_eq!(
        crate::webhooks::counter(&a, "ghl_operator_webhooks_total", "forwarded").await,
        1.0
    );
    assert!(crate::webhooks::counter(&b, "ghl_operator_webhooks_total", "accepted").await >= 1.0);

    // SIGKILL a: b takes its shard within the Lease duration (plus a renew period or two)...
    let orphan = (0..LOCATIONS)
        .find(|i| by_a.contains(&format!("ContactSyncPolicy/{}/vip-{i:02}", ns.name)))
        .expect("a policy on a's shard");
    a.kill();
    let killed = Instant::now();
    wait_for("b holds both shards", Duration::from_secs(30), || async {
        (held(&b).await? == 2.0).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL: {takeover:?} (Lease duration {LEASE_DURATION:?})");
    assert!(
        takeover < LEASE_DURATION * 2,
        "took {takeover:?} to take over"
    );
    // ... and carries on with a's objects.
    let name = format!("vip-{orphan:02}");
    let patch = json!({"spec": {"contacts": [{"email": format!("l{orphan:02}@example.com"), "tags": ["vip", "after-takeover"]}]}});
    let updated = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = updated.metadata.generation;
    let deadline = Instant::now() + READY;
    loop {
        let policy = api.get(&name).await.unwrap();
        if policy.status.as_ref().and_then(|s| s.observed_generation) == generation
            && is_true(&policy, "Synced")
        {
            break;
        }
        if Instant::now() > deadline {
            // What b did about the object and its shards says why.
            let logs = b.logs();
            let about: Vec<&str> = logs
                .lines()
                .filter(|l| {
                    l.contains(&name)
                        || l.contains(&format!("loc-{orphan:02}"))
                        || l.contains("shard")
                })
                .collect();
            panic!(
                "timed out after {READY:?} waiting for {name} (generation {generation:?}) to sync after the takeover; status: {}\nreplica b on it:\n{}",
                serde_json::to_string_pretty(&policy.status).unwrap_or_default(),
                about.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let location = &sandbox.locations[orphan].0;
    let contacts = location_contacts(&raw, location).await;
    assert_eq!(
        tags(&contacts[0]),
        ["after-takeover", "vip"],
        "{contacts:?}"
    );
    assert!(reconciled(&b).contains(&format!("ContactSyncPolicy/{}/{name}", ns.name)));
    a.assert_logs_clean();
    b.assert_logs_clean();
    b.stop().await;
    ns.delete().await;
}
