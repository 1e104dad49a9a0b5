//! `status` and `approve`: what the operator reports in the cluster, and approving a waiting
//! plan (`ghl.servis.ai/approve-plan`). Also `kubectl ghl status|approve` when the binary is
//! installed as the kubectl plugin `kubectl-ghl`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::crd::common::PlanSummary;
use crate::crd::kind::Object;
use crate::crd::vocabulary::annotation;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// Where to look, as kubectl takes it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Target {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Output format: a table (default), `wide` (with messages), `json` or `yaml`.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// `-o`, as kubectl spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Json,
    Yaml,
}

/// Prints `value` as `-o json|yaml` asks; false for the table formats.
pub(super) fn print_structured(
    format: Option<Format>,
    value: &impl Serialize,
) -> anyhow::Result<bool> {
    match format {
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(value)?),
        Some(Format::Yaml) => print!("{}", serde_saphyr::to_string(value)?),
        _ => return Ok(false),
    }
    Ok(true)
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

/// The client `target` names, and its namespace: `-n`, else the context's (as kubectl).
/// The configuration of a kubeconfig (`--kubeconfig`, else `KUBECONFIG` or
/// `~/.kube/config`) at a context (`--context`, else its current one).
pub async fn from_kubeconfig(
    file: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<Config> {
    let kubeconfig = match file {
        Some(path) => {
            Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => Kubeconfig::read().context("reading the kubeconfig (KUBECONFIG)")?,
    };
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| match context {
            Some(context) => format!("the kubeconfig's context {context}"),
            None => "the kubeconfig's current context".to_owned(),
        })
}

pub(super) async fn client_and_namespace(target: &Target) -> anyhow::Result<(Client, String)> {
    let config = if target.kubeconfig.is_some() || target.context.is_some() {
        from_kubeconfig(target.kubeconfig.as_deref(), target.context.as_deref()).await?
    } else {
        Config::infer()
            .await
            .context("no Kubernetes configuration (KUBECONFIG, ~/.kube/config, or in-cluster)")?
    };
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, namespace))
}

/// The namespace of the kubeconfig's (current or named) context, without connecting; `None`
/// without a kubeconfig or a namespace in the context.
pub fn kubeconfig_namespace(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Option<String> {
    let config = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let name = context
        .map(str::to_owned)
        .or_else(|| config.current_context.clone())?;
    config
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

fn ready(conditions: &[Condition]) -> (String, String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map_or(("Unknown".into(), "-".into(), String::new()), |c| {
            (c.status.clone(), c.reason.clone(), c.message.clone())
        })
}

/// One object as `status` reports it (`-o json|yaml` items).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub ready: String,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
    pub conditions: Vec<Condition>,
}

impl StatusRow {
    fn new<K: ResourceExt>(
        kind: &'static str,
        object: &K,
        conditions: &[Condition],
        plan: Option<&PlanSummary>,
    ) -> Self {
        let (ready, reason, message) = ready(conditions);
        Self {
            kind,
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            ready,
            reason,
            message,
            plan: plan.cloned(),
            conditions: conditions.to_vec(),
        }
    }
}

/// The table (`wide`: with each object's Ready message). Names are `namespace/name` when
/// `all_namespaces`. Pure.
pub fn table(rows: &[StatusRow], all_namespaces: bool, wide: bool) -> String {
    let mut out = format!(
        "{:<18} {:<32} {:<7} {:<26} {:<24} PLAN HASH{}\n",
        "KIND",
        "NAME",
        "READY",
        "REASON",
        "PLAN",
        if wide {
            "                  MESSAGE"
        } else {
            ""
        }
    );
    for row in rows {
        let name = if all_namespaces {
            format!("{}/{}", row.namespace, row.name)
        } else {
            row.name.clone()
        };
        let (counts, hash) = plan_column(row.plan.as_ref());
        let line = format!(
            "{:<18} {name:<32} {:<7} {:<26} {counts:<24} {hash}",
            row.kind, row.ready, row.reason
        );
        if wide {
            out.push_str(&format!("{line:<134} {}\n", row.message));
        } else {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
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

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client_and_namespace(&args.target).await?;
    // `-A`: every namespace, each object named `namespace/name`.
    let scope = (!args.all_namespaces).then_some(namespace.as_str());
    let mut rows = Vec::new();
    for c in list::<GhlConnection>(&client, scope).await? {
        let conditions = c.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
        rows.push(StatusRow::new("GhlConnection", &c, conditions, None));
    }
    for p in list::<ContactSyncPolicy>(&client, scope).await? {
        let status = p.status.as_ref();
        let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
        let plan = status.and_then(|s| s.plan.as_ref());
        rows.push(StatusRow::new("ContactSyncPolicy", &p, conditions, plan));
    }
    for r in list::<TagRule>(&client, scope).await? {
        let status = r.status.as_ref();
        let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
        let plan = status.and_then(|s| s.plan.as_ref());
        rows.push(StatusRow::new("TagRule", &r, conditions, plan));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": rows});
    if !print_structured(args.target.output, &list)? {
        let wide = args.target.output == Some(Format::Wide);
        print!("{}", table(&rows, args.all_namespaces, wide));
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
            approve_in::<ContactSyncPolicy>(
                client,
                &args.target,
                &namespace,
                &name,
                &args.hash,
                |p| p.status.as_ref().and_then(|s| s.plan.clone()),
            )
            .await
        }
        "tagrule" | "tagrules" => {
            approve_in::<TagRule>(client, &args.target, &namespace, &name, &args.hash, |r| {
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
    target: &Target,
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
    let approved = json!({
        "kind": K::kind(&()),
        "namespace": namespace,
        "name": name,
        "approved": hash,
        "plan": plan,
    });
    if !print_structured(target.output, &approved)? {
        let (counts, _) = plan_column(plan.as_ref());
        println!(
            "approved plan {hash} of {kind}/{name} ({counts}); the operator applies it once (see status.plan.approvedBy)"
        );
    }
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
    }

    #[test]
    fn the_table_shows_names_plans_and_wide_messages() {
        let plan = PlanSummary {
            create: 2,
            hash: Some("aaaa".into()),
            blocked: Some("maxChanges".into()),
            ..PlanSummary::default()
        };
        let row = StatusRow {
            kind: "ContactSyncPolicy",
            namespace: "crm".into(),
            name: "big".into(),
            ready: "False".into(),
            reason: "SafetyLimitExceeded".into(),
            message: "5 changes exceed maxChanges 1".into(),
            plan: Some(plan),
            conditions: Vec::new(),
        };
        let rows = [row];
        let narrow = table(&rows, false, false);
        let line = narrow.lines().nth(1).unwrap();
        assert!(line.starts_with("ContactSyncPolicy  big "), "{line}");
        assert!(
            line.contains("+2 ~0 -0 adopt 0") && line.ends_with("aaaa (waiting)"),
            "{line}"
        );
        assert!(
            !narrow.contains("maxChanges 1"),
            "messages only with -o wide"
        );
        let all = table(&rows, true, true);
        assert!(all.lines().next().unwrap().ends_with("MESSAGE"));
        let line = all.lines().nth(1).unwrap();
        assert!(
            line.contains("crm/big") && line.ends_with("5 changes exceed maxChanges 1"),
            "{line}"
        );
    }
}
