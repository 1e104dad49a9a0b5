//! A policy's or rule's plan, field by field, computed with the person's own credentials the
//! way `plan --kubeconfig` computes a PR's plan: the live object, its connection and the token
//! the cluster holds for it, its ledger and its sources, all read as the person. Someone who
//! may not read those Secrets gets the summary only (the API server refuses the reads).
//! Personal values stay `(sensitive)`.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use super::access::forbidden;
use crate::cli::manifests::Manifests;
use crate::cli::workspace::cluster::ClusterArgs;
use crate::cli::workspace::{CommonArgs, Output, Refresh, Workspace};
use crate::crd::common::Mode;
use crate::crd::{ContactSyncPolicy, TagRule};

/// Why there is no diff to show.
#[derive(Debug, thiserror::Error)]
pub enum NoDiff {
    #[error(
        "your Kubernetes identity may not read what computing this plan reads (its connection's token Secret, its ledger, its sources): the summary above is what the operator reported"
    )]
    Forbidden,
    #[error("the plan could not be computed: {0}")]
    Failed(String),
}

/// The live object as a manifest: its spec and identity, without status or server fields.
fn as_manifest<K: Serialize + ResourceExt>(object: &K) -> Result<String, NoDiff> {
    let mut value = serde_json::to_value(object).map_err(|e| NoDiff::Failed(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    let metadata = &mut value["metadata"];
    if let Some(meta) = metadata.as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "annotations",
            "finalizers",
            "ownerReferences",
        ] {
            meta.remove(field);
        }
    }
    serde_json::to_string(&value).map_err(|e| NoDiff::Failed(e.to_string()))
}

fn options(namespace: &str) -> CommonArgs {
    CommonArgs {
        paths: Vec::new(),
        namespaces: vec![namespace.to_owned()],
        state: None,
        sandbox: false,
        base_url: None,
        token: None,
        refresh: Refresh::Changed,
        show_sensitive: false,
        output: Output::Text,
        allow_cross_namespace_refs: false,
        concurrency: 4,
        sources: Default::default(),
        cluster: ClusterArgs::default(),
    }
}

/// Reads a policy's sources (ConfigMaps and Secrets) as the person, into the manifests.
async fn sources(
    client: &Client,
    namespace: &str,
    policy: &ContactSyncPolicy,
    manifests: &mut Manifests,
) -> Result<(), NoDiff> {
    for source in &policy.spec.contacts_from {
        if let Some(r) = &source.config_map_ref {
            let found = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await;
            match found {
                Ok(Some(cm)) => {
                    manifests.config_maps.insert(
                        (namespace.to_owned(), r.name.clone()),
                        cm.data.unwrap_or_default().into_iter().collect(),
                    );
                }
                Ok(None) => {}
                Err(e) if forbidden(&e) => return Err(NoDiff::Forbidden),
                Err(e) => return Err(NoDiff::Failed(e.to_string())),
            }
        }
        if let Some(r) = &source.secret_ref {
            let found = Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await;
            match found {
                Ok(Some(secret)) => {
                    let data = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    manifests
                        .secrets
                        .insert((namespace.to_owned(), r.name.clone()), data);
                }
                Ok(None) => {}
                Err(e) if forbidden(&e) => return Err(NoDiff::Forbidden),
                Err(e) => return Err(NoDiff::Failed(e.to_string())),
            }
        }
    }
    Ok(())
}

/// Whether an error (anyhow, from the workspace) is the API server refusing the person.
fn refused(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<kube::Error>().is_some_and(forbidden))
}

async fn plan(client: Client, namespace: &str, manifests: Manifests) -> Result<String, NoDiff> {
    let args = options(namespace);
    let workspace = match Workspace::with_client(manifests, &args, client).await {
        Ok(workspace) => workspace,
        Err(e) if refused(&e) => return Err(NoDiff::Forbidden),
        Err(e) => return Err(NoDiff::Failed(format!("{e:#}"))),
    };
    let reports = workspace.run(Mode::Plan, None).await;
    if let Some(error) = reports.iter().find_map(|r| r.error.clone()) {
        return Err(NoDiff::Failed(error));
    }
    Ok(reports
        .iter()
        .map(|r| r.text.clone())
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A ContactSyncPolicy's plan, field by field.
pub async fn policy(client: Client, policy: &ContactSyncPolicy) -> Result<String, NoDiff> {
    let namespace = policy.namespace().unwrap_or_default();
    let mut manifests = Manifests::default();
    manifests
        .add_text(&as_manifest(policy)?, "the live object", &namespace)
        .map_err(|e| NoDiff::Failed(e.to_string()))?;
    sources(&client, &namespace, policy, &mut manifests).await?;
    plan(client, &namespace, manifests).await
}

/// A TagRule's plan.
pub async fn rule(client: Client, rule: &TagRule) -> Result<String, NoDiff> {
    let namespace = rule.namespace().unwrap_or_default();
    let mut manifests = Manifests::default();
    manifests
        .add_text(&as_manifest(rule)?, "the live object", &namespace)
        .map_err(|e| NoDiff::Failed(e.to_string()))?;
    plan(client, &namespace, manifests).await
}
