//! GHL's per-location rate limit: a fixed burst window and a daily allowance, reported in the
//! `X-RateLimit-*` headers of every answer, 429 past the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::config::RateLimit;

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug)]
struct Usage {
    window_started: Instant,
    window_used: u32,
    day_started: Instant,
    day_used: u32,
}

/// The verdict for one request, with the headers to send either way.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub allowed: bool,
    pub headers: HeaderMap,
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    daily_limit: u32,
    usage: Mutex<HashMap<String, Usage>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit, daily_limit: u32) -> Self {
        Self {
            limit,
            daily_limit,
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request for `location` (refused requests count too, as at GHL).
    pub fn check(&self, location: &str) -> Verdict {
        let now = Instant::now();
        let mut all = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let usage = all.entry(location.to_owned()).or_insert(Usage {
            window_started: now,
            window_used: 0,
            day_started: now,
            day_used: 0,
        });
        if now.duration_since(usage.window_started) >= self.limit.window {
            usage.window_started = now;
            usage.window_used = 0;
        }
        if now.duration_since(usage.day_started) >= DAY {
            usage.day_started = now;
            usage.day_used = 0;
        }
        let allowed = usage.window_used < self.limit.requests && usage.day_used < self.daily_limit;
        if allowed {
            usage.window_used += 1;
            usage.day_used += 1;
        }
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: u64| {
            headers.insert(name, HeaderValue::from(value));
        };
        put("x-ratelimit-max", u64::from(self.limit.requests));
        put(
            "x-ratelimit-remaining",
            u64::from(self.limit.requests.saturating_sub(usage.window_used)),
        );
        put(
            "x-ratelimit-interval-milliseconds",
            self.limit.window.as_millis() as u64,
        );
        put("x-ratelimit-limit-daily", u64::from(self.daily_limit));
        put(
            "x-ratelimit-daily-remaining",
            u64::from(self.daily_limit.saturating_sub(usage.day_used)),
        );
        Verdict { allowed, headers }
    }

    pub fn reset(&self) {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fixed_window_then_429_then_reset() {
        let limiter = RateLimiter::new(
            RateLimit {
                requests: 3,
                window: Duration::from_secs(1),
            },
            100,
        );
        let remaining: Vec<String> = (0..4)
            .map(|_| {
                let v = limiter.check("loc");
                format!(
                    "{}:{}",
                    v.allowed,
                    v.headers["x-ratelimit-remaining"].to_str().unwrap()
                )
            })
            .collect();
        assert_eq!(remaining, ["true:2", "true:1", "true:0", "false:0"]);
        assert!(
            limiter.check("other").allowed,
            "locations have separate budgets"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.check("loc").allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_allowance_runs_out() {
        let limiter = RateLimiter::new(RateLimit::default(), 2);
        assert!(limiter.check("loc").allowed);
        assert!(limiter.check("loc").allowed);
        let third = limiter.check("loc");
        assert!(!third.allowed);
        assert_eq!(third.headers["x-ratelimit-daily-remaining"], "0");
    }
}
