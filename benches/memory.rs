//! The engine's memory at steady state for N managed contacts (default 100,000): the records
//! as they arrive (CSV from `contactsFrom`), the desired state, the ledger, the observed state
//! of a routine resync (search results), and the plan — everything one policy holds while it
//! plans. No network: this isolates the engine's data structures from the HTTP stack.
//!
//! Then, in a process of its own (so that its peak is its own), the first converge of a new
//! policy of the same N contacts as the operator runs it: the records read from CSV, planned
//! (every record a create), and applied against the sandbox — itself another process — with
//! the ledger's journal committed as it goes and compacted at the end.
//!
//! `cargo bench --bench memory`; `BENCH_CONTACTS=N` to change the size. Prints the resident
//! memory after each stage, per contact, the steady `peak (VmHWM)`, and the first converge's
//! `cold peak (VmHWM)`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use ghl_operator::crd::contact_sync_policy::ContactSyncPolicySpec;
use ghl_operator::engine::desired::{SourceText, build};
use ghl_operator::engine::ledger::{Change, KeyDigest, Ledger};
use ghl_operator::engine::observe::Keeper;
use ghl_operator::engine::observed::{ContactView, Observed};
use ghl_operator::engine::plan::{PlanOptions, plan};
use ghl_operator::engine::state::file::StateFile;
use ghl_operator::engine::{Mode, SyncOptions, sync_policy};
use ghl_operator::ghl::models::Contact;
use serde_json::{Value, json};

#[path = "support/sandbox.rs"]
mod sandbox;

/// Set in the child process that measures the first converge.
const COLD_PHASE: &str = "GHL_BENCH_MEMORY_COLD";
const LOCATION: &str = "ve9EPM428h8vShlRW1KT";

/// The system allocator, counting live heap bytes (what the data structures really hold,
/// apart from the allocator's own overhead and fragmentation, which RSS adds).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been.
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mib() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0.0)
}

fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn main() {
    let n: usize = std::env::var("BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if std::env::var_os(COLD_PHASE).is_some() {
        return cold_converge(n);
    }
    let base = rss_mib();
    let before_text = live_mib();
    // `since`: the heap figure the stage's growth is measured from.
    let report = |stage: &str, last_live: f64| {
        let (rss, live) = (rss_mib(), live_mib());
        println!(
            "{stage:<46} {:>7.1} MiB resident {:>7.1} MiB heap (+{:>5.0} B/contact)",
            rss - base,
            live,
            (live - last_live) * 1024.0 * 1024.0 / n as f64
        );
        live
    };
    println!("engine memory for {n} managed contacts (resident above the baseline; live heap)");

    // What contactsFrom delivers: CSV text (several ConfigMaps in practice).
    let csv = csv(n);
    report("source text (CSV)", before_text);

    let spec = spec();
    let desired = build(&spec, &[source(csv)]).expect("records parse");
    assert_eq!(desired.contacts.len(), n);
    // The text is dropped once parsed: the desired state's growth is counted from before it.
    let mut last_live = report("desired state (text dropped)", before_text);

    // The ledger a previous run left: every contact bound, its tags owned, its baseline.
    let mut ledger = Ledger::default();
    for i in 0..n {
        let view = ContactView::from_contact(&search_result(i), false);
        let id = view.id.to_string();
        ledger.apply(&Change::ContactBound {
            key: KeyDigest::of(&format!("p{i:06}@bench.example")),
            id: id.clone(),
            created: true,
        });
        ledger.apply(&Change::TagsAdded {
            id: id.clone(),
            tags: ["vip".to_owned(), format!("cohort-{}", i % 10)].into(),
        });
        ledger.apply(&Change::ContactObserved {
            id,
            fingerprint: view.fingerprint(),
            written_at: None,
            hidden: Default::default(),
        });
    }
    last_live = report("ledger (ids, digests, owned tags, baselines)", last_live);

    // A routine resync's search results, page by page, kept as the observe step keeps them:
    // only contacts the plan can concern, and in-sync bound contacts settled to their id.
    let mut observed = Observed::default();
    let keeper = Keeper::new(&desired, &ledger, true);
    for i in 0..n {
        keeper.keep(
            &mut observed,
            ContactView::from_contact(&search_result(i), false),
        );
    }
    drop(keeper);
    last_live = report("observed state (search results)", last_live);

    let options = PlanOptions {
        omit_in_sync: true,
        ..PlanOptions::default()
    };
    let planned = plan(&desired, &observed, &ledger, options);
    report("plan", last_live);
    println!();
    println!(
        "peak (VmHWM) {:>8.1} MiB for {n} contacts; the plan lists {} and counts {} in sync",
        status_kib("VmHWM:") / 1024.0,
        planned.contacts.len(),
        planned.in_sync_omitted
    );

    drop((planned, observed, ledger, desired));

    // The first converge, in a process of its own (this one's peak is the steady state's).
    println!();
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env(COLD_PHASE, "1")
        .env("BENCH_CONTACTS", n.to_string())
        .status()
        .expect("the cold phase runs");
    assert!(status.success(), "the cold phase failed: {status}");
}

