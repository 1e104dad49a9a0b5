//! GHL answering anything: every request of a policy sync, a TagRule run and the paginators
//! gets an answer from a generated script — bodies of arbitrary JSON (shaped by GHL's field
//! names) or raw bytes, any status, any `Retry-After`, any rate-limit headers — through the
//! real client stack (retries, the request budget). Nothing may panic, and everything ends:
//! time is virtual (tokio's paused clock), so an hour-long `Retry-After` (or one request an
//! hour) costs nothing, but a wait that never ends would fail the case.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use ghl_operator::crd::contact_sync_policy::ContactSyncPolicySpec;
use ghl_operator::crd::tag_rule::TagRuleSpec;
use ghl_operator::engine::desired::build;
use ghl_operator::engine::ownership::TagDeclarations;
use ghl_operator::engine::plan::PlanOptions;
use ghl_operator::engine::state::{MemoryStore, StateStore};
use ghl_operator::engine::tag_rule::{RuleItems, observe_rule, settle_rule};
use ghl_operator::engine::{Mode, SyncOptions, sync_policy};
use ghl_operator::ghl::headers::RateLimitSnapshot;
use ghl_operator::ghl::models::{ContactSearch, TaskSearch};
use ghl_operator::ghl::paginate::{list_all, location_tasks_all, search_all};
use ghl_operator::ghl::request::{ApiRequest, ApiResponse};
use ghl_operator::ghl::retry::{RetryPolicy, Retrying};
use ghl_operator::ghl::transport::{Budgeted, Transport};
use ghl_operator::ghl::{BudgetConfig, GhlClient, GhlError, GhlMetrics, RequestBudget};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::inputs::{json, object_over};

/// One scripted answer.
#[derive(Clone, Debug)]
enum Answer {
    Success {
        status: u16,
        body: Vec<u8>,
        limits: Option<RateLimitSnapshot>,
    },
    Failure {
        status: u16,
        body: Vec<u8>,
        retry_after: Option<Duration>,
        limits: Option<RateLimitSnapshot>,
    },
    /// The answer broke off or did not parse at the transport.
    Garbled,
}

/// A GHL that answers from a script, in a loop.
struct Scripted {
    answers: Vec<Answer>,
    next: AtomicUsize,
}

#[async_trait]
impl Transport for Scripted {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, GhlError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        if n > 20_000 {
            panic!(
                "runaway: request {n} is {} {}",
                request.operation, request.path
            );
        }
        match self.answers[n % self.answers.len()].clone() {
            Answer::Success {
                status,
                body,
                limits,
            } => Ok(ApiResponse {
                status,
                body: body.into(),
                rate_limit: limits,
            }),
            Answer::Failure {
                status,
                body,
                retry_after,
                limits,
            } => Err(GhlError::from_status(
                request.operation,
                status,
                &body,
                retry_after,
                limits,
            )),
            Answer::Garbled => Err(GhlError::MalformedResponse {
                operation: request.operation,
                status: 200,
                detail: "garbled".into(),
            }),
        }
    }
}

fn limits() -> impl Strategy<Value = Option<RateLimitSnapshot>> {
    let small = || {
        prop::option::of(prop_oneof![
            Just(0u32),
            Just(1),
            Just(u32::MAX),
            any::<u32>()
        ])
    };
    let interval = prop::option::of(prop_oneof![
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(10)),
        Just(Duration::from_secs(3600)),
    ]);
    // A daily limit of a handful would (rightly) wait for tomorrow on the real clock.
    let daily = prop::option::of(prop_oneof![Just(200_000u32), Just(u32::MAX)]);
    prop::option::of((small(), small(), interval, daily, small())).prop_map(|parts| {
        parts.map(
            |(max, remaining, interval, daily_limit, daily_remaining)| RateLimitSnapshot {
                max,
                remaining,
                interval,
                daily_limit,
                daily_remaining,
            },
        )
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let contact = || object_over(json!({"id": "c1", "email": "a@example.com"}));
    prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        contact().prop_map(|c| json!({"contact": c}).to_string().into_bytes()),
        prop::collection::vec(contact(), 0..4).prop_map(|cs| {
            json!({"contacts": cs, "total": cs.len()})
                .to_string()
                .into_bytes()
        }),
        prop::collection::vec(object_over(json!({"id": "t1"})), 0..3)
            .prop_map(|ts| json!({"tasks": ts, "notes": ts}).to_string().into_bytes()),
        contact().prop_map(|c| json!({"contact": c, "new": true, "succeded": true})
            .to_string()
            .into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let retry_after = prop::option::of(prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_secs(3600)),
        any::<u64>().prop_map(Duration::from_secs),
    ]);
    prop_oneof![
        6 => (prop_oneof![Just(200u16), Just(201), Just(204), 200u16..300], body(), limits())
            .prop_map(|(status, body, limits)| Answer::Success { status, body, limits }),
        3 => (prop_oneof![Just(400u16), Just(401), Just(404), Just(422), Just(429), Just(500), Just(502), 300u16..600], body(), retry_after, limits())
            .prop_map(|(status, body, retry_after, limits)| Answer::Failure { status, body, retry_after, limits }),
        1 => Just(Answer::Garbled),
    ]
}

