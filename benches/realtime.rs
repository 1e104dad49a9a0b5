//! Near real time, measured: 1,000 changes made in GHL over 100 contacts, one every 20 ms (a
//! steady 50 a second, well inside the budget). Half are edits of a contact's first name the
//! way a person in GHL's UI would make them (the operator repairs each through a targeted
//! reconcile), half are notes added through the API. Every change must reach a sink through
//! the change feed. Prints p50 / p99 / max of webhook→repaired (edits) and change→delivered
//! (all), and the API calls they cost.
//!
//! It runs the real `ghl-operator run` binary against the test API server of
//! `scripts/k8s-testenv.sh` (start it first) and an in-process sandbox posting signed webhooks;
//! GHL's rate limit is scaled to 1,000 requests a second so the budget is not what is measured.
//!
//! `scripts/k8s-testenv.sh start && cargo bench --bench realtime`

#[path = "support/cluster.rs"]
mod cluster;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ghl_operator::sandbox::{RateLimit, SandboxConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use cluster::{
    Operator, apply, create_namespace, free_port, serve, test_cluster, webhook_keys_dir,
};

const CONTACTS: usize = 100;
const CHANGES: usize = 1000;
/// Between two changes.
const PACE: Duration = Duration::from_millis(20);
const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

/// One sink delivery: the note bodies and first name it carried, when it arrived.
#[derive(Clone)]
struct Arrival {
    notes: Vec<String>,
    first_name: String,
    at: Instant,
}

/// Sink deliveries by contact.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Arrival>>>>;

async fn sink_receive(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let contact = event["subject"].as_str().unwrap_or_default().to_owned();
    let notes: Vec<String> = event["data"]["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["body"].as_str().map(str::to_owned))
        .collect();
    let first_name = event["data"]["contact"]["firstName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    arrivals
        .lock()
        .unwrap()
        .entry(contact)
        .or_default()
        .push(Arrival {
            notes,
            first_name,
            at: now,
        });
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn line(name: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "{name:<26} n={:<5} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
        samples.len(),
        percentile(samples, 50.0).as_secs_f64() * 1000.0,
        percentile(samples, 99.0).as_secs_f64() * 1000.0,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

/// What a delivery must show for a change to count as delivered.
enum Shows {
    /// The note.
    Note(String),
    /// The edited first name, or the declared one the repair put back (the edit and the
    /// repair may coalesce: the newest state wins).
    FirstName { edited: String, declared: String },
}

impl Shows {
    fn by(&self, arrival: &Arrival) -> bool {
        match self {
            Shows::Note(body) => arrival.notes.contains(body),
            Shows::FirstName { edited, declared } => {
                arrival.first_name == *edited || arrival.first_name == *declared
            }
        }
    }
}

#[tokio::main]
async fn main() {
    ghl_operator::tls::install_default_provider();
    let Some((client, path)) = test_cluster().await else {
        return;
    };
    let namespace = format!("bench-rt-{:06x}", rand::random::<u32>() & 0xff_ffff);
    create_namespace(&client, &namespace).await;

    // The sink.
    let arrivals: Arrivals = Arc::default();
    let sink_addr = serve(
        Router::new()
            .route("/hooks/ghl", post(sink_receive))
            .with_state(Arc::clone(&arrivals)),
    )
    .await;

    // The sandbox, posting its webhooks to the operator.
    let webhook_port = free_port();
    let sandbox = ghl_operator::sandbox::start(
        SandboxConfig {
            rate_limit: RateLimit {
                requests: 1000,
                window: Duration::from_secs(1),
            },
            daily_limit: 100_000_000,
            search_lag: Duration::from_millis(500),
            webhook_url: Some(format!("http://127.0.0.1:{webhook_port}/webhooks/ghl")),
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = webhook_keys_dir(&namespace);

    let log = std::fs::File::create(std::env::temp_dir().join(format!("{namespace}.log"))).unwrap();
    let metrics_port = free_port();
    let _operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .args([
                "run",
                "--no-leader-election",
                "--default-resync=1h",
                "--connection-check-interval=1h",
                &format!("--metrics-addr=127.0.0.1:{metrics_port}"),
                &format!("--watch-namespace={namespace}"),
                &format!("--webhook-addr=127.0.0.1:{webhook_port}"),
                &format!("--webhook-public-key={}", dir.display()),
                &format!("--allowed-sink-url=http://{sink_addr}/"),
                &format!("--allowed-base-url={}", sandbox.url),
            ])
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the operator starts"),
    );

    let contacts: Vec<Value> = (0..CONTACTS)
        .map(|i| json!({"email": format!("rt{i:03}@bench.example"), "firstName": format!("Declared {i}")}))
        .collect();
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pit", "labels": {"ghl.servis.ai/secret-type": "pit"}},
               "stringData": {"token": sandbox.token}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "feed", "labels": {"ghl.servis.ai/secret-type": "feed-signing"}},
               "stringData": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection", "metadata": {"name": "acme"},
               "spec": {"locationId": LOCATION, "baseUrl": sandbox.url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": "pit", "key": "token"}}},
                        "rateLimit": {"requestsPerWindow": 1000, "window": "1s"},
                        "export": {"catchUpInterval": "1d", "sinks": [{"name": "bench",
                            "url": format!("http://{sink_addr}/hooks/ghl"),
                            "signingSecretRef": {"name": "feed", "key": "secret"}, "include": ["notes"]}]}}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "rt"},
               "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "1h", "contacts": contacts}}),
    ] {
        apply(&client, &namespace, doc).await;
    }
    let policies: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &kube::discovery::pinned_kind(
            &client,
            &GroupVersionKind::gvk("ghl.servis.ai", "v1alpha1", "ContactSyncPolicy"),
        )
        .await
        .unwrap()
        .0,
    );
    let started = Instant::now();
    loop {
        let policy = policies.get("rt").await.unwrap();
        let synced = policy.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Synced" && c["status"] == "True");
        if synced {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the policy never synced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = reqwest::Client::new();
    let state: Value = http
        .get(format!("{}/__sandbox/state", sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: BTreeMap<String, String> = state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["firstName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let before: Value = http
        .get(format!("{}/__sandbox/stats", sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Change i: contact i % 100; even rounds edit the first name, odd rounds add a note.
    let ids: Vec<(String, String)> = ids.into_iter().collect();
    let mut edits: HashMap<usize, (String, Instant)> = HashMap::new();
    // Change → (contact, what the sink must show, when made).
    let mut changes: HashMap<usize, (String, Shows, Instant)> = HashMap::new();
    let mut repaired = Vec::new();
    let mut delivered = Vec::new();
    let mut next = Instant::now();
    let mut made = 0;
    let deadline_after_last = Duration::from_secs(30);
    let mut last_made = Instant::now();
    while made < CHANGES || !edits.is_empty() || !changes.is_empty() {
        if made < CHANGES && Instant::now() >= next {
            let (id, declared) = &ids[made % CONTACTS];
            let round = made / CONTACTS;
            if round.is_multiple_of(2) {
                let name = format!("Changed {made}");
                http.patch(format!("{}/__sandbox/contacts/{id}", sandbox.url))
                    .json(&json!({"firstName": name}))
                    .send()
                    .await
                    .unwrap();
                let at = Instant::now();
                edits.insert(made, (id.clone(), at));
                let shows = Shows::FirstName {
                    edited: name,
                    declared: declared.clone(),
                };
                changes.insert(made, (id.clone(), shows, at));
            } else {
                let body = format!("note {made}");
                http.post(format!("{}/contacts/{id}/notes", sandbox.url))
                    .bearer_auth(&sandbox.token)
                    .header("Version", "2021-07-28")
                    .json(&json!({"body": body}))
                    .send()
                    .await
                    .unwrap();
                changes.insert(made, (id.clone(), Shows::Note(body), Instant::now()));
            }
            made += 1;
            last_made = Instant::now();
            next += PACE;
        }
        if !edits.is_empty() {
            let state: Value = http
                .get(format!("{}/__sandbox/state?parts=contacts", sandbox.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let now = Instant::now();
            let names: HashMap<&str, &str> = state["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default(),
                        c["firstName"].as_str().unwrap_or_default(),
                    )
                })
                .collect();
            let declared: HashMap<&str, &str> =
                ids.iter().map(|(i, n)| (i.as_str(), n.as_str())).collect();
            edits.retain(|_, (id, at)| {
                let done = names.get(id.as_str()) == declared.get(id.as_str());
                if done {
                    repaired.push(now.saturating_duration_since(*at));
                }
                !done
            });
        }
        {
            let seen = arrivals.lock().unwrap().clone();
            changes.retain(|_, (id, shows, at)| {
                let arrival = seen.get(id.as_str()).and_then(|list| {
                    list.iter()
                        .find(|a| a.at >= *at && shows.by(a))
                        .map(|a| a.at)
                });
                match arrival {
                    Some(when) => {
                        delivered.push(when.saturating_duration_since(*at));
                        false
                    }
                    None => true,
                }
            });
        }
        assert!(
            made < CHANGES || last_made.elapsed() < deadline_after_last,
            "{} not repaired, {} not delivered 30 s after the last change",
            edits.len(),
            changes.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after: Value = http
        .get(format!("{}/__sandbox/stats", sandbox.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    println!(
        "benchmark: {CHANGES} changes over {CONTACTS} contacts (half UI edits, half notes), one every {} ms; rate limit 1000/s",
        PACE.as_millis()
    );
    line("webhook → repaired", &mut repaired);
    line("change → delivered", &mut delivered);
    let calls = |s: &Value, op: &str| s["byOperation"][op].as_u64().unwrap_or(0);
    let mut by_operation: BTreeMap<String, u64> = BTreeMap::new();
    for (op, n) in after["byOperation"].as_object().unwrap() {
        let d = n.as_u64().unwrap_or(0) - calls(&before, op);
        if d > 0 {
            by_operation.insert(op.clone(), d);
        }
    }
    let notes_written = (CHANGES / 2) as u64;
    let total: u64 = by_operation.values().sum::<u64>() - notes_written;
    println!(
        "operator API calls: {total} for {CHANGES} changes ({:.2} a change): {}",
        total as f64 / CHANGES as f64,
        by_operation
            .iter()
            .map(|(op, n)| {
                let n = if op == "notes.create" {
                    n - notes_written
                } else {
                    *n
                };
                format!("{op} {n}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "429 answers: {}",
        after["rateLimited"].as_u64().unwrap_or(0) - before["rateLimited"].as_u64().unwrap_or(0)
    );
    // What the outbox costs the API server: its writes per webhook accepted.
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str, label: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let webhooks = sample("ghl_operator_webhooks_total", "result=\"accepted\"");
    let writes = sample(
        "ghl_operator_feed_outbox_writes_total",
        "result=\"written\"",
    );
    let conflicts = sample(
        "ghl_operator_feed_outbox_writes_total",
        "result=\"conflict\"",
    );
    println!(
        "outbox API-server writes per webhook  {:.3} ({writes} writes, {conflicts} conflicts, for {webhooks} webhooks accepted)",
        if webhooks > 0.0 {
            writes / webhooks
        } else {
            0.0
        }
    );
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&namespace, &kube::api::DeleteParams::default())
        .await;
}
