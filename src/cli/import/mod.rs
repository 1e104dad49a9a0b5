//! `ghl-operator import --location ID -o yaml`: write a ContactSyncPolicy manifest from what
//! GHL holds now — contacts with their custom fields, tags, tasks and notes — so existing CRM
//! data can be put under management. Beyond `--inline-max` contacts the records go to
//! ConfigMaps the policy reads through `contactsFrom` (CSV when the records are flat, else
//! JSON; [`split`]).

mod split;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use futures::TryStreamExt;
use kube::api::ObjectMeta;

use super::manifests::Manifests;
use crate::crd::common::ConnectionRef;
use crate::crd::contact_sync_policy::{
    ContactRecord, ContactSyncPolicy, ContactSyncPolicySpec, MatchBy, NoteRecord, TaskRecord,
};
use crate::engine::custom_fields::ids_by_key;
use crate::engine::fields::Field;
use crate::ghl::models::{Contact, ContactSearch, TaskSearch};
use crate::ghl::paginate::{location_tasks_all, search_all};
use crate::ghl::{ConnectionSettings, GhlApi, GhlMetrics, StaticToken};
use crate::sandbox::{self, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The location (sub-account) to import; defaults to the connection's.
    #[arg(long)]
    pub location: Option<String>,
    /// Manifests holding the GhlConnection and its Secret.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Which GhlConnection (`name` or `namespace/name`) when the manifests hold several.
    #[arg(long)]
    pub connection: Option<String>,
    #[arg(long, env = "GHL_BASE_URL")]
    pub base_url: Option<String>,
    #[arg(long, env = "GHL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Import from the embedded sandbox (with `--seed`).
    #[arg(long)]
    pub sandbox: bool,
    /// Seed file for `--sandbox`.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Name of the ContactSyncPolicy to write.
    #[arg(long, default_value = "imported")]
    pub name: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[arg(long, value_enum, default_value_t = MatchArg::Email)]
    pub match_by: MatchArg,
    /// Skip notes (they take one read per contact).
    #[arg(long)]
    pub skip_notes: bool,
    /// `yaml` (default) or `json`.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Contacts written inline in the policy at most; more go to ConfigMaps
    /// (`<name>-contacts-<n>`: CSV for flat records, JSON with tasks or notes) that the policy
    /// reads through `contactsFrom`.
    #[arg(long, default_value_t = 100)]
    pub inline_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MatchArg {
    Email,
    Phone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

/// One piece: the command as a user runs it, step by step.
pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let manifests = Manifests::load(&args.paths, &args.namespace)?;
    let chosen = pick_connection(&manifests, args.connection.as_deref())?;
    let location = args
        .location
        .clone()
        .or_else(|| chosen.as_ref().map(|(_, c)| c.spec.location_id.clone()))
        .ok_or_else(|| anyhow!("give --location, or -f with a GhlConnection"))?;
    let _sandbox;
    let (url, token) = if args.sandbox {
        let seed = match &args.seed {
            Some(path) => sandbox::config::load_seed(path)?,
            None => Default::default(),
        };
        let running = sandbox::start(
            SandboxConfig {
                location_id: location.clone(),
                seed,
                ..SandboxConfig::default()
            },
            "127.0.0.1:0".parse()?,
        )
        .await?;
        let pair = (running.url.clone(), running.token.clone());
        _sandbox = Some(running);
        pair
    } else {
        _sandbox = None;
        let url = args
            .base_url
            .clone()
            .or_else(|| chosen.as_ref().map(|(_, c)| c.spec.base_url().to_owned()))
            .unwrap_or_else(|| crate::crd::connection::DEFAULT_BASE_URL.to_owned());
        let token = match (&args.token, &chosen) {
            (Some(t), _) => t.clone(),
            (None, Some((key, connection))) => {
                let pit = connection
                    .spec
                    .auth
                    .private_integration_token
                    .as_ref()
                    .ok_or_else(|| {
                        anyhow!(
                            "only Private Integration Token connections can be used without --token"
                        )
                    })?;
                manifests
                    .secrets
                    .get(&(key.0.clone(), pit.secret_ref.name.clone()))
                    .and_then(|s| s.get(&pit.secret_ref.key))
                    .cloned()
                    .ok_or_else(|| {
                        anyhow!("the connection's token Secret is not among the manifests")
                    })?
            }
            (None, None) => {
                bail!("give --token, -f with a GhlConnection and its Secret, or --sandbox")
            }
        };
        (url, token)
    };
    let (client, _) = ConnectionSettings::new(url, location).connect(
        Arc::new(StaticToken::new(token)),
        Arc::new(GhlMetrics::default()),
    )?;
    let match_by = match args.match_by {
        MatchArg::Email => MatchBy::Email,
        MatchArg::Phone => MatchBy::Phone,
    };
    let connection_ref = ConnectionRef {
        name: chosen
            .as_ref()
            .map_or_else(|| "ghl".to_owned(), |(k, _)| k.1.clone()),
        namespace: None,
    };
    let (mut policy, skipped) = import(
        &client,
        match_by,
        !args.skip_notes,
        &args.name,
        &args.namespace,
        connection_ref,
    )
    .await?;
    let mut config_maps = Vec::new();
    if policy.spec.contacts.len() > args.inline_max {
        let records = policy.spec.contacts.records();
        let groups = split::groups(&records, split::CHUNK_BYTES)?;
        let (maps, sources) = split::config_maps(&args.name, &args.namespace, &groups)?;
        policy.spec.contacts = Default::default();
        policy.spec.contacts_from = sources;
        config_maps = maps;
    }
    let text = match args.output {
        Format::Yaml => {
            let mut text = String::new();
            for map in &config_maps {
                text.push_str(&format!("---\n{}", serde_saphyr::to_string(map)?));
            }
            text.push_str(&format!("---\n{}", serde_saphyr::to_string(&policy)?));
            text
        }
        Format::Json if config_maps.is_empty() => serde_json::to_string_pretty(&policy)?,
        Format::Json => {
            let mut items: Vec<serde_json::Value> = config_maps
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            items.push(serde_json::to_value(&policy)?);
            serde_json::to_string_pretty(
                &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
            )?
        }
    };
    print!("{text}");
    if skipped > 0 {
        eprintln!(
            "{skipped} contact(s) without a {} were left out.",
            match args.match_by {
                MatchArg::Email => "email",
                MatchArg::Phone => "phone",
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

type Chosen<'a> = Option<(
    &'a super::manifests::ObjectKey,
    &'a crate::crd::GhlConnection,
)>;

fn pick_connection<'a>(
    manifests: &'a Manifests,
    wanted: Option<&str>,
) -> anyhow::Result<Chosen<'a>> {
    let mut all = manifests.connections.iter();
    match wanted {
        Some(w) => {
            let found = manifests
                .connections
                .iter()
                .find(|((ns, name), _)| name == w || format!("{ns}/{name}") == w);
            found
                .map(Some)
                .ok_or_else(|| anyhow!("no GhlConnection {w} among the manifests"))
        }
        None => match (all.next(), all.next()) {
            (None, _) => Ok(None),
            (Some(one), None) => Ok(Some(one)),
            (Some(_), Some(_)) => {
                bail!("the manifests hold several GhlConnections: pick one with --connection")
            }
        },
    }
}

/// Reads the location and builds the policy. Returns it and how many contacts lacked the key.
///
/// One piece: one pass over the location, building every output as it goes.
pub async fn import(
    api: &dyn GhlApi,
    match_by: MatchBy,
    with_notes: bool,
    name: &str,
    namespace: &str,
    connection_ref: ConnectionRef,
) -> anyhow::Result<(ContactSyncPolicy, usize)> {
    let contacts: Vec<Contact> = search_all(
        api,
        ContactSearch {
            page_limit: 500,
            ..ContactSearch::default()
        },
    )
    .try_collect()
    .await
    .context("reading contacts")?;
    let search = TaskSearch {
        contact_ids: contacts.iter().map(|c| c.id.clone()).collect(),
        limit: 100,
        ..TaskSearch::default()
    };
    let mut tasks: BTreeMap<String, Vec<TaskRecord>> = BTreeMap::new();
    if !contacts.is_empty() {
        let all: Vec<_> = location_tasks_all(api, search)
            .try_collect()
            .await
            .context("reading tasks")?;
        for task in all {
            let Some(contact) = task.contact_id.clone() else {
                continue;
            };
            let list = tasks.entry(contact).or_default();
            list.push(TaskRecord {
                key: format!("task-{}", list.len() + 1),
                title: task.title.unwrap_or_default(),
                body: task.body,
                due_date: task.due_date.unwrap_or_default(),
                assigned_to: task.assigned_to,
                completed: task.completed,
            });
        }
    }
    // Custom fields by key where the location names them (a manifest that serves any
    // location with the same fields); by id otherwise.
    let keys: BTreeMap<String, String> = match api.custom_fields(false).await {
        Ok(definitions) => ids_by_key(&definitions)
            .into_iter()
            .map(|(key, id)| (id.to_owned(), key.to_owned()))
            .collect(),
        Err(e) => {
            eprintln!("custom fields are written by id (their keys could not be read: {e})");
            BTreeMap::new()
        }
    };
    let mut records = Vec::new();
    let mut skipped = 0;
    for contact in &contacts {
        let key = match match_by {
            MatchBy::Email => contact.email.as_deref(),
            MatchBy::Phone => contact.phone.as_deref(),
        };
        if key.is_none_or(str::is_empty) {
            skipped += 1;
            continue;
        }
        let full = api
            .get_contact(&contact.id)
            .await
            .context("reading a contact")?;
        let mut record = record_of(&full, &keys);
        record.tasks = tasks.remove(&contact.id).unwrap_or_default();
        if with_notes {
            let notes = api.list_notes(&contact.id).await.context("reading notes")?;
            record.notes = notes
                .into_iter()
                .enumerate()
                .map(|(i, n)| NoteRecord {
                    key: format!("note-{}", i + 1),
                    body: n.body,
                })
                .collect();
        }
        records.push(record);
    }
    let spec = ContactSyncPolicySpec {
        connection_ref,
        match_by,
        mode: Default::default(),
        prune: false,
        deletion_policy: Default::default(),
        resync_interval: None,
        safety: None,
        field_policy: BTreeMap::new(),
        contacts: records.into(),
        contacts_from: Vec::new(),
    };
    let mut policy = ContactSyncPolicy::new(name, spec);
    policy.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    };
    Ok((policy, skipped))
}

fn record_of(contact: &Contact, keys: &BTreeMap<String, String>) -> ContactRecord {
    let get = |f: Field| f.read(contact);
    ContactRecord {
        email: get(Field::Email),
        phone: get(Field::Phone),
        first_name: get(Field::FirstName),
        last_name: get(Field::LastName),
        name: None,
        company_name: get(Field::CompanyName),
        address1: get(Field::Address1),
        city: get(Field::City),
        state: get(Field::State),
        postal_code: get(Field::PostalCode),
        country: get(Field::Country),
        website: get(Field::Website),
        timezone: get(Field::Timezone),
        source: get(Field::Source),
        date_of_birth: get(Field::DateOfBirth).map(|d| Field::DateOfBirth.normalize(&d)),
        assigned_to: get(Field::AssignedTo),
        dnd: contact.dnd,
        custom_fields: contact
            .custom_fields
            .iter()
            .filter(|c| !c.value.is_null())
            .map(|c| (keys.get(&c.id).unwrap_or(&c.id).clone(), c.value.clone()))
            .collect(),
        tags: contact.tags.clone(),
        tasks: Vec::new(),
        notes: Vec::new(),
    }
}
