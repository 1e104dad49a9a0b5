//! Webhooks: every change is POSTed with GHL's payload shape, `timestamp` and `webhookId`,
//! signed with keys a receiver gets from the sandbox; only 429 is retried.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ghl_operator::sandbox::SandboxConfig;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::sandbox::{Raw, start};

/// What the receiver got: headers and the raw body.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver answering `statuses` in turn (the last one repeats).
async fn receiver(statuses: Vec<u16>) -> (String, Received) {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let state = (Arc::clone(&received), Arc::new(statuses));
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State((received, statuses)): State<(Received, Arc<Vec<u16>>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mut got = received.lock().unwrap();
                    got.push((headers, body));
                    let status = statuses[(got.len() - 1).min(statuses.len() - 1)];
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn wait_for(received: &Received, count: usize) {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {count} webhook deliveries, got {}",
        received.lock().unwrap().len()
    );
}

fn event_schema(kind: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ghl/webhooks/events")
        .join(format!("{kind}.schema.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn every_change_is_delivered_signed_and_shaped_like_ghl() {
    let (url, received) = receiver(vec![200]).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(url),
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let loc = sandbox.location_id.clone();
    let contact = raw
        .call("POST", "/contacts/", Some(json!({"locationId": loc, "email": "ada@example.com", "firstName": "Ada", "tags": ["vip"]})))
        .await;
    let id = contact.json["contact"]["id"].as_str().unwrap().to_owned();
    raw.call(
        "PUT",
        &format!("/contacts/{id}"),
        Some(json!({"lastName": "Lovelace"})),
    )
    .await;
    raw.call(
        "POST",
        &format!("/contacts/{id}/tags"),
        Some(json!({"tags": ["summit"]})),
    )
    .await;
    let task = raw
        .call(
            "POST",
            &format!("/contacts/{id}/tasks"),
            Some(json!({"title": "Call", "dueDate": "2030-01-10T15:00:00Z", "completed": false})),
        )
        .await;
    let task_id = task.json["task"]["id"].as_str().unwrap().to_owned();
    raw.call(
        "PUT",
        &format!("/contacts/{id}/tasks/{task_id}/completed"),
        Some(json!({"completed": true})),
    )
    .await;
    let note = raw
        .call(
            "POST",
            &format!("/contacts/{id}/notes"),
            Some(json!({"body": "Hello"})),
        )
        .await;
    let note_id = note.json["note"]["id"].as_str().unwrap().to_owned();
    raw.call(
        "PUT",
        &format!("/contacts/{id}/notes/{note_id}"),
        Some(json!({"body": "Hello again"})),
    )
    .await;
    raw.call("DELETE", &format!("/contacts/{id}/notes/{note_id}"), None)
        .await;
    raw.call("DELETE", &format!("/contacts/{id}/tasks/{task_id}"), None)
        .await;
    raw.call("DELETE", &format!("/contacts/{id}"), None).await;

    let expected = [
        "ContactCreate",
        "ContactUpdate",
        "ContactTagUpdate",
        "TaskCreate",
        "TaskComplete",
        "NoteCreate",
        "NoteUpdate",
        "NoteDelete",
        "TaskDelete",
        "ContactDelete",
    ];
    wait_for(&received, expected.len()).await;

    let keys = raw.admin("GET", "webhook-keys", None).await;
    let ed_key =
        ed25519_dalek::VerifyingKey::from_public_key_pem(keys["ed25519"].as_str().unwrap())
            .unwrap();
    let rsa_key = rsa::PublicKey::from_public_key_pem(keys["rsa"].as_str().unwrap()).unwrap();
    let rsa_verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(rsa_key);

    let got = received.lock().unwrap().clone();
    let kinds: Vec<String> = got
        .iter()
        .map(|(_, body)| {
            serde_json::from_slice::<Value>(body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, expected);
    let mut webhook_ids = std::collections::BTreeSet::new();
    for (headers, body) in &got {
        let payload: Value = serde_json::from_slice(body).unwrap();
        let kind = payload["type"].as_str().unwrap();
        assert_eq!(payload["locationId"], loc);
        assert!(
            payload["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        assert!(
            webhook_ids.insert(payload["webhookId"].as_str().unwrap().to_owned()),
            "webhookIds are unique"
        );
        // The official per-event schema: types, and no field it does not list.
        let schema = event_schema(kind);
        let declared: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        for field in payload.as_object().unwrap().keys() {
            let envelope = field == "timestamp" || field == "webhookId";
            assert!(
                envelope || declared.contains(&field),
                "{kind} carries undeclared {field}"
            );
        }
        let required: &[&str] = match kind {
            k if k.starts_with("Contact") => &["id", "email", "tags", "customFields", "dateAdded"],
            k if k.starts_with("Task") => &["id", "contactId", "title", "dueDate", "dateAdded"],
            _ => &["id", "contactId", "body", "dateAdded"],
        };
        for field in required {
            assert!(payload.get(*field).is_some(), "{kind} lacks {field}");
        }
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&payload)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
        // Signatures over the raw bytes, with the published keys.
        let ed_sig = BASE64
            .decode(headers["x-ghl-signature"].to_str().unwrap())
            .unwrap();
        let ed_sig = ed25519_dalek::Signature::from_slice(&ed_sig).unwrap();
        ed_key
            .verify_strict(body, &ed_sig)
            .expect("X-GHL-Signature verifies");
        let rsa_sig = BASE64
            .decode(headers["x-wh-signature"].to_str().unwrap())
            .unwrap();
        let rsa_sig = rsa::pkcs1v15::Signature::try_from(rsa_sig.as_slice()).unwrap();
        rsa_verifier
            .verify(body, &rsa_sig)
            .expect("x-wh-signature verifies");
        let mut tampered = body.to_vec();
        tampered.push(b' ');
        assert!(ed_key.verify_strict(&tampered, &ed_sig).is_err());
    }
    let contact_event: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(contact_event["id"], id);
    assert_eq!(contact_event["email"], "ada@example.com");
    assert_eq!(contact_event["tags"], json!(["vip"]));
    let task_event: Value = serde_json::from_slice(&got[3].1).unwrap();
    assert_eq!(task_event["contactId"], id);
}

#[tokio::test]
async fn only_429_is_retried() {
    let (url, received) = receiver(vec![429, 429, 200, 500]).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(url),
        webhook_retry_delay: Duration::from_millis(50),
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let loc = sandbox.location_id.clone();
    raw.call(
        "POST",
        "/contacts/",
        Some(json!({"locationId": loc, "email": "a@b.co"})),
    )
    .await;
    wait_for(&received, 3).await;
    raw.call(
        "POST",
        "/contacts/",
        Some(json!({"locationId": loc, "email": "c@d.co"})),
    )
    .await;
    wait_for(&received, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 4, "a 500 is not retried");
    let got = received.lock().unwrap().clone();
    assert_eq!(got[0].1, got[2].1, "the retried delivery is the same event");
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(
        stats["webhooks"],
        json!({"sent": 1, "failed": 1, "retried": 2, "dropped": 0})
    );
}
