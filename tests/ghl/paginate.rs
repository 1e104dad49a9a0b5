//! Full pagination: search past GHL's 10,000-record page cap with `searchAfter`, the page-number
//! fallback and its cap, `GET /contacts/` cursors, and the location task search.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use ghl_operator::ghl::error::Result;
use ghl_operator::ghl::models::{ContactSearch, TaskSearch};
use ghl_operator::ghl::paginate::{list_all, location_tasks_all, search_all};
use ghl_operator::ghl::request::{ApiRequest, ApiResponse, RequestBody};
use ghl_operator::ghl::transport::Transport;
use ghl_operator::ghl::{GhlClient, GhlError};
use serde_json::{Value, json};

/// What the fake saw of one request: path, query pairs, JSON body.
type Seen = (String, Vec<(String, String)>, Value);

/// An in-memory location with `n` contacts that pages like GHL and records every request.
struct Pages {
    n: usize,
    with_cursor: bool,
    seen: Mutex<Vec<Seen>>,
}

impl Pages {
    fn new(n: usize, with_cursor: bool) -> Arc<Self> {
        Arc::new(Self {
            n,
            with_cursor,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn contact(&self, i: usize) -> Value {
        let mut c = json!({"id": format!("c{i:05}"), "dateAdded": format!("2024-01-01T00:00:{:02}.{:03}Z", (i / 1000) % 60, i % 1000)});
        if self.with_cursor {
            c["searchAfter"] = json!([i, format!("c{i:05}")]);
        }
        c
    }

    fn page(&self, from: usize, limit: usize) -> Vec<Value> {
        (from..(from + limit).min(self.n))
            .map(|i| self.contact(i))
            .collect()
    }
}

#[async_trait]
impl Transport for Pages {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        let body: Value = match &request.body {
            RequestBody::Json(bytes) => serde_json::from_slice(bytes).unwrap(),
            _ => Value::Null,
        };
        let query: Vec<(String, String)> = request
            .query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.seen
            .lock()
            .unwrap()
            .push((request.path.clone(), query.clone(), body.clone()));
        let answer = match request.path.as_str() {
            "/contacts/search" => {
                let limit = body["pageLimit"].as_u64().unwrap() as usize;
                let from = if let Some(after) = body.get("searchAfter") {
                    after[0].as_u64().unwrap() as usize + 1
                } else {
                    let page = body.get("page").and_then(Value::as_u64).unwrap_or(1) as usize;
                    if (page - 1) * limit >= 10_000 {
                        return Err(GhlError::from_status(
                            request.operation,
                            422,
                            b"{}",
                            None,
                            None,
                        ));
                    }
                    (page - 1) * limit
                };
                json!({"contacts": self.page(from, limit), "total": self.n})
            }
            "/contacts/" => {
                let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
                let limit: usize = get("limit").unwrap().parse().unwrap();
                let from =
                    get("startAfterId").map_or(0, |id| id[1..].parse::<usize>().unwrap() + 1);
                let page = self.page(from, limit);
                let meta = page
                    .last()
                    .map(|c| json!({"startAfterId": c["id"], "total": self.n}));
                json!({"contacts": page, "meta": meta})
            }
            path if path.ends_with("/tasks/search") => {
                let (skip, limit) = (
                    body["skip"].as_u64().unwrap() as usize,
                    body["limit"].as_u64().unwrap() as usize,
                );
                let tasks: Vec<Value> = (skip..(skip + limit).min(self.n))
                    .map(|i| json!({"id": format!("t{i}"), "completed": false}))
                    .collect();
                json!({"tasks": tasks})
            }
            other => panic!("unexpected path {other}"),
        };
        Ok(ApiResponse {
            status: 200,
            body: Bytes::from(answer.to_string()),
            rate_limit: None,
        })
    }
}

#[tokio::test]
async fn search_pages_past_ten_thousand_with_search_after() {
    let pages = Pages::new(12_345, true);
    let client = GhlClient::new(pages.clone(), "loc");
    let search = ContactSearch {
        page_limit: 500,
        ..ContactSearch::default()
    };
    let contacts: Vec<_> = search_all(&client, search).try_collect().await.unwrap();
    assert_eq!(contacts.len(), 12_345);
    assert!(
        contacts.windows(2).all(|w| w[0].id < w[1].id),
        "in order, no repeats"
    );
    let seen = pages.seen.lock().unwrap();
    assert_eq!(seen.len(), 25, "ceil(12345 / 500) pages");
    for (i, (_, _, body)) in seen.iter().enumerate() {
        assert_eq!(body["locationId"], "loc");
        assert!(
            body.get("page").is_none(),
            "cursor paging never sends page numbers"
        );
        assert_eq!(
            body["sort"],
            json!([{"field": "dateAdded", "direction": "asc"}])
        );
        assert_eq!(body.get("searchAfter").is_some(), i > 0);
    }
}

#[tokio::test]
async fn search_falls_back_to_page_numbers_and_stops_clearly_at_the_cap() {
    let small = Pages::new(1_200, false);
    let client = GhlClient::new(small.clone(), "loc");
    let search = ContactSearch {
        page_limit: 500,
        ..ContactSearch::default()
    };
    let contacts: Vec<_> = search_all(&client, search.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(contacts.len(), 1_200);
    let pages: Vec<Option<u64>> = small
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| b.get("page").and_then(Value::as_u64))
        .collect();
    assert_eq!(pages, [None, Some(2), Some(3)]);

    let big = Pages::new(10_600, false);
    let client = GhlClient::new(big, "loc");
    let err = search_all(&client, search)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.category(), "invalid_request");
    assert!(err.to_string().contains("10000"), "{err}");
}

#[tokio::test]
async fn list_all_follows_start_after_id_and_resends_location_and_limit() {
    let pages = Pages::new(250, false);
    let client = GhlClient::new(pages.clone(), "loc");
    let contacts: Vec<_> = list_all(&client, 100, None).try_collect().await.unwrap();
    assert_eq!(contacts.len(), 250);
    let seen = pages.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (i, (path, query, _)) in seen.iter().enumerate() {
        assert_eq!(path, "/contacts/");
        assert!(
            query.contains(&("locationId".into(), "loc".into())),
            "{query:?}"
        );
        assert!(query.contains(&("limit".into(), "100".into())), "{query:?}");
        assert_eq!(
            query.iter().any(|(k, _)| k == "startAfterId"),
            i > 0,
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn location_tasks_page_by_skip() {
    let pages = Pages::new(130, false);
    let client = GhlClient::new(pages.clone(), "loc");
    let search = TaskSearch {
        limit: 50,
        ..TaskSearch::default()
    };
    let tasks: Vec<_> = location_tasks_all(&client, search)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tasks.len(), 130);
    let skips: Vec<u64> = pages
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| b["skip"].as_u64().unwrap())
        .collect();
    assert_eq!(skips, [0, 50, 100]);
}
