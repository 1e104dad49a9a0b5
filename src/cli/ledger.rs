//! `ledger export|import`: a policy's or rule's ledger (what it created or adopted in GHL) as
//! a file, to carry it to another cluster or keep it beside a backup. Import writes it as the
//! ledger of an object that has none yet (created in `mode: Plan`, so nothing is applied
//! before its ledger is there); within one cluster, `ghl.servis.ai/adopt-ledger` does the same.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use super::cluster::{Target, client_and_namespace};
use crate::crd::kind::Object;
use crate::crd::{ContactSyncPolicy, Kind, TagRule};
use crate::engine::fence::Fence;
use crate::engine::ledger::Ledger;
use crate::engine::state::StateStore;
use crate::engine::state::secret::{LedgerOwner, SecretLedgerStore};

#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Write the ledger of `contactsyncpolicy/NAME` (or `NAME`) or `tagrule/NAME` as JSON.
    Export {
        object: String,
        #[command(flatten)]
        target: Target,
        /// Write to this file instead of stdout.
        #[arg(long = "file", short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Make the exported ledger in FILE the ledger of the object of the same kind and name in
    /// the namespace (`-n`, default the kubeconfig's), which must have none yet.
    Import {
        #[arg(long = "file", short = 'f', value_name = "FILE")]
        file: PathBuf,
        /// Another name to import it as (default: the exported object's).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// What `export` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    pub api_version: String,
    pub kind: String,
    pub owner: ExportedOwner,
    pub ledger: Ledger,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedOwner {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

const EXPORT_KIND: &str = "LedgerExport";

/// `NAME` or `KIND/NAME`, as kubectl names objects (a bare name is a ContactSyncPolicy).
fn parse_object(text: &str) -> anyhow::Result<(Kind, String)> {
    let (kind, name) = text.split_once('/').unwrap_or(("contactsyncpolicy", text));
    let kind = match kind.to_ascii_lowercase().as_str() {
        "contactsyncpolicy" | "contactsyncpolicies" | "csp" => Kind::ContactSyncPolicy,
        "tagrule" | "tagrules" => Kind::TagRule,
        other => bail!("{other}: a ledger belongs to a contactsyncpolicy/NAME or a tagrule/NAME"),
    };
    Ok((kind, name.to_owned()))
}

fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    parse_object(&format!("{text}/x")).map(|(kind, _)| kind)
}

/// The ledger owner of the live object (its uid).
async fn owner(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> anyhow::Result<LedgerOwner> {
    async fn of<K: Object>(
        client: &Client,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<LedgerOwner> {
        let object: K = Api::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .with_context(|| format!("reading {} {namespace}/{name}", K::kind(&())))?;
        Ok(LedgerOwner::of(kind, &object))
    }
    match kind {
        Kind::ContactSyncPolicy => of::<ContactSyncPolicy>(client, kind, namespace, name).await,
        Kind::TagRule => of::<TagRule>(client, kind, namespace, name).await,
        Kind::GhlConnection => bail!("a GhlConnection has no ledger"),
    }
}

/// The object's `spec.mode`.
async fn mode(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> anyhow::Result<crate::crd::common::Mode> {
    Ok(match kind {
        Kind::ContactSyncPolicy => {
            Api::<ContactSyncPolicy>::namespaced(client.clone(), namespace)
                .get(name)
                .await?
                .spec
                .mode
        }
        Kind::TagRule => {
            Api::<TagRule>::namespaced(client.clone(), namespace)
                .get(name)
                .await?
                .spec
                .mode
        }
        Kind::GhlConnection => bail!("a GhlConnection has no ledger"),
    })
}

pub async fn run(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LedgerCommand::Export {
            object,
            target,
            file,
        } => {
            let (client, namespace) = client_and_namespace(&target).await?;
            let (kind, name) = parse_object(&object)?;
            let owner = owner(&client, kind, &namespace, &name).await?;
            // Read-only: a closed fence refuses every write.
            let store = SecretLedgerStore::new(client, owner.clone(), Fence::leased());
            let ledger = store.load().await?;
            let exported = Exported {
                api_version: crate::crd::vocabulary::GROUP.to_owned()
                    + "/"
                    + crate::crd::vocabulary::VERSION,
                kind: EXPORT_KIND.to_owned(),
                owner: ExportedOwner {
                    kind: kind.as_str().to_owned(),
                    namespace: owner.namespace,
                    name: owner.name,
                    uid: owner.uid,
                },
                ledger,
            };
            let text = serde_json::to_string_pretty(&exported)? + "\n";
            match file {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            eprintln!(
                "exported the ledger of {} {namespace}/{name}: {} contacts",
                kind.as_str(),
                exported.ledger.contacts.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Import { file, name, target } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let exported: Exported = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a ledger export", file.display()))?;
            if exported.kind != EXPORT_KIND {
                bail!(
                    "{} is a {}, not a {EXPORT_KIND}",
                    file.display(),
                    exported.kind
                );
            }
            let (client, namespace) = client_and_namespace(&target).await?;
            let kind = parse_kind(&exported.owner.kind)?;
            let name = name.unwrap_or(exported.owner.name.clone());
            let owner = owner(&client, kind, &namespace, &name).await?;
            if mode(&client, kind, &namespace, &name).await? != crate::crd::common::Mode::Plan {
                bail!(
                    "{} {namespace}/{name} is not in mode: Plan: the operator may write its ledger while this import does; set mode: Plan, import, then Apply",
                    kind.as_str()
                );
            }
            let store = SecretLedgerStore::new(client, owner, Fence::open());
            if !store.is_empty().await? {
                bail!(
                    "{} {namespace}/{name} has a ledger already: importing over it would lose what it records",
                    kind.as_str()
                );
            }
            store.compact_whole(&exported.ledger).await?;
            println!(
                "imported the ledger of {} {}/{} (uid {}) as {}'s {namespace}/{name}: {} contacts",
                kind.as_str(),
                exported.owner.namespace,
                exported.owner.name,
                exported.owner.uid,
                kind.as_str(),
                exported.ledger.contacts.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_as_kubectl_names_them() {
        let cases = [
            ("vip", Some((Kind::ContactSyncPolicy, "vip"))),
            (
                "contactsyncpolicy/vip",
                Some((Kind::ContactSyncPolicy, "vip")),
            ),
            ("csp/vip", Some((Kind::ContactSyncPolicy, "vip"))),
            ("TagRule/hot", Some((Kind::TagRule, "hot"))),
            ("ghlconnection/acme", None),
        ];
        for (text, expected) in cases {
            let got = parse_object(text).ok();
            assert_eq!(
                got.as_ref().map(|(k, n)| (*k, n.as_str())),
                expected,
                "{text}"
            );
        }
    }
}
