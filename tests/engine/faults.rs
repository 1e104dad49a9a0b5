//! With the sandbox's faults on (5xx, timeouts, dropped connections, 422-but-created, search
//! lag) the end state equals the desired state, with zero duplicates.

use std::time::Duration;

use ghl_operator::engine::Mode;
use ghl_operator::engine::state::MemoryStore;
use ghl_operator::sandbox::{FaultSpec, SandboxConfig};
use serde_json::{Value, json};

use crate::support::engine::{assert_converged, client, spec, sync};
use crate::support::sandbox::{Raw, start};

fn declared() -> Value {
    Value::Array(
        (0..30)
            .map(|i| {
                json!({"email": format!("p{i}@example.com"), "firstName": format!("P{i}"), "tags": ["vip", format!("g{}", i % 3)],
                       "tasks": [{"key": "call", "title": format!("Call {i}"), "dueDate": "2030-01-10T15:00:00Z"}],
                       "notes": [{"key": "origin", "body": format!("Note {i}")}]})
            })
            .collect(),
    )
}

#[tokio::test]
async fn faults_do_not_duplicate_or_lose_anything() {
    let sandbox = start(SandboxConfig {
        faults: "seed=7,5xx=0.08,timeout=0.04,drop=0.04,422-created=0.3"
            .parse::<FaultSpec>()
            .unwrap(),
        search_lag: Duration::from_millis(300),
        // Let GHL accept duplicates, so only the engine's care prevents them.
        allow_duplicate_contact: true,
        ..SandboxConfig::default()
    })
    .await;
    let client = client(&sandbox);
    let store = MemoryStore::default();
    let contacts = declared();
    let spec = spec(json!({"contacts": contacts}));
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 10, "did not converge in 10 rounds");
        let outcome = sync(&client, &store, &spec, Mode::Apply).await;
        if outcome.plan().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    let raw = Raw::new(&sandbox);
    assert_converged(&raw, &contacts).await;
    let stats = raw.admin("GET", "stats", None).await;
    let faulted: u64 = ["500", "502", "503", "timeout", "dropped", "422"]
        .iter()
        .map(|s| stats["byStatus"][s].as_u64().unwrap_or(0))
        .sum();
    assert!(faulted > 0, "the faults really happened: {stats}");
    let created_but_422 = stats["byOperationAndStatus"]["contacts.create"]["422"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        created_but_422 > 0,
        "the 422-but-created quirk happened: {stats}"
    );
    println!("converged in {rounds} rounds; {faulted} faulted answers; {stats}");
}