/// The policy: `n` records from one CSV key, every change allowed (a first converge of a
/// large policy is approved, or its limit raised, before it runs).
fn spec() -> ContactSyncPolicySpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "bench"},
        "contactsFrom": [{"configMapRef": {"name": "c", "key": "contacts.csv"}, "format": "csv"}],
        "safety": {"maxChanges": u32::MAX}
    }))
    .unwrap()
}

/// `n` records as CSV: email, names, a company, two tags.
fn csv(n: usize) -> String {
    let mut csv = String::from("email,firstName,lastName,companyName,tags\n");
    for i in 0..n {
        csv.push_str(&format!(
            "p{i:06}@bench.example,First{i},Last{i},Company {},vip;cohort-{}\n",
            i % 1000,
            i % 10
        ));
    }
    csv
}

fn source(text: String) -> SourceText {
    SourceText {
        key: "contacts.csv".into(),
        text: Ok(text),
        sensitive: false,
    }
}

/// The first converge of a new policy, as the operator runs it: CSV text read, records
/// built, planned (every one a create) and applied with the journal, then compacted.
fn cold_converge(n: usize) {
    // The sandbox's limit is far above GHL's: this phase measures memory, not pacing.
    const RATE: (u32, Duration) = (1_000_000, Duration::from_secs(10));
    ghl_operator::tls::install_default_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sandbox = sandbox::start(RATE.0, RATE.1);
        let client = sandbox.client(LOCATION);
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::open(dir.path().join("state.json")).unwrap();
        let store = state.owner("bench/ContactSyncPolicy/bench");
        let spec = spec();
        let started = Instant::now();
        let desired = build(&spec, &[source(csv(n))]).expect("records parse");
        let mut options = SyncOptions::new(Mode::Apply, jiff::Timestamp::now());
        options.apply.concurrency = 16;
        let outcome = sync_policy(
            &client,
            &store,
            desired,
            PlanOptions::for_spec(&spec),
            options,
        )
        .await
        .expect("the first converge runs");
        let elapsed = started.elapsed();
        let failures = outcome.report().map_or(0, |r| r.failures.len());
        let created = outcome.plan().summary().create;
        drop(outcome);
        let stats: Value = reqwest::get(format!("{}/__sandbox/stats", sandbox.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!(
            "first converge of a new policy of {n} contacts (read, plan, apply with its journal, \
             compact; the sandbox in another process): {created} created, {failures} failed, \
             {} calls, {:.1} s",
            stats["totalRequests"],
            elapsed.as_secs_f64()
        );
        assert_eq!(failures, 0, "every record is created");
        println!(
            "cold peak (VmHWM) {:>8.1} MiB for {n} contacts (live heap at most {:.1} MiB)",
            sandbox::peak_memory_mib(),
            PEAK.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
        );
    });
}

/// Contact `i` as GHL's search returns it.
fn search_result(i: usize) -> Contact {
    serde_json::from_value(json!({
        "id": format!("c{i:019}"), "locationId": "ve9EPM428h8vShlRW1KT",
        "email": format!("p{i:06}@bench.example"), "firstName": format!("First{i}"),
        "lastName": format!("Last{i}"), "companyName": format!("Company {}", i % 1000),
        "tags": ["vip", format!("cohort-{}", i % 10)], "dateAdded": "2030-01-01T00:00:00.000Z"
    }))
    .unwrap()
}
