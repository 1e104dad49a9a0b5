//! What `plan`, `apply` and `demo` share: the manifests, a GHL client per connection (or the
//! embedded sandbox), the state file, and running every policy and rule through the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::manifests::{Manifests, ObjectKey};
use crate::crd::common::{ConnectionRef, Mode};
use crate::crd::connection::GhlConnection;
use crate::crd::contact_sync_policy::{ContactSyncPolicy, RecordFailure};
use crate::engine::desired::SourceText;
use crate::engine::plan::render::{RenderOptions, render};
use crate::engine::plan::{ItemOp, Plan, Target};
use crate::engine::state::file::StateFile;
use crate::engine::state::{MemoryStore, StateStore};
use crate::engine::tag_rule::{
    Claim, RulePlan, apply_rule, claim_of, claim_of_policy, observe_rule, plan_rule,
};
use crate::engine::{SyncOptions, sync_policy};
use crate::ghl::budget::BudgetConfig;
use crate::ghl::{ConnectionSettings, GhlApi, GhlClient, GhlMetrics, StaticToken};
use crate::sandbox::{self, RunningSandbox, SandboxConfig};

/// Options `plan` and `apply` share.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Manifest files or folders (GhlConnection, Secret, ConfigMap, ContactSyncPolicy, TagRule).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Namespace for objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Refresh {
    Changed,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The outcome of one policy or rule.
#[derive(Debug)]
pub struct Report {
    pub heading: String,
    /// Rendered text (text output) and JSON form.
    pub text: String,
    pub json: Value,
    pub changes: bool,
    pub writes: u64,
    pub failures: usize,
    pub error: Option<String>,
    pub blocked: bool,
}

/// A loaded workspace.
pub struct Workspace {
    pub manifests: Manifests,
    clients: BTreeMap<ObjectKey, GhlClient>,
    state: Option<Arc<StateFile>>,
    /// Ledgers kept for the workspace's lifetime when there is no state file.
    memory: std::sync::Mutex<BTreeMap<String, Arc<MemoryStore>>>,
    pub sandboxes: Vec<RunningSandbox>,
    args: CommonArgs,
}

impl Workspace {
    pub async fn open(args: &CommonArgs) -> anyhow::Result<Self> {
        let manifests = Manifests::load(&args.paths, &args.namespace).map_err(|e| anyhow!(e))?;
        Self::from_manifests(manifests, args, SandboxConfig::default()).await
    }

