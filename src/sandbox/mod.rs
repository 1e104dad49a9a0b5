//! The GHL sandbox: a stateful, in-memory emulator of GHL's Contacts and OAuth APIs, the
//! embedded default of the CLI and the test double of every test (nothing calls real GHL).
//!
//! It behaves like GHL where clients can tell: response envelopes and field names, 20-character
//! ids, `{"succeded": true}`, NestJS-style 422s for unknown or mistyped fields, the `Version`
//! header, bearer tokens and scopes, per-location rate limits with `X-RateLimit-*` headers,
//! expiring access tokens and single-use refresh tokens, search that lags writes, duplicate
//! rules on create and upsert, and signed webhooks. Faults can be injected deterministically.
//! It can hold several locations of one agency, each with its own data, rate limit and token.
//!
//! Admin routes under `/__sandbox/` (not GHL's; those about data take `?locationId=`, default
//! the first location): `GET stats` (also per location), `GET state`, `POST reset`,
//! `POST oauth/code`, `POST clock`, `GET webhook-keys`, `PATCH|DELETE contacts/{id}` (edits as a
//! person in GHL's UI would make them: not counted, webhooks sent), `POST contacts/{id}/appointments`
//! and `PATCH appointments/{id}` (a booking made or moved in GHL: `AppointmentCreate` /
//! `AppointmentUpdate` sent).
//!
//! Where the official spec is silent or contradicts documented behaviour, the sandbox follows
//! the documented behaviour: `docs/sandbox.md` lists each deliberate deviation.

mod auth;
mod clock;
pub mod config;
pub mod consent;
mod errors;
pub mod export;
mod faults;
mod gateway;
mod ids;
mod rate_limit;
mod routes;
mod search;
pub mod seed;
mod stats;
mod store;
mod validate;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{FaultSpec, RateLimit, SandboxConfig};
pub use seed::{Seed, SeedContact};
pub use store::fields::field_id;

use auth::{OAuthApp, Tokens};
use clock::Clock;
use config::SeedError;
use ids::IdGen;
use rate_limit::RateLimiter;
use stats::Stats;
use store::Store;
use webhooks::Webhooks;

/// Shared state of a running sandbox.
pub(crate) struct App {
    api_version: String,
    company_id: String,
    seed: Seed,
    allow_duplicates: bool,
    /// One store per location, the first first.
    stores: Vec<Mutex<Store>>,
    /// Position in `stores` by location id.
    store_index: HashMap<String, usize>,
    tokens: Mutex<Tokens>,
    rate_limiter: RateLimiter,
    faults: FaultSpec,
    stats: Arc<Stats>,
    clock: Arc<Clock>,
    webhooks: Webhooks,
}

impl App {
    /// The first location's store.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.stores[0])
    }

    /// A location's store, if the sandbox holds the location.
    fn store_of(&self, location: &str) -> Option<MutexGuard<'_, Store>> {
        self.store_index
            .get(location)
            .map(|at| lock(&self.stores[*at]))
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Back to the seeded state: data, rate limits and counters (issued tokens stay valid).
    /// The seed fills the first location; the others start empty.
    fn reset(&self) -> Result<(), SeedError> {
        self.store().reset(&self.seed, self.allow_duplicates)?;
        for store in &self.stores[1..] {
            lock(store).reset(&Seed::default(), self.allow_duplicates)?;
        }
        self.rate_limiter.reset();
        self.stats.reset();
        self.tokens().refresh_token_reuse = 0;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sandbox serving on a local port.
pub struct RunningSandbox {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub addr: SocketAddr,
    /// The first location and its token.
    pub location_id: String,
    pub token: String,
    /// Every location with its Private Integration Token, the first first.
    pub locations: Vec<(String, String)>,
    server: JoinHandle<()>,
}

impl RunningSandbox {
    /// Stops serving.
    pub fn stop(self) {
        self.server.abort();
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listener has no address: {0}")]
    NoAddress(#[source] std::io::Error),
    #[error(transparent)]
    Seed(#[from] SeedError),
}

/// Starts a sandbox on `listen` (port 0 picks a free port).
pub async fn start(
    config: SandboxConfig,
    listen: SocketAddr,
) -> Result<RunningSandbox, SandboxError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SandboxError::Listen {
            addr: listen,
            source,
        })?;
    serve(config, listener).await
}

/// Serves a sandbox on an already bound listener.
pub async fn serve(
    config: SandboxConfig,
    listener: TcpListener,
) -> Result<RunningSandbox, SandboxError> {
    let addr = listener.local_addr().map_err(SandboxError::NoAddress)?;
    let ids = Arc::new(IdGen::new(config.faults.seed));
    let clock = Arc::new(Clock::default());
    let stats = Arc::new(Stats::default());
    let locations = config.locations();
    let mut stores = Vec::with_capacity(locations.len());
    for (n, location) in locations.iter().enumerate() {
        let mut store = Store::new(
            location.clone(),
            config.allow_duplicate_contact,
            config.search_lag,
            Arc::clone(&ids),
            Arc::clone(&clock),
        );
        let seed = if n == 0 {
            config.seed.clone()
        } else {
            Seed::default()
        };
        store.reset(&seed, config.allow_duplicate_contact)?;
        stores.push(Mutex::new(store));
    }
    let pits: Vec<(String, String)> = locations
        .iter()
        .map(|location| (config.token_for(location), location.clone()))
        .collect();
    let tokens = Tokens::new(
        &pits,
        &config.company_id,
        OAuthApp {
            client_id: config.oauth_client_id.clone(),
            client_secret: config.oauth_client_secret.clone(),
        },
        config.access_token_ttl,
        Arc::clone(&ids),
    );
    let webhooks = Webhooks::start(
        config.webhook_url.clone(),
        webhooks::Delivery {
            retry_delay: config.webhook_retry_delay,
            drop: config.faults.webhook_drop,
            seed: config.faults.seed,
            concurrency: config.webhook_concurrency,
        },
        Arc::clone(&ids),
        Arc::clone(&clock),
        Arc::clone(&stats),
    );
    let app = Arc::new(App {
        api_version: crate::crd::connection::DEFAULT_API_VERSION.to_owned(),
        company_id: config.company_id.clone(),
        seed: config.seed.clone(),
        allow_duplicates: config.allow_duplicate_contact,
        stores,
        store_index: locations
            .iter()
            .enumerate()
            .map(|(at, location)| (location.clone(), at))
            .collect(),
        tokens: Mutex::new(tokens),
        rate_limiter: RateLimiter::new(config.rate_limit, config.daily_limit),
        faults: config.faults.clone(),
        stats,
        clock,
        webhooks,
    });
    let router = routes::router(app);
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "sandbox server stopped");
        }
    });
    Ok(RunningSandbox {
        url: format!("http://{addr}"),
        addr,
        location_id: locations[0].clone(),
        token: config.token,
        locations: pits
            .into_iter()
            .map(|(token, location)| (location, token))
            .collect(),
        server,
    })
}
