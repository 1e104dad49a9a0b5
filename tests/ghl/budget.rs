//! The request budget keeps a burst of callers under GHL's rate limit: they wait instead of
//! causing 429s.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::join_all;
use ghl_operator::ghl::budget::BudgetConfig;
use ghl_operator::ghl::retry::RetryPolicy;
use ghl_operator::ghl::{GhlApi, Operation};

use crate::support::limited_server;
use crate::support::mock_ghl::{client_with, settings};

#[tokio::test]
async fn a_burst_of_five_windows_of_requests_causes_no_429() {
    // GHL's 100 / 10 s, scaled down to 10 / 1 s so the test stays short.
    let limit = 10;
    let window = Duration::from_secs(1);
    let (url, counters) = limited_server::start(limit, window).await;
    let mut settings = settings(&url);
    settings.budget = BudgetConfig {
        requests_per_window: limit,
        window,
        ..BudgetConfig::default()
    };
    // No retries: a 429 would surface as an error instead of being papered over.
    settings.retry = RetryPolicy::none();
    let (client, metrics) = client_with(settings);
    let client = Arc::new(client);

    let started = Instant::now();
    let calls = (0..5 * limit).map(|i| {
        let client = Arc::clone(&client);
        async move { client.get_contact(&format!("c{i}")).await }
    });
    let results = join_all(calls).await;
    let took = started.elapsed();

    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(counters.too_many.load(Ordering::SeqCst), 0);
    assert_eq!(counters.ok.load(Ordering::SeqCst), u64::from(5 * limit));
    assert_eq!(
        metrics.request_count(Operation::GetContact, "2xx"),
        u64::from(5 * limit)
    );
    // Five windows of work need at least four windows of waiting.
    assert!(took >= 4 * window, "{took:?}");
}

#[tokio::test]
async fn without_the_budget_the_same_burst_is_rate_limited() {
    // The control experiment: the server really limits, so the test above means something.
    let limit = 10;
    let window = Duration::from_secs(1);
    let (url, counters) = limited_server::start(limit, window).await;
    let mut settings = settings(&url);
    settings.budget = BudgetConfig {
        requests_per_window: 10_000,
        window,
        ..BudgetConfig::default()
    };
    settings.retry = RetryPolicy::none();
    let (client, _) = client_with(settings);
    let client = Arc::new(client);
    let calls = (0..5 * limit).map(|i| {
        let client = Arc::clone(&client);
        async move { client.get_contact(&format!("c{i}")).await }
    });
    let results = join_all(calls).await;
    assert!(counters.too_many.load(Ordering::SeqCst) > 0);
    let limited = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.category() == "rate_limited"))
        .count();
    assert!(limited > 0);
}

#[tokio::test]
async fn the_budget_learns_the_limit_from_ghl_headers() {
    // Seeded with GHL's published 100 / 10 s, but the server says 10 / 1 s.
    let limit = 10;
    let window = Duration::from_secs(1);
    let (url, counters) = limited_server::start(limit, window).await;
    let mut settings = settings(&url);
    settings.retry = RetryPolicy::none();
    let (client, _) = client_with(settings);
    let client = Arc::new(client);
    // One call teaches the budget; then a burst of three windows.
    client.get_contact("first").await.unwrap();
    let calls = (0..3 * limit).map(|i| {
        let client = Arc::clone(&client);
        async move { client.get_contact(&format!("c{i}")).await }
    });
    let results = join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(counters.too_many.load(Ordering::SeqCst), 0);
}
