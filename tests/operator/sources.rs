//! Sources that pull, on the test API server with the sandbox: a policy reads its records from
//! servis-ai's export endpoint (`contactsFrom[].http`, shaped by a `fieldMap`, headers from a
//! `source` Secret); a new record reaches GHL within one `refreshInterval`, and an unchanged
//! document costs one conditional request per interval; a URL outside
//! `--allowed-source-url` is refused and never fetched; a 500 or an empty document releases
//! nothing.

use std::time::{Duration, Instant};

use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::harness::*;
use crate::support::sandbox::{Raw, start};
use crate::support::source::{self, Source};

const READY: Duration = Duration::from_secs(60);
const REFRESH: Duration = Duration::from_secs(10);
const TOKEN: &str = "Bearer servis-ai-export-token";

fn document(people: &[(&str, &str)]) -> String {
    let records: Vec<Value> = people
        .iter()
        .map(|(mail, given)| json!({"mail": mail, "given": given, "tier": "gold"}))
        .collect();
    serde_json::to_string(&records).unwrap()
}

fn headers_secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "export-headers", "labels": {"ghl.servis.ai/secret-type": "source"}},
           "stringData": {"Authorization": TOKEN}})
}

fn policy(url: &str) -> Value {
    json!({
        "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy", "metadata": {"name": "from-servis-ai"},
        "spec": {"connectionRef": {"name": "acme"}, "resyncInterval": "1h", "prune": true,
                 "contactsFrom": [{"http": {"url": url, "headersSecretRef": {"name": "export-headers"}},
                                   "format": "json", "refreshInterval": "10s",
                                   "fieldMap": {"email": "mail", "firstName": "given"}}]}
    })
}

async fn operator_for(ns: &str, sandbox_url: &str, source: &Source) -> Operator {
    let mut options = OperatorOptions::new(ns, "op-0").allowing(sandbox_url);
    options
        .extra_args
        .push(format!("--allowed-source-url={}", source.url("/export/")));
    Operator::start(options)
}

async fn setup_with(
    prefix: &str,
) -> Option<(
    kube::Client,
    TestNamespace,
    ghl_operator::sandbox::RunningSandbox,
    Source,
)> {
    let (client, ns) = setup(prefix).await?;
    let sandbox = start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let source = source::start(&document(&[("ada@example.com", "Ada")])).await;
    source.require_authorization(TOKEN);
    apply_connection(&client, &ns.name, &sandbox.url).await;
    apply(&client, &ns.name, headers_secret()).await;
    Some((client, ns, sandbox, source))
}

#[tokio::test]
async fn a_new_record_arrives_within_one_refresh_and_an_unchanged_document_costs_one_304() {
    let Some((client, ns, sandbox, source)) = setup_with("source-http").await else {
        return;
    };
    let raw = Raw::new(&sandbox);
    let operator = operator_for(&ns.name, &sandbox.url, &source).await;
    apply(
        &client,
        &ns.name,
        policy(&source.url("/export/people.json")),
    )
    .await;
    wait_object(
        &policies(&client, &ns.name),
        "from-servis-ai",
        "Synced",
        READY,
        |p| is_true(p, "Synced"),
    )
    .await;
    assert_eq!(
        sandbox_contacts(&raw).await["ada@example.com"]["firstName"],
        "Ada"
    );

    // Unchanged for three intervals: one conditional request each, all answered 304.
    let (asked, not_modified) = (source.asked(), source.not_modified());
    tokio::time::sleep(REFRESH * 3).await;
    let intervals = source.asked() - asked;
    eprintln!(
        "unchanged for {:?}: {intervals} request(s), {} answered 304",
        REFRESH * 3,
        source.not_modified() - not_modified
    );
    assert!(
        (2..=3).contains(&intervals),
        "one per interval: {intervals}"
    );
    assert_eq!(
        source.not_modified() - not_modified,
        intervals,
        "all conditional"
    );

    // servis-ai adds a record: in GHL within one refreshInterval.
    let changed = Instant::now();
    source.set_document(&document(&[
        ("ada@example.com", "Ada"),
        ("grace@example.com", "Grace"),
    ]));
    wait_for(
        "the new record in GHL",
        REFRESH + Duration::from_secs(3),
        || async {
            sandbox_contacts(&raw)
                .await
                .contains_key("grace@example.com")
                .then_some(())
        },
    )
    .await;
    eprintln!("source change to GHL: {:?}", changed.elapsed());

    // 500, then an empty document: nothing is released (prune is on).
    for (broken, reason) in [(Some(500), "SourceUnavailable"), (None, "EmptySource")] {
        match broken {
            Some(status) => source.fail_with(Some(status)),
            None => {
                source.fail_with(None);
                source.set_document("[]");
            }
        }
        wait_object(
            &policies(&client, &ns.name),
            "from-servis-ai",
            reason,
            REFRESH * 3,
            |p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.failures.iter().any(|f| f.reason == reason))
            },
        )
        .await;
        let contacts = sandbox_contacts(&raw).await;
        assert!(
            contacts.contains_key("ada@example.com") && contacts.contains_key("grace@example.com"),
            "{reason}: nothing released"
        );
    }
    let logs = operator.logs();
    assert!(
        !logs.contains("Grace") && !logs.contains(TOKEN),
        "no document or header values in logs"
    );
    operator.assert_logs_clean();
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_source_outside_the_allowlist_is_refused_and_never_fetched() {
    let Some((client, ns, sandbox, source)) = setup_with("source-refused").await else {
        return;
    };
    let operator = operator_for(&ns.name, &sandbox.url, &source).await;
    apply(
        &client,
        &ns.name,
        policy(&source.url("/private/private.json")),
    )
    .await;
    let refused = wait_object(
        &policies(&client, &ns.name),
        "from-servis-ai",
        "SourceNotAllowed",
        READY,
        |p| condition(p, "Ready").is_some_and(|(_, reason)| reason == "SourceNotAllowed"),
    )
    .await;
    let message = condition_message(&refused, "Ready").unwrap_or_default();
    assert!(message.contains("--allowed-source-url"), "{message}");
    assert_eq!(source.asked(), 0, "never fetched");
    operator.stop().await;
    ns.delete().await;
}
