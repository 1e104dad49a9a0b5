//! A crash injected between any two GHL writes, followed by a rerun, gives the same end state
//! (no duplicate, nothing lost), with the ledger kept in a state file.

use std::time::Duration;

use ghl_operator::engine::apply::ApplyError;
use ghl_operator::engine::state::file::StateFile;
use ghl_operator::engine::{Mode, SyncError, SyncOptions};

use crate::support::engine::sync_with;
use ghl_operator::sandbox::SandboxConfig;
use serde_json::{Value, json};

use crate::support::engine::{assert_converged, client, now, spec};
use crate::support::sandbox::{Raw, start};

fn phase_one() -> Value {
    json!([
        {"email": "ada@example.com", "tags": ["vip"], "tasks": [{"key": "k", "title": "Call", "dueDate": "2030-01-10T15:00:00Z"}],
         "notes": [{"key": "n", "body": "Hello"}]},
        {"email": "grace@example.com", "tags": ["vip", "navy"]}
    ])
}

fn phase_two() -> Value {
    json!([
        {"email": "ada@example.com", "tags": ["vip", "summit"], "city": "London",
         "tasks": [{"key": "k", "title": "Call back", "dueDate": "2030-01-11T15:00:00Z", "completed": true}],
         "notes": [{"key": "n", "body": "Hello"}, {"key": "m", "body": "Second"}]},
        {"email": "alan@example.com", "tags": ["new"]}
    ])
}

async fn run(
    client: &ghl_operator::ghl::GhlClient,
    file: &std::path::Path,
    records: &Value,
    crash_after: Option<usize>,
) -> Result<u64, SyncError> {
    let state = StateFile::open(file).unwrap();
    let store = state.owner("crm/ContactSyncPolicy/vip");
    let mut options = SyncOptions::new(Mode::Apply, now());
    options.apply.concurrency = 1;
    options.apply.crash_after_writes = crash_after;
    let spec = spec(json!({"prune": true, "contacts": records}));
    let outcome = sync_with(client, &store, &spec, options).await?;
    Ok(outcome.report().map_or(0, |a| a.writes))
}

async fn converge(client: &ghl_operator::ghl::GhlClient, file: &std::path::Path, records: &Value) {
    for _ in 0..4 {
        if run(client, file, records, None).await.unwrap() == 0 {
            return;
        }
    }
    panic!("no convergence after a crash");
}

#[tokio::test]
async fn a_crash_between_any_two_writes_then_a_rerun_converges() {
    // How many writes each phase takes without a crash.
    let sandbox = start(SandboxConfig {
        allow_duplicate_contact: true,
        search_lag: Duration::from_millis(100),
        ..SandboxConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.json");
    let client_probe = client(&sandbox);
    let first_writes = run(&client_probe, &probe, &phase_one(), None)
        .await
        .unwrap() as usize;
    let second_writes = run(&client_probe, &probe, &phase_two(), None)
        .await
        .unwrap() as usize;
    assert!(
        first_writes >= 4 && second_writes >= 5,
        "{first_writes} / {second_writes}"
    );

    for (phase, writes) in [(1, first_writes), (2, second_writes)] {
        for crash_after in 1..=writes {
            let sandbox = start(SandboxConfig {
                allow_duplicate_contact: true,
                search_lag: Duration::from_millis(100),
                ..SandboxConfig::default()
            })
            .await;
            let client = client(&sandbox);
            let file = dir.path().join(format!("state-{phase}-{crash_after}.json"));
            if phase == 2 {
                converge(&client, &file, &phase_one()).await;
            }
            let records = if phase == 1 { phase_one() } else { phase_two() };
            let crashed = run(&client, &file, &records, Some(crash_after)).await;
            assert!(
                matches!(crashed, Err(SyncError::Apply(ApplyError::Crashed(n))) if n == crash_after),
                "phase {phase}, crash after {crash_after}: {crashed:?}"
            );
            converge(&client, &file, &records).await;
            assert_converged(&Raw::new(&sandbox), &records).await;
        }
    }
}
