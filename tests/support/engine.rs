//! Running the engine against an in-process sandbox.

use std::sync::Arc;
use std::time::Duration;

use ghl_operator::crd::contact_sync_policy::ContactSyncPolicySpec;
use ghl_operator::engine::desired::build;
use ghl_operator::engine::plan::{Plan, PlanOptions};
use ghl_operator::engine::state::StateStore;
use ghl_operator::engine::{Mode, SyncError, SyncOptions, SyncOutcome, sync_policy};
use ghl_operator::ghl::retry::RetryPolicy;
use ghl_operator::ghl::{ConnectionSettings, GhlClient, GhlMetrics, StaticToken};
use ghl_operator::sandbox::RunningSandbox;
use serde_json::Value;

/// A client for the sandbox with quick retries.
pub fn client(sandbox: &RunningSandbox) -> GhlClient {
    let mut settings = ConnectionSettings::new(&sandbox.url, &sandbox.location_id);
    settings.retry = RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_retries: 4,
    };
    settings.timeouts.request = Duration::from_secs(2);
    settings
        .connect(
            Arc::new(StaticToken::new(sandbox.token.clone())),
            Arc::new(GhlMetrics::default()),
        )
        .unwrap()
        .0
}

pub fn spec(value: Value) -> ContactSyncPolicySpec {
    let mut base = serde_json::json!({"connectionRef": {"name": "acme"}});
    base.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub async fn sync(
    client: &GhlClient,
    store: &dyn StateStore,
    spec: &ContactSyncPolicySpec,
    mode: Mode,
) -> SyncOutcome<Plan> {
    sync_with(client, store, spec, SyncOptions::new(mode, now()))
        .await
        .expect("sync succeeds")
}

/// One sync of an inline-only `spec` (no other owners).
pub async fn sync_with(
    client: &GhlClient,
    store: &dyn StateStore,
    spec: &ContactSyncPolicySpec,
    options: SyncOptions,
) -> Result<SyncOutcome<Plan>, SyncError> {
    let desired = build(spec, &[]).expect("a valid spec");
    sync_policy(client, store, desired, PlanOptions::for_spec(spec), options).await
}

/// Asserts the sandbox holds exactly the declared contacts (by email), each once, with the
/// declared tags, tasks (by title) and notes (by body) once each.
pub async fn assert_converged(raw: &crate::support::sandbox::Raw, declared: &Value) {
    let state = raw.admin("GET", "state", None).await;
    let contacts = state["contacts"].as_array().unwrap();
    for record in declared.as_array().unwrap() {
        let email = record["email"].as_str().unwrap().to_lowercase();
        let matching: Vec<&Value> = contacts
            .iter()
            .filter(|c| c["email"].as_str().map(str::to_lowercase) == Some(email.clone()))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{email} must exist exactly once: {matching:?}"
        );
        let contact = matching[0];
        let id = contact["id"].as_str().unwrap();
        for tag in record["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap().to_lowercase();
            assert!(
                contact["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == &tag),
                "{email} lacks tag {tag}"
            );
        }
        for (kind, field, list) in [("tasks", "title", "tasks"), ("notes", "body", "notes")] {
            let mine: Vec<&Value> = state[list]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["contactId"] == id)
                .collect();
            let declared_items = record[kind].as_array().cloned().unwrap_or_default();
            assert_eq!(mine.len(), declared_items.len(), "{email}: {kind} {mine:?}");
            for item in declared_items {
                let count = mine.iter().filter(|t| t[field] == item[field]).count();
                assert_eq!(count, 1, "{email}: {kind} {} once", item[field]);
            }
        }
    }
    assert_eq!(
        contacts.len(),
        declared.as_array().unwrap().len(),
        "no extra contacts: {contacts:?}"
    );
}
