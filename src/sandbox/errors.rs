//! GHL-shaped error answers: `{statusCode, message, error?}`, with `message` an array for 422
//! (NestJS validation) and a string otherwise.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer the sandbox sends.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"statusCode": status, "message": message.into()}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// 401 with GHL's `error: "Unauthorized"`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            body: json!({"statusCode": 401, "message": message.into(), "error": "Unauthorized"}),
        }
    }

    pub fn forbidden_location() -> Self {
        Self::new(403, "The token does not have access to this location.")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, format!("{what} not found"))
    }

    /// 422 with a list of validation messages, as GHL's NestJS pipes answer.
    pub fn unprocessable(messages: Vec<String>) -> Self {
        Self {
            status: 422,
            body: json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}),
        }
    }

    pub fn too_many_requests() -> Self {
        Self::new(429, "Too Many Requests")
    }

    pub fn server_error(status: u16) -> Self {
        let message = match status {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Internal server error",
        };
        Self::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
