//! Errors and retries: GHL's error shapes, the classification, exponential backoff with
//! jitter for idempotent calls, 429 retried for every call, Retry-After honoured.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_operator::ghl::models::CreateContact;
use ghl_operator::ghl::transport::HttpTimeouts;
use ghl_operator::ghl::{ErrorClass, GhlApi, GhlError, Operation};
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::mock_ghl::{client, client_with, settings};

/// Answers from a script, one response per request (the last repeats), and records arrival times.
struct Script {
    answers: Vec<ResponseTemplate>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        let i = (seen.len() - 1).min(self.answers.len() - 1);
        self.answers[i].clone()
    }
}

async fn scripted(answers: Vec<ResponseTemplate>) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(any())
        .respond_with(Script {
            answers,
            seen: Arc::clone(&seen),
        })
        .mount(&server)
        .await;
    (server, seen)
}

fn ok_contact() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"contact": {"id": "c1"}}))
}

fn created_contact() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"contact": {"id": "c1"}}))
}

fn status(code: u16) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({"statusCode": code, "message": "nope"}))
}

#[tokio::test]
async fn idempotent_calls_are_retried_with_growing_delays() {
    let (server, seen) = scripted(vec![status(503), status(502), status(500), ok_contact()]).await;
    let (client, metrics) = client(&server.uri());
    let contact = client.get_contact("c1").await.unwrap();
    assert_eq!(contact.id, "c1");
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // min delay 20 ms, doubling, with jitter adding up to 100%: each gap is at least the base.
    assert!(gaps[0] >= Duration::from_millis(20), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(40), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(80), "{gaps:?}");
    assert_eq!(metrics.request_count(Operation::GetContact, "5xx"), 3);
    assert_eq!(metrics.request_count(Operation::GetContact, "2xx"), 1);
}

#[tokio::test]
async fn retries_give_up_after_the_limit_with_the_last_error() {
    let (server, seen) = scripted(vec![status(503)]).await;
    let (client, _) = client(&server.uri());
    let err = client.get_contact("c1").await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(
        seen.lock().unwrap().len(),
        4,
        "one attempt and three retries"
    );
}

#[tokio::test]
async fn a_create_is_not_retried_after_a_server_error() {
    // The create may have happened: retrying blindly could duplicate the contact.
    let (server, seen) = scripted(vec![status(503), created_contact()]).await;
    let (client, _) = client(&server.uri());
    let err = client
        .create_contact(&CreateContact::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_429_is_retried_even_for_a_create() {
    let (server, seen) = scripted(vec![status(429), created_contact()]).await;
    let (client, _) = client(&server.uri());
    let contact = client
        .create_contact(&CreateContact::default())
        .await
        .unwrap();
    assert_eq!(contact.id, "c1");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let limited = status(429).insert_header("retry-after", "1");
    let (server, seen) = scripted(vec![limited, ok_contact()]).await;
    let (client, _) = client(&server.uri());
    client.get_contact("c1").await.unwrap();
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "{:?}",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn error_bodies_are_parsed_and_classified_without_retry() {
    let cases = [
        (
            ResponseTemplate::new(422).set_body_json(json!({"statusCode": 422, "error": "Unprocessable Entity",
                "message": ["property gender should not exist", "email must be an email"]})),
            ErrorClass::Terminal,
            "unprocessable",
            "property gender should not exist; email must be an email",
        ),
        (
            ResponseTemplate::new(400).set_body_json(json!({"statusCode": 400, "message": "Bad Request"})),
            ErrorClass::Terminal,
            "bad_request",
            "Bad Request",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"statusCode": 401, "message": "Invalid JWT"})),
            ErrorClass::Auth,
            "unauthorized",
            "Invalid JWT",
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({"statusCode": 403, "message": "The token does not have access to this location."})),
            ErrorClass::Auth,
            "forbidden",
            "The token does not have access to this location.",
        ),
        (
            ResponseTemplate::new(404).set_body_string("Not Found"),
            ErrorClass::NotFound,
            "not_found",
            "Not Found",
        ),
    ];
    for (answer, class, category, message) in cases {
        let (server, seen) = scripted(vec![answer]).await;
        let (client, _) = client(&server.uri());
        let err = client.get_contact("c1").await.unwrap_err();
        assert_eq!(err.class(), class, "{err}");
        assert_eq!(err.category(), category, "{err}");
        assert!(
            matches!(&err, GhlError::Api { message: m, .. } if m == message),
            "{err}"
        );
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "{category} must not be retried"
        );
    }
}

#[tokio::test]
async fn timeouts_are_retryable_and_retried_only_when_idempotent() {
    let slow = ok_contact().set_delay(Duration::from_secs(2));
    let (server, seen) = scripted(vec![slow.clone(), ok_contact()]).await;
    let mut settings = settings(&server.uri());
    settings.timeouts = HttpTimeouts {
        request: Duration::from_millis(200),
        connect: Duration::from_secs(1),
    };
    let (client, _) = client_with(settings.clone());
    client.get_contact("c1").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2, "timed-out GET retried once");

    let (server, seen) = scripted(vec![slow.clone()]).await;
    settings.base_url = server.uri();
    let (client, _) = client_with(settings);
    let err = client
        .create_contact(&CreateContact::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), "timeout");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "timed-out create not retried"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (client, _) = client(&url);
    let err = client
        .create_contact(&CreateContact::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), "connection");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_garbled_success_is_a_typed_error() {
    let garbled = ResponseTemplate::new(200).set_body_string("{\"contact\": {\"id\": 12");
    let (server, _) = scripted(vec![garbled]).await;
    let (client, _) = client(&server.uri());
    let err = client
        .create_contact(&CreateContact::default())
        .await
        .unwrap_err();
    assert_eq!(err.category(), "malformed_response");
}
