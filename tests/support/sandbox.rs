//! An in-process sandbox and a raw HTTP caller for it (raw, so tests see exactly what GHL's
//! clients would see).

use std::time::Duration;

use ghl_operator::sandbox::{self, RunningSandbox, SandboxConfig};
use serde_json::Value;

/// Starts a sandbox on a free port.
pub async fn start(config: SandboxConfig) -> RunningSandbox {
    sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts")
}

/// A sandbox with no search lag (most tests do not care about it).
pub async fn start_default() -> RunningSandbox {
    start(SandboxConfig {
        search_lag: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await
}

/// One answer: status, headers, body as JSON (`Null` when not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

/// Raw calls with GHL's headers (overridable per call).
pub struct Raw {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Raw {
    pub fn new(sandbox: &RunningSandbox) -> Self {
        ghl_operator::tls::install_default_provider();
        Self {
            base: sandbox.url.clone(),
            token: sandbox.token.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Version", "2021-07-28")
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("sandbox answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    /// The contact's tasks and notes as GHL holds them.
    pub async fn items_of(&self, contact: &str) -> (Vec<Value>, Vec<Value>) {
        let tasks = self
            .call("GET", &format!("/contacts/{contact}/tasks"), None)
            .await;
        let notes = self
            .call("GET", &format!("/contacts/{contact}/notes"), None)
            .await;
        let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
        (list(&tasks.json, "tasks"), list(&notes.json, "notes"))
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut builder = self.http.request(
            method.parse().unwrap(),
            format!("{}/__sandbox/{}", self.base, path),
        );
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        builder.send().await.unwrap().json().await.unwrap()
    }
}