    /// Builds a workspace; with `--sandbox`, one sandbox per location is started from `base`.
    pub async fn from_manifests(
        manifests: Manifests,
        args: &CommonArgs,
        base: SandboxConfig,
    ) -> anyhow::Result<Self> {
        let mut sandboxes: BTreeMap<String, RunningSandbox> = BTreeMap::new();
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
                    let running = sandbox::start(config, "127.0.0.1:0".parse()?)
                        .await
                        .map_err(|e| anyhow!(e))?;
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
                        Err(_) => continue,
                    },
                };
                (url, token)
            };
            let mut settings = ConnectionSettings::new(base_url, location);
            settings.api_version = connection.spec.api_version().to_owned();
            settings.budget = budget_of(connection)?;
            let (client, _budget) = settings
                .connect(Arc::new(StaticToken::new(token)), Arc::clone(&metrics))
                .with_context(|| format!("connection {}/{}", key.0, key.1))?;
            clients.insert(key.clone(), client);
        }
        let state = match (&args.state, args.sandbox) {
            (Some(path), _) => Some(StateFile::open(path)?),
            (None, false) => Some(StateFile::open(".ghl-state/state.json")?),
            (None, true) => None,
        };
        Ok(Self {
            manifests,
            clients,
            state,
            memory: Default::default(),
            sandboxes: sandboxes.into_values().collect(),
            args: args.clone(),
        })
    }

    fn store(&self, owner: &str) -> Arc<dyn StateStore> {
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
    fn client(&self, namespace: &str, reference: &ConnectionRef) -> anyhow::Result<&GhlClient> {
        let target_ns = reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        if target_ns != namespace && !self.args.allow_cross_namespace_refs {
            bail!(
                "connectionRef {target_ns}/{} is in another namespace; pass --allow-cross-namespace-refs to allow it",
                reference.name
            );
        }
        let key = (target_ns, reference.name.clone());
        if let Some(client) = self.clients.get(&key) {
            return Ok(client);
        }
        match self.manifests.connections.get(&key) {
            None => bail!(
                "GhlConnection {}/{} is not among the manifests",
                key.0,
                key.1
            ),
            Some(connection) => {
                let why = token_from_manifests(connection, &key, &self.manifests)
                    .err()
                    .unwrap_or_else(|| "no usable credentials".into());
                bail!("GhlConnection {}/{}: {why}", key.0, key.1)
            }
        }
    }

    fn sources(&self, namespace: &str, policy: &ContactSyncPolicy) -> Vec<SourceText> {
        policy
            .spec
            .contacts_from
            .iter()
            .map(|source| {
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
                let text = match data {
                    None => Err(format!(
                        "{kind} {namespace}/{name} is not among the manifests"
                    )),
                    Some(data) => data
                        .get(key)
                        .cloned()
                        .ok_or_else(|| format!("{kind} {namespace}/{name} has no key {key:?}")),
                };
                SourceText {
                    key: key.clone(),
                    text,
                }
            })
            .collect()
    }

    /// Plans (and in `Apply` mode applies) every policy, then every rule.
    pub async fn run(
        &self,
        mode: Mode,
        progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    ) -> Vec<Report> {
        let mut reports = Vec::new();
        let render_options = RenderOptions {
            show_sensitive: self.args.show_sensitive,
        };
        let mut policy_claims: Vec<Claim> = Vec::new();
        let mut policy_contacts: BTreeMap<ObjectKey, BTreeSet<String>> = BTreeMap::new();
        for ((namespace, name), policy) in &self.manifests.policies {
            let heading = format!("ContactSyncPolicy {namespace}/{name}");
            let owner = format!("{namespace}/ContactSyncPolicy/{name}");
            let mut report = Report::new(heading.clone());
            let client = match self.client(namespace, &policy.spec.connection_ref) {
                Ok(c) => c,
                Err(e) => {
                    reports.push(report.failed(e.to_string()));
                    continue;
                }
            };
            let store = self.store(&owner);
            let now = jiff::Timestamp::now();
            let mut options = SyncOptions::new(
                if policy.spec.mode == Mode::Plan {
                    Mode::Plan
                } else {
                    mode
                },
                now,
            );
            options.observe.deep = self.args.refresh == Refresh::Full;
            options.apply.concurrency = self.args.concurrency;
            options.apply.progress = progress.clone();
            let sources = self.sources(namespace, policy);
            match sync_policy(client, store.as_ref(), &policy.spec, &sources, options).await {
                Err(e) => reports.push(report.failed(e.to_string())),
                Ok(outcome) => {
                    let ledger = store.load().await.unwrap_or_default();
                    policy_contacts.insert(
                        (namespace.clone(), name.clone()),
                        ledger.contacts.keys().cloned().collect(),
                    );
                    policy_claims.push(claim_of_policy(&heading, &outcome.plan));
                    let mut failures: Vec<RecordFailure> = outcome.plan.failures.clone();
                    if let Some(applied) = &outcome.applied {
                        failures.extend(applied.failures.clone());
                        report.writes = applied.writes;
                    }
                    let mut text = render(&heading, &outcome.plan, render_options);
                    if let Some(applied) = &outcome.applied {
                        for f in &applied.failures {
                            text.push_str(&format!(
                                "  ! {}: {} ({})\n",
                                f.record, f.message, f.reason
                            ));
                        }
                    }
                    if policy.spec.mode == Mode::Plan && mode == Mode::Apply {
                        text.push_str("  (mode: Plan — not applied)\n");
                    }
                    report.text = text;
                    report.json = plan_json(&heading, &outcome.plan, &failures, render_options);
                    report.changes = !outcome.plan.is_empty();
                    report.failures = failures.len();
                    report.blocked = outcome.plan.blocked.is_some() && mode == Mode::Apply;
                    reports.push(report);
                }
            }
        }
        reports.extend(self.run_rules(mode, &policy_claims, &policy_contacts).await);
        reports
    }

    async fn run_rules(
        &self,
        mode: Mode,
        policy_claims: &[Claim],
        policy_contacts: &BTreeMap<ObjectKey, BTreeSet<String>>,
    ) -> Vec<Report> {
        let mut reports = Vec::new();
        let mut observed = Vec::new();
        for ((namespace, name), rule) in &self.manifests.rules {
            let heading = format!("TagRule {namespace}/{name}");
            let owner = format!("{namespace}/TagRule/{name}");
            let client = match self.client(namespace, &rule.spec.connection_ref) {
                Ok(c) => c,
                Err(e) => {
                    reports.push(Report::new(heading).failed(e.to_string()));
                    continue;
                }
            };
            let store = self.store(&owner);
            let ledger = match store.load().await {
                Ok(l) => l,
                Err(e) => {
                    reports.push(Report::new(heading).failed(e.to_string()));
                    continue;
                }
            };
            let scope = rule.spec.selector.policy_ref.as_ref().map(|p| {
                policy_contacts
                    .get(&(namespace.clone(), p.name.clone()))
                    .cloned()
                    .unwrap_or_default()
            });
            match observe_rule(
                client,
                &rule.spec,
                &ledger,
                scope.as_ref(),
                self.args.concurrency,
            )
            .await
            {
                Ok(seen) => observed.push((heading, client, store, ledger, rule, seen)),
                Err(e) => reports.push(Report::new(heading).failed(e.to_string())),
            }
        }
        let claims: Vec<Claim> = observed
            .iter()
            .map(|(heading, _, _, _, rule, seen)| claim_of(heading, &rule.spec, seen))
            .chain(policy_claims.iter().cloned())
            .collect();
        for (heading, client, store, mut ledger, rule, seen) in observed {
            let others: Vec<Claim> = claims
                .iter()
                .filter(|c| c.owner != heading)
                .cloned()
                .collect();
            let plan = plan_rule(&rule.spec, &seen, &ledger, &others);
            let mut report = Report::new(heading.clone());
            report.text = render_rule(&heading, &plan);
            report.json = json!({"name": heading, "matched": plan.matched, "compliant": plan.compliant,
                                 "pending": plan.pending, "conflicts": plan.conflicts, "changes": plan.changes});
            report.changes = !plan.is_empty();
            if mode == Mode::Apply && rule.spec.mode == Mode::Apply && !plan.is_empty() {
                match apply_rule(client as &dyn GhlApi, store.as_ref(), &mut ledger, &plan).await {
                    Ok((writes, failures)) => {
                        report.writes = writes;
                        report.failures = failures.len();
                        for (id, e) in failures {
                            report.text.push_str(&format!("  ! contact/{id}: {e}\n"));
                        }
                        if let Err(e) = store.compact(&ledger).await {
                            report.error = Some(e.to_string());
                        }
                    }
                    Err(e) => report.error = Some(e.to_string()),
                }
            }
            reports.push(report);
        }
        reports
    }
}

