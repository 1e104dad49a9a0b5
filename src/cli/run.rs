//! `ghl-operator run`: the in-cluster operator. Every flag can also come from the environment
//! (the chart sets them), so the same image runs anywhere.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::admission::{AdmissionOptions, Target};
use crate::controller::context::{Approvals, OperatorConfig, Sizing};
use crate::controller::runtime::leases::leader::LeaseConfig;
use crate::controller::runtime::run::WebhookOptions;
use crate::controller::runtime::scope::Scope;
use crate::controller::{self, RunOptions};
use crate::crd::DurationString;
use crate::egress::AllowList;
use crate::webhook::PublicKeys;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "GHL_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace; repeat (or separate with commas) for several. Default: all
    /// namespaces (which needs cluster-wide RBAC).
    #[arg(
        long = "watch-namespace",
        env = "GHL_WATCH_NAMESPACE",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    pub watch_namespaces: Vec<String>,
    /// Deprecated (removed in the next release): let policies and rules use every
    /// GhlConnection of every namespace. A connection's `spec.allowedNamespaces` grants this
    /// per connection.
    #[arg(long, env = "GHL_ALLOW_CROSS_NAMESPACE_REFS")]
    pub allow_cross_namespace_refs: bool,
    /// Objects of one kind reconciled at once, across all connections (each waits on its own
    /// location's budget, so hundreds of connections proceed side by side).
    #[arg(long, env = "GHL_CONCURRENCY", default_value_t = 256)]
    pub concurrency: u16,
    /// Full syncs of one connection's policies and rules at once (they share its budget).
    #[arg(long, env = "GHL_SYNCS_PER_CONNECTION", default_value_t = 2)]
    pub syncs_per_connection: usize,
    /// Contacts applied in parallel within one policy.
    #[arg(long, env = "GHL_APPLY_CONCURRENCY", default_value_t = 4)]
    pub apply_concurrency: usize,
    /// Every how many resyncs a policy also re-reads notes and fields search does not return.
    #[arg(long, env = "GHL_DEEP_RESYNC_EVERY", default_value_t = 6)]
    pub deep_resync_every: u32,
    /// Resync interval for policies and rules that name none.
    #[arg(long, env = "GHL_DEFAULT_RESYNC", default_value = "10m")]
    pub default_resync: DurationString,
    /// How often a ready connection re-checks its credentials with GHL.
    #[arg(long, env = "GHL_CONNECTION_CHECK_INTERVAL", default_value = "5m")]
    pub connection_check_interval: DurationString,
    /// Run without leader election (only ever one replica!).
    #[arg(long, env = "GHL_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// The operator's own namespace, where its Leases and its keys Secret live (default: the
    /// pod's namespace).
    #[arg(long, env = "GHL_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "GHL_LEASE_NAME", default_value = "ghl-operator-leader")]
    pub lease_name: String,
    /// How long a leader that stopped renewing keeps the Lease.
    #[arg(long, env = "GHL_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: DurationString,
    /// Split the locations (and every connection, policy and rule on them) over this many
    /// shards, each with its own Lease (`<lease-name>-shard-<i>`); the replicas divide them
    /// evenly and take over a dead replica's within the Lease duration. 1: one leader.
    #[arg(long, env = "GHL_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: u32,
    /// This process's identity (default: the pod name, else the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Serve `POST /webhooks/ghl` (GHL's signed webhooks) on this address (default: none).
    #[arg(long, env = "GHL_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// With `--shards`: the IP at which the other replicas reach this one's webhook receiver
    /// (on the `--webhook-addr` port; the chart gives the pod IP). A replica forwards a
    /// webhook for a shard it does not hold to its holder, instead of answering 429 (GHL
    /// retries a 429 only after 10 minutes).
    #[arg(long, env = "GHL_ADVERTISE_ADDRESS", requires = "webhook_addr")]
    pub advertise_address: Option<std::net::IpAddr>,
    /// A PEM file with a public key (Ed25519 or RSA, SPKI) to verify webhooks with, or a folder
    /// of them (a mounted ConfigMap); repeat for several. Replaces GHL's published keys (for a
    /// key rotation, or the sandbox's keys).
    #[arg(
        long = "webhook-public-key",
        env = "GHL_WEBHOOK_PUBLIC_KEYS",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub webhook_public_keys: Vec<PathBuf>,
    /// Webhook work accepted but not done (pending feed deliveries, targeted syncs) before
    /// the receiver answers 429, which GHL retries.
    #[arg(long, env = "GHL_WEBHOOK_BACKLOG", default_value_t = 10_000)]
    pub webhook_backlog: usize,
    /// Serve the admission webhook on this address (TLS, with a certificate the operator makes
    /// and keeps in Secret `ghl-operator-admission-tls`), register it as the webhook
    /// configuration `ghl-operator-approvals` (`--admission-configuration`), and honour only approvals it stamped: approving
    /// then needs the RBAC verb `approve`, by someone other than the spec's author.
    #[arg(long, env = "GHL_ADMISSION_ADDR", requires = "admission_url")]
    pub admission_addr: Option<SocketAddr>,
    /// Where the API server reaches the admission webhook: `https://HOST:PORT[/path]`, or
    /// `https://SERVICE.NAMESPACE.svc[:PORT]` for a Service (what the chart gives).
    #[arg(long, env = "GHL_ADMISSION_URL", requires = "admission_addr")]
    pub admission_url: Option<String>,
    /// The name of the webhook configuration the operator registers (one per release when
    /// several releases each watch their own namespaces).
    #[arg(
        long,
        env = "GHL_ADMISSION_CONFIGURATION",
        default_value = crate::admission::registration::CONFIGURATION
    )]
    pub admission_configuration: String,
    /// A GHL API base URL connections may use (their `baseUrl` must have its scheme, host and
    /// port); repeat for several. Default: GHL's API only. The sandbox's URL must be named.
    #[arg(
        long = "allowed-base-url",
        env = "GHL_ALLOWED_BASE_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub allowed_base_urls: Vec<String>,
    /// A URL the change feed may send contact data to (a sink's URL must have its scheme, host
    /// and port, and start with its path); repeat for several. Without any, nothing is sent.
    #[arg(
        long = "allowed-sink-url",
        env = "GHL_ALLOWED_SINK_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub allowed_sink_urls: Vec<String>,
    #[command(flatten)]
    pub sources: super::sources::SourceArgs,
    /// Serve the web console on this address. Every request must carry the person's own
    /// Kubernetes token (an auth proxy's `Authorization: Bearer`, or the login page's
    /// session): the console reads and writes only as that person.
    #[arg(long, env = "GHL_CONSOLE_ADDR")]
    pub console_addr: Option<SocketAddr>,
}

