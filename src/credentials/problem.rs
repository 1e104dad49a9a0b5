//! Why a connection's credential cannot be used now, in the words its status will use.

use std::time::Duration;

/// Why the credential cannot be used now.
#[derive(Clone, Debug)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    /// Nothing will change until something outside the operator does (a new code, a fixed
    /// Secret): stalled. Otherwise retried after `retry_in`.
    pub stalled: bool,
    pub retry_in: Duration,
    /// The credential itself was refused (Authenticated=False).
    pub refused: bool,
}

impl Problem {
    pub fn stalled(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            stalled: true,
            retry_in: Duration::from_secs(300),
            refused: false,
        }
    }

    pub fn refused(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            stalled: true,
            retry_in: Duration::from_secs(300),
            refused: true,
        }
    }

    pub fn retry(reason: &'static str, message: String, retry_in: Duration) -> Self {
        Self {
            reason,
            message,
            stalled: false,
            retry_in,
            refused: false,
        }
    }
}