impl Report {
    fn new(heading: String) -> Self {
        Self {
            heading,
            text: String::new(),
            json: Value::Null,
            changes: false,
            writes: 0,
            failures: 0,
            error: None,
            blocked: false,
        }
    }

    fn failed(mut self, error: String) -> Self {
        self.text = format!("{}\n  ✗ {error}\n", self.heading);
        self.json = json!({"name": self.heading, "error": error});
        self.error = Some(error);
        self
    }
}

fn render_rule(heading: &str, plan: &RulePlan) -> String {
    let mut out = format!(
        "{heading}\n  {} matched, {} compliant, {} to change\n",
        plan.matched, plan.compliant, plan.pending
    );
    for change in &plan.changes {
        if !change.add.is_empty() {
            out.push_str(&format!(
                "  ~ contact {}  + tags {:?}\n",
                change.id, change.add
            ));
        }
        if !change.remove.is_empty() {
            out.push_str(&format!(
                "  ~ contact {}  - tags {:?}\n",
                change.id, change.remove
            ));
        }
    }
    for conflict in &plan.conflicts {
        out.push_str(&format!("  ! conflict: {conflict}\n"));
    }
    out
}

/// The JSON form of a policy plan, with personal values masked unless asked for.
fn plan_json(
    heading: &str,
    plan: &Plan,
    failures: &[RecordFailure],
    options: RenderOptions,
) -> Value {
    let mask = |personal: bool, value: Value| {
        if personal && !options.show_sensitive {
            json!("(sensitive)")
        } else {
            value
        }
    };
    let contacts: Vec<Value> = plan
        .contacts
        .iter()
        .filter(|c| !c.is_noop())
        .map(|c| {
            let (action, id) = match &c.target {
                Target::Create { .. } => ("create", None),
                Target::Existing { id, adopt: true } => ("adopt", Some(id.clone())),
                Target::Existing { id, .. } => ("update", Some(id.clone())),
            };
            let changes: Vec<Value> = c
                .changes
                .iter()
                .chain(&c.upsert_changes)
                .map(|ch| {
                    let personal = ch.attribute.is_personal();
                    json!({"attribute": ch.attribute.name(), "from": mask(personal, json!(ch.from)), "to": mask(personal, ch.to.clone())})
                })
                .collect();
            let items: Vec<Value> = c
                .items
                .iter()
                .map(|item| {
                    let action = match item {
                        ItemOp::Create { .. } => "create",
                        ItemOp::Adopt { .. } => "adopt",
                        ItemOp::Update { .. } | ItemOp::Complete { .. } => "update",
                        ItemOp::Delete { .. } => "delete",
                        ItemOp::Forget { .. } => "forget",
                    };
                    json!({"kind": item.kind(), "key": item.key(), "action": action})
                })
                .collect();
            json!({"record": c.source, "action": action, "id": id, "drifted": c.drifted, "changes": changes,
                   "addTags": c.add_tags, "removeTags": c.remove_tags, "items": items, "observedDrift": c.observed_drift})
        })
        .collect();
    json!({"name": heading, "summary": plan.summary(), "counts": plan.counts(), "contacts": contacts,
           "releases": plan.releases, "failures": failures, "blocked": plan.blocked, "releasesDeferred": plan.releases_deferred})
}

