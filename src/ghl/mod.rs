//! The GHL client.
//!
//! Layers, outermost first — reconcile code only ever sees the [`GhlApi`] trait:
//! - [`api::GhlApi`]: the operations the engine needs, bound to one location;
//! - [`client::GhlClient`]: typed requests and responses ([`models`]) over a transport;
//! - [`retry::Retrying`]: backoff with jitter for idempotent calls, 429 for all;
//! - [`transport::Budgeted`]: waits for the location's [`budget::RequestBudget`];
//! - [`transport::HttpTransport`]: reqwest over rustls, the `Version` header and the bearer
//!   token from an [`auth::TokenSource`].
//!
//! [`oauth::OAuthClient`] covers the token endpoints; [`paginate`] turns paged endpoints into
//! streams.

pub mod api;
pub mod auth;
pub mod budget;
pub mod client;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod models;
pub mod oauth;
pub mod operation;
pub mod paginate;
pub mod request;
pub mod retry;
pub mod transport;

pub use api::GhlApi;
pub use auth::{SharedToken, StaticToken, TokenError, TokenSource};
pub use budget::{BudgetConfig, RequestBudget};
pub use client::{ConnectionSettings, GhlClient};
pub use error::{ErrorClass, GhlError};
pub use metrics::GhlMetrics;
pub use operation::Operation;
