//! Fault injection: each kind, and determinism by seed.

use std::time::{Duration, Instant};

use ghl_operator::sandbox::{FaultSpec, SandboxConfig};
use serde_json::json;

use crate::support::sandbox::{Raw, start};

async fn faulty(spec: &str) -> ghl_operator::sandbox::RunningSandbox {
    start(SandboxConfig {
        faults: spec.parse::<FaultSpec>().unwrap(),
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await
}

async fn contact_count(raw: &Raw) -> usize {
    raw.admin("GET", "state", None).await["contacts"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn server_errors_are_answered_without_doing_the_work() {
    let sandbox = faulty("seed=1,5xx=1").await;
    let raw = Raw::new(&sandbox);
    let answer = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": sandbox.location_id, "email": "a@b.co"})),
        )
        .await;
    assert!(
        [500, 502, 503].contains(&answer.status),
        "{}",
        answer.status
    );
    assert_eq!(answer.json["statusCode"], answer.status);
    assert_eq!(contact_count(&raw).await, 0);
}

#[tokio::test]
async fn slow_answers_arrive_late_with_the_work_done() {
    let sandbox = faulty("seed=1,slow=1,slow-delay=400ms").await;
    let raw = Raw::new(&sandbox);
    let started = Instant::now();
    let answer = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": sandbox.location_id, "email": "a@b.co"})),
        )
        .await;
    assert_eq!(answer.status, 201);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn timeouts_leave_the_client_waiting_after_the_work_is_done() {
    let sandbox = faulty("seed=1,timeout=1").await;
    let raw = Raw::new(&sandbox);
    let outcome = raw
        .request("POST", "/contacts/")
        .timeout(Duration::from_millis(500))
        .json(&json!({"locationId": sandbox.location_id, "email": "a@b.co"}))
        .send()
        .await;
    assert!(outcome.is_err_and(|e| e.is_timeout()));
    assert_eq!(contact_count(&raw).await, 1, "the create happened");
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["byStatus"]["timeout"], 1);
}

#[tokio::test]
async fn dropped_connections_break_the_answer_after_the_work_is_done() {
    let sandbox = faulty("seed=1,drop=1").await;
    let raw = Raw::new(&sandbox);
    let outcome = async {
        let response = raw
            .request("POST", "/contacts/")
            .json(&json!({"locationId": sandbox.location_id, "email": "a@b.co"}))
            .send()
            .await?;
        response.text().await
    }
    .await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(contact_count(&raw).await, 1);
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["byStatus"]["dropped"], 1);
}

#[tokio::test]
async fn the_422_but_created_quirk() {
    let sandbox = faulty("seed=1,422-created=1").await;
    let raw = Raw::new(&sandbox);
    let answer = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": sandbox.location_id, "email": "a@b.co"})),
        )
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json["error"], "Unprocessable Entity");
    assert_eq!(contact_count(&raw).await, 1, "answered 422, created anyway");
    // Only creates are affected.
    let list = raw
        .call(
            "GET",
            &format!("/contacts/?locationId={}", sandbox.location_id),
            None,
        )
        .await;
    assert_eq!(list.status, 200);
}

#[tokio::test]
async fn the_same_seed_fails_the_same_requests() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sandbox = faulty("seed=99,5xx=0.3").await;
        let raw = Raw::new(&sandbox);
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let answer = raw
                .call(
                    "GET",
                    &format!("/contacts/?locationId={}", sandbox.location_id),
                    None,
                )
                .await;
            statuses.push(answer.status >= 500);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let failed = runs[0].iter().filter(|f| **f).count();
    assert!(
        (3..=18).contains(&failed),
        "{failed} of 30 failed with a 30% share"
    );
    let other = faulty("seed=100,5xx=0.3").await;
    let raw = Raw::new(&other);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            raw.call(
                "GET",
                &format!("/contacts/?locationId={}", other.location_id),
                None,
            )
            .await
            .status
                >= 500,
        );
    }
    assert_ne!(statuses, runs[0], "another seed, other failures");
}
