//! The change feed's health as state, on the test API server: a sink answering 500 turns the
//! connection's `Exporting` condition False (`SinkFailing`, naming the sink), tells it in a
//! Warning Event, the per-sink metrics and Argo CD's health; once the sink accepts again the
//! condition is True, a `SinkRecovered` Event says so and nothing was lost. A 4xx answer is
//! given up, and counted and shown rather than dropped silently.

use std::time::Duration;

use ghl_operator::sandbox::FaultSpec;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

use crate::argocd::health;
use crate::harness::*;
use crate::support::sandbox::Raw;
use crate::support::sink::Sink;
use crate::webhooks::{
    connection, counter, create_contact, export, feed_secret, operator, sandbox, wait_ready,
};

const READY: Duration = Duration::from_secs(60);

async fn event(client: &kube::Client, namespace: &str, reason: &str) -> Option<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.ok()?;
    list.items.into_iter().find(|e| {
        e.reason.as_deref() == Some(reason)
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("acme")
    })
}

#[tokio::test]
async fn a_failing_sink_turns_exporting_false_and_back_when_it_recovers() {
    let Some((client, ns)) = setup("feed-health").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    let operator = operator(&ns.name, "op-0", &sandbox, port, Some(&sink), &[]);
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "5m"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let api = connections(&client, &ns.name);

    // Healthy first: a delivery accepted, Exporting True.
    let first = create_contact(&raw, "feed-ok@example.com").await;
    wait_for("the first contact delivered", READY, || async {
        sink.latest(&first).map(drop)
    })
    .await;
    let ok = wait_object(&api, "acme", "Exporting True", READY, |c| {
        condition(c, "Exporting").is_some_and(|(s, r)| s == "True" && r == "Delivering")
    })
    .await;
    assert_eq!(health(&ok).0, "Healthy");

    // The sink answers 500: Exporting False, SinkFailing, naming the sink and the answer.
    sink.fail_next_with(u64::MAX, 500);
    let failing = create_contact(&raw, "feed-failing@example.com").await;
    let down = wait_object(&api, "acme", "Exporting False", READY, |c| {
        condition(c, "Exporting").is_some_and(|(s, r)| s == "False" && r == "SinkFailing")
    })
    .await;
    let message = condition_message(&down, "Exporting").unwrap();
    assert!(
        message.contains("servis-ai") && message.contains("500"),
        "{message}"
    );
    let sinks = &down.status.as_ref().unwrap().export.as_ref().unwrap().sinks;
    assert!(sinks[0].failing, "{sinks:?}");
    // Ready stays True (GHL is fine); Argo CD shows the connection Degraded.
    assert!(is_true(&down, "Ready"));
    let (status, why) = health(&down);
    assert_eq!(status, "Degraded", "{why}");
    assert!(why.contains("servis-ai"), "{why}");
    let warning = wait_for("a SinkFailing Event", READY, || {
        event(&client, &ns.name, "SinkFailing")
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(warning.note.unwrap_or_default().contains("servis-ai"));
    let labels = r#"connection="acme",sink="servis-ai""#.to_owned();
    wait_for("ghl_operator_feed_sink_failing 1", READY, || async {
        (counter(&operator, "ghl_operator_feed_sink_failing", &labels).await == 1.0).then_some(())
    })
    .await;
    assert!(sink.latest(&failing).is_none());

    // It accepts again: the waiting change is delivered, Exporting True, SinkRecovered.
    sink.fail_next_with(0, 500);
    wait_for("the waiting contact delivered", READY, || async {
        sink.latest(&failing).map(drop)
    })
    .await;
    wait_object(&api, "acme", "Exporting True again", READY, |c| {
        condition(c, "Exporting").is_some_and(|(s, _)| s == "True")
    })
    .await;
    let recovered = wait_for("a SinkRecovered Event", READY, || {
        event(&client, &ns.name, "SinkRecovered")
    })
    .await;
    assert_eq!(recovered.type_.as_deref(), Some("Normal"));
    wait_for("ghl_operator_feed_sink_failing 0", READY, || async {
        (counter(&operator, "ghl_operator_feed_sink_failing", &labels).await == 0.0).then_some(())
    })
    .await;

    // A 4xx answer: given up, counted in status and metrics, and the sink shown failing.
    sink.fail_next_with(1, 400);
    let refused = create_contact(&raw, "feed-refused@example.com").await;
    let rejected = wait_object(&api, "acme", "a rejected delivery", READY, |c| {
        c.status
            .as_ref()
            .and_then(|s| s.export.as_ref())
            .is_some_and(|e| e.sinks[0].rejected == 1)
    })
    .await;
    let sink_status = &rejected.status.unwrap().export.unwrap().sinks[0];
    assert!(
        sink_status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("400"),
        "{sink_status:?}"
    );
    let rejected_metric = format!(r#"{labels},result="rejected""#);
    assert_eq!(
        counter(
            &operator,
            "ghl_operator_feed_sink_deliveries_total",
            &rejected_metric
        )
        .await,
        1.0
    );
    assert!(
        sink.latest(&refused).is_none(),
        "a refused change is not retried"
    );
    assert!(operator.logs().contains("the sink refused a change"));

    // The feed alerts and panels are backed by what a run with a sink exports.
    let metrics = operator.metrics().await.unwrap();
    // (No policy runs here, so nothing has written to GHL yet.)
    let absent = [
        &crate::monitoring::FIRST_FAILURE[..],
        &crate::monitoring::OAUTH_ONLY[..],
        &["ghl_operator_ghl_writes_total"][..],
    ]
    .concat();
    crate::monitoring::check_against_scrape(&metrics, &absent);
    assert!(
        metrics.contains("ghl_operator_build_info{"),
        "build_info exported"
    );

    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
