//! The request budget: one per (connection, location), shared by every request the connection
//! makes, so that callers wait for budget instead of causing 429s.
//!
//! GHL limits each location to 100 requests per 10 s window and 200,000 per day, and reports
//! the state in `X-RateLimit-*` headers. The budget
//! - paces our own requests with a sliding window: never more than `limit × share` sends in any
//!   window-long interval (plus a small margin for network jitter, and 5% of the window kept
//!   in reserve), which also keeps every fixed window GHL might use under the limit;
//! - spends the daily allowance with a GCRA quota (`governor`), so a big plan cannot burn the
//!   whole day in an hour unless the day has room;
//! - corrects itself from the headers: a different `X-RateLimit-Max` / interval / daily limit
//!   replaces the seeded ones, and "nothing remaining" while our own window has room means
//!   another client spends the same location's budget, so we wait a full window;
//! - stops on a 429 until `Retry-After` (or one window) has passed.
//!
//! `governor` alone cannot do this: GCRA lets up to twice the limit through in one window and
//! has no notion of a server-reported remainder.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::headers::RateLimitSnapshot;
use super::metrics::GhlMetrics;
use crate::crd::common::duration_field;
use crate::crd::connection::RateLimitSpec;

/// GHL's published burst limit.
pub const GHL_WINDOW_LIMIT: u32 = 100;
/// GHL's published burst window.
pub const GHL_WINDOW: Duration = Duration::from_secs(10);
/// GHL's published daily limit.
pub const GHL_DAILY_LIMIT: u32 = 200_000;

/// How long to wait before probing again once GHL reports the daily budget spent.
const DAILY_EXHAUSTED_PROBE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// The limits a budget starts from, before GHL's headers correct them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetConfig {
    pub requests_per_window: u32,
    pub window: Duration,
    pub daily_limit: u32,
    /// Percentage (1-100) of the location's budget this connection may use.
    pub share_percent: u8,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            requests_per_window: GHL_WINDOW_LIMIT,
            window: GHL_WINDOW,
            daily_limit: GHL_DAILY_LIMIT,
            share_percent: 100,
        }
    }
}

impl BudgetConfig {
    /// The budget a GhlConnection's `spec.rateLimit` asks for; a value that cannot be used is
    /// refused with a message naming its field.
    pub fn from_spec(limit: Option<&RateLimitSpec>) -> Result<Self, String> {
        let mut budget = Self::default();
        let Some(limit) = limit else {
            return Ok(budget);
        };
        if let Some(share) = limit.share_percent {
            if !(1..=100).contains(&share) {
                return Err(format!(
                    "spec.rateLimit.sharePercent: {share} is out of range (1 to 100)"
                ));
            }
            budget.share_percent = share;
        }
        if let Some(n) = limit.requests_per_window {
            budget.requests_per_window = n.max(1);
        }
        budget.window = duration_field(
            limit.window.as_ref(),
            "spec.rateLimit.window",
            GHL_WINDOW,
            Duration::from_secs(1),
            Duration::from_secs(3_600),
        )?;
        if let Some(daily) = limit.daily_limit {
            budget.daily_limit = daily.max(1);
        }
        Ok(budget)
    }

    fn share(&self, limit: u32) -> u32 {
        let share = u64::from(self.share_percent.clamp(1, 100));
        ((u64::from(limit) * share / 100) as u32).max(1)
    }

    /// Our share of a burst window, less a 5% reserve (at least one request) for network
    /// jitter and for the server's window starting where we cannot see it.
    fn window_share(&self, limit: u32) -> u32 {
        let ours = self.share(limit);
        let reserve = limit.div_ceil(20).max(1);
        ours.saturating_sub(reserve).max(1)
    }
}

/// What the budget currently believes; also the source of the connection's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetView {
    /// Our own limit per window (GHL's limit × share).
    pub window_limit: u32,
    pub window: Duration,
    /// Our own daily allowance (GHL's daily limit × share).
    pub daily_limit: u32,
    /// The last headers GHL sent, if any.
    pub last_reported: Option<RateLimitSnapshot>,
}

/// A shared request budget for one (connection, location).
pub struct RequestBudget {
    location: String,
    config: BudgetConfig,
    /// FIFO queue of waiters: held while a caller waits for its slot, so callers are served in
    /// arrival order and none starves.
    queue: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    metrics: Arc<GhlMetrics>,
}

struct State {
    /// GHL's limit per window and the window, as seeded or reported.
    server_window_limit: u32,
    window: Duration,
    server_daily_limit: u32,
    /// Our sends within the last window (+ margin), oldest first.
    sent: VecDeque<Instant>,
    daily: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
    last_reported: Option<RateLimitSnapshot>,
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBudget")
            .field("location", &self.location)
            .field("view", &self.view())
            .finish()
    }
}

