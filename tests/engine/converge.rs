//! Converging from empty and onto existing contacts; the second plan is empty.

use std::time::Duration;

use ghl_operator::engine::Mode;
use ghl_operator::engine::apply::{INTENTS_PER_COMMIT, RESULTS_PER_COMMIT};
use ghl_operator::engine::ledger::{Change, Ledger};
use ghl_operator::engine::state::{MemoryStore, StateError, StateStore};
use ghl_operator::ghl::{ConnectionSettings, GhlMetrics, StaticToken};
use ghl_operator::sandbox::{RateLimit, SandboxConfig};
use serde_json::json;

use crate::support::engine::{client, spec, sync};
use crate::support::sandbox::{Raw, start, start_default};

fn vip_spec() -> serde_json::Value {
    json!({"contacts": [
        {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "phone": "+14155550100",
         "companyName": "Analytical Engines", "customFields": {"ZtPpXCQ5SVSmrSrpGOq6": "gold"},
         "tags": ["vip", "newsletter"],
         "tasks": [{"key": "kickoff", "title": "Kickoff call", "body": "Agenda", "dueDate": "2030-01-10T15:00:00Z"}],
         "notes": [{"key": "origin", "body": "Met at the 2030 analytics summit"}]},
        {"email": "grace@example.com", "firstName": "Grace", "tags": ["vip"]}
    ]})
}

#[tokio::test]
async fn converges_from_empty_and_then_plans_nothing() {
    let sandbox = start_default().await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(vip_spec());
    let first = sync(&client, &store, &spec, Mode::Apply).await;
    assert_eq!(
        first.plan().summary().create,
        4,
        "2 contacts, 1 task, 1 note"
    );
    let report = first.report().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    let raw = Raw::new(&sandbox);
    let state = raw.admin("GET", "state", None).await;
    assert_eq!(state["contacts"].as_array().unwrap().len(), 2);
    assert_eq!(state["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(state["notes"].as_array().unwrap().len(), 1);

    let second = sync(&client, &store, &spec, Mode::Plan).await;
    assert!(
        second.plan().is_empty(),
        "{}",
        ghl_operator::engine::plan::render::render("again", second.plan(), Default::default())
    );
}

#[tokio::test]
async fn converges_onto_existing_contacts_without_duplicates() {
    let seed: ghl_operator::sandbox::Seed = serde_json::from_value(json!({"contacts": [
        {"email": "ADA@example.com", "firstName": "Augusta", "tags": ["customer"],
         "tasks": [{"title": "Kickoff call", "dueDate": "2030-01-10T15:00:00Z"}]},
        {"phone": "+14155550199", "firstName": "Someone else"}
    ]}))
    .unwrap();
    let sandbox = crate::support::sandbox::start(ghl_operator::sandbox::SandboxConfig {
        seed,
        search_lag: std::time::Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let spec = spec(vip_spec());
    let first = sync(&client, &store, &spec, Mode::Apply).await;
    let summary = first.plan().summary();
    assert_eq!(summary.adopt, 1, "Ada exists: adopted");
    assert!(first.report().unwrap().failures.is_empty());

    let raw = Raw::new(&sandbox);
    let state = raw.admin("GET", "state", None).await;
    let contacts = state["contacts"].as_array().unwrap();
    assert_eq!(
        contacts.len(),
        3,
        "Ada adopted, Grace created, the other untouched"
    );
    let ada = contacts
        .iter()
        .find(|c| {
            c["email"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case("ada@example.com"))
        })
        .unwrap_or_else(|| panic!("{state:#}"));
    assert_eq!(ada["firstName"], "Ada");
    let ada_tags: Vec<&str> = ada["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        ada_tags,
        ["customer", "newsletter", "vip"],
        "existing tags kept"
    );
    assert_eq!(
        state["tasks"].as_array().unwrap().len(),
        1,
        "the existing identical task was adopted"
    );

    // Immediately again, while search still lags the writes.
    let second = sync(&client, &store, &spec, Mode::Plan).await;
    assert!(
        second.plan().is_empty(),
        "{}",
        ghl_operator::engine::plan::render::render("again", second.plan(), Default::default())
    );
}

/// Counts the commits that reach the store.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    commits: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl StateStore for Counting {
    async fn load(&self) -> Result<Ledger, StateError> {
        self.inner.load().await
    }

    async fn commit(&self, changes: &[Change]) -> Result<(), StateError> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.commit(changes).await
    }

    async fn compact(&self, ledger: &Ledger) -> Result<(), StateError> {
        self.inner.compact(ledger).await
    }
}

#[tokio::test]
async fn a_cold_converge_commits_intents_ahead_and_results_in_batches() {
    const N: usize = 200;
    let sandbox = start(SandboxConfig {
        rate_limit: RateLimit {
            requests: 10_000,
            window: Duration::from_secs(1),
        },
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let mut settings = ConnectionSettings::new(&sandbox.url, &sandbox.location_id);
    settings.budget.requests_per_window = 10_000;
    settings.budget.window = Duration::from_secs(1);
    let client = settings
        .connect(
            std::sync::Arc::new(StaticToken::new(sandbox.token.clone())),
            std::sync::Arc::new(GhlMetrics::default()),
        )
        .unwrap()
        .0;
    let store = Counting::default();
    let records: Vec<_> = (0..N)
        .map(|i| json!({"email": format!("c{i:03}@example.com"), "tags": ["cold"]}))
        .collect();
    let spec = spec(json!({ "contacts": records }));
    let first = sync(&client, &store, &spec, Mode::Apply).await;
    assert_eq!(first.plan().summary().create, N as u32);
    assert!(first.report().unwrap().failures.is_empty());
    // Intents 32 at a time; bound + baseline results (2 per contact) 128 at a time; the end.
    let commits = store.commits.load(std::sync::atomic::Ordering::SeqCst);
    let bound = N.div_ceil(INTENTS_PER_COMMIT) + (2 * N).div_ceil(RESULTS_PER_COMMIT) + 1;
    println!("{N} creates: {commits} ledger commits (at most {bound})");
    assert!(commits <= bound, "{commits} commits for {N} creates");
    // Everything the results said is durable: all bound as created, nothing pending.
    let ledger = store.load().await.unwrap();
    assert_eq!(ledger.contacts.len(), N);
    assert!(ledger.pending.is_empty(), "{:?}", ledger.pending);
    assert!(ledger.contacts.values().all(|c| c.created));
    let second = sync(&client, &store, &spec, Mode::Plan).await;
    assert!(second.plan().is_empty());
}