fn client(answers: Vec<Answer>) -> GhlClient {
    let metrics = Arc::new(GhlMetrics::default());
    let budget = Arc::new(RequestBudget::new(
        "loc",
        BudgetConfig::default(),
        Arc::clone(&metrics),
    ));
    let scripted = Scripted {
        answers,
        next: AtomicUsize::new(0),
    };
    let retry = RetryPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(50),
        max_retries: 2,
    };
    let stack = Retrying::new(Budgeted::new(scripted, budget), retry, metrics);
    GhlClient::new(Arc::new(stack), "loc")
}

fn policy() -> ContactSyncPolicySpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "acme"}, "prune": true,
        "contacts": [
            {"email": "a@example.com", "firstName": "A", "tags": ["vip"],
             "tasks": [{"key": "t", "title": "Call", "dueDate": "2030-01-01T00:00:00Z"}],
             "notes": [{"key": "n", "body": "hello"}]},
            {"email": "b@example.com", "customFields": {"f1": "x"}},
        ]
    }))
    .unwrap()
}

fn rule() -> TagRuleSpec {
    serde_json::from_value(json!({
        "connectionRef": {"name": "acme"},
        "selector": {"filters": [{"field": "tags", "operator": "eq", "value": "vip"}], "noteContains": "hello"},
        "addTags": ["x"], "removeTags": ["y"],
        "tasks": [{"key": "call", "title": "Call", "dueIn": "1d"}],
        "notes": [{"key": "intro", "body": "Hot lead"}],
        "onLeave": "CompleteTasks"
    }))
    .unwrap()
}

/// Everything the engine asks GHL, answered by the script.
async fn drive(answers: Vec<Answer>) {
    let api = client(answers);
    let store = MemoryStore::default();
    let spec = policy();
    let desired = build(&spec, &[]).unwrap();
    for mode in [Mode::Apply, Mode::Apply, Mode::Plan] {
        let _ = sync_policy(
            &api,
            &store,
            desired.clone(),
            PlanOptions::for_spec(&spec),
            SyncOptions::new(mode, jiff::Timestamp::now()),
        )
        .await;
    }
    let rule = rule();
    let rule_store = MemoryStore::default();
    if let Ok(ledger) = rule_store.load().await
        && let Ok(seen) = observe_rule(&api, &rule, &ledger, None, 2).await
    {
        let _ = settle_rule(
            &api,
            &rule_store,
            ledger,
            &rule,
            &RuleItems::of(&rule).unwrap(),
            &seen,
            &TagDeclarations::default(),
            &SyncOptions::new(Mode::Apply, jiff::Timestamp::now()),
        )
        .await;
    }
    let _ = search_all(&api, ContactSearch::default())
        .take(300)
        .collect::<Vec<_>>()
        .await;
    let _ = list_all(&api, 100, None)
        .take(300)
        .collect::<Vec<_>>()
        .await;
    let _ = location_tasks_all(&api, TaskSearch::default())
        .take(300)
        .collect::<Vec<_>>()
        .await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_ghl_answers_end_without_panic(answers in prop::collection::vec(answer(), 1..12)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let ended = runtime.block_on(async {
            // GHL may allow one request an hour: waiting for it is right, forever is not.
            tokio::time::timeout(Duration::from_secs(365 * 24 * 3600), drive(answers)).await
        });
        prop_assert!(ended.is_ok(), "a sync waited more than a (virtual) year");
    }
}

#[test]
fn a_huge_retry_after_and_window_pause_a_connection_for_at_most_an_hour() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let budget = RequestBudget::new(
            "loc",
            BudgetConfig::default(),
            Arc::new(GhlMetrics::default()),
        );
        let huge = RateLimitSnapshot {
            remaining: Some(0),
            interval: Some(Duration::MAX),
            ..RateLimitSnapshot::default()
        };
        budget.observe(Some(&huge), true, Some(Duration::MAX));
        let waited = budget.acquire().await;
        assert!(
            waited <= Duration::from_secs(3600) + Duration::from_secs(1),
            "waited {waited:?}"
        );
        assert!(waited >= Duration::from_secs(3599), "waited {waited:?}");
    });
}

#[test]
fn a_search_cursor_that_does_not_advance_stops_the_pagination() {
    let same = json!({"contacts": (0..100).map(|i| json!({"id": format!("c{i}"), "searchAfter": [1, "x"]})).collect::<Vec<Value>>(), "total": 100000});
    let answers = vec![Answer::Success {
        status: 200,
        body: same.to_string().into_bytes(),
        limits: None,
    }];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let results: Vec<_> = runtime.block_on(async {
        let api = client(answers);
        let search = ContactSearch {
            page_limit: 100,
            ..ContactSearch::default()
        };
        search_all(&api, search).take(10_000).collect().await
    });
    assert!(
        results.len() <= 201,
        "stopped after the repeated cursor: {}",
        results.len()
    );
    assert!(results.last().is_some_and(Result::is_err));
}
