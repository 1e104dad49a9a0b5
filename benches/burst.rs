//! A burst: 10,000 contacts of one location changed in GHL within 10 s, as a bulk import or a
//! workflow would, each firing its webhook, drained to a sink with `include: []` at GHL's real
//! rate limit (100 requests per 10 s per location; nothing scaled).
//!
//! Prints the GHL API calls the operator spent against the floor (pages of 100 read by
//! `dateUpdated` search: 100 calls for 10,000 contacts), the 429s (GHL's, and the operator's
//! receiver's, which make GHL retry), the operator's peak memory, and the drain time against
//! the rate-limit floor (those 100 calls at 100 / 10 s).
//!
//! It runs the real `ghl-operator run` binary against the test API server of
//! `scripts/k8s-testenv.sh` (start it first) and an in-process sandbox posting signed webhooks.
//!
//! `scripts/k8s-testenv.sh start && cargo bench --bench burst` (`BENCH_CONTACTS` changes the
//! size).

#[path = "support/cluster.rs"]
mod cluster;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use futures::StreamExt;
use ghl_operator::sandbox::seed::{Seed, SeedContact};
use ghl_operator::sandbox::{RateLimit, SandboxConfig};
use serde_json::{Value, json};

use cluster::{
    Operator, apply, create_namespace, free_port, peak_mib, sandbox_stats, serve, test_cluster,
    webhook_keys_dir,
};

const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

/// The first name each contact's latest delivery carried.
type Arrivals = Arc<Mutex<HashMap<String, String>>>;

