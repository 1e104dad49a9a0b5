//! `status` and `approve`: what the operator reports in the cluster, and approving a waiting
//! plan (`ghl.servis.ai/approve-plan`). Also `kubectl ghl status|approve` when the binary is
//! installed as the kubectl plugin `kubectl-ghl`.

use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crd::common::PlanSummary;
use crate::crd::kind::Object;
use crate::crd::vocabulary::annotation;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// Where to look.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Every namespace (objects named `namespace/name`).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The object whose waiting plan to apply once: `NAME` (a ContactSyncPolicy),
    /// `contactsyncpolicy/NAME` or `tagrule/NAME`.
    pub policy: String,
    /// The hash of the plan you reviewed (`status.plan.hash`, as `kubectl ghl status` shows
    /// it): approved only if the waiting plan still has it.
    #[arg(long)]
    pub hash: String,
    #[command(flatten)]
    pub target: Target,
}

pub(super) async fn client_and_namespace(target: &Target) -> anyhow::Result<(Client, String)> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (KUBECONFIG, or in-cluster)")?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    Ok((client, namespace))
}

fn ready(conditions: &[Condition]) -> (String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or(("Unknown".into(), "-".into()), |c| {
            (c.status.clone(), c.reason.clone())
        })
}

fn plan_column(plan: Option<&PlanSummary>) -> (String, String) {
    match plan {
        Some(p) => (
            format!(
                "+{} ~{} -{} adopt {}",
                p.create, p.update, p.delete, p.adopt
            ),
            match (&p.hash, &p.blocked) {
                (Some(hash), Some(_)) => format!("{hash} (waiting)"),
                (Some(hash), None) => hash.clone(),
                _ => "-".into(),
            },
        ),
        None => ("-".into(), "-".into()),
    }
}

/// One line per object: kind, name, Ready, reason, plan counts, plan hash.
fn row(kind: &str, name: &str, conditions: &[Condition], plan: Option<&PlanSummary>) -> String {
    let (status, reason) = ready(conditions);
    let (counts, hash) = plan_column(plan);
    format!("{kind:<18} {name:<32} {status:<7} {reason:<26} {counts:<24} {hash}")
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client_and_namespace(&args.target).await?;
    // `-A`: every namespace, each object named `namespace/name`.
    let scope = (!args.all_namespaces).then_some(namespace.as_str());
    println!(
        "{:<18} {:<32} {:<7} {:<26} {:<24} PLAN HASH",
        "KIND", "NAME", "READY", "REASON", "PLAN"
    );
    for c in list::<GhlConnection>(&client, scope).await? {
        let conditions = c.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        println!(
            "{}",
            row("GhlConnection", &name_of(&c, scope), conditions, None)
        );
    }
    for p in list::<ContactSyncPolicy>(&client, scope).await? {
        let status = p.status.as_ref();
        let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
        let plan = status.and_then(|s| s.plan.as_ref());
        let name = name_of(&p, scope);
        println!("{}", row("ContactSyncPolicy", &name, conditions, plan));
    }
    for r in list::<TagRule>(&client, scope).await? {
        let status = r.status.as_ref();
        let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
        let plan = status.and_then(|s| s.plan.as_ref());
        println!("{}", row("TagRule", &name_of(&r, scope), conditions, plan));
    }
    Ok(ExitCode::SUCCESS)
}

/// The objects of a kind in `namespace`, or in every namespace.
async fn list<K: Object>(client: &Client, namespace: Option<&str>) -> anyhow::Result<Vec<K>> {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    Ok(api.list(&ListParams::default()).await?.items)
}

/// `name`, or `namespace/name` when listing every namespace.
fn name_of<K: ResourceExt>(object: &K, scope: Option<&str>) -> String {
    match scope {
        Some(_) => object.name_any(),
        None => format!(
            "{}/{}",
            object.namespace().unwrap_or_default(),
            object.name_any()
        ),
    }
}

/// Why there is no plan to approve.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum NotApprovable {
    #[error("no plan in status yet")]
    NoPlan,
    #[error("no plan is waiting for approval")]
    NotWaiting,
    #[error("the waiting plan is now {waiting}, not {reviewed}: review it again")]
    Changed { waiting: String, reviewed: String },
}