/// The pod's namespace, from the service account mount or the downward API.
fn own_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE").ok().or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_owned())
    })
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "ghl-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The keys webhooks are verified with: the given files, or GHL's published keys.
fn webhook_keys(files: &[PathBuf]) -> anyhow::Result<PublicKeys> {
    if files.is_empty() {
        return Ok(PublicKeys::ghl());
    }
    let mut paths = Vec::new();
    for path in files {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("--webhook-public-key {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                // A mounted ConfigMap also holds `..data` links and dot entries.
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            inside.sort();
            paths.extend(inside);
        } else {
            paths.push(path.clone());
        }
    }
    let texts = paths
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("--webhook-public-key {}", f.display()))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    anyhow::ensure!(
        !texts.is_empty(),
        "--webhook-public-key: no key files found"
    );
    let pems: Vec<&str> = texts.iter().map(String::as_str).collect();
    PublicKeys::from_pems(&pems).context("--webhook-public-key")
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.allow_cross_namespace_refs {
        tracing::warn!(
            "--allow-cross-namespace-refs is deprecated and goes in the next release: list the namespaces that may use a GhlConnection in its spec.allowedNamespaces"
        );
    }
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    // The operator's own objects (Leases, its keys) live in its namespace.
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(own_namespace)
        .or_else(|| args.watch_namespaces.first().cloned())
        .context("set --lease-namespace (not running in a pod, so the namespace is unknown)")?;
    let leader = if args.no_leader_election {
        None
    } else {
        let mut lease =
            LeaseConfig::new(namespace.clone(), args.lease_name.clone(), identity.clone());
        lease.lease_duration = args.lease_duration.parse()?;
        // As client-go: renew often, give up at two thirds of the duration.
        lease.renew_every = (lease.lease_duration / 5).max(std::time::Duration::from_millis(200));
        lease.retry_every = (lease.lease_duration / 5).max(std::time::Duration::from_millis(200));
        Some(lease)
    };
    let options = RunOptions {
        config: OperatorConfig {
            apply_concurrency: args.apply_concurrency.max(1),
            connection_check_interval: args.connection_check_interval.parse()?,
            default_resync: args.default_resync.parse()?,
            identity: identity.clone(),
            allowed_base_urls: if args.allowed_base_urls.is_empty() {
                AllowList::ghl()
            } else {
                AllowList::parse(&args.allowed_base_urls)
                    .map_err(|e| anyhow::anyhow!("--allowed-base-url: {e}"))?
            },
            allowed_sinks: AllowList::parse(&args.allowed_sink_urls)
                .map_err(|e| anyhow::anyhow!("--allowed-sink-url: {e}"))?,
            allowed_sources: args.sources.allow_list()?,
            approvals: match args.admission_addr {
                Some(_) => Approvals::Sealed,
                None => Approvals::Unverified,
            },
            sizing: Sizing {
                allow_cross_namespace_refs: args.allow_cross_namespace_refs,
                syncs_per_connection: args.syncs_per_connection.max(1),
                deep_resync_every: args.deep_resync_every.max(1),
                webhook_backlog: args.webhook_backlog.max(1),
            },
        },
        webhook: match args.webhook_addr {
            Some(addr) => Some(WebhookOptions {
                addr,
                advertise: args
                    .advertise_address
                    .map(|ip| SocketAddr::new(ip, addr.port())),
                keys: webhook_keys(&args.webhook_public_keys)?,
            }),
            None => None,
        },
        admission: match (args.admission_addr, &args.admission_url) {
            (Some(addr), Some(url)) => Some(AdmissionOptions {
                addr,
                target: Target::parse(url)?,
                configuration: args.admission_configuration.clone(),
            }),
            _ => None,
        },
        scope: Scope::of(&args.watch_namespaces),
        concurrency: args.concurrency.max(1),
        metrics_addr: args.metrics_addr,
        leader,
        shards: args.shards,
        namespace,
        console: None,
    };
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster service account or KUBECONFIG)")?;
    let options = RunOptions {
        console: args.console_addr.map(|addr| (addr, config.clone())),
        ..options
    };
    let client = kube::Client::try_from(config).context("a Kubernetes client")?;
    controller::run(client, options).await?;
    Ok(ExitCode::SUCCESS)
}
