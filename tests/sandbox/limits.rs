//! Rate limits with GHL's headers and 429s; search that lags writes.

use std::time::Duration;

use ghl_operator::sandbox::{RateLimit, SandboxConfig};
use serde_json::json;

use crate::support::sandbox::{Raw, start};

#[tokio::test]
async fn rate_limit_headers_count_down_then_429() {
    let sandbox = start(SandboxConfig {
        rate_limit: RateLimit {
            requests: 3,
            window: Duration::from_millis(800),
        },
        daily_limit: 1000,
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let list = format!("/contacts/?locationId={}", sandbox.location_id);
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let answer = raw.call("GET", &list, None).await;
        let header = |name: &str| answer.headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-ratelimit-max"), "3");
        assert_eq!(header("x-ratelimit-interval-milliseconds"), "800");
        assert_eq!(header("x-ratelimit-limit-daily"), "1000");
        remaining.push((
            answer.status,
            header("x-ratelimit-remaining"),
            header("x-ratelimit-daily-remaining"),
        ));
    }
    assert_eq!(
        remaining,
        [
            (200, "2".into(), "999".into()),
            (200, "1".into(), "998".into()),
            (200, "0".into(), "997".into()),
            (429, "0".into(), "997".into()),
        ]
    );
    tokio::time::sleep(Duration::from_millis(850)).await;
    assert_eq!(
        raw.call("GET", &list, None).await.status,
        200,
        "the window resets"
    );
    let stats = raw.admin("GET", "stats", None).await;
    assert_eq!(stats["rateLimited"], 1);
    assert_eq!(stats["byStatus"]["429"], 1);
}

#[tokio::test]
async fn search_lags_writes_but_get_does_not() {
    let sandbox = start(SandboxConfig {
        search_lag: Duration::from_millis(600),
        ..SandboxConfig::default()
    })
    .await;
    let raw = Raw::new(&sandbox);
    let loc = sandbox.location_id.clone();
    let created = raw
        .call(
            "POST",
            "/contacts/",
            Some(json!({"locationId": loc, "email": "lag@b.co", "city": "Old"})),
        )
        .await;
    let id = created.json["contact"]["id"].as_str().unwrap().to_owned();
    let search = || {
        raw.call(
            "POST",
            "/contacts/search",
            Some(json!({"locationId": loc, "pageLimit": 10})),
        )
    };
    assert_eq!(search().await.json["total"], 0, "not searchable yet");
    assert_eq!(
        raw.call("GET", &format!("/contacts/{id}"), None)
            .await
            .status,
        200,
        "GET sees it at once"
    );
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(search().await.json["total"], 1);

    raw.call(
        "PUT",
        &format!("/contacts/{id}"),
        Some(json!({"city": "New"})),
    )
    .await;
    assert_eq!(
        search().await.json["contacts"][0]["city"],
        "Old",
        "search shows the old value"
    );
    let list = raw
        .call("GET", &format!("/contacts/?locationId={loc}"), None)
        .await;
    assert_eq!(list.json["contacts"][0]["city"], "Old", "so does the list");
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(search().await.json["contacts"][0]["city"], "New");
}
