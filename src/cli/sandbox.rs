//! `ghl-operator sandbox`: run the GHL emulator until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::crd::DurationString;
use crate::sandbox::config::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COMPANY_ID, DEFAULT_LOCATION_ID,
    DEFAULT_TOKEN, load_seed,
};
use crate::sandbox::webhooks::Keys;
use crate::sandbox::{self, FaultSpec, RateLimit, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to serve on.
    #[arg(long, env = "GHL_SANDBOX_LISTEN", default_value = "127.0.0.1:8088")]
    pub listen: SocketAddr,
    /// A sub-account (location) the sandbox holds; repeat (or separate with commas) for
    /// several locations of one agency, each with its own data, rate limit and token. The
    /// seed fills the first.
    #[arg(
        long = "location-id",
        env = "GHL_SANDBOX_LOCATION_ID",
        value_delimiter = ',',
        default_value = DEFAULT_LOCATION_ID
    )]
    pub location_ids: Vec<String>,
    /// The Private Integration Token of the first location (`<token>.<locationId>` for the
    /// others).
    #[arg(long, env = "GHL_SANDBOX_TOKEN", default_value = DEFAULT_TOKEN)]
    pub token: String,
    /// Client id of the sandbox's OAuth app.
    #[arg(long, env = "GHL_SANDBOX_OAUTH_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    pub oauth_client_id: String,
    /// Client secret of the sandbox's OAuth app.
    #[arg(long, env = "GHL_SANDBOX_OAUTH_CLIENT_SECRET", default_value = DEFAULT_CLIENT_SECRET)]
    pub oauth_client_secret: String,
    /// The agency (company) that owns the location.
    #[arg(long, default_value = DEFAULT_COMPANY_ID)]
    pub company_id: String,
    /// Per-location burst limit, REQUESTS/WINDOW.
    #[arg(long, default_value = "100/10s")]
    pub rate_limit: RateLimit,
    /// Per-location requests per day.
    #[arg(long, default_value_t = 200_000)]
    pub daily_limit: u32,
    /// Lifetime of OAuth access tokens, in seconds.
    #[arg(long, default_value_t = 86_399)]
    pub access_token_ttl: u64,
    /// How long writes take to appear in search results (e.g. 1s, 500ms, 0s).
    #[arg(long, default_value = "1s")]
    pub search_lag: DurationString,
    /// Pre-existing data (YAML or JSON): contacts with tasks, notes and appointments.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// POST signed webhook events here.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Fault injection, e.g. `seed=42,5xx=0.05,slow=0.02,slow-delay=2s,timeout=0.01,drop=0.01,422-created=0.1`.
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<FaultSpec>,
    /// Let the location hold duplicate contacts (GHL's "Allow Duplicate Contact").
    #[arg(long)]
    pub allow_duplicate_contact: bool,
}

impl SandboxArgs {
    pub fn to_config(&self) -> anyhow::Result<SandboxConfig> {
        let seed = match &self.seed {
            Some(path) => load_seed(path)?,
            None => Default::default(),
        };
        Ok(SandboxConfig {
            location_id: self.location_ids.first().cloned().unwrap_or_default(),
            other_locations: self.location_ids.iter().skip(1).cloned().collect(),
            token: self.token.clone(),
            oauth_client_id: self.oauth_client_id.clone(),
            oauth_client_secret: self.oauth_client_secret.clone(),
            company_id: self.company_id.clone(),
            rate_limit: self.rate_limit,
            daily_limit: self.daily_limit,
            access_token_ttl: Duration::from_secs(self.access_token_ttl),
            search_lag: self.search_lag.parse().context("--search-lag")?,
            faults: self.faults.clone().unwrap_or_default(),
            seed,
            webhook_url: self.webhook_url.clone(),
            allow_duplicate_contact: self.allow_duplicate_contact,
            ..SandboxConfig::default()
        })
    }
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let config = args.to_config()?;
    let webhooks = config.webhook_url.is_some();
    let running = sandbox::start(config, args.listen).await?;
    println!("GHL sandbox listening on {}", running.url);
    for (location, token) in &running.locations {
        println!("  location id: {location}  token: {token}");
    }
    println!(
        "  OAuth app:   {} (mint codes with POST {}/__sandbox/oauth/code)",
        args.oauth_client_id, running.url
    );
    println!(
        "  admin:       {}/__sandbox/stats, /state, /reset, /clock",
        running.url
    );
    if webhooks {
        let keys = Keys::get();
        println!(
            "Webhook signature keys (also at {}/__sandbox/webhook-keys):",
            running.url
        );
        println!(
            "X-GHL-Signature (Ed25519):\n{}",
            keys.ed25519_public_pem.trim_end()
        );
        println!(
            "x-wh-signature (RSA-SHA256):\n{}",
            keys.rsa_public_pem.trim_end()
        );
    }
    // Ctrl-C, or SIGTERM when a pod is deleted (`sandbox.enabled` in the chart).
    crate::controller::runtime::run::termination().await;
    running.stop();
    Ok(ExitCode::SUCCESS)
}
