//! The engine's memory at steady state for N managed contacts (default 100,000): the records
//! as they arrive (CSV from `contactsFrom`), the desired state, the ledger, the observed state
//! of a routine resync (search results), and the plan — everything one policy holds while it
//! plans. No network: this isolates the engine's data structures from the HTTP stack.
//!
//! `cargo bench --bench memory`; `BENCH_CONTACTS=N` to change the size. Prints the resident
//! memory after each stage, per contact, and the peak.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ghl_operator::crd::contact_sync_policy::ContactSyncPolicySpec;
use ghl_operator::engine::desired::{SourceText, build};
use ghl_operator::engine::ledger::{Change, KeyDigest, Ledger};
use ghl_operator::engine::observe::Keeper;
use ghl_operator::engine::observed::{ContactView, Observed};
use ghl_operator::engine::plan::{PlanOptions, plan};
use ghl_operator::ghl::models::Contact;
use serde_json::json;

/// The system allocator, counting live heap bytes (what the data structures really hold,
/// apart from the allocator's own overhead and fragmentation, which RSS adds).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
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
    let mut csv = String::from("email,firstName,lastName,companyName,tags\n");
    for i in 0..n {
        csv.push_str(&format!(
            "p{i:06}@bench.example,First{i},Last{i},Company {},vip;cohort-{}\n",
            i % 1000,
            i % 10
        ));
    }
    report("source text (CSV)", before_text);

    let spec: ContactSyncPolicySpec = serde_json::from_value(json!({
        "connectionRef": {"name": "bench"},
        "contactsFrom": [{"configMapRef": {"name": "c", "key": "contacts.csv"}, "format": "csv"}]
    }))
    .unwrap();
    let desired = build(
        &spec,
        &[SourceText {
            key: "contacts.csv".into(),
            text: Ok(csv),
            sensitive: false,
        }],
    )
    .expect("records parse");
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
    last_live = report("plan", last_live);
    println!();
    println!(
        "peak (VmHWM) {:>8.1} MiB for {n} contacts; the plan lists {} and counts {} in sync",
        status_kib("VmHWM:") / 1024.0,
        planned.contacts.len(),
        planned.in_sync_omitted
    );

    // Apart from the steady state (after its peak line, which it would raise): the first run
    // of a new policy, nothing bound or observed, every record a create.
    let cold = plan(
        &desired,
        &Observed::default(),
        &Ledger::default(),
        PlanOptions::default(),
    );
    println!();
    report("cold plan of a new policy (all creates)", last_live);
    drop(cold);
    drop((planned, observed, ledger, desired));
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
