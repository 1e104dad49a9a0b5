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
    // (Sent around the client: with a budget, even a wrong seed is corrected by the first
    // answer's headers before the burst goes out.)
    let limit = 10;
    let (url, counters) = limited_server::start(limit, Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let calls = (0..5 * limit).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(format!("{url}/contacts/c{i}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = join_all(calls).await;
    let limited = statuses.iter().filter(|s| matches!(s, Ok(429))).count();
    assert!(limited > 0, "{statuses:?}");
    assert_eq!(counters.too_many.load(Ordering::SeqCst), limited as u64);
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

#[tokio::test]
async fn a_fresh_client_after_another_spent_the_window_causes_no_429() {
    // Another process (the CLI, another replica) has just spent 9 of the window's 10; a new
    // client starts a burst. It probes with one request, learns from `X-RateLimit-Remaining`
    // that the window is spent, and waits instead of drawing 429s.
    let limit = 10;
    let window = Duration::from_secs(1);
    let (url, counters) = limited_server::start(limit, window).await;
    let budget = BudgetConfig {
        requests_per_window: limit,
        window,
        ..BudgetConfig::default()
    };
    let client = |budget| {
        let mut settings = settings(&url);
        settings.budget = budget;
        settings.retry = RetryPolicy::none();
        Arc::new(client_with(settings).0)
    };
    let other = client(budget);
    let spent = join_all((0..limit - 1).map(|i| {
        let other = Arc::clone(&other);
        async move { other.get_contact(&format!("o{i}")).await }
    }))
    .await;
    assert!(spent.iter().all(Result::is_ok));

    let fresh = client(budget);
    let results = join_all((0..2 * limit).map(|i| {
        let fresh = Arc::clone(&fresh);
        async move { fresh.get_contact(&format!("c{i}")).await }
    }))
    .await;
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(counters.too_many.load(Ordering::SeqCst), 0);
}
