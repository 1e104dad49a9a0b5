//! Feed durability: what GHL announced and the operator accepted (answered 2xx) is delivered
//! even when the operator is SIGKILLed before any sink had it — deletions included, which no
//! catch-up search can find again. Past its bound the receiver answers 429 (GHL retries)
//! rather than accept what it could lose.

use std::time::Duration;

use ghl_operator::sandbox::FaultSpec;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::harness::*;
use crate::support::sandbox::Raw;
use crate::support::sink::Sink;
use crate::webhooks::{
    connection, counter, create_contact, export, feed_secret, operator, sandbox, wait_ready,
};

const READY: Duration = Duration::from_secs(60);
/// Deliveries refused while the sink is "down".
const DOWN: u64 = 1_000_000;
const DELETED: &str = "ai.servis.ghl.contact.deleted";

/// The entries of the namespace's outbox Secrets (one line each).
async fn outbox_lines(client: &kube::Client, namespace: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = secrets
        .list(&ListParams::default().fields("type=ghl.servis.ai/outbox"))
        .await
        .unwrap();
    list.items
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("entries"))
        .flat_map(|b| {
            String::from_utf8_lossy(&b.0)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn accepted(op: &Operator) -> f64 {
    counter(op, "ghl_operator_webhooks_total", "accepted").await
}

/// A deletion, an update and a note accepted while the sink is down survive a SIGKILL: the
/// next process delivers them from the outbox, and the outbox empties once they are delivered.
#[tokio::test]
async fn what_was_accepted_survives_a_sigkill_deletions_included() {
    let Some((client, ns)) = setup("outbox-kill").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    let mut first = operator(&ns.name, "op-0", &sandbox, port, Some(&sink), &[]);
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "1h"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let gone = create_contact(&raw, "gone@example.com").await;
    let kept = create_contact(&raw, "kept@example.com").await;
    wait_for("both delivered", READY, || async {
        (sink.latest(&gone).is_some() && sink.latest(&kept).is_some()).then_some(())
    })
    .await;

    // The sink goes down; GHL announces a deletion, an update and a note; the operator
    // accepts them (GHL got its 2xx and will not send them again).
    sink.fail_next(DOWN);
    let before = accepted(&first).await;
    raw.admin("DELETE", &format!("contacts/{gone}"), None).await;
    raw.admin(
        "PATCH",
        &format!("contacts/{kept}"),
        Some(json!({"firstName": "Renamed"})),
    )
    .await;
    raw.call(
        "POST",
        &format!("/contacts/{kept}/notes"),
        Some(json!({"body": "Called back"})),
    )
    .await;
    wait_for("the three webhooks accepted", READY, || async {
        (accepted(&first).await >= before + 3.0).then_some(())
    })
    .await;
    // Stored before the 2xx: the deletion, and the update and note coalesced into one entry.
    let lines = outbox_lines(&client, &ns.name).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&gone) && l.contains("\"d\"")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('@')),
        "no personal data: {lines:?}"
    );

    // SIGKILL before any of it reached the sink; the sink comes back; a new process starts.
    first.kill();
    assert!(sink.latest(&gone).unwrap().event["type"] != DELETED);
    sink.fail_next(0);
    let second = operator(&ns.name, "op-1", &sandbox, port, Some(&sink), &[]);
    wait_for(
        "the deletion delivered after the restart",
        READY,
        || async { sink.latest(&gone).filter(|r| r.event["type"] == DELETED) },
    )
    .await;
    wait_for("the update and the note delivered", READY, || async {
        sink.latest(&kept).filter(|r| {
            let data = &r.event["data"];
            data["contact"]["firstName"] == "Renamed"
                && data["notes"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n["body"] == "Called back"))
        })
    })
    .await;
    // Delivered, so acknowledged: the outbox empties.
    wait_for("the outbox empty", READY, || async {
        outbox_lines(&client, &ns.name)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let status = wait_object(
        &connections(&client, &ns.name),
        "acme",
        "the outbox reported empty",
        READY,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.export.as_ref())
                .and_then(|e| e.outbox.as_ref())
                .is_some_and(|o| o.entries == 0 && o.oldest_at.is_none())
        },
    )
    .await;
    assert!(status.status.unwrap().export.unwrap().sinks[0].delivered >= 2);
    second.assert_logs_clean();
    second.stop().await;
    ns.delete().await;
}

