//! GHL's rate-limit headers (`X-RateLimit-*`), as the budget and the responses carry them.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Longest rate-limit window believed (GHL's is 10 s): a larger one is cut to this.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The `X-RateLimit-*` headers of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    /// `X-RateLimit-Max`: requests per window.
    pub max: Option<u32>,
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Interval-Milliseconds`: the window.
    pub interval: Option<Duration>,
    /// `X-RateLimit-Limit-Daily`.
    pub daily_limit: Option<u32>,
    /// `X-RateLimit-Daily-Remaining`.
    pub daily_remaining: Option<u32>,
}

impl RateLimitSnapshot {
    /// Reads the headers; `None` when GHL sent none of them. Unparsable values are ignored.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| -> Option<u64> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let small = |name: &str| number(name).map(|n| n.min(u64::from(u32::MAX)) as u32);
        let snapshot = Self {
            max: small("x-ratelimit-max"),
            remaining: small("x-ratelimit-remaining"),
            interval: number("x-ratelimit-interval-milliseconds")
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms).min(MAX_INTERVAL)),
            daily_limit: small("x-ratelimit-limit-daily"),
            daily_remaining: small("x-ratelimit-daily-remaining"),
        };
        (snapshot != Self::default()).then_some(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn reads_ghl_rate_limit_headers() {
        let h = headers(&[
            ("x-ratelimit-max", "100"),
            ("x-ratelimit-remaining", "97"),
            ("x-ratelimit-interval-milliseconds", "10000"),
            ("x-ratelimit-limit-daily", "200000"),
            ("x-ratelimit-daily-remaining", "199990"),
        ]);
        let snap = RateLimitSnapshot::from_headers(&h).unwrap();
        assert_eq!(snap.max, Some(100));
        assert_eq!(snap.remaining, Some(97));
        assert_eq!(snap.interval, Some(Duration::from_secs(10)));
        assert_eq!(snap.daily_limit, Some(200_000));
        assert_eq!(snap.daily_remaining, Some(199_990));
        assert_eq!(RateLimitSnapshot::from_headers(&HeaderMap::new()), None);
        let junk = headers(&[("x-ratelimit-remaining", "lots")]);
        assert_eq!(RateLimitSnapshot::from_headers(&junk), None);
        let huge = headers(&[
            ("x-ratelimit-max", "18446744073709551615"),
            ("x-ratelimit-interval-milliseconds", "18446744073709551615"),
        ]);
        let snap = RateLimitSnapshot::from_headers(&huge).unwrap();
        assert_eq!(snap.max, Some(u32::MAX));
        assert_eq!(snap.interval, Some(MAX_INTERVAL));
    }
}
