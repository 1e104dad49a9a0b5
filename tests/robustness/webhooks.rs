//! Arbitrary webhook requests through the real receiver: any body, any signature headers. The
//! receiver answers every one (never a panic, never a 5xx), and nothing unsigned gets in.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use ghl_operator::webhook::payload::Webhook;
use ghl_operator::webhook::receiver::{Admission, Intake, PATH, Receiver, WebhookMetrics, router};
use ghl_operator::webhook::verify::PublicKeys;
use proptest::prelude::*;
use serde_json::json;
use tower::ServiceExt;

use crate::inputs::{json, object_over};

/// Counts what gets through.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Intake for Counting {
    fn knows(&self, _location: &str) -> bool {
        true
    }

    fn knows_company(&self, _company: &str) -> bool {
        true
    }

    fn admit(&self, _webhook: Webhook, _received: Instant) -> Admission {
        self.0.fetch_add(1, Ordering::SeqCst);
        Admission::Accepted
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let event = object_over(json!({
        "type": "ContactUpdate", "webhookId": "w1", "locationId": "loc",
        "timestamp": jiff::Timestamp::now().to_string(), "id": "c1",
    }));
    prop_oneof![
        event.prop_map(|e| e.to_string().into_bytes()),
        json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn signature() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just(String::new()),
        Just("N/A".to_owned()),
        "[A-Za-z0-9+/=]{0,100}",
        "[ -~]{0,40}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_webhook_request_is_answered_and_nothing_unsigned_gets_in(
        body in body(),
        ed25519 in signature(),
        rsa in signature(),
    ) {
        let _ = Webhook::parse(&body).map(|e| e.fresh(jiff::Timestamp::now(), std::time::Duration::MAX));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let intake = Arc::new(Counting::default());
        let receiver = Receiver::new(PublicKeys::ghl(), intake.clone(), WebhookMetrics::default());
        let mut request = Request::post(PATH).header("content-type", "application/json");
        if let Some(s) = &ed25519 {
            request = request.header("x-ghl-signature", s.as_str());
        }
        if let Some(s) = &rsa {
            request = request.header("x-wh-signature", s.as_str());
        }
        let request = request.body(Body::from(body)).unwrap();
        let response = runtime.block_on(router(Arc::new(receiver)).oneshot(request)).unwrap();
        let status = response.status().as_u16();
        prop_assert!((200..500).contains(&status), "answered {status}");
        prop_assert_eq!(intake.0.load(Ordering::SeqCst), 0, "only GHL's signature gets an event in");
    }
}
