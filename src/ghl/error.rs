//! Errors of the GHL client, classified once so that every caller (retry decorator, engine,
//! controllers' `error_policy`) reacts to the same class the same way.

use std::time::Duration;

use serde::Deserialize;

use super::auth::TokenError;
use super::headers::RateLimitSnapshot;
use super::operation::Operation;
use crate::privacy::redact;

/// What a caller should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request itself is wrong (400, 422, other 4xx): retrying will not help; the input
    /// (usually the spec) must change.
    Terminal,
    /// A passing failure (5xx, timeout, connection, garbled answer): retry with backoff.
    Retryable,
    /// The credential was refused (401, 403) or is unavailable: the connection is not
    /// authenticated; wait for new credentials.
    Auth,
    /// GHL's rate limit (429): wait for budget, then retry.
    RateLimited,
    /// The object does not exist (404) — often "already deleted".
    NotFound,
}

/// An error talking to GHL.
#[derive(Debug, thiserror::Error)]
pub enum GhlError {
    /// GHL answered with a non-2xx status.
    #[error("GHL answered {status} to {operation}: {message}")]
    Api {
        operation: Operation,
        status: u16,
        /// GHL's message (string or array joined by `; `), with personal data redacted.
        message: String,
        /// `Retry-After`, when GHL sent one.
        retry_after: Option<Duration>,
        rate_limit: Option<RateLimitSnapshot>,
    },
    /// No answer within the timeout.
    #[error("{operation}: GHL did not answer in time")]
    Timeout {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed or broke before a full answer arrived.
    #[error("{operation}: could not talk to GHL: {detail}")]
    Connection {
        operation: Operation,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer whose body is not what the API promises.
    #[error("{operation}: GHL answered {status} with a body that does not parse: {detail}")]
    MalformedResponse {
        operation: Operation,
        status: u16,
        detail: String,
    },
    /// No usable access token.
    #[error("{operation}: no access token: {source}")]
    Token {
        operation: Operation,
        #[source]
        source: TokenError,
    },
    /// The base URL answered with a redirect. Redirects are never followed (a token, a
    /// client secret or a refresh token would go wherever it points); the error names the
    /// status and where it pointed, never the body.
    #[error(
        "{operation}: the base URL answered {status} pointing to {to}; redirects are not followed"
    )]
    Redirected {
        operation: Operation,
        status: u16,
        /// The redirect's host (`(none)` without a usable `Location`).
        to: String,
    },
    /// The request could not be built (e.g. pagination past GHL's cap without a cursor).
    #[error("{operation}: {message}")]
    InvalidRequest {
        operation: Operation,
        message: String,
    },
}

pub type Result<T, E = GhlError> = std::result::Result<T, E>;

impl GhlError {
    /// Builds the error for a non-2xx answer, parsing GHL's error body.
    pub fn from_status(
        operation: Operation,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
        rate_limit: Option<RateLimitSnapshot>,
    ) -> Self {
        GhlError::Api {
            operation,
            status,
            message: error_message(status, body),
            retry_after,
            rate_limit,
        }
    }

    /// Builds the error for a 2xx answer that does not decode.
    pub fn malformed(operation: Operation, status: u16, error: &serde_json::Error) -> Self {
        GhlError::MalformedResponse {
            operation,
            status,
            // serde's messages quote offending values, which may be personal data.
            detail: redact(&error.to_string()),
        }
    }

    pub fn operation(&self) -> Operation {
        match self {
            GhlError::Api { operation, .. }
            | GhlError::Timeout { operation, .. }
            | GhlError::Connection { operation, .. }
            | GhlError::MalformedResponse { operation, .. }
            | GhlError::Token { operation, .. }
            | GhlError::Redirected { operation, .. }
            | GhlError::InvalidRequest { operation, .. } => *operation,
        }
    }

