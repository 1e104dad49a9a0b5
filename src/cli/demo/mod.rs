//! `ghl-operator demo`: the whole product in one minute, with no cluster and no GHL account.
//!
//! Starts the embedded sandbox with a few contacts already in it, and a stand-in for
//! servis-ai's export endpoint; plans and applies the examples plus a policy that reads that
//! export over HTTP through a `fieldMap` (adopting the existing contact instead of duplicating
//! it), then edits a contact in the sandbox as a person in GHL's UI would, tags another a hot
//! lead (the rule gives it a task and a note) and adds a person to the export, shows the
//! plan, applies it, and shows that the next plan is empty. With `--oauth` it first connects an account over OAuth the way the
//! operator does ([`oauth`]).

mod oauth;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use serde_json::{Value, json};

use super::manifests::Manifests;
use super::sources::SourceArgs;
use super::workspace::{CommonArgs, Output, Refresh, Report, Workspace};
use crate::crd::common::Mode;
use crate::sandbox::export::ExportServer;
use crate::sandbox::{SandboxConfig, Seed};

/// The examples, built in so the demo runs from anywhere.
const EXAMPLES: [(&str, &str); 6] = [
    (
        "examples/00-namespace.yaml",
        include_str!("../../../examples/00-namespace.yaml"),
    ),
    (
        "examples/10-connection-pit.yaml",
        include_str!("../../../examples/10-connection-pit.yaml"),
    ),
    (
        "examples/11-connection-oauth.yaml",
        include_str!("../../../examples/11-connection-oauth.yaml"),
    ),
    (
        "examples/20-contact-sync-policy.yaml",
        include_str!("../../../examples/20-contact-sync-policy.yaml"),
    ),
    (
        "examples/30-tag-rule.yaml",
        include_str!("../../../examples/30-tag-rule.yaml"),
    ),
    (
        "examples/31-hot-leads.yaml",
        include_str!("../../../examples/31-hot-leads.yaml"),
    ),
];

/// servis-ai's export, in its own key names: the `servis-ai-export` policy maps them.
const EXPORT: &str = r#"[
  {"mail": "lin@servis.example", "given": "Lin", "org": "Servis", "internalId": 17},
  {"mail": "omar@servis.example", "given": "Omar", "org": "Servis", "internalId": 18}
]"#;

/// The export after servis-ai gained a customer.
const EXPORT_GROWN: &str = r#"[
  {"mail": "lin@servis.example", "given": "Lin", "org": "Servis", "internalId": 17},
  {"mail": "omar@servis.example", "given": "Omar", "org": "Servis", "internalId": 18},
  {"mail": "kim@servis.example", "given": "Kim", "org": "Servis", "internalId": 19}
]"#;

/// A policy fed from that export over HTTP (`{url}`: where the demo serves it).
const EXPORT_POLICY: &str = r#"
apiVersion: ghl.servis.ai/v1alpha1
kind: ContactSyncPolicy
metadata: {name: servis-ai-export, namespace: crm}
spec:
  connectionRef: {name: acme}
  matchBy: email
  contactsFrom:
  - http: {url: "{url}"}
    format: json
    refreshInterval: 1m
    fieldMap: {email: mail, firstName: given, companyName: org}
"#;

/// What the sandbox holds before the demo starts.
const SEED: &str = r#"
contacts:
- email: grace@example.com
  firstName: Grace
  lastName: Hopper
  companyName: Navy
  tags: [customer]
- email: cto@bigcorp.com
  firstName: Dana
  companyName: BigCorp
  tags: [smb]
  notes: [{body: "Asked about the enterprise plan pricing"}]
- email: someone@elsewhere.org
  firstName: Sam
"#;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Use these manifests instead of the built-in examples.
    #[arg(long, value_name = "PATH")]
    pub examples: Option<PathBuf>,
    /// Show personal values in plans.
    #[arg(long)]
    pub show_sensitive: bool,
    /// First connect an account over OAuth, as the operator does: the consent link, the
    /// sandbox's consent screen, the redirect back to `/oauth/callback`, the code exchange.
    #[arg(long)]
    pub oauth: bool,
}

fn step(title: &str) {
    println!("\n━━━ {title} ━━━");
}

fn print_reports(reports: &[Report]) {
    for report in reports {
        print!("{}", report.text);
    }
}

