//! What `plan`, `apply` and `demo` share: the manifests, a GHL client per connection (or the
//! embedded sandbox), the state file, and running every policy and rule through the engine.
//!
//! - [`run`]: every policy, then every rule, with ownership decided as the operator decides it;
//! - [`report`]: what each produced, as text and JSON;
//! - [`cluster`]: a PR plan against what the operator in a cluster owns (read-only).

pub mod cluster;
mod redact;
mod report;
mod run;

pub use report::Report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use self::cluster::{ClusterArgs, ClusterState, NoToken, token_ref};

use super::manifests::{Manifests, ObjectKey};
use super::sources::SourceArgs;
use crate::crd::common::ConnectionRef;
use crate::crd::connection::GhlConnection;
use crate::crd::contact_sync_policy::{ContactSource, ContactSyncPolicy, HttpSource};
use crate::engine::desired::SourceText;
use crate::engine::state::file::StateFile;
use crate::engine::state::{MemoryStore, StateStore};
use crate::ghl::budget::BudgetConfig;
use crate::ghl::{ConnectionSettings, GhlClient, GhlMetrics, StaticToken};
use crate::refs::RefError;
use crate::sandbox::{self, RunningSandbox, SandboxConfig};
use crate::sources::HttpSources;
use crate::sources::fetch::{SourceError, headers_from, shown};

