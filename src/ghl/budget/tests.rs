use super::*;
use crate::crd::connection::RateLimitSpec;

fn budget(config: BudgetConfig) -> RequestBudget {
    RequestBudget::new("loc", config, Arc::new(GhlMetrics::default()))
}

/// A budget of `requests` per `window`, GHL's daily limit.
fn windowed(requests: u32, window: Duration) -> RequestBudget {
    budget(BudgetConfig {
        requests_per_window: requests,
        window,
        ..BudgetConfig::default()
    })
}

#[test]
fn a_spec_budget_is_checked_and_names_the_bad_field() {
    let spec = |json: serde_json::Value| -> RateLimitSpec { serde_json::from_value(json).unwrap() };
    let ok = BudgetConfig::from_spec(Some(&spec(serde_json::json!(
        {"sharePercent": 50, "window": "20s", "requestsPerWindow": 10}
    ))))
    .unwrap();
    assert_eq!(
        (ok.share_percent, ok.window, ok.requests_per_window),
        (50, Duration::from_secs(20), 10)
    );
    assert_eq!(
        BudgetConfig::from_spec(None).unwrap(),
        BudgetConfig::default()
    );
    for (bad, field) in [
        (serde_json::json!({"window": "0s"}), "spec.rateLimit.window"),
        (
            serde_json::json!({"window": "18446744073709551615s"}),
            "spec.rateLimit.window",
        ),
        (
            serde_json::json!({"sharePercent": 0}),
            "spec.rateLimit.sharePercent",
        ),
    ] {
        let err = BudgetConfig::from_spec(Some(&spec(bad)))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(field), "{err}");
    }
}

#[test]
fn share_scales_limits_but_never_to_zero() {
    let config = BudgetConfig {
        share_percent: 25,
        ..BudgetConfig::default()
    };
    let b = budget(config);
    assert_eq!(
        b.view().window_limit,
        20,
        "25% of 100, less the 5-request reserve"
    );
    assert_eq!(b.view().daily_limit, 50_000);
    let tiny = BudgetConfig {
        requests_per_window: 3,
        share_percent: 10,
        ..BudgetConfig::default()
    };
    assert_eq!(budget(tiny).view().window_limit, 1);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_limit_in_any_window() {
    let b = windowed(5, Duration::from_secs(1));
    let start = Instant::now();
    let mut sends = Vec::new();
    for _ in 0..16 {
        b.acquire().await;
        b.observe(None, false, None); // as the transport does with each answer
        sends.push(Instant::now() - start);
    }
    for (i, first) in sends.iter().enumerate() {
        let in_window = sends[i..]
            .iter()
            .take_while(|t| **t - *first < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 4,
            "{in_window} sends within 1s starting at {first:?}"
        );
    }
    // 16 sends at 5 per (1 s + margin) need three full windows of waiting.
    assert!(sends[15] >= Duration::from_secs(3), "{:?}", sends[15]);
    assert!(sends[15] < Duration::from_millis(3200), "{:?}", sends[15]);
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_everyone_for_retry_after() {
    let b = budget(BudgetConfig::default());
    b.acquire().await;
    b.observe(None, true, Some(Duration::from_secs(7)));
    let waited = b.acquire().await;
    assert!(waited >= Duration::from_secs(7), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn headers_correct_the_seeded_limits() {
    let b = budget(BudgetConfig::default());
    let report = RateLimitSnapshot {
        max: Some(3),
        remaining: Some(2),
        interval: Some(Duration::from_secs(2)),
        daily_limit: Some(1000),
        daily_remaining: Some(999),
    };
    b.observe(Some(&report), false, None);
    let view = b.view();
    assert_eq!(view.window_limit, 2, "3, less the one-request reserve");
    assert_eq!(view.window, Duration::from_secs(2));
    assert_eq!(view.daily_limit, 1000);
    // GHL counted one request we did not send: it fills our window too.
    let start = Instant::now();
    b.acquire().await;
    b.observe(None, false, None);
    assert_eq!(Instant::now(), start, "one slot was left");
    for _ in 0..3 {
        b.acquire().await;
        b.observe(None, false, None);
    }
    assert!(Instant::now() - start >= Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn zero_remaining_spent_by_others_waits_a_window() {
    let b = budget(BudgetConfig::default());
    b.acquire().await;
    let report = RateLimitSnapshot {
        remaining: Some(0),
        ..RateLimitSnapshot::default()
    };
    b.observe(Some(&report), false, None);
    let waited = b.acquire().await;
    assert!(waited >= GHL_WINDOW, "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn zero_remaining_after_our_own_full_window_does_not_double_wait() {
    let b = windowed(2, Duration::from_secs(1));
    b.acquire().await;
    b.observe(None, false, None);
    b.acquire().await;
    let report = RateLimitSnapshot {
        remaining: Some(0),
        ..RateLimitSnapshot::default()
    };
    b.observe(Some(&report), false, None);
    let waited = b.acquire().await;
    assert!(waited < Duration::from_millis(1100), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_budget_sends_one_request_until_its_answer() {
    let b = Arc::new(budget(BudgetConfig::default()));
    let start = Instant::now();
    b.acquire().await;
    let second = tokio::spawn({
        let b = Arc::clone(&b);
        async move {
            b.acquire().await;
            Instant::now()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the probe's answer has not come");
    b.observe(None, false, None);
    let sent = second.await.unwrap();
    assert_eq!(sent - start, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_probe_holds_the_others_for_one_window_at_most() {
    let config = BudgetConfig {
        window: Duration::from_secs(1),
        ..BudgetConfig::default()
    };
    let b = budget(config);
    b.acquire().await;
    let waited = b.acquire().await;
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_millis(1100), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn requests_others_spent_fill_our_window() {
    // 100 per 10 s; after our probe GHL has 10 left: 89 were spent by someone else.
    let b = budget(BudgetConfig::default());
    b.acquire().await;
    let report = RateLimitSnapshot {
        max: Some(100),
        remaining: Some(10),
        ..RateLimitSnapshot::default()
    };
    b.observe(Some(&report), false, None);
    let start = Instant::now();
    let mut immediate = 0;
    loop {
        b.acquire().await;
        b.observe(None, false, None);
        if Instant::now() > start {
            break;
        }
        immediate += 1;
    }
    // Our window holds 95 (5 kept in reserve): 1 probe + 89 theirs + 5 more.
    assert_eq!(immediate, 5);
    assert!(Instant::now() - start >= GHL_WINDOW);
}