/// With the receiver's bound reached, webhooks are answered 429 (GHL retries them) and what
/// was accepted before is still delivered after a SIGKILL.
#[tokio::test]
async fn past_its_bound_the_receiver_answers_429_and_loses_nothing_it_accepted() {
    let Some((client, ns)) = setup("outbox-full").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    let bound = ["--webhook-backlog=2"];
    let mut first = operator(&ns.name, "op-0", &sandbox, port, Some(&sink), &bound);
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "1h"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(create_contact(&raw, &format!("full{i}@example.com")).await);
    }
    wait_for("all delivered", READY, || async {
        ids.iter().all(|id| sink.latest(id).is_some()).then_some(())
    })
    .await;

    sink.fail_next(DOWN);
    let before = accepted(&first).await;
    for id in &ids {
        raw.admin("DELETE", &format!("contacts/{id}"), None).await;
    }
    wait_for(
        "two deletions accepted, the rest refused",
        READY,
        || async {
            let refused = counter(&first, "ghl_operator_webhooks_total", "overloaded").await;
            (accepted(&first).await >= before + 2.0 && refused >= 1.0).then_some(())
        },
    )
    .await;
    let lines = outbox_lines(&client, &ns.name).await;
    assert_eq!(
        lines.len(),
        2,
        "only what was accepted is stored: {lines:?}"
    );
    let stored: Vec<&String> = ids
        .iter()
        .filter(|id| lines.iter().any(|l| l.contains(id.as_str())))
        .collect();
    assert_eq!(stored.len(), 2, "{lines:?}");

    first.kill();
    sink.fail_next(0);
    let second = operator(&ns.name, "op-1", &sandbox, port, Some(&sink), &bound);
    wait_for("every accepted deletion delivered", READY, || async {
        stored
            .iter()
            .all(|id| sink.latest(id).is_some_and(|r| r.event["type"] == DELETED))
            .then_some(())
    })
    .await;
    second.stop().await;
    ns.delete().await;
}

/// Sharded: the replica holding the connection's shard accepted a deletion while the sink was
/// down and was SIGKILLed; the other replica takes the shard over and delivers it.
#[tokio::test]
async fn with_two_shards_the_other_replica_delivers_what_the_killed_holder_accepted() {
    use crate::shards::{held, reconciled, sharded_with};

    let Some((client, ns)) = setup("outbox-shards").await else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    // GHL posts to one replica (a Service would pick any); it forwards to the holder.
    let sandbox = sandbox(port_a, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    let allow = [format!("--allowed-sink-url=http://{}/hooks/", sink.addr)];
    let mut replicas = vec![
        sharded_with(&ns.name, "op-a", &sandbox.url, port_a, &allow),
        sharded_with(&ns.name, "op-b", &sandbox.url, port_b, &allow),
    ];
    wait_for("one shard each", READY, || async {
        (held(&replicas[0]).await? == 1.0 && held(&replicas[1]).await? == 1.0).then_some(())
    })
    .await;
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "1h"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let gone = create_contact(&raw, "sharded@example.com").await;
    wait_for("delivered", READY, || async { sink.latest(&gone) }).await;

    sink.fail_next(DOWN);
    raw.admin("DELETE", &format!("contacts/{gone}"), None).await;
    wait_for("the deletion stored", READY, || async {
        outbox_lines(&client, &ns.name)
            .await
            .iter()
            .any(|l| l.contains(&gone))
            .then_some(())
    })
    .await;
    let connection = format!("GhlConnection/{}/acme", ns.name);
    let holder = replicas
        .iter()
        .position(|r| reconciled(r).contains(&connection))
        .expect("a replica holds the connection");
    let mut killed = replicas.remove(holder);
    killed.kill();
    sink.fail_next(0);
    let survivor = replicas.pop().unwrap();
    wait_for("the survivor delivered the deletion", READY, || async {
        sink.latest(&gone).filter(|r| r.event["type"] == DELETED)
    })
    .await;
    assert_eq!(held(&survivor).await, Some(2.0));
    wait_for("the outbox empty", READY, || async {
        outbox_lines(&client, &ns.name)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    survivor.stop().await;
    ns.delete().await;
}