/// Options `plan` and `apply` share.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Manifest files or folders (GhlConnection, Secret, ConfigMap, ContactSyncPolicy, TagRule).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Namespace for objects that name none (the first given; default: the kubeconfig
    /// context's, as kubectl, else `default`). Against a cluster, also the only namespaces
    /// planned: repeat it for each (`-n crm -n sales`); objects in others are refused without
    /// reading anything of theirs.
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// State file (the ledger of what each policy owns). Default: `.ghl-state/state.json`, or
    /// nothing kept with `--sandbox`.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Start the embedded GHL sandbox and point every connection at it.
    #[arg(long)]
    pub sandbox: bool,
    /// Override every connection's base URL.
    #[arg(long, env = "GHL_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Use this access token for every connection instead of the manifests' Secrets.
    #[arg(long, env = "GHL_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// `changed` (default) reads what can have changed cheaply; `full` also re-reads every
    /// declared note and the fields GHL's search does not return.
    #[arg(long, value_enum, default_value_t = Refresh::Changed)]
    pub refresh: Refresh,
    /// Show personal values (names, emails, phones, note bodies) instead of `(sensitive)`.
    #[arg(long)]
    pub show_sensitive: bool,
    /// `text` (default) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Allow policies to reference connections in other namespaces.
    #[arg(long)]
    pub allow_cross_namespace_refs: bool,
    /// Contacts applied in parallel per policy (the request budget paces them).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub sources: SourceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl CommonArgs {
    /// The namespace of objects that name none: the first `-n`, else — against a cluster or
    /// the sandbox — the kubeconfig context's (`--kubeconfig`/`--context`, or `KUBECONFIG`),
    /// else `default` (a local state file's keys never follow the kubectl context).
    pub fn default_namespace(&self) -> String {
        let from_kubeconfig = self.cluster.wanted() || self.sandbox;
        self.namespaces.first().cloned().unwrap_or_else(|| {
            if !from_kubeconfig {
                return "default".to_owned();
            }
            crate::cli::cluster::kubeconfig_namespace(
                self.cluster.kubeconfig.as_deref(),
                self.cluster.context.as_deref(),
            )
            .unwrap_or_else(|| "default".to_owned())
        })
    }

    /// The namespaces planned against a cluster: those given, else the default one.
    pub fn planned_namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec![self.default_namespace()]
        } else {
            self.namespaces.clone()
        }
    }

    /// Whether the plan shows what GHL holds (ids, current values): always locally, against a
    /// cluster only with `--show-values`.
    pub fn shows_ghl_values(&self) -> bool {
        !self.cluster.wanted() || self.cluster.show_values
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Refresh {
    Changed,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    /// As `text` (kubectl's `-o wide`; the plan's text already shows every field).
    Wide,
    Json,
    Yaml,
}

/// A loaded workspace.
pub struct Workspace {
    pub manifests: Manifests,
    clients: BTreeMap<ObjectKey, GhlClient>,
    state: Option<Arc<StateFile>>,
    /// Ledgers kept for the workspace's lifetime when there is no state file.
    memory: std::sync::Mutex<BTreeMap<String, Arc<MemoryStore>>>,
    /// Ledgers and tokens read from a cluster (`--kubeconfig` / `--context` / `--in-cluster`).
    cluster: ClusterState,
    /// Connections given no client, and why (beyond what the manifests say).
    refused: BTreeMap<ObjectKey, NoToken>,
    /// The HTTP sources' last answers (`None`: a person's plan in the console, which never
    /// fetches on the operator's network behalf).
    http_sources: Option<HttpSources<ObjectKey>>,
    pub sandboxes: Vec<RunningSandbox>,
    /// Policies and rules not planned: their namespace was not named (against a cluster).
    outside: Vec<String>,
    pub(super) args: CommonArgs,
}

impl Workspace {
    pub async fn open(args: &CommonArgs) -> anyhow::Result<Self> {
        let manifests = Manifests::load(&args.paths, &args.default_namespace())?;
        Self::from_manifests(manifests, args, SandboxConfig::default()).await
    }

    /// Builds a workspace; with `--sandbox`, one sandbox per location is started from `base`.
    pub async fn from_manifests(
        manifests: Manifests,
        args: &CommonArgs,
        base: SandboxConfig,
    ) -> anyhow::Result<Self> {
        Self::against(manifests, args, base, None).await
    }

    /// A workspace against the cluster `client` reaches, as its identity (the console plans
    /// with the person's own client): its ledgers and its connections' tokens, read-only.
    pub async fn with_client(
        manifests: Manifests,
        args: &CommonArgs,
        client: kube::Client,
    ) -> anyhow::Result<Self> {
        Self::against(manifests, args, SandboxConfig::default(), Some(client)).await
    }

    async fn against(
        mut manifests: Manifests,
        args: &CommonArgs,
        base: SandboxConfig,
        client: Option<kube::Client>,
    ) -> anyhow::Result<Self> {
        let mut outside = Vec::new();
        // The console passes the person's client: its plans never fetch a URL from where the
        // operator runs.
        let for_person = client.is_some();
        let with_cluster = args.cluster.wanted() || for_person;
        let cluster = if with_cluster {
            if args.sandbox {
                bail!("--sandbox plans against the sandbox; a cluster's ledgers belong to its GHL");
            }
            let client = match client {
                Some(client) => client,
                None => args.cluster.client().await?,
            };
            outside = manifests.retain_namespaces(&args.planned_namespaces());
            cluster::load(&client, &mut manifests).await?
        } else {
            ClusterState::default()
        };
        let mut sandboxes: BTreeMap<String, RunningSandbox> = BTreeMap::new();
        let mut refused = BTreeMap::new();
        let mut clients = BTreeMap::new();
        let metrics = Arc::new(GhlMetrics::default());
        for (key, connection) in &manifests.connections {
            let location = connection.spec.location_id.clone();
            let (base_url, token) = if args.sandbox {
                if !sandboxes.contains_key(&location) {
                    let config = SandboxConfig {
                        location_id: location.clone(),
                        ..base.clone()
                    };
                    let running = sandbox::start(config, "127.0.0.1:0".parse()?).await?;
                    sandboxes.insert(location.clone(), running);
                }
                let running = &sandboxes[&location];
                (running.url.clone(), running.token.clone())
            } else {
                let url = args
                    .base_url
                    .clone()
                    .unwrap_or_else(|| connection.spec.base_url().to_owned());
                let token = match &args.token {
                    Some(token) => token.clone(),
                    None => match token_from_manifests(connection, key, &manifests) {
                        Ok(token) => token,
                        // Reported when a policy uses the connection.
                        Err(_) => match cluster.tokens.get(key).map(|t| t.for_url(&url)) {
                            Some(Ok(token)) => token.to_owned(),
                            Some(Err(why)) => {
                                refused.insert(key.clone(), why);
                                continue;
                            }
                            None => continue,
                        },
                    },
                };
                (url, token)
            };
            let mut settings = ConnectionSettings::new(base_url, location);
            settings.api_version = connection.spec.api_version().to_owned();
            settings.budget = BudgetConfig::from_spec(connection.spec.rate_limit.as_ref())
                .map_err(|e| anyhow!("GhlConnection {}/{}: {e}", key.0, key.1))?;
            let (client, _budget) = settings
                .connect(Arc::new(StaticToken::new(token)), Arc::clone(&metrics))
                .with_context(|| format!("connection {}/{}", key.0, key.1))?;
            clients.insert(key.clone(), client);
        }
        let http_sources = if for_person {
            None
        } else {
            Some(HttpSources::new(args.sources.allow_list()?))
        };
        let state = match (&args.state, args.sandbox || with_cluster) {
            (Some(_), _) if with_cluster => {
                bail!("--state and a cluster do not mix: the cluster's ledgers are the state")
            }
            (Some(path), _) => Some(StateFile::open(path)?),
            (None, false) => Some(StateFile::open(".ghl-state/state.json")?),
            (None, true) => None,
        };
        Ok(Self {
            manifests,
            clients,
            state,
            memory: Default::default(),
            cluster,
            refused,
            http_sources,
            sandboxes: sandboxes.into_values().collect(),
            outside,
            args: args.clone(),
        })
    }

    pub(super) fn store(&self, owner: &str) -> Arc<dyn StateStore> {
        if let Some(ledger) = self.cluster.ledgers.get(owner) {
            return Arc::clone(ledger);
        }
        match &self.state {
            Some(file) => Arc::new(file.owner(owner)),
            None => {
                let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                let store: Arc<MemoryStore> =
                    Arc::clone(memory.entry(owner.to_owned()).or_default());
                store
            }
        }
    }

    /// The client for `reference` from an object in `namespace`.
    pub(super) fn client(
        &self,
        namespace: &str,
        reference: &ConnectionRef,
    ) -> anyhow::Result<&GhlClient> {
        let target_ns = reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        let key = (target_ns, reference.name.clone());
        if let Some(connection) = self.manifests.connections.get(&key)
            && !self.args.allow_cross_namespace_refs
            && !connection.spec.admits(&key.0, namespace)
        {
            bail!(
                "connectionRef {}/{} is in another namespace, and that GhlConnection does not list {namespace} in spec.allowedNamespaces",
                key.0,
                key.1
            );
        }
        if let Some(client) = self.clients.get(&key) {
            return Ok(client);
        }
        match self.manifests.connections.get(&key) {
            None => bail!(
                "GhlConnection {}/{} is not among the manifests",
                key.0,
                key.1
            ),
            Some(_) if self.refused.contains_key(&key) => {
                bail!("GhlConnection {}/{}: {}", key.0, key.1, self.refused[&key])
            }
            Some(connection) => match token_from_manifests(connection, &key, &self.manifests) {
                Err(why) => bail!("GhlConnection {}/{}: {why}", key.0, key.1),
                Ok(_) => bail!("GhlConnection {}/{}: no usable credentials", key.0, key.1),
            },
        }
    }

    /// The text of every `contactsFrom` entry of `policy` (`key`), in order, or why it could
    /// not be read: ConfigMaps and Secrets from the manifests, HTTP sources fetched (each run
    /// asks again, conditionally: an unchanged document costs one 304).
    pub(super) async fn sources(
        &self,
        key: &ObjectKey,
        policy: &ContactSyncPolicy,
    ) -> Vec<SourceText> {
        let mut out = Vec::with_capacity(policy.spec.contacts_from.len());
        for (index, source) in policy.spec.contacts_from.iter().enumerate() {
            out.push(match &source.http {
                Some(http) => SourceText {
                    key: crate::sources::format_key(source),
                    text: self.fetched(key, index, http).await,
                    sensitive: true,
                },
                None => self.in_manifests(&key.0, source),
            });
        }
        out
    }

    /// An HTTP source's document. Its headers Secret comes from the manifests (they are the
    /// person's own files: no label is asked of it).
    async fn fetched(
        &self,
        owner: &ObjectKey,
        index: usize,
        http: &HttpSource,
    ) -> Result<String, RefError> {
        let Some(sources) = &self.http_sources else {
            return Err(SourceError::NotFetchedHere(shown(&http.url)).into());
        };
        sources.check(&http.url).map_err(SourceError::Refused)?;
        let headers = match &http.headers_secret_ref {
            None => Default::default(),
            Some(r) => {
                let name = format!("{}/{}", owner.0, r.name);
                let data = self
                    .manifests
                    .secrets
                    .get(&(owner.0.clone(), r.name.clone()))
                    .ok_or(RefError::NotInManifests {
                        kind: "Secret",
                        name: name.clone(),
                    })?;
                let data = data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
                headers_from(&name, data)?
            }
        };
        let document = sources
            .read(owner, index, &http.url, headers, Duration::ZERO)
            .await?;
        Ok(document.to_string())
    }

    fn in_manifests(&self, namespace: &str, source: &ContactSource) -> SourceText {
        let (kind, name, key, data) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => (
                "ConfigMap",
                &r.name,
                &r.key,
                self.manifests
                    .config_maps
                    .get(&(namespace.to_owned(), r.name.clone())),
            ),
            (None, Some(r)) => (
                "Secret",
                &r.name,
                &r.key,
                self.manifests
                    .secrets
                    .get(&(namespace.to_owned(), r.name.clone())),
            ),
            (None, None) => ("ConfigMap", &String::new(), &String::new(), None),
        };
        let name = format!("{namespace}/{name}");
        let text = match data {
            None => Err(RefError::NotInManifests { kind, name }),
            Some(data) => data.get(key).cloned().ok_or(RefError::NoKey {
                kind,
                name,
                key: key.clone(),
            }),
        };
        SourceText {
            key: key.clone(),
            text,
            sensitive: kind == "Secret",
        }
    }

    /// The location of the connection `reference` names from `namespace`, when declared.
    pub(super) fn location(&self, namespace: &str, reference: &ConnectionRef) -> Option<String> {
        let target = reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        self.manifests
            .connections
            .get(&(target, reference.name.clone()))
            .map(|c| c.spec.location_id.clone())
    }
}

/// The access token a connection's manifests provide, or why there is none.
fn token_from_manifests(
    connection: &GhlConnection,
    key: &ObjectKey,
    manifests: &Manifests,
) -> Result<String, NoToken> {
    let (secret, field) = token_ref(connection).ok_or(NoToken::NoAuth)?;
    let data = manifests
        .secrets
        .get(&(key.0.clone(), secret.clone()))
        .ok_or_else(|| NoToken::NotInManifests {
            namespace: key.0.clone(),
            name: secret.clone(),
        })?;
    data.get(&field)
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| NoToken::NoKey {
            namespace: key.0.clone(),
            name: secret,
            key: field,
        })
}