/// One piece: the demo is a script, read top to bottom as the user sees it.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // servis-ai's export endpoint, read by a policy of the built-in examples.
    let export = ExportServer::start(EXPORT).await?;
    let export_url = export.url("/export/people.json");
    let manifests = match &args.examples {
        Some(path) => Manifests::load(std::slice::from_ref(path), "default")?,
        None => {
            let mut m = Manifests::default();
            for (origin, text) in EXAMPLES {
                m.add_text(text, origin, "default")?;
            }
            let policy = EXPORT_POLICY.replace("{url}", &export_url);
            m.add_text(&policy, "demo: servis-ai-export", "default")?;
            m
        }
    };
    let common = CommonArgs {
        paths: Vec::new(),
        namespaces: vec!["default".into()],
        state: None,
        sandbox: true,
        base_url: None,
        token: None,
        refresh: Refresh::Full,
        show_sensitive: args.show_sensitive,
        output: Output::Text,
        allow_cross_namespace_refs: false,
        concurrency: 4,
        sources: SourceArgs {
            allowed_source_urls: vec![export.url("/export/")],
        },
        cluster: Default::default(),
    };
    let seed: Seed = serde_saphyr::from_str(SEED)?;
    let base = SandboxConfig {
        seed,
        search_lag: std::time::Duration::from_millis(500),
        ..SandboxConfig::default()
    };
    // Only the PIT connection serves the examples' policies; the OAuth one needs a consent.
    let mut manifests = manifests;
    manifests
        .connections
        .retain(|_, c| c.spec.auth.private_integration_token.is_some());
    let workspace = Workspace::from_manifests(manifests, &common, base).await?;
    let Some(sandbox) = workspace.sandboxes.first() else {
        return Err(anyhow!(
            "the manifests hold no GhlConnection with a Private Integration Token"
        ));
    };
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/__sandbox/{path}", sandbox.url);

    println!(
        "An embedded GHL sandbox is running at {} (location {}).",
        sandbox.url, sandbox.location_id
    );
    println!("It already holds 3 contacts, among them Grace, whom the examples declare too.");
    if args.examples.is_none() {
        println!(
            "servis-ai's export is served at {export_url} (2 people, in its own field names); \
             the policy crm/servis-ai-export reads it through its fieldMap."
        );
    }
    if !args.show_sensitive {
        println!("Personal values show as (sensitive); add --show-sensitive to see them.");
    }
    if args.oauth {
        step("0. connect a GHL account over OAuth (examples/11-connection-oauth.yaml)");
        oauth::run(sandbox).await?;
    }

    step("1. plan: what applying examples/ (and the export policy) would change");
    print_reports(&workspace.run(Mode::Plan, None).await);

    step("2. apply");
    let applied = workspace.run(Mode::Apply, None).await;
    print_reports(&applied);
    println!("{}", super::apply::summary(&applied));
    let state: Value = http.get(admin("state")).send().await?.json().await?;
    println!(
        "The sandbox now holds {} contacts (Grace adopted, not duplicated), {} task(s), {} note(s).",
        state["contacts"].as_array().map_or(0, Vec::len),
        state["tasks"].as_array().map_or(0, Vec::len),
        state["notes"].as_array().map_or(0, Vec::len),
    );

    step(
        "3. someone edits Ada in GHL (a new last name, the vip tag removed) and tags Sam lead-hot; servis-ai's export gains Kim",
    );
    export.set_document(EXPORT_GROWN);
    let ada = state["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["email"] == "ada@example.com")
        .ok_or_else(|| anyhow!("Ada was not created"))?;
    let id = ada["id"].as_str().unwrap_or_default();
    http.patch(admin(&format!("contacts/{id}")))
        .json(&json!({"lastName": "Byron", "tags": ["newsletter"]}))
        .send()
        .await?
        .error_for_status()?;
    println!(
        "(PATCH {} — a UI edit: no API call counted)",
        admin(&format!("contacts/{id}"))
    );
    // Sam becomes a hot lead: the hot-leads rule gives him a call task and a note, once.
    if let Some(sam) = state["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["email"] == "someone@elsewhere.org")
        .and_then(|c| c["id"].as_str())
    {
        http.patch(admin(&format!("contacts/{sam}")))
            .json(&json!({"tags": ["lead-hot"]}))
            .send()
            .await?
            .error_for_status()?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    step("4. plan: the drift, the hot lead, the new person");
    print_reports(&workspace.run(Mode::Plan, None).await);

    step("5. apply: repair");
    let repaired = workspace.run(Mode::Apply, None).await;
    print_reports(&repaired);
    println!("{}", super::apply::summary(&repaired));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    step("6. plan again");
    let last = workspace.run(Mode::Plan, None).await;
    print_reports(&last);
    let stats: Value = http.get(admin("stats")).send().await?.json().await?;
    println!(
        "\nGHL API calls in the whole demo: {} ({} rate-limited).",
        stats["totalRequests"], stats["rateLimited"]
    );
    if args.examples.is_none() {
        println!(
            "servis-ai's export was asked {} times, {} of them answered 304 (unchanged, nothing re-read).",
            export.asked(),
            export.not_modified()
        );
    }
    let clean = last.iter().all(|r| !r.changes && r.error.is_none());
    if clean {
        println!(
            "GHL matches the declared state. Try `ghl-operator plan -f examples/ --sandbox` next."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("The last plan is not empty: something did not converge.");
        Ok(ExitCode::from(1))
    }
}