impl RequestBudget {
    pub fn new(
        location: impl Into<String>,
        config: BudgetConfig,
        metrics: Arc<GhlMetrics>,
    ) -> Self {
        let state = State {
            server_window_limit: config.requests_per_window.max(1),
            window: config.window.max(Duration::from_millis(1)),
            server_daily_limit: config.daily_limit.max(1),
            sent: VecDeque::new(),
            daily: Arc::new(daily_limiter(config.share(config.daily_limit))),
            paused_until: None,
            last_reported: None,
        };
        Self {
            location: location.into(),
            config,
            queue: tokio::sync::Mutex::new(()),
            state: Mutex::new(state),
            metrics,
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// Waits until one request may be sent, and counts it. Returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        let _turn = self.queue.lock().await;
        loop {
            let now = Instant::now();
            let (wake_at, daily) = {
                let mut state = self.lock();
                match state.paused_until {
                    Some(until) if until > now => (Some(until), None),
                    _ => {
                        state.paused_until = None;
                        let limit = self.config.window_share(state.server_window_limit) as usize;
                        let span = span(state.window);
                        while state
                            .sent
                            .front()
                            .is_some_and(|sent| now.duration_since(*sent) >= span)
                        {
                            state.sent.pop_front();
                        }
                        if state.sent.len() < limit {
                            (None, Some(Arc::clone(&state.daily)))
                        } else {
                            // The slot frees when the send `limit` places back leaves the window.
                            (
                                Some(later(state.sent[state.sent.len() - limit], span)),
                                None,
                            )
                        }
                    }
                }
            };
            if let Some(daily) = daily {
                daily.until_ready().await;
                let mut state = self.lock();
                if state
                    .paused_until
                    .is_some_and(|until| until > Instant::now())
                {
                    continue; // a 429 arrived while we waited for the daily quota
                }
                state.sent.push_back(Instant::now());
                break;
            }
            if let Some(wake_at) = wake_at {
                tokio::time::sleep_until(wake_at).await;
            }
        }
        let waited = started.elapsed();
        self.metrics.observe_budget_wait(waited);
        waited
    }

    /// Learns from an answer: its rate-limit headers, whether it was a 429, and `Retry-After`.
    pub fn observe(
        &self,
        reported: Option<&RateLimitSnapshot>,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(report) = reported {
            state.last_reported = Some(*report);
            if let Some(max) = report.max.filter(|m| *m > 0) {
                state.server_window_limit = max;
            }
            if let Some(interval) = report.interval {
                state.window = interval;
            }
            if let Some(daily) = report.daily_limit.filter(|d| *d > 0)
                && daily != state.server_daily_limit
            {
                state.server_daily_limit = daily;
                state.daily = Arc::new(daily_limiter(self.config.share(daily)));
            }
            let span = span(state.window);
            let ours_in_window = state
                .sent
                .iter()
                .filter(|sent| now.duration_since(**sent) < span)
                .count();
            let our_limit = self.config.window_share(state.server_window_limit) as usize;
            if report.remaining == Some(0) && ours_in_window < our_limit {
                // Someone else spent this location's window: we cannot know when it resets.
                let until = later(now, state.window.min(MAX_PAUSE));
                self.pause(&mut state, until);
            }
            if report.daily_remaining == Some(0) {
                self.pause(&mut state, later(now, DAILY_EXHAUSTED_PROBE));
            }
            self.metrics.set_budget_remaining(
                &self.location,
                report.remaining,
                report.daily_remaining,
            );
        }
        if rate_limited {
            let until = later(now, retry_after.unwrap_or(state.window).min(MAX_PAUSE));
            self.pause(&mut state, until);
        }
    }

    /// The current limits and the last report, for status.
    pub fn view(&self) -> BudgetView {
        let state = self.lock();
        BudgetView {
            window_limit: self.config.window_share(state.server_window_limit),
            window: state.window,
            daily_limit: self.config.share(state.server_daily_limit),
            last_reported: state.last_reported,
        }
    }

    fn pause(&self, state: &mut State, until: Instant) {
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The sliding window plus a margin for network jitter: requests sent exactly one window apart
/// can arrive less than a window apart.
fn span(window: Duration) -> Duration {
    window.saturating_add((window / 50).max(Duration::from_millis(50)))
}

/// Longest pause a budget takes from one answer (a window, a `Retry-After`): no header value
/// stops a connection for longer.
const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// `at + wait` without overflow (an instant that far away is as good as never).
fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .unwrap_or_else(|| at + Duration::from_secs(365 * 86_400))
}

fn daily_limiter(per_day: u32) -> DefaultDirectRateLimiter {
    let per_day = NonZeroU32::new(per_day.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (DAY / per_day.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(per_day);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(config: BudgetConfig) -> RequestBudget {
        RequestBudget::new("loc", config, Arc::new(GhlMetrics::default()))
    }

    #[test]
    fn a_spec_budget_is_checked_and_names_the_bad_field() {
        let spec =
            |json: serde_json::Value| -> RateLimitSpec { serde_json::from_value(json).unwrap() };
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
            let err = BudgetConfig::from_spec(Some(&spec(bad))).unwrap_err();
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
        let config = BudgetConfig {
            requests_per_window: 5,
            window: Duration::from_secs(1),
            ..BudgetConfig::default()
        };
        let b = budget(config);
        let start = Instant::now();
        let mut sends = Vec::new();
        for _ in 0..16 {
            b.acquire().await;
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
        let start = Instant::now();
        for _ in 0..4 {
            b.acquire().await;
        }
        assert!(Instant::now() - start >= Duration::from_secs(2));
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
        let config = BudgetConfig {
            requests_per_window: 2,
            window: Duration::from_secs(1),
            ..BudgetConfig::default()
        };
        let b = budget(config);
        b.acquire().await;
        b.acquire().await;
        let report = RateLimitSnapshot {
            remaining: Some(0),
            ..RateLimitSnapshot::default()
        };
        b.observe(Some(&report), false, None);
        let waited = b.acquire().await;
        assert!(waited < Duration::from_millis(1100), "{waited:?}");
    }
}
