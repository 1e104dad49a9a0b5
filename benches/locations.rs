//! Many locations on one operator: 200 GhlConnections (200 sub-accounts of one agency), each
//! with a ContactSyncPolicy of 500 contacts, converged at GHL's own rate limit (100 requests
//! per 10 s per location) by one `ghl-operator run` process. First one location alone, then
//! the 200 together: prints the wall time of each, API calls against the minimum, 429s, and
//! the operator's peak memory.
//!
//! It runs the real binary against the test API server of `scripts/k8s-testenv.sh` (start it
//! first) and an in-process sandbox holding every location.
//!
//! `scripts/k8s-testenv.sh start && cargo bench --bench locations`
//! (`BENCH_LOCATIONS`, `BENCH_CONTACTS` change the sizes).

#[path = "support/cluster.rs"]
mod cluster;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ghl_operator::sandbox::{RateLimit, RunningSandbox, SandboxConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};

use cluster::{
    Operator, apply, create_namespace, free_port, peak_mib, sandbox_stats, test_cluster,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A 20-character location id, like GHL's.
fn location(i: usize) -> String {
    format!("benchLocation{i:07}")
}

/// Declares location `i`'s connection and policy of `contacts` contacts in `namespace`.
async fn declare(
    client: &Client,
    namespace: &str,
    sandbox: &RunningSandbox,
    i: usize,
    contacts: usize,
) {
    let (location, token) = &sandbox.locations[i];
    let records: Vec<Value> = (0..contacts)
        .map(|c| {
            json!({"email": format!("l{i:03}c{c:04}@bench.example"), "firstName": format!("First {c}"),
                   "tags": ["bench", format!("cohort-{}", c % 10)]})
        })
        .collect();
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("pit-{i:03}"), "labels": {"ghl.servis.ai/secret-type": "pit"}},
               "stringData": {"token": token}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
               "metadata": {"name": format!("loc-{i:03}")},
               "spec": {"locationId": location, "baseUrl": sandbox.url,
                        "auth": {"privateIntegrationToken": {"secretRef": {"name": format!("pit-{i:03}"), "key": "token"}}}}}),
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": format!("contacts-{i:03}")},
               "spec": {"connectionRef": {"name": format!("loc-{i:03}")}, "resyncInterval": "1h",
                        "contacts": records}}),
    ] {
        apply(client, namespace, doc).await;
    }
}

/// Waits until every policy in `namespace` is Synced; returns when that was.
async fn wait_synced(client: &Client, namespace: &str, expected: usize) -> Instant {
    let gvk = GroupVersionKind::gvk("ghl.servis.ai", "v1alpha1", "ContactSyncPolicy");
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let policies: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let started = Instant::now();
    // From the API server's watch cache (resourceVersion 0), once a second: a quorum list of
    // hundreds of 60 KB policies every 250 ms goes to etcd each time, and at 200 locations
    // that alone drove etcd past 15 GB.
    let params = ListParams::default().match_any();
    loop {
        let list = policies.list(&params).await.unwrap();
        let synced = list
            .items
            .iter()
            .filter(|p| {
                p.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Synced" && c["status"] == "True")
            })
            .count();
        if synced == expected {
            return Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {synced} of {expected} policies synced"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `(calls, 429s)` the sandbox counted for these locations.
fn counted(stats: &Value, locations: &[String]) -> (u64, u64) {
    locations.iter().fold((0, 0), |(calls, limited), l| {
        let of = &stats["byLocation"][l];
        (
            calls + of["totalRequests"].as_u64().unwrap_or(0),
            limited + of["rateLimited"].as_u64().unwrap_or(0),
        )
    })
}

#[tokio::main]
async fn main() {
    ghl_operator::tls::install_default_provider();
    let locations = env_or("BENCH_LOCATIONS", 200);
    let contacts = env_or("BENCH_CONTACTS", 500);
    let Some((client, path)) = test_cluster().await else {
        return;
    };
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (alone_ns, together_ns) = (format!("bench-one-{run}"), format!("bench-many-{run}"));
    create_namespace(&client, &alone_ns).await;
    create_namespace(&client, &together_ns).await;

    // Location 0 alone first; locations 1..=N together after.
    let sandbox = ghl_operator::sandbox::start(
        SandboxConfig {
            location_id: location(0),
            other_locations: (1..=locations).map(location).collect(),
            rate_limit: RateLimit::default(),
            daily_limit: 200_000,
            ..SandboxConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let log = std::env::temp_dir().join(format!("bench-locations-{run}.log"));
    let operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_ghl-operator"))
            .args([
                "run",
                "--no-leader-election",
                "--default-resync=1h",
                "--connection-check-interval=1h",
                &format!("--metrics-addr=127.0.0.1:{}", free_port()),
                &format!("--watch-namespace={alone_ns}"),
                &format!("--watch-namespace={together_ns}"),
                &format!("--allowed-base-url={}", sandbox.url),
            ])
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the operator starts"),
    );
    let http = reqwest::Client::new();
    let stats = || sandbox_stats(&http, &sandbox.url);
    println!(
        "benchmark: {locations} locations x {contacts} contacts (2 tags each) on one operator; \
         GHL's rate limit (100 / 10 s per location)"
    );

    let started = Instant::now();
    declare(&client, &alone_ns, &sandbox, 0, contacts).await;
    let one = wait_synced(&client, &alone_ns, 1).await - started;
    let (one_calls, one_429) = counted(&stats().await, &[location(0)]);

    let started = Instant::now();
    for i in 1..=locations {
        declare(&client, &together_ns, &sandbox, i, contacts).await;
    }
    let declared = started.elapsed();
    let many = wait_synced(&client, &together_ns, locations).await - started;
    let all: Vec<String> = (1..=locations).map(location).collect();
    let (many_calls, many_429) = counted(&stats().await, &all);
    let peak = peak_mib(operator.0.id());

    // A create per contact (tags included) and one search per location.
    let minimum = |n: usize| (n * (contacts + 1)) as f64;
    println!(
        "one location:      {:>7.1} s   {one_calls} calls = {:.3}x the minimum, {one_429} x 429",
        one.as_secs_f64(),
        one_calls as f64 / minimum(1)
    );
    println!(
        "{locations} locations:     {:>7.1} s   {many_calls} calls = {:.3}x the minimum, {many_429} x 429 \
         (declaring them took {:.1} s of it)",
        many.as_secs_f64(),
        many_calls as f64 / minimum(locations),
        declared.as_secs_f64()
    );
    println!(
        "wall time, {locations} locations vs one: {:.2}x",
        many.as_secs_f64() / one.as_secs_f64()
    );
    println!("operator peak memory (VmHWM): {peak:.1} MiB");
    drop(operator);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [alone_ns, together_ns] {
        let _ = namespaces.delete(&ns, &Default::default()).await;
    }
}
