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
//! - stops on a 429 until `Retry-After` (or one window) has passed;
//! - starts cautiously: a new budget sends one request and waits for its answer before any
//!   other, and every answer's `X-RateLimit-Remaining` tells it how much of the window others
//!   (another replica, the CLI, another integration) have spent: those requests count as
//!   sends in our window until a full window has passed, so concurrency grows only into room
//!   the server has reported.
//!
//! `governor` alone cannot do this: GCRA lets up to twice the limit through in one window and
//! has no notion of a server-reported remainder.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

mod config;
#[cfg(test)]
mod tests;

pub use self::config::{BudgetConfig, GHL_DAILY_LIMIT, GHL_WINDOW, GHL_WINDOW_LIMIT};
use super::headers::RateLimitSnapshot;
use super::metrics::GhlMetrics;

/// How long to wait before probing again once GHL reports the daily budget spent.
const DAILY_EXHAUSTED_PROBE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

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
    /// Signalled on every answer (what the probe waits for).
    answered: tokio::sync::Notify,
    metrics: Arc<GhlMetrics>,
}

/// Where the first request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// Nothing sent yet: the next request goes alone.
    Unsent,
    /// The probe left at this instant; others wait for its answer (at most one window).
    InFlight(Instant),
    /// An answer has taught the budget what the server has left.
    Answered,
}

struct State {
    /// GHL's limit per window and the window, as seeded or reported.
    server_window_limit: u32,
    window: Duration,
    server_daily_limit: u32,
    /// Our sends within the last window (+ margin), oldest first.
    sent: VecDeque<Instant>,
    /// Sends by others that GHL reported (its count less ours), in batches stamped when we
    /// learned of them: they fill our window until a full window has passed. One entry per
    /// report, however large the reported number.
    foreign: VecDeque<(Instant, usize)>,
    probe: Probe,
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
            foreign: VecDeque::new(),
            probe: Probe::Unsent,
            daily: Arc::new(daily_limiter(config.share(config.daily_limit))),
            paused_until: None,
            last_reported: None,
        };
        Self {
            location: location.into(),
            config,
            queue: tokio::sync::Mutex::new(()),
            state: Mutex::new(state),
            answered: tokio::sync::Notify::new(),
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
                let span = span(state.window);
                match (state.paused_until, state.probe) {
                    (Some(until), _) if until > now => (Some(until), None),
                    (_, Probe::InFlight(at)) if now < later(at, span) => {
                        (Some(later(at, span)), None)
                    }
                    _ => {
                        state.paused_until = None;
                        let limit = self.config.window_share(state.server_window_limit) as usize;
                        expire(&mut state.sent, now, span);
                        let window = state.window;
                        expire_batches(&mut state.foreign, now, window);
                        let used = state.sent.len().saturating_add(foreign(&state));
                        if used < limit {
                            (None, Some(Arc::clone(&state.daily)))
                        } else {
                            // A slot frees when the send `limit` places back leaves the window.
                            (Some(oldest_to_leave(&state, used - limit)), None)
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
                let now = Instant::now();
                state.sent.push_back(now);
                if state.probe == Probe::Unsent {
                    state.probe = Probe::InFlight(now);
                }
                break;
            }
            if let Some(wake_at) = wake_at {
                // An answer may end the wait early (the probe's, or one that lifts a pause).
                tokio::select! {
                    () = tokio::time::sleep_until(wake_at) => {}
                    () = self.answered.notified() => {}
                }
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
                // A window longer than an hour is taken as an hour (no header stops us longer).
                state.window = interval.clamp(Duration::from_millis(1), MAX_PAUSE);
            }
            if let Some(daily) = report.daily_limit.filter(|d| *d > 0)
                && daily != state.server_daily_limit
            {
                state.server_daily_limit = daily;
                state.daily = Arc::new(daily_limiter(self.config.share(daily)));
            }
            let span = span(state.window);
            expire(&mut state.sent, now, span);
            let window = state.window;
            expire_batches(&mut state.foreign, now, window);
            if let Some(remaining) = report.remaining {
                // What the server counted in its window beyond our own sends was spent by
                // someone else; those sends stay in our window for a full window.
                let used = state.server_window_limit.saturating_sub(remaining) as usize;
                let theirs = used.saturating_sub(state.sent.len());
                let known = foreign(&state);
                if theirs > known {
                    state.foreign.push_back((now, theirs - known));
                }
            }
            if report.daily_remaining == Some(0) {
                self.pause(&mut state, later(now, DAILY_EXHAUSTED_PROBE));
            }
            self.metrics.set_budget(
                &self.location,
                (report.remaining, report.daily_remaining),
                (state.server_window_limit, state.server_daily_limit),
            );
        }
        if rate_limited {
            let until = later(now, retry_after.unwrap_or(state.window).min(MAX_PAUSE));
            self.pause(&mut state, until);
        }
        state.probe = Probe::Answered;
        drop(state);
        self.answered.notify_one();
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

/// Drops the sends that have left the window.
fn expire(sends: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while sends
        .front()
        .is_some_and(|sent| now.duration_since(*sent) >= span)
    {
        sends.pop_front();
    }
}

fn expire_batches(batches: &mut VecDeque<(Instant, usize)>, now: Instant, span: Duration) {
    while batches
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) >= span)
    {
        batches.pop_front();
    }
}

/// Sends by others in the window.
fn foreign(state: &State) -> usize {
    state
        .foreign
        .iter()
        .fold(0usize, |sum, (_, n)| sum.saturating_add(*n))
}

/// When the send (ours or reported) that is `index`-th to leave the window leaves it: ours
/// after the window and a jitter margin, theirs (stamped when we learned of them, so already
/// late) after the window.
fn oldest_to_leave(state: &State, index: usize) -> Instant {
    let span = span(state.window);
    let mut ours = state.sent.iter().map(|at| later(*at, span)).peekable();
    let mut theirs = state
        .foreign
        .iter()
        .map(|(at, n)| (later(*at, state.window), *n))
        .peekable();
    let mut left = index;
    loop {
        let (leaves, count) = match (ours.peek().copied(), theirs.peek().copied()) {
            (Some(a), Some((b, n))) if b < a => {
                theirs.next();
                (b, n)
            }
            (Some(a), _) => {
                ours.next();
                (a, 1)
            }
            (None, Some((b, n))) => {
                theirs.next();
                (b, n)
            }
            (None, None) => return Instant::now(),
        };
        if left < count {
            return leaves;
        }
        left -= count;
    }
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
