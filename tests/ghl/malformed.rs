//! Property test: whatever bytes GHL answers with, under any status, every client call returns
//! a value or a typed error — never a panic.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ghl_operator::ghl::error::Result;
use ghl_operator::ghl::models::*;
use ghl_operator::ghl::request::{ApiRequest, ApiResponse};
use ghl_operator::ghl::transport::Transport;
use ghl_operator::ghl::{ErrorClass, GhlApi, GhlClient, GhlError};
use proptest::prelude::*;
use serde_json::Value;

/// A transport that answers every request with a fixed status and body, as the HTTP transport
/// would hand them on.
struct Canned {
    status: u16,
    body: Bytes,
}

#[async_trait]
impl Transport for Canned {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        if (200..300).contains(&self.status) {
            Ok(ApiResponse {
                status: self.status,
                body: self.body.clone(),
                rate_limit: None,
            })
        } else {
            Err(GhlError::from_status(
                request.operation,
                self.status,
                &self.body,
                None,
                None,
            ))
        }
    }
}

/// Runs every kind of call against the canned answer; each must return, not panic.
async fn exercise(status: u16, body: Bytes) {
    let client = GhlClient::new(Arc::new(Canned { status, body }), "loc");
    let tags = vec!["t".to_owned()];
    let outcomes: Vec<std::result::Result<(), GhlError>> = vec![
        client.get_contact("c").await.map(drop),
        client
            .create_contact(&CreateContact::default())
            .await
            .map(drop),
        client
            .update_contact("c", &UpdateContact::default())
            .await
            .map(drop),
        client.delete_contact("c").await,
        client
            .upsert_contact(&UpsertContact::default())
            .await
            .map(drop),
        client
            .list_contacts(&ListContactsQuery::default())
            .await
            .map(drop),
        client
            .search_contacts(&ContactSearch::default())
            .await
            .map(drop),
        client.list_tasks("c").await.map(drop),
        client.complete_task("c", "t", true).await.map(drop),
        client
            .search_location_tasks(&TaskSearch::default())
            .await
            .map(drop),
        client.list_notes("c").await.map(drop),
        client.get_note("c", "n").await.map(drop),
        client.list_appointments("c").await.map(drop),
        client.add_tags("c", &tags).await.map(drop),
    ];
    for outcome in outcomes {
        if let Err(err) = outcome {
            // Typed and classified; the message renders.
            let _ = err.to_string();
            let class = err.class();
            if (200..300).contains(&status) {
                assert_eq!(err.category(), "malformed_response");
                assert_eq!(class, ErrorClass::Retryable);
            } else {
                assert_eq!(err.status(), Some(status));
            }
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("contact".to_owned()),
            Just("contacts".to_owned()),
            Just("id".to_owned()),
            Just("tags".to_owned()),
            Just("tasks".to_owned()),
            Just("notes".to_owned()),
            Just("events".to_owned()),
            Just("message".to_owned()),
            Just("total".to_owned()),
            Just("searchAfter".to_owned()),
            "[a-zA-Z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![Just(200u16), Just(201), 100u16..600]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_json_never_panics(status in status(), value in json_value()) {
        let body = Bytes::from(serde_json::to_vec(&value).unwrap());
        runtime().block_on(exercise(status, body));
    }

    #[test]
    fn arbitrary_bytes_never_panic(status in status(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        runtime().block_on(exercise(status, Bytes::from(bytes)));
    }
}
