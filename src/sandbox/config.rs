//! Sandbox settings: what `ghl-operator sandbox` takes on its command line, also usable
//! in-process by tests.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::seed::Seed;
use crate::crd::DurationString;
use crate::crd::common::InvalidDuration;

/// The sandbox's location when none is given (the id GHL's own examples use).
pub const DEFAULT_LOCATION_ID: &str = "ve9EPM428h8vShlRW1KT";
/// The Private Integration Token the sandbox accepts when none is given.
pub const DEFAULT_TOKEN: &str = "pit-sandbox-token";
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client-id";
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-client-secret";
pub const DEFAULT_COMPANY_ID: &str = "sandboxCompany000001";

/// Everything that shapes a sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The first location (the seed fills it; `token` is its Private Integration Token).
    pub location_id: String,
    /// Further locations of the same agency: each with its own data, rate limit and
    /// Private Integration Token ([`SandboxConfig::token_for`]).
    pub other_locations: Vec<String>,
    /// A pre-issued Private Integration Token for the location (all contact scopes).
    pub token: String,
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// The agency that owns the location (for Company tokens and `/oauth/locationToken`).
    pub company_id: String,
    pub rate_limit: RateLimit,
    pub daily_limit: u32,
    pub access_token_ttl: Duration,
    /// How long writes take to show up in search and list results.
    pub search_lag: Duration,
    pub faults: FaultSpec,
    pub seed: Seed,
    pub webhook_url: Option<String>,
    /// The location's "Allow Duplicate Contact" setting.
    pub allow_duplicate_contact: bool,
    /// How long a webhook answered with 429 waits before the sandbox retries it (GHL: 10 min).
    pub webhook_retry_delay: Duration,
    /// Webhooks posted at once (GHL's many workers post independent events side by side).
    pub webhook_concurrency: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            location_id: DEFAULT_LOCATION_ID.into(),
            other_locations: Vec::new(),
            token: DEFAULT_TOKEN.into(),
            oauth_client_id: DEFAULT_CLIENT_ID.into(),
            oauth_client_secret: DEFAULT_CLIENT_SECRET.into(),
            company_id: DEFAULT_COMPANY_ID.into(),
            rate_limit: RateLimit::default(),
            daily_limit: 200_000,
            access_token_ttl: Duration::from_secs(86_399),
            search_lag: Duration::from_secs(1),
            faults: FaultSpec::default(),
            seed: Seed::default(),
            webhook_url: None,
            allow_duplicate_contact: false,
            webhook_retry_delay: Duration::from_secs(1),
            webhook_concurrency: 8,
        }
    }
}

impl SandboxConfig {
    /// Every location, the first first (an empty `location_id` is the default one).
    pub fn locations(&self) -> Vec<String> {
        let first = if self.location_id.is_empty() {
            DEFAULT_LOCATION_ID.to_owned()
        } else {
            self.location_id.clone()
        };
        let mut all = vec![first];
        for location in &self.other_locations {
            if !all.contains(location) {
                all.push(location.clone());
            }
        }
        all
    }

    /// A location's Private Integration Token: `token` for the first, `token.<locationId>`
    /// for the others.
    pub fn token_for(&self, location: &str) -> String {
        if self
            .locations()
            .first()
            .is_some_and(|first| first == location)
        {
            self.token.clone()
        } else {
            format!("{}.{location}", self.token)
        }
    }
}

/// Requests allowed per window, per location: `100/10s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// A sandbox flag's value that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidFlag {
    #[error("expected REQUESTS/WINDOW like 100/10s, got {0:?}")]
    NotARate(String),
    #[error("invalid request count {0:?}")]
    Count(String),
    #[error("the request count must be at least 1")]
    NoRequests,
    #[error(transparent)]
    Duration(#[from] InvalidDuration),
    #[error("the window must be longer than zero")]
    EmptyWindow,
    #[error("expected key=value, got {0:?}")]
    NotKeyValue(String),
    #[error("{key}: expected a share between 0 and 1, got {value:?}")]
    Share { key: String, value: String },
    #[error("seed: expected a number, got {0:?}")]
    Seed(String),
    #[error(
        "unknown fault {0:?} (known: seed, 5xx, slow, slow-delay, timeout, drop, 422-created, webhook-drop, on)"
    )]
    UnknownFault(String),
    #[error("the fault shares add up to {0}, more than 1")]
    SharesOver(f64),
}

