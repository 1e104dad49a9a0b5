//! Converging 10,000 contacts (each with 2 tags, 1 task, 1 note) against the sandbox, then
//! resyncing the converged state and repairing 1% drift. Prints API calls (from the sandbox's
//! counters) against the minimum, 429s, wall time under a scaled-down rate limit, and the
//! engine's peak memory. The sandbox runs as its own process, so memory is the engine's.
//!
//! `cargo bench --bench converge`; `BENCH_CONTACTS=100000` for a larger run (with
//! `BENCH_COLD_ONLY=1`, only the cold converge: the deep resync reads every note).

use std::time::{Duration, Instant};

use ghl_operator::crd::contact_sync_policy::{
    ContactRecord, ContactSyncPolicySpec, NoteRecord, TaskRecord,
};
use ghl_operator::engine::desired::{Desired, build};
use ghl_operator::engine::plan::PlanOptions;
use ghl_operator::engine::state::file::StateFile;
use ghl_operator::engine::{Mode, SyncOptions, sync_policy};
use serde_json::{Value, json};

#[path = "support/sandbox.rs"]
mod sandbox;
use sandbox::peak_memory_mib;

const LOCATION: &str = "ve9EPM428h8vShlRW1KT";
/// GHL's window of 10 s with 100 times its 100 requests: the throughput of a 100x faster
/// limit, with timing margins (jitter, clock skew between client and server) as small
/// against the window as they are against GHL's. (A 100 ms window made the budget's 50 ms
/// jitter margin half a window: two 429s in 300,000 calls.)
const RATE: (u32, Duration) = (10_000, Duration::from_secs(10));

/// The declared state of `spec` (inline records only).
fn desired(spec: &ContactSyncPolicySpec) -> Desired {
    build(spec, &[]).expect("the benchmark's spec is valid")
}

