//! GHL → servis-ai on the test API server, with the sandbox posting real signed webhooks to
//! the operator: an edit in GHL's UI is repaired within 2 s; a new note, task or appointment
//! reaches a sink with the contact and its parts within 2 s; with every webhook lost, the
//! catch-up still delivers everything; killing the operator mid-stream loses nothing; forged,
//! replayed, stale and oversized webhooks are refused and counted; under overload GHL's retry
//! of a 429 is accepted later.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ghl_operator::sandbox::webhooks::Keys;
use ghl_operator::sandbox::{FaultSpec, RunningSandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};
use crate::support::sink::{SECRET, Sink};

const READY: Duration = Duration::from_secs(60);
/// What the issue promises, with no slack.
const NEAR_REAL_TIME: Duration = Duration::from_secs(2);

/// The sandbox's webhook keys, in files for `--webhook-public-key`.
pub fn key_files() -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhook-keys");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = Keys::get();
    let mut files = Vec::new();
    for (name, pem) in [
        ("ed25519.pem", &keys.ed25519_public_pem),
        ("rsa.pem", &keys.rsa_public_pem),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        files.push(path);
    }
    files
}

/// An operator with the webhook receiver on `port`, verifying with the sandbox's keys.
pub fn operator(
    namespace: &str,
    identity: &str,
    sandbox: &RunningSandbox,
    port: u16,
    sink: Option<&Sink>,
    extra: &[&str],
) -> Operator {
    let mut options = OperatorOptions::new(namespace, identity).allowing(&sandbox.url);
    options
        .extra_args
        .push(format!("--webhook-addr=127.0.0.1:{port}"));
    for file in key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    if let Some(sink) = sink {
        options
            .extra_args
            .push(format!("--allowed-sink-url=http://{}/hooks/", sink.addr));
    }
    options
        .extra_args
        .extend(extra.iter().map(|s| s.to_string()));
    Operator::start(options)
}

/// A sandbox that posts its webhooks to `port`.
pub async fn sandbox(port: u16, faults: FaultSpec) -> RunningSandbox {
    start(SandboxConfig {
        search_lag: Duration::ZERO,
        webhook_url: Some(format!("http://127.0.0.1:{port}/webhooks/ghl")),
        webhook_retry_delay: Duration::from_millis(500),
        faults,
        ..SandboxConfig::default()
    })
    .await
}

/// The examples' connection (and its Secret), pointed at the sandbox, with `export`.
pub fn connection(url: &str, export: Option<Value>) -> Vec<Value> {
    examples(url)
        .into_iter()
        .filter(|d| d["kind"] == "Secret" || d["kind"] == "GhlConnection")
        .map(|mut d| {
            if d["kind"] == "GhlConnection"
                && let Some(export) = &export
            {
                d["spec"]["export"] = export.clone();
            }
            d
        })
        .collect()
}

pub fn export(sink: &Sink, catch_up: &str) -> Value {
    json!({"catchUpInterval": catch_up, "sinks": [{
        "name": "servis-ai", "url": sink.url,
        "signingSecretRef": {"name": "feed-secret", "key": "secret"},
        "include": ["tasks", "notes", "appointments"]}]})
}

pub fn feed_secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "feed-secret", "labels": {"ghl.servis.ai/secret-type": "feed-signing"}},
           "stringData": {"secret": SECRET}})
}

pub async fn wait_ready(client: &kube::Client, namespace: &str) {
    wait_object(
        &connections(client, namespace),
        "acme",
        "Ready",
        READY,
        |c| is_true(c, "Ready"),
    )
    .await;
}

/// A contact created through the API (as another integration would).
pub async fn create_contact(raw: &Raw, email: &str) -> String {
    let answer = raw
        .call(
            "POST",
            "/contacts/",
            Some(
                json!({"locationId": "ve9EPM428h8vShlRW1KT", "email": email, "firstName": "Test"}),
            ),
        )
        .await;
    answer.json["contact"]["id"].as_str().unwrap().to_owned()
}