impl FromStr for RateLimit {
    type Err = InvalidFlag;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, window) = text
            .split_once('/')
            .ok_or_else(|| InvalidFlag::NotARate(text.to_owned()))?;
        let requests: u32 = count
            .trim()
            .parse()
            .map_err(|_| InvalidFlag::Count(count.to_owned()))?;
        if requests == 0 {
            return Err(InvalidFlag::NoRequests);
        }
        let window = DurationString::new(window.trim()).parse()?;
        if window.is_zero() {
            return Err(InvalidFlag::EmptyWindow);
        }
        Ok(Self { requests, window })
    }
}

/// Deterministic fault injection: each GHL request `n` draws from a generator seeded with
/// `(seed, n)`, so a given seed and request order always fail the same way.
///
/// Written as `seed=42,5xx=0.05,slow=0.02,slow-delay=2s,timeout=0.01,drop=0.01,422-created=0.1`
/// (requests) and `webhook-drop=0.5` (webhooks); `on=oauth.token` limits request faults to
/// operations whose name starts with that (e.g. only the token endpoint).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct FaultSpec {
    pub seed: u64,
    /// Share of requests answered 500/502/503 without being carried out.
    pub server_error: f64,
    /// Share of requests carried out, then answered after `slow_delay`.
    pub slow: f64,
    pub slow_delay: Duration,
    /// Share of requests carried out, then never answered (the client times out).
    pub timeout: f64,
    /// Share of requests carried out, then the connection is dropped mid-answer.
    pub drop: f64,
    /// Share of contact creates carried out, then answered 422 (GHL's known quirk).
    pub created_but_422: f64,
    /// Share of webhooks silently never delivered (as GHL loses any it cannot deliver at once
    /// and is not answered 429 for).
    pub webhook_drop: f64,
    /// Only operations whose name starts with this get request faults (all when empty).
    pub only: String,
}

impl FaultSpec {
    /// True when no fault can happen.
    pub fn is_off(&self) -> bool {
        self.server_error + self.slow + self.timeout + self.drop + self.created_but_422 <= 0.0
    }
}

impl FromStr for FaultSpec {
    type Err = InvalidFlag;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec {
            slow_delay: Duration::from_secs(2),
            ..FaultSpec::default()
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| InvalidFlag::NotKeyValue(part.to_owned()))?;
            let share = || -> Result<f64, InvalidFlag> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=1.0).contains(v))
                    .ok_or_else(|| InvalidFlag::Share {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    })
            };
            match key {
                "seed" => {
                    spec.seed = value
                        .parse()
                        .map_err(|_| InvalidFlag::Seed(value.to_owned()))?
                }
                "5xx" => spec.server_error = share()?,
                "slow" => spec.slow = share()?,
                "slow-delay" => spec.slow_delay = DurationString::new(value).parse()?,
                "timeout" => spec.timeout = share()?,
                "drop" => spec.drop = share()?,
                "422-created" => spec.created_but_422 = share()?,
                "webhook-drop" => spec.webhook_drop = share()?,
                "on" => spec.only = value.to_owned(),
                other => return Err(InvalidFlag::UnknownFault(other.to_owned())),
            }
        }
        let total = spec.server_error + spec.slow + spec.timeout + spec.drop;
        if total > 1.0 {
            return Err(InvalidFlag::SharesOver(total));
        }
        Ok(spec)
    }
}

/// Reads a seed file (JSON or YAML, by extension; YAML is a superset of JSON anyway).
pub fn load_seed(path: &Path) -> Result<Seed, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| SeedError::Parse {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A seed that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse {
        path: std::path::PathBuf,
        reason: String,
    },
    /// One contact of the seed is refused as GHL would refuse it.
    #[error("seed contact {contact}: {problem}")]
    Contact { contact: usize, problem: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            "100/10s".parse::<RateLimit>().unwrap(),
            RateLimit {
                requests: 100,
                window: Duration::from_secs(10)
            }
        );
        assert_eq!(
            "5/500ms".parse::<RateLimit>().unwrap().window,
            Duration::from_millis(500)
        );
        for bad in ["100", "0/10s", "x/10s", "10/", "10/0s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fault_specs_parse_and_refuse_nonsense() {
        let spec: FaultSpec =
            "seed=7,5xx=0.1,slow=0.05,slow-delay=300ms,timeout=0.02,drop=0.03,422-created=0.5"
                .parse()
                .unwrap();
        assert_eq!(spec.seed, 7);
        assert_eq!(spec.server_error, 0.1);
        assert_eq!(spec.slow_delay, Duration::from_millis(300));
        assert_eq!(spec.created_but_422, 0.5);
        assert!(!spec.is_off());
        assert!("".parse::<FaultSpec>().unwrap().is_off());
        for bad in ["5xx=2", "bogus=0.1", "5xx", "5xx=0.6,drop=0.6", "seed=x"] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }
}
