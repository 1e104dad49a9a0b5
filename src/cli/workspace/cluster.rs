//! A PR plan against the cluster: what the operator there owns and the credentials it holds,
//! read-only (`plan --kubeconfig FILE`, `--context NAME`, or `--in-cluster`).
//!
//! - **Ledgers**: each manifest policy or rule that exists in the cluster plans against its
//!   ledger Secrets (read through the same guarded store the operator uses, its write fence
//!   closed: a plan can never write one), so adoptions the operator already made plan as
//!   nothing, and prunes and tag releases show. Its creation time and uid come from the
//!   cluster too, so seniority between policies is the operator's.
//! - **Connections** a manifest policy references but the manifests lack are read from the
//!   cluster; a connection's token comes from the manifests' Secret if given, else from the
//!   cluster Secret the cluster's connection names (OAuth: the current `access_token` — the
//!   CLI never refreshes, which would spend the operator's refresh token), sent only to that
//!   connection's baseUrl in the cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, Config, Resource};

use super::super::manifests::{Manifests, ObjectKey};
use crate::crd::Kind;
use crate::crd::connection::GhlConnection;
use crate::crd::kind::Object;
use crate::engine::fence::Fence;
use crate::engine::state::StateStore;
use crate::engine::state::secret::{LedgerOwner, SecretLedgerStore};
use crate::refs::SecretRole;

/// Where the cluster is (any of them turns the cluster's ledgers and credentials on).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Plan against the ledgers and credentials of the cluster in this kubeconfig (read-only).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (implies reading the cluster).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Read the cluster this process runs in (a CI job in a pod).
    #[arg(long)]
    pub in_cluster: bool,
    /// Against a cluster, also show what GHL holds: contact, task and note ids and current
    /// values (hidden by default: a PR plan's output is read by whoever reads the CI logs).
    #[arg(long)]
    pub show_values: bool,
}

impl ClusterArgs {
    pub fn wanted(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some() || self.in_cluster
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        let config = if self.in_cluster {
            Config::incluster().context("not running in a cluster (--in-cluster)")?
        } else {
            crate::cli::cluster::from_kubeconfig(
                self.kubeconfig.as_deref(),
                self.context.as_deref(),
            )
            .await?
        };
        Client::try_from(config).context("a Kubernetes client")
    }
}

/// What the cluster contributed: each existing object's ledger, by the workspace's owner key
/// (`namespace/Kind/name`), and tokens read from cluster Secrets.
#[derive(Default)]
pub struct ClusterState {
    pub ledgers: BTreeMap<String, Arc<dyn StateStore>>,
    pub tokens: BTreeMap<ObjectKey, ClusterToken>,
}

/// A connection's current access token, as the cluster holds it.
pub struct ClusterToken {
    pub token: String,
    /// The connection's baseUrl in the cluster: the only place the token is sent.
    pub base_url: String,
}

/// Why a connection has no token to plan with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoToken {
    #[error("no auth configured")]
    NoAuth,
    #[error(
        "Secret {namespace}/{name} is not among the manifests (or pass --token / --sandbox, or \
         --kubeconfig to read it from the cluster)"
    )]
    NotInManifests { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    NoKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "the cluster's token for it is only sent to its baseUrl in the cluster ({base_url}), not {url}"
    )]
    OtherBaseUrl { base_url: String, url: String },
}

impl ClusterToken {
    /// The token, if `url` is where the cluster's connection sends it; else why not.
    pub fn for_url(&self, url: &str) -> Result<&str, NoToken> {
        let same = |u: &str| u.trim_end_matches('/').to_owned();
        if same(url) == same(&self.base_url) {
            Ok(&self.token)
        } else {
            Err(NoToken::OtherBaseUrl {
                base_url: self.base_url.clone(),
                url: url.to_owned(),
            })
        }
    }
}

async fn get<K: Object>(
    client: &Client,
    (namespace, name): &ObjectKey,
) -> anyhow::Result<Option<K>> {
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .with_context(|| format!("reading {} {namespace}/{name}", K::kind(&())))
}