    /// The HTTP status GHL answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GhlError::Api { status, .. }
            | GhlError::MalformedResponse { status, .. }
            | GhlError::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            GhlError::Api { status, .. } => match status {
                401 | 403 => ErrorClass::Auth,
                404 => ErrorClass::NotFound,
                408 | 500..=599 => ErrorClass::Retryable,
                429 => ErrorClass::RateLimited,
                _ => ErrorClass::Terminal,
            },
            GhlError::Timeout { .. }
            | GhlError::Connection { .. }
            | GhlError::MalformedResponse { .. } => ErrorClass::Retryable,
            GhlError::Token { .. } => ErrorClass::Auth,
            GhlError::InvalidRequest { .. } | GhlError::Redirected { .. } => ErrorClass::Terminal,
        }
    }

    /// A create refused because the contact exists ("This location does not allow duplicated
    /// contacts.", a 400 that names the existing contact in `meta.contactId`): GHL has no
    /// error code for it, so its message is the one sign, read here, in the GHL layer.
    pub fn is_duplicate_contact(&self) -> bool {
        matches!(self, GhlError::Api { status: 400, message, .. }
            if message.to_ascii_lowercase().contains("duplicat"))
    }

    /// A bounded, stable name for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            GhlError::Api { status, .. } => match status {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                408 => "timeout",
                422 => "unprocessable",
                429 => "rate_limited",
                500..=599 => "server_error",
                _ => "client_error",
            },
            GhlError::Timeout { .. } => "timeout",
            GhlError::Connection { .. } => "connection",
            GhlError::MalformedResponse { .. } => "malformed_response",
            GhlError::Token { .. } => "token_unavailable",
            GhlError::InvalidRequest { .. } => "invalid_request",
            GhlError::Redirected { .. } => "redirected",
        }
    }

    /// True for passing failures and rate limiting.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Retryable | ErrorClass::RateLimited
        )
    }

    /// How long GHL asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GhlError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The rate-limit headers of the failed answer, if any.
    pub fn rate_limit(&self) -> Option<&RateLimitSnapshot> {
        match self {
            GhlError::Api { rate_limit, .. } => rate_limit.as_ref(),
            _ => None,
        }
    }
}

/// GHL's error body: `message` is a string for 400/401 and an array for 422.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<MessageField>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageField {
    One(String),
    Many(Vec<String>),
    Other(serde_json::Value),
}

/// Extracts a readable, redacted message from an error body of any shape.
pub fn error_message(status: u16, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let text = match parsed {
        Some(ErrorBody {
            message: Some(MessageField::One(m)),
            ..
        }) if !m.is_empty() => m,
        Some(ErrorBody {
            message: Some(MessageField::Many(items)),
            ..
        }) if !items.is_empty() => items.join("; "),
        Some(ErrorBody {
            message: Some(MessageField::Other(v)),
            ..
        }) if !v.is_null() => v.to_string(),
        Some(ErrorBody { error: Some(e), .. }) if !e.is_empty() => e,
        _ => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unexpected status")
            .to_owned(),
    };
    redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_as_string_as_in_400_and_401() {
        let body = br#"{"statusCode":400,"message":"Bad Request"}"#;
        assert_eq!(error_message(400, body), "Bad Request");
        let body = br#"{"statusCode":401,"message":"Invalid JWT"}"#;
        assert_eq!(error_message(401, body), "Invalid JWT");
    }

    #[test]
    fn message_as_array_as_in_422() {
        let body = br#"{"message":["property gender should not exist","email must be an email"],"error":"Unprocessable Entity","statusCode":422}"#;
        assert_eq!(
            error_message(422, body),
            "property gender should not exist; email must be an email"
        );
    }

    #[test]
    fn bodies_without_message_fall_back() {
        assert_eq!(
            error_message(422, br#"{"error":"Unprocessable Entity"}"#),
            "Unprocessable Entity"
        );
        assert_eq!(
            error_message(502, b"<html>bad gateway</html>"),
            "Bad Gateway"
        );
        assert_eq!(error_message(429, b""), "Too Many Requests");
        assert_eq!(error_message(599, b"{}"), "unexpected status");
    }

    #[test]
    fn echoed_personal_data_is_redacted() {
        let body = br#"{"message":"contact with email ada@example.com already exists"}"#;
        let message = error_message(400, body);
        assert!(!message.contains("ada@example.com"), "{message}");
    }

    #[test]
    fn classes_follow_the_status() {
        let err = |status| GhlError::from_status(Operation::GetContact, status, b"{}", None, None);
        let cases = [
            (400, ErrorClass::Terminal, "bad_request"),
            (401, ErrorClass::Auth, "unauthorized"),
            (403, ErrorClass::Auth, "forbidden"),
            (404, ErrorClass::NotFound, "not_found"),
            (409, ErrorClass::Terminal, "client_error"),
            (422, ErrorClass::Terminal, "unprocessable"),
            (429, ErrorClass::RateLimited, "rate_limited"),
            (500, ErrorClass::Retryable, "server_error"),
            (503, ErrorClass::Retryable, "server_error"),
        ];
        for (status, class, category) in cases {
            assert_eq!(err(status).class(), class, "{status}");
            assert_eq!(err(status).category(), category, "{status}");
        }
        assert!(err(429).is_retryable());
        assert!(err(502).is_retryable());
        assert!(!err(422).is_retryable());
        assert!(!err(401).is_retryable());
    }
}