async fn sink_receive(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let contact = event["subject"].as_str().unwrap_or_default().to_owned();
    let name = event["data"]["contact"]["firstName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    arrivals.lock().unwrap().insert(contact, name);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    ghl_operator::tls::install_default_provider();
    let n: usize = std::env::var("BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let Some((client, path)) = test_cluster().await else {
        return;
    };
    let namespace = format!("bench-burst-{:06x}", rand::random::<u32>() & 0xff_ffff);
    create_namespace(&client, &namespace).await;

    let arrivals: Arrivals = Arc::default();
    let sink_addr = serve(
        Router::new()
            .route("/hooks/ghl", post(sink_receive))
            .with_state(Arc::clone(&arrivals)),
    )
    .await;

    // The location holds the contacts already; its webhooks go to the operator.
    let webhook_port = free_port();
    let ids: Vec<String> = (0..n).map(|i| format!("burst{i:015}")).collect();
    let seed = Seed {
        contacts: ids
            .iter()
            .enumerate()
            .map(|(i, id)| SeedContact {
                id: Some(id.clone()),
                attributes:
                    json!({"email": format!("b{i:05}@bench.example"), "firstName": "Before"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ..SeedContact::default()
            })
            .collect(),
        ..Seed::default()
    };
    let sandbox = ghl_operator::sandbox::start(
        SandboxConfig {
            rate_limit: RateLimit {
                requests: 100,
                window: Duration::from_secs(10),
            },
            daily_limit: 200_000,
            search_lag: Duration::from_secs(1),
            seed,
            webhook_url: Some(format!("http://127.0.0.1:{webhook_port}/webhooks/ghl")),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = webhook_keys_dir(&namespace);
    let log = std::fs::File::create(std::env::temp_dir().join(format!("{namespace}.log"))).unwrap();
    let operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .args([
                "run",
                "--no-leader-election",
                "--connection-check-interval=1h",
                &format!("--metrics-addr=127.0.0.1:{}", free_port()),
                &format!("--watch-namespace={namespace}"),
                &format!("--webhook-addr=127.0.0.1:{webhook_port}"),
                &format!("--webhook-public-key={}", dir.display()),
                &format!("--allowed-sink-url=http://{sink_addr}/"),
                &format!("--allowed-base-url={}", sandbox.url),
            ])
            .env("KUBECONFIG", &path)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the operator starts"),
    );
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pit", "labels": {"ghl.servis.ai/secret-type": "pit"}},
               "stringData": {"token": sandbox.token}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "feed", "labels": {"ghl.servis.ai/secret-type": "feed-signing"}},
               "stringData": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection", "metadata": {"name": "acme"},
               "spec": {"locationId": LOCATION, "baseUrl": sandbox.url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": "pit", "key": "token"}}},
                        "export": {"catchUpInterval": "1d", "sinks": [{"name": "bench",
                            "url": format!("http://{sink_addr}/hooks/ghl"),
                            "signingSecretRef": {"name": "feed", "key": "secret"}, "include": []}]}}}),
    ] {
        apply(&client, &namespace, doc).await;
    }
    let http = reqwest::Client::new();
    let patch = |id: String, name: String| {
        let (http, url) = (http.clone(), sandbox.url.clone());
        async move {
            http.patch(format!("{url}/__sandbox/contacts/{id}"))
                .json(&json!({"firstName": name}))
                .send()
                .await
                .unwrap();
        }
    };
    // Warm up: one change delivered means the feed is running.
    let started = Instant::now();
    loop {
        patch(ids[0].clone(), "Warm".into()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if arrivals.lock().unwrap().get(&ids[0]).map(String::as_str) == Some("Warm") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the feed never delivered"
        );
    }
    // A fresh window for the burst.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let stats = || sandbox_stats(&http, &sandbox.url);
    let before = stats().await;

    println!(
        "benchmark: a burst of {n} contacts changed in GHL within 10 s, each firing its webhook; \
         a sink with include: []; GHL's rate limit (100 / 10 s)"
    );
    let burst = Instant::now();
    let pace = Duration::from_secs(10) / n as u32;
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let name = format!("Burst {i}");
            let at = burst + pace * i as u32;
            let patch = patch(id.clone(), name);
            async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                patch.await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let made = burst.elapsed();
    let sent_before = before["webhooks"]["sent"].as_u64().unwrap_or(0);
    let mut webhooks_in = None;
    let drained = loop {
        if webhooks_in.is_none()
            && stats().await["webhooks"]["sent"].as_u64().unwrap_or(0) - sent_before >= n as u64
        {
            webhooks_in = Some(burst.elapsed());
        }
        let delivered = {
            let arrivals = arrivals.lock().unwrap();
            ids.iter()
                .enumerate()
                .filter(|(i, id)| {
                    arrivals.get(*id).map(String::as_str) == Some(format!("Burst {i}").as_str())
                })
                .count()
        };
        if delivered == n {
            break burst.elapsed();
        }
        assert!(
            burst.elapsed() < Duration::from_secs(1800),
            "only {delivered} of {n} changes delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = stats().await;
    let delta = |key: &str| after[key].as_u64().unwrap_or(0) - before[key].as_u64().unwrap_or(0);
    let (calls, limited) = (delta("totalRequests"), delta("rateLimited"));
    let webhook = |key: &str| {
        after["webhooks"][key].as_u64().unwrap_or(0) - before["webhooks"][key].as_u64().unwrap_or(0)
    };
    // The operator's receiver answering 429 (overloaded, outbox full) makes GHL retry.
    let (refused, lost) = (webhook("retried"), webhook("failed"));
    let floor = n.div_ceil(100) as f64;
    let floor_time = floor * 10.0 / 100.0;
    let by_operation: Vec<String> = after["byOperation"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(op, count)| {
            let was = before["byOperation"][op].as_u64().unwrap_or(0);
            let spent = count.as_u64().unwrap_or(0) - was;
            (spent > 0).then(|| format!("{op} {spent}"))
        })
        .collect();
    println!("changes made in           {:.1} s", made.as_secs_f64());
    println!(
        "burst calls vs floor  {:.2}x ({calls} calls: {}; the floor is {floor} search pages of 100)",
        calls as f64 / floor,
        by_operation.join(", ")
    );
    println!(
        "burst 429s  {} (GHL's API {limited}, the operator's webhook receiver {refused}; webhooks lost {lost})",
        limited + refused
    );
    println!(
        "burst peak (VmHWM)  {:.1} MiB (the operator)",
        peak_mib(operator.0.id())
    );
    println!(
        "drained in  {:.1} s after the first change; the rate-limit floor for {floor} calls is {floor_time:.1} s",
        drained.as_secs_f64()
    );
    // The sandbox signs each webhook with RSA-4096 and Ed25519 (8 at once): on a small
    // machine that, not the operator, paces the webhooks' arrival.
    println!(
        "webhooks all accepted in  {} s after the first change",
        webhooks_in.map_or_else(|| "?".into(), |d| format!("{:.1}", d.as_secs_f64()))
    );
}