/// Takes the cluster's creation time and uid for a manifest object that exists there; its
/// read-only ledger when it does.
fn adopt_identity<K: Resource<DynamicType = ()>>(
    client: &Client,
    kind: Kind,
    manifest: &mut K,
    live: &K,
) -> Arc<dyn StateStore> {
    let meta = manifest.meta_mut();
    meta.uid = live.meta().uid.clone();
    meta.creation_timestamp = live.meta().creation_timestamp.clone();
    Arc::new(SecretLedgerStore::new(
        client.clone(),
        LedgerOwner::of(kind, live),
        // Closed: this process holds no Lease, so every write is refused.
        Fence::leased(),
    ))
}

/// The read-only ledgers of the `objects` of `kind` that exist in the cluster, by the
/// workspace's owner key (`namespace/Kind/name`); each manifest object takes its live identity.
async fn ledgers<K: Object>(
    client: &Client,
    kind: Kind,
    objects: &mut BTreeMap<ObjectKey, K>,
    state: &mut ClusterState,
) -> anyhow::Result<()> {
    for (key, object) in objects {
        if let Some(live) = get::<K>(client, key).await? {
            let store = adopt_identity(client, kind, object, &live);
            let owner = format!("{}/{}/{}", key.0, kind.as_str(), key.1);
            state.ledgers.insert(owner, store);
        }
    }
    Ok(())
}

/// Reads what the manifests need from the cluster (see the module docs).
pub async fn load(client: &Client, manifests: &mut Manifests) -> anyhow::Result<ClusterState> {
    let mut state = ClusterState::default();
    ledgers(
        client,
        Kind::ContactSyncPolicy,
        &mut manifests.policies,
        &mut state,
    )
    .await?;
    ledgers(client, Kind::TagRule, &mut manifests.rules, &mut state).await?;
    // Connections the manifests reference but do not declare.
    let referenced: Vec<ObjectKey> = manifests
        .policies
        .iter()
        .map(|((ns, _), p)| (ns, &p.spec.connection_ref))
        .chain(
            manifests
                .rules
                .iter()
                .map(|((ns, _), r)| (ns, &r.spec.connection_ref)),
        )
        .map(|(ns, r)| {
            (
                r.namespace.clone().unwrap_or_else(|| ns.clone()),
                r.name.clone(),
            )
        })
        .collect();
    for key in referenced {
        if !manifests.connections.contains_key(&key)
            && let Some(live) = get::<GhlConnection>(client, &key).await?
        {
            manifests.connections.insert(key, live);
        }
    }
    // Tokens the manifests do not carry: only for a connection the cluster has, read from the
    // Secret its live spec names, and only ever sent to its live baseUrl (a PR can neither point
    // a cluster token at another host nor name another Secret for it).
    for (key, connection) in &manifests.connections {
        let in_manifests = token_ref(connection)
            .is_some_and(|(secret, _)| manifests.secrets.contains_key(&(key.0.clone(), secret)));
        if in_manifests {
            continue;
        }
        let Some(live) = get::<GhlConnection>(client, key).await? else {
            continue;
        };
        let Some((secret, field)) = token_ref(&live) else {
            continue;
        };
        let stored = get::<Secret>(client, &(key.0.clone(), secret)).await?;
        // As the operator would: a PIT Secret that opted in, or a token Secret it wrote.
        let usable = |secret: &Secret| match live.spec.auth.private_integration_token {
            Some(_) => SecretRole::Pit.admits(&secret.metadata),
            None => crate::credentials::token_secret::is_ours(secret),
        };
        let token = stored
            .as_ref()
            .filter(|s| usable(s))
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(&field))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            let base_url = live.spec.base_url().to_owned();
            state
                .tokens
                .insert(key.clone(), ClusterToken { token, base_url });
        }
    }
    Ok(state)
}

/// The Secret and key holding a connection's current access token.
pub fn token_ref(connection: &GhlConnection) -> Option<(String, String)> {
    let auth = &connection.spec.auth;
    if let Some(pit) = &auth.private_integration_token {
        Some((pit.secret_ref.name.clone(), pit.secret_ref.key.clone()))
    } else if let Some(oauth) = &auth.oauth {
        Some((
            oauth.token_secret_ref.name.clone(),
            "access_token".to_owned(),
        ))
    } else {
        auth.agency_grant.as_ref().map(|agency| {
            (
                agency.token_secret_ref.name.clone(),
                "access_token".to_owned(),
            )
        })
    }
}