/// The hash to approve: the waiting plan's, if it is the one reviewed.
fn to_approve(plan: Option<&PlanSummary>, reviewed: &str) -> Result<String, NotApprovable> {
    let plan = plan.ok_or(NotApprovable::NoPlan)?;
    let (Some(hash), Some(_)) = (&plan.hash, &plan.blocked) else {
        return Err(NotApprovable::NotWaiting);
    };
    if reviewed.trim() != hash {
        return Err(NotApprovable::Changed {
            waiting: hash.clone(),
            reviewed: reviewed.to_owned(),
        });
    }
    Ok(hash.clone())
}

pub async fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client_and_namespace(&args.target).await?;
    // `NAME` or `KIND/NAME`, as kubectl names objects.
    let (kind, name) = match args.policy.split_once('/') {
        Some((kind, name)) => (kind.to_ascii_lowercase(), name.to_owned()),
        None => ("contactsyncpolicy".to_owned(), args.policy.clone()),
    };
    match kind.as_str() {
        "contactsyncpolicy" | "contactsyncpolicies" | "csp" => {
            approve_in::<ContactSyncPolicy>(client, &namespace, &name, &args.hash, |p| {
                p.status.as_ref().and_then(|s| s.plan.clone())
            })
            .await
        }
        "tagrule" | "tagrules" => {
            approve_in::<TagRule>(client, &namespace, &name, &args.hash, |r| {
                r.status.as_ref().and_then(|s| s.plan.clone())
            })
            .await
        }
        other => anyhow::bail!("{other}: approve a contactsyncpolicy/NAME or a tagrule/NAME"),
    }
}

/// Annotates `name` with the hash of its waiting plan, the one reviewed (`--hash`).
async fn approve_in<K: Object>(
    client: Client,
    namespace: &str,
    name: &str,
    reviewed: &str,
    plan_of: impl Fn(&K) -> Option<PlanSummary>,
) -> anyhow::Result<ExitCode> {
    let kind = K::kind(&()).to_ascii_lowercase();
    let api: Api<K> = Api::namespaced(client, namespace);
    let object = api
        .get(name)
        .await
        .with_context(|| format!("reading {kind} {namespace}/{name}"))?;
    let plan = plan_of(&object);
    let hash = to_approve(plan.as_ref(), reviewed)?;
    let patch = json!({"metadata": {"annotations": {annotation::APPROVE_PLAN: hash}}});
    let params = PatchParams {
        field_manager: Some("kubectl-ghl".into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    let (counts, _) = plan_column(plan.as_ref());
    println!(
        "approved plan {hash} of {kind}/{name} ({counts}); the operator applies it once (see status.plan.approvedBy)"
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the binary was started as the kubectl plugin (`kubectl-ghl`, `kubectl ghl ...`).
pub fn invoked_as_plugin(argv0: &str) -> bool {
    std::path::Path::new(argv0)
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|name| name == "kubectl-ghl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_is_recognised_by_its_name() {
        for (argv0, plugin) in [
            ("/usr/local/bin/kubectl-ghl", true),
            ("kubectl-ghl", true),
            ("C:/bin/kubectl-ghl.exe", true),
            ("/usr/bin/ghl-operator", false),
            ("kubectl-ghl-extra", false),
        ] {
            assert_eq!(invoked_as_plugin(argv0), plugin, "{argv0}");
        }
    }

    #[test]
    fn only_a_waiting_plan_is_approved_and_only_the_one_reviewed() {
        let waiting = PlanSummary {
            create: 3,
            hash: Some("aaaa".into()),
            blocked: Some("over".into()),
            ..PlanSummary::default()
        };
        let applied = PlanSummary {
            blocked: None,
            ..waiting.clone()
        };
        assert_eq!(to_approve(Some(&waiting), "aaaa"), Ok("aaaa".into()));
        assert_eq!(
            to_approve(Some(&waiting), "bbbb"),
            Err(NotApprovable::Changed {
                waiting: "aaaa".into(),
                reviewed: "bbbb".into()
            })
        );
        assert_eq!(
            to_approve(Some(&applied), "aaaa"),
            Err(NotApprovable::NotWaiting)
        );
        assert_eq!(to_approve(None, "aaaa"), Err(NotApprovable::NoPlan));
        assert!(row("ContactSyncPolicy", "big", &[], Some(&waiting)).contains("aaaa (waiting)"));
    }
}