/// The access token a connection's manifests provide, or why there is none.
fn token_from_manifests(
    connection: &GhlConnection,
    key: &ObjectKey,
    manifests: &Manifests,
) -> Result<String, String> {
    let auth = &connection.spec.auth;
    let (secret, field) = if let Some(pit) = &auth.private_integration_token {
        (pit.secret_ref.name.clone(), pit.secret_ref.key.clone())
    } else if let Some(oauth) = &auth.oauth {
        (
            oauth.token_secret_ref.name.clone(),
            "access_token".to_owned(),
        )
    } else {
        return Err("no auth configured".into());
    };
    let data = manifests
        .secrets
        .get(&(key.0.clone(), secret.clone()))
        .ok_or_else(|| {
            format!(
                "Secret {}/{secret} is not among the manifests (or pass --token / --sandbox)",
                key.0
            )
        })?;
    data.get(&field)
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| format!("Secret {}/{secret} has no key {field:?}", key.0))
}

fn budget_of(connection: &GhlConnection) -> anyhow::Result<BudgetConfig> {
    let mut budget = BudgetConfig::default();
    if let Some(limit) = &connection.spec.rate_limit {
        if let Some(share) = limit.share_percent {
            budget.share_percent = share;
        }
        if let Some(n) = limit.requests_per_window {
            budget.requests_per_window = n;
        }
        if let Some(window) = &limit.window {
            budget.window = window.parse().context("rateLimit.window")?;
        }
        if let Some(daily) = limit.daily_limit {
            budget.daily_limit = daily;
        }
    }
    if budget.window.is_zero() {
        budget.window = Duration::from_secs(10);
    }
    Ok(budget)
}