async fn stats(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn delta(after: &Value, before: &Value) -> (u64, u64, u64) {
    let total = after["totalRequests"].as_u64().unwrap_or(0)
        - before["totalRequests"].as_u64().unwrap_or(0);
    let reads_of = |s: &Value| -> u64 {
        s["byOperation"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(op, _)| {
                op.ends_with(".search") || op.ends_with(".get") || op.ends_with(".list")
            })
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum()
    };
    let reads = reads_of(after) - reads_of(before);
    let limited =
        after["rateLimited"].as_u64().unwrap_or(0) - before["rateLimited"].as_u64().unwrap_or(0);
    (total, reads, limited)
}

fn spec(n: usize) -> ContactSyncPolicySpec {
    let mut spec: ContactSyncPolicySpec =
        serde_json::from_value(json!({"connectionRef": {"name": "bench"},
            // The benchmark converges everything in one run, past the default limit.
            "safety": {"maxChanges": u32::MAX}}))
        .unwrap();
    spec.contacts = (0..n)
        .map(|i| ContactRecord {
            email: Some(format!("p{i:06}@bench.example")),
            first_name: Some(format!("P{i}")),
            tags: vec!["bench".into(), format!("cohort-{}", i % 10)],
            tasks: vec![TaskRecord {
                key: "follow-up".into(),
                title: format!("Follow up {i}"),
                due_date: "2030-01-10T15:00:00Z".into(),
                ..TaskRecord::default()
            }],
            notes: vec![NoteRecord {
                key: "origin".into(),
                body: format!("Imported in the benchmark, record {i}"),
            }],
            ..ContactRecord::default()
        })
        .collect::<Vec<_>>()
        .into();
    spec
}

fn main() {
    let n: usize = std::env::var("BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ghl_operator::tls::install_default_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(n));
}

async fn bench(n: usize) {
    let sandbox = sandbox::start(RATE.0, RATE.1);
    let http = reqwest::Client::new();
    let client = sandbox.client(LOCATION);
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::open(dir.path().join("state.json")).unwrap();
    let store = state.owner("bench/ContactSyncPolicy/bench");
    let spec = spec(n);
    let run = |mode: Mode, deep: bool| {
        let mut options = SyncOptions::new(mode, jiff::Timestamp::now());
        options.observe.deep = deep;
        options.apply.concurrency = 16;
        options
    };
    println!(
        "benchmark: {n} contacts, each with 2 tags, 1 task, 1 note; rate limit {}/{:?} (GHL's window, 100x its requests)",
        RATE.0, RATE.1
    );

    // Cold converge.
    let before = stats(&http, &sandbox.url).await;
    let started = Instant::now();
    let cold = sync_policy(
        &client,
        &store,
        desired(&spec),
        PlanOptions::for_spec(&spec),
        run(Mode::Apply, false),
    )
    .await
    .unwrap();
    let cold_time = started.elapsed();
    let (cold_calls, cold_reads, cold_429) = delta(&stats(&http, &sandbox.url).await, &before);
    let failures = cold.report().map_or(0, |a| a.failures.len());
    drop(cold);
    let minimum = 3 * n as u64 + 1; // a create per contact (tags included), task and note; one empty search
    // The server's floor: every call at exactly its rate limit.
    let floor = cold_calls as f64 * RATE.1.as_secs_f64() / f64::from(RATE.0);
    println!(
        "cold converge: {cold_calls} calls = {:.3}x the minimum ({minimum}); {:.1} s = {:.2}x the \
         rate-limit floor ({floor:.1} s); {cold_429} x 429; {failures} records failed; \
         engine peak {:.1} MiB",
        cold_calls as f64 / minimum as f64,
        cold_time.as_secs_f64(),
        cold_time.as_secs_f64() / floor,
        peak_memory_mib()
    );
    if std::env::var_os("BENCH_COLD_ONLY").is_some() {
        return;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Resync of the converged state: routine, then deep.
    let before = stats(&http, &sandbox.url).await;
    let started = Instant::now();
    let resync = sync_policy(
        &client,
        &store,
        desired(&spec),
        PlanOptions::for_spec(&spec),
        run(Mode::Apply, false),
    )
    .await
    .unwrap();
    let resync_empty = resync.plan().is_empty();
    drop(resync);
    let resync_time = started.elapsed();
    let after_resync = stats(&http, &sandbox.url).await;
    let (resync_calls, resync_reads, _) = delta(&after_resync, &before);
    let before = after_resync;
    let deep = sync_policy(
        &client,
        &store,
        desired(&spec),
        PlanOptions::for_spec(&spec),
        run(Mode::Plan, true),
    )
    .await
    .unwrap();
    let deep_empty = deep.plan().is_empty();
    drop(deep);
    let (deep_calls, _, _) = delta(&stats(&http, &sandbox.url).await, &before);

    // 1% drift made in GHL's UI, then repaired.
    // (The sandbox's state is read and dropped before the repair is measured.)
    let drifted = n / 100;
    {
        let state: Value = http
            .get(format!("{}/__sandbox/state", sandbox.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for contact in state["contacts"].as_array().unwrap().iter().take(drifted) {
            let id = contact["id"].as_str().unwrap();
            http.patch(format!("{}/__sandbox/contacts/{id}", sandbox.url))
                .json(&json!({"firstName": "Changed in the UI"}))
                .send()
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = stats(&http, &sandbox.url).await;
    let started = Instant::now();
    let repair = sync_policy(
        &client,
        &store,
        desired(&spec),
        PlanOptions::for_spec(&spec),
        run(Mode::Apply, false),
    )
    .await
    .unwrap();
    let repair_failures = repair.report().map_or(0, |a| a.failures.len());
    let repair_time = started.elapsed();
    let after = stats(&http, &sandbox.url).await;
    let (repair_calls, repair_reads, _) = delta(&after, &before);
    let repair_writes = repair_calls - repair_reads;
    let total_429 = after["rateLimited"].as_u64().unwrap_or(0);

    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>9}",
        "step", "API calls", "target", "time"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8.1}s",
        "cold converge (all writes + reads)",
        cold_calls,
        format!("{minimum} min"),
        cold_time.as_secs_f64()
    );
    println!("{:<44} {:>10} {:>10}", "  of which reads", cold_reads, "");
    println!(
        "{:<44} {:>10.3}",
        "  calls / minimum",
        cold_calls as f64 / minimum as f64
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8.1}s",
        "resync of the converged state",
        resync_calls,
        format!("~{}", n / 500 + n / 100),
        resync_time.as_secs_f64()
    );
    println!(
        "{:<44} {:>10} {:>10}",
        "  writes during the resync",
        resync_calls - resync_reads,
        "0"
    );
    println!(
        "{:<44} {:>10} {:>10}",
        "deep resync (also every note)",
        deep_calls,
        format!("~{}", n / 500 + n / 100 + n)
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8.1}s",
        format!("repair {drifted} drifted contacts (1%): writes"),
        repair_writes,
        drifted,
        repair_time.as_secs_f64()
    );
    println!("{:<44} {:>10}", "  reads during the repair", repair_reads);
    println!(
        "{:<44} {:>10} {:>10}",
        "429 answers (whole run)", total_429, "0"
    );
    println!(
        "{:<44} {:>10} {:>10}",
        "records failed in the cold converge", failures, "0"
    );
    println!(
        "{:<44} {:>9.1}M",
        "engine peak memory (VmHWM)",
        peak_memory_mib()
    );
    println!();
    println!(
        "checks: resync plan empty = {}, deep plan empty = {}, repair left {} failures",
        resync_empty, deep_empty, repair_failures
    );
}
