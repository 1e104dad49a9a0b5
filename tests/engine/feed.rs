//! The change feed's reads, against the sandbox: what a catch-up found is delivered as it
//! was found (no GET per contact), and a burst of webhook changes is read by `dateUpdated`
//! search pages, not one GET each.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ghl_operator::feed::signature::SigningKey;
use ghl_operator::feed::{Feed, FeedConfig, FeedMetrics, SinkConfig};
use ghl_operator::ghl::GhlApi;
use ghl_operator::sandbox::SandboxConfig;
use ghl_operator::sandbox::seed::{Seed, SeedContact};
use serde_json::{Value, json};

use crate::support::engine::client;
use crate::support::sandbox::{Raw, start};

/// Per contact, the first name and `readBy` of the latest event the sink got.
type Arrivals = Arc<Mutex<HashMap<String, (String, Option<String>)>>>;

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let event: Value = serde_json::from_slice(&body).unwrap();
    let data = &event["data"];
    arrivals.lock().unwrap().insert(
        event["subject"].as_str().unwrap().to_owned(),
        (
            data["contact"]["firstName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            data["readBy"].as_str().map(str::to_owned),
        ),
    );
    StatusCode::NO_CONTENT
}

async fn sink() -> (String, Arrivals) {
    let arrivals = Arrivals::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(Arc::clone(&arrivals));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

/// Waits until every contact of `ids` reached the sink named `name`.
async fn all_arrive(arrivals: &Arrivals, ids: &[String], name: &str) {
    let started = Instant::now();
    loop {
        let arrived = {
            let arrivals = arrivals.lock().unwrap();
            ids.iter()
                .filter(|id| arrivals.get(*id).is_some_and(|(n, _)| n == name))
                .count()
        };
        if arrived == ids.len() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{arrived} of {} arrived as {name}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spent(after: &Value, before: &Value, operation: &str) -> u64 {
    after["byOperation"][operation].as_u64().unwrap_or(0)
        - before["byOperation"][operation].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_catch_up_and_a_burst_are_read_by_search_pages_not_per_contact() {
    let ids: Vec<String> = (0..300).map(|i| format!("feedburst{i:011}")).collect();
    let seed = Seed {
        contacts: ids
            .iter()
            .map(|id| SeedContact {
                id: Some(id.clone()),
                attributes: json!({"email": format!("{id}@example.com"), "firstName": "Before"})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..SeedContact::default()
            })
            .collect(),
        ..Seed::default()
    };
    let sandbox = start(SandboxConfig {
        seed,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let api: Arc<dyn GhlApi> = Arc::new(client(&sandbox));
    let (url, arrivals) = sink().await;
    let before = raw.admin("GET", "stats", None).await;

    // A new feed's first catch-up finds the 300 contacts just seeded: delivered as found.
    let feed = Feed::start(
        FeedConfig {
            namespace: "ns".into(),
            connection: "acme".into(),
            location_id: sandbox.location_id.clone(),
            sinks: vec![SinkConfig {
                name: "servis-ai".into(),
                url,
                include: Default::default(),
                ready: Ok(
                    SigningKey::from_secret(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
                ),
            }],
            catch_up: Duration::from_secs(3600),
            snapshot: None,
        },
        None,
        Arc::new(move || Some(Arc::clone(&api))),
        reqwest::Client::new(),
        FeedMetrics::default(),
        Arc::new(AtomicI64::new(0)),
        None,
    );
    all_arrive(&arrivals, &ids, "Before").await;
    let caught_up = raw.admin("GET", "stats", None).await;
    assert_eq!(spent(&caught_up, &before, "contacts.get"), 0, "no GET");
    assert_eq!(spent(&caught_up, &before, "contacts.search"), 1, "one page");
    assert!(
        arrivals
            .lock()
            .unwrap()
            .values()
            .all(|(_, by)| by.as_deref() == Some("search")),
        "each event says it was read by search"
    );

    // A bulk edit: 300 changes at once, each announced by its webhook.
    for id in &ids {
        raw.admin(
            "PATCH",
            &format!("contacts/{id}"),
            Some(json!({"firstName": "After"})),
        )
        .await;
        feed.accept(id, "ContactUpdate", false, jiff::Timestamp::now());
    }
    all_arrive(&arrivals, &ids, "After").await;
    let after = raw.admin("GET", "stats", None).await;
    assert_eq!(spent(&after, &caught_up, "contacts.get"), 0, "no GET");
    let pages = spent(&after, &caught_up, "contacts.search");
    assert!(
        (1..=2).contains(&pages),
        "300 changes in {pages} search pages"
    );
}
