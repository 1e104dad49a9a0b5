//! A tiny GHL stand-in that enforces a fixed-window rate limit the way GHL does: it answers
//! `GET /contacts/:id`, sends the `X-RateLimit-*` headers, and answers 429 past the limit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub too_many: AtomicU64,
}

struct Limiter {
    limit: u32,
    window: Duration,
    started: Instant,
    used: u32,
}

#[derive(Clone)]
struct AppState {
    limiter: Arc<Mutex<Limiter>>,
    counters: Arc<Counters>,
}

/// Starts the server on a free port; returns its base URL and its counters.
pub async fn start(limit: u32, window: Duration) -> (String, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let state = AppState {
        limiter: Arc::new(Mutex::new(Limiter {
            limit,
            window,
            started: Instant::now(),
            used: 0,
        })),
        counters: Arc::clone(&counters),
    };
    let app = Router::new()
        .route("/contacts/{id}", get(contact))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), counters)
}

async fn contact(State(state): State<AppState>, Path(id): Path<String>) -> impl IntoResponse {
    let (allowed, remaining, limit, window) = {
        let mut l = state.limiter.lock().unwrap();
        if l.started.elapsed() >= l.window {
            l.started = Instant::now();
            l.used = 0;
        }
        let allowed = l.used < l.limit;
        if allowed {
            l.used += 1;
        }
        (allowed, l.limit - l.used, l.limit, l.window)
    };
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        headers.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    put("x-ratelimit-max", limit.to_string());
    put("x-ratelimit-remaining", remaining.to_string());
    put(
        "x-ratelimit-interval-milliseconds",
        window.as_millis().to_string(),
    );
    put("x-ratelimit-limit-daily", "200000".into());
    put("x-ratelimit-daily-remaining", "199000".into());
    if allowed {
        state.counters.ok.fetch_add(1, Ordering::SeqCst);
        let body = format!(r#"{{"contact":{{"id":"{id}"}}}}"#);
        (StatusCode::OK, headers, body)
    } else {
        state.counters.too_many.fetch_add(1, Ordering::SeqCst);
        let body = r#"{"statusCode":429,"message":"Too Many Requests"}"#.to_owned();
        (StatusCode::TOO_MANY_REQUESTS, headers, body)
    }
}