/// The value of a labelled counter in the operator's metrics.
pub async fn counter(operator: &Operator, name: &str, label: &str) -> f64 {
    let text = operator.metrics().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_edit_in_ghl_is_repaired_within_two_seconds() {
    let Some((client, ns)) = setup("hook-repair").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let operator = operator(&ns.name, "op-0", &sandbox, port, None, &[]);
    for doc in connection(&sandbox.url, None) {
        apply(&client, &ns.name, doc).await;
    }
    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "vip"},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "1h",
                 "contacts": [{"email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]}]}
    }))
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;
    let id = sandbox_contacts(&raw).await["ada@example.com"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for round in 0..3 {
        let edited = Instant::now();
        raw.admin(
            "PATCH",
            &format!("contacts/{id}"),
            Some(json!({"firstName": format!("Changed {round}"), "tags": []})),
        )
        .await;
        wait_for("the edit repaired", NEAR_REAL_TIME, || async {
            let ada = sandbox_contacts(&raw).await["ada@example.com"].clone();
            (ada["firstName"] == "Ada" && tags(&ada) == ["vip"]).then_some(())
        })
        .await;
        eprintln!("round {round}: repaired after {:?}", edited.elapsed());
    }
    assert!(counter(&operator, "ghl_operator_webhooks_total", "accepted").await >= 3.0);
    assert!(
        counter(&operator, "ghl_operator_targeted_syncs_total", "applied").await >= 3.0,
        "repaired by targeted syncs, not the hourly resync"
    );
    let connection = wait_object(
        &connections(&client, &ns.name),
        "acme",
        "webhooks reported",
        READY,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.webhooks.as_ref())
                .is_some_and(|w| w.received >= 3)
        },
    )
    .await;
    let webhooks = connection.status.unwrap().webhooks.unwrap();
    assert!(webhooks.last_received_at.is_some());
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn new_notes_tasks_and_appointments_reach_the_sink_with_the_contact() {
    let Some((client, ns)) = setup("hook-feed").await else {
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
    let id = create_contact(&raw, "feed@example.com").await;
    wait_for("the new contact delivered", NEAR_REAL_TIME, || async {
        sink.latest(&id)
    })
    .await;

    // (what, the part of the delivery it shows in, a field, its value)
    let changes = [
        ("note", "notes", "body", "Asked for a demo"),
        ("task", "tasks", "title", "Call back"),
        ("appointment", "appointments", "title", "Demo"),
    ];
    for (what, part, field, value) in changes {
        let arrived = |data: &Value| {
            data[part]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i[field] == value))
        };
        let started = Instant::now();
        match what {
            "note" => {
                raw.call(
                    "POST",
                    &format!("/contacts/{id}/notes"),
                    Some(json!({"body": "Asked for a demo"})),
                )
                .await;
            }
            "task" => {
                raw.call(
                    "POST",
                    &format!("/contacts/{id}/tasks"),
                    Some(json!({"title": "Call back", "dueDate": "2030-01-10T15:00:00Z", "completed": false})),
                )
                .await;
            }
            _ => {
                raw.admin(
                    "POST",
                    &format!("contacts/{id}/appointments"),
                    Some(json!({"title": "Demo", "startTime": "2030-02-03T10:00:00Z",
                                "endTime": "2030-02-03T10:30:00Z"})),
                )
                .await;
            }
        }
        let received = wait_for(&format!("the {what} delivered"), NEAR_REAL_TIME, || async {
            sink.latest(&id).filter(|r| arrived(&r.event["data"]))
        })
        .await;
        eprintln!("{what}: delivered after {:?}", started.elapsed());
        let event = &received.event;
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "ai.servis.ghl.contact.changed");
        assert_eq!(event["source"], "ghl/locations/ve9EPM428h8vShlRW1KT");
        assert_eq!(event["data"]["contact"]["email"], "feed@example.com");
        assert!(
            event["data"]["triggers"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );
    }
    assert_eq!(sink.bad_signatures(), 0);

    // A deletion seen by webhook is delivered as one.
    raw.admin("DELETE", &format!("contacts/{id}"), None).await;
    wait_for("the deletion delivered", NEAR_REAL_TIME, || async {
        sink.latest(&id)
            .filter(|r| r.event["type"] == "ai.servis.ghl.contact.deleted")
    })
    .await;

    // Status: counts per sink and the cursor.
    let status = wait_object(
        &connections(&client, &ns.name),
        "acme",
        "export status",
        READY,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.export.as_ref())
                .is_some_and(|e| {
                    e.cursor.is_some() && e.sinks.first().is_some_and(|s| s.delivered >= 5)
                })
        },
    )
    .await;
    let export = status.status.unwrap().export.unwrap();
    assert_eq!(export.sinks[0].name, "servis-ai");
    assert_eq!(export.sinks[0].failed, 0);
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn the_readmes_python_receiver_verifies_and_receives_the_feed() {
    let Some((client, ns)) = setup("hook-python").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let receiver_port = free_port();
    let output =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-receiver.out", ns.name));
    let mut receiver = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/feed-receiver.py"
        ))
        .env("PORT", receiver_port.to_string())
        .env("FEED_SECRET", SECRET)
        .stdout(std::fs::File::create(&output).unwrap())
        .spawn()
        .expect("python3 runs the example receiver");
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options.extra_args.extend([
        format!("--webhook-addr=127.0.0.1:{port}"),
        format!("--allowed-sink-url=http://127.0.0.1:{receiver_port}/"),
    ]);
    for file in key_files() {
        options
            .extra_args
            .push(format!("--webhook-public-key={}", file.display()));
    }
    let operator = Operator::start(options);
    apply(&client, &ns.name, feed_secret()).await;
    let export = json!({"sinks": [{"name": "python", "url": format!("http://127.0.0.1:{receiver_port}/"),
        "signingSecretRef": {"name": "feed-secret", "key": "secret"}}]});
    for doc in connection(&sandbox.url, Some(export)) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let id = create_contact(&raw, "python@example.com").await;
    wait_for("the receiver printed the event", READY, || async {
        let printed = std::fs::read_to_string(&output).ok()?;
        printed
            .lines()
            .any(|l| l == format!("ai.servis.ghl.contact.changed {id} ContactCreate"))
            .then_some(())
    })
    .await;
    let _ = receiver.kill();
    let _ = receiver.wait();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn with_every_webhook_lost_the_catch_up_delivers_everything() {
    let Some((client, ns)) = setup("hook-lost").await else {
        return;
    };
    let port = free_port();
    let faults: FaultSpec = "webhook-drop=1".parse().unwrap();
    let sandbox = sandbox(port, faults).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    let operator = operator(&ns.name, "op-0", &sandbox, port, Some(&sink), &[]);
    // A change made just before the feed starts (here: before its connection exists) is
    // caught up as well: a new feed starts the search lag margin back.
    let mut ids = vec![create_contact(&raw, "lost0@example.com").await];
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "10s"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    for i in 1..5 {
        ids.push(create_contact(&raw, &format!("lost{i}@example.com")).await);
    }
    let changed = Instant::now();
    // catchUpInterval plus a few seconds.
    let deadline = changed + Duration::from_secs(16);
    while !ids.iter().all(|id| sink.latest(id).is_some()) {
        if Instant::now() > deadline {
            let missing: Vec<&String> = ids.iter().filter(|id| sink.latest(id).is_none()).collect();
            let export = connections(&client, &ns.name)
                .get("acme")
                .await
                .ok()
                .and_then(|c| c.status)
                .map(|s| serde_json::to_string(&s.export).unwrap_or_default());
            panic!(
                "not delivered after {:?}: {missing:?} of {ids:?}; the sink received {:?} (bad signatures {}); the feed's status: {export:?}",
                changed.elapsed(),
                sink.subjects(),
                sink.bad_signatures(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "all delivered by the catch-up after {:?}: {ids:?}, the sink received {:?}",
        changed.elapsed(),
        sink.subjects(),
    );
    let stats = raw.admin("GET", "stats", None).await;
    assert!(
        stats["webhooks"]["dropped"].as_u64().unwrap() >= 5,
        "{stats}"
    );
    assert_eq!(stats["webhooks"]["sent"], 0, "no webhook arrived");
    for id in &ids {
        let received = sink.latest(id).unwrap();
        assert_eq!(received.event["data"]["triggers"], json!(["CatchUp"]));
    }
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn killing_the_operator_mid_stream_loses_nothing() {
    let Some((client, ns)) = setup("hook-kill").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    sink.set_delay(Duration::from_millis(300));
    let mut first = operator(&ns.name, "op-0", &sandbox, port, Some(&sink), &[]);
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "10s"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    // The cursor is stored before the stream starts.
    wait_object(
        &connections(&client, &ns.name),
        "acme",
        "a cursor",
        READY,
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.export.as_ref())
                .is_some_and(|e| e.cursor.is_some())
        },
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create_contact(&raw, &format!("stream{i}@example.com")).await);
        if i == 10 {
            first.kill();
        }
    }
    assert!(
        ids.iter().filter(|id| sink.latest(id).is_some()).count() < ids.len(),
        "the kill happened mid-stream"
    );
    let second = operator(&ns.name, "op-1", &sandbox, port, Some(&sink), &[]);
    sink.set_delay(Duration::ZERO);
    wait_for(
        "every contact delivered after the restart",
        Duration::from_secs(40),
        || async { ids.iter().all(|id| sink.latest(id).is_some()).then_some(()) },
    )
    .await;
    second.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn forged_replayed_stale_and_oversized_webhooks_are_refused_and_counted() {
    let Some((client, ns)) = setup("hook-bad").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let operator = operator(&ns.name, "op-0", &sandbox, port, None, &[]);
    for doc in connection(&sandbox.url, None) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let url = format!("http://127.0.0.1:{port}/webhooks/ghl");
    // A fresh connection per request: the server closes one it answered before the body.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |body: Vec<u8>, signature: Option<String>| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-ghl-signature", signature);
        }
        // 0: the connection closed while the body was being written (an unsigned request is
        // answered before its body is read; the counters below show the answer either way).
        async move {
            match request.send().await {
                Ok(answer) => answer.status().as_u16(),
                Err(error) if error.is_request() => 0,
                Err(error) => panic!("{error}"),
            }
        }
    };
    let event = |id: &str, location: &str, at: jiff::Timestamp| {
        serde_json::to_vec(&json!({"type": "ContactUpdate", "locationId": location,
            "webhookId": id, "timestamp": at.to_string(), "id": "nobody"}))
        .unwrap()
    };
    let signed = |body: &[u8]| Keys::get().sign(body).0;
    let now = jiff::Timestamp::now();

    let body = event("w-good", "ve9EPM428h8vShlRW1KT", now);
    assert_eq!(post(body.clone(), Some(signed(&body))).await, 200);
    assert_eq!(
        post(body.clone(), Some(signed(&body))).await,
        200,
        "a replay: already seen"
    );
    let forged = event("w-forged", "ve9EPM428h8vShlRW1KT", now);
    assert_eq!(
        post(forged.clone(), Some(signed(b"something else"))).await,
        401
    );
    let unsigned = post(forged, None).await;
    assert!(unsigned == 401 || unsigned == 0, "{unsigned}");
    let old = now
        .checked_sub(jiff::SignedDuration::from_mins(10))
        .unwrap();
    let stale = event("w-stale", "ve9EPM428h8vShlRW1KT", old);
    assert_eq!(post(stale.clone(), Some(signed(&stale))).await, 401);
    let big = vec![b' '; 1024 * 1024 + 10];
    // Answered 413 from its declared length before the body is read; the connection then
    // closes, so the client may see the close while still writing (the counter below shows
    // the refusal either way).
    let answer = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-ghl-signature", signed(&big))
        .body(big)
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert!(matches!(answer, Ok(413) | Err(_)), "{answer:?}");
    let elsewhere = event("w-elsewhere", "someOtherLocation", now);
    assert_eq!(post(elsewhere.clone(), Some(signed(&elsewhere))).await, 202);

    for (result, expected) in [
        ("accepted", 1.0),
        ("duplicate", 1.0),
        ("bad_signature", 2.0),
        ("stale", 1.0),
        ("too_large", 1.0),
        ("unknown_location", 1.0),
    ] {
        assert_eq!(
            counter(
                &operator,
                "ghl_operator_webhooks_total",
                &format!("result=\"{result}\"")
            )
            .await,
            expected,
            "{result}"
        );
    }
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn under_overload_ghls_retry_of_a_429_is_accepted_later() {
    let Some((client, ns)) = setup("hook-busy").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let sink = Sink::start().await;
    sink.set_delay(Duration::from_millis(400));
    let operator = operator(
        &ns.name,
        "op-0",
        &sandbox,
        port,
        Some(&sink),
        &["--webhook-backlog=2"],
    );
    apply(&client, &ns.name, feed_secret()).await;
    for doc in connection(&sandbox.url, Some(export(&sink, "1h"))) {
        apply(&client, &ns.name, doc).await;
    }
    wait_ready(&client, &ns.name).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(create_contact(&raw, &format!("busy{i}@example.com")).await);
    }
    wait_for(
        "every contact delivered",
        Duration::from_secs(30),
        || async { ids.iter().all(|id| sink.latest(id).is_some()).then_some(()) },
    )
    .await;
    let stats = raw.admin("GET", "stats", None).await;
    assert!(
        stats["webhooks"]["retried"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(counter(&operator, "ghl_operator_webhooks_total", "overloaded").await > 0.0);
    operator.stop().await;
    ns.delete().await;
}

/// The webhook port does no work for strangers: an unsigned request declaring a 5 MB body is
/// answered 401 before its body is sent; 300 connections that never finish their headers do
/// not delay a real webhook's repair past 1 s; key files as `jq -r` or `echo` write them (a
/// trailing blank line) are accepted.
#[tokio::test]
async fn the_webhook_port_holds_before_it_has_verified_anything() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let Some((client, ns)) = setup("hook-doors").await else {
        return;
    };
    let port = free_port();
    let sandbox = sandbox(port, FaultSpec::default()).await;
    let raw = Raw::new(&sandbox);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-keys", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut options = OperatorOptions::new(&ns.name, "op-0").allowing(&sandbox.url);
    options
        .extra_args
        .push(format!("--webhook-addr=127.0.0.1:{port}"));
    let keys = Keys::get();
    for (name, pem) in [
        ("ed25519.pem", &keys.ed25519_public_pem),
        ("rsa.pem", &keys.rsa_public_pem),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, format!("{}\n\n", pem.trim_end())).unwrap();
        options
            .extra_args
            .push(format!("--webhook-public-key={}", path.display()));
    }
    let operator = Operator::start(options);
    for doc in connection(&sandbox.url, None) {
        apply(&client, &ns.name, doc).await;
    }
    apply(&client, &ns.name, json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "vip"},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "1h",
                 "contacts": [{"email": "ada@example.com", "firstName": "Ada"}]}
    }))
    .await;
    wait_object(&policies(&client, &ns.name), "vip", "Synced", READY, |p| {
        is_true(p, "Synced")
    })
    .await;

    // Unsigned, declaring 5 MB: 401 while the body is still unsent.
    let mut stranger = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stranger
        .write_all(
            b"POST /webhooks/ghl HTTP/1.1\r\nhost: operator\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let status = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // 300 connections that never finish their headers.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        slow.write_all(b"POST /webhooks/ghl HTTP/1.1\r\nhost: op")
            .await
            .unwrap();
        idle.push(slow);
    }
    let id = sandbox_contacts(&raw).await["ada@example.com"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let edited = Instant::now();
    raw.admin(
        "PATCH",
        &format!("contacts/{id}"),
        Some(json!({"firstName": "Changed"})),
    )
    .await;
    wait_for(
        "the edit repaired within 1 s",
        Duration::from_secs(1),
        || async {
            (sandbox_contacts(&raw).await["ada@example.com"]["firstName"] == "Ada").then_some(())
        },
    )
    .await;
    eprintln!(
        "repaired after {:?} with {} idle connections open",
        edited.elapsed(),
        idle.len()
    );
    drop(idle);
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}
