//! GHL → operator: GHL's signed webhooks, received, verified and handed on.
//!
//! - [`verify`]: Ed25519 (`X-GHL-Signature`) or RSA (`x-wh-signature`) on the raw bytes, with
//!   GHL's published keys built in or the installer's (`--webhook-public-key`);
//! - [`payload`]: a webhook's envelope and which contact (and part of it) changed;
//! - [`replay`]: `webhookId`s already accepted (bounded);
//! - [`receiver`]: `POST /webhooks/ghl` — the checks in order, the answers GHL gets, metrics.
//!
//! What an accepted webhook causes (targeted reconciles, the change feeds) is the
//! controller's: see `controller::intake`.

pub mod payload;
pub mod receiver;
pub mod replay;
pub mod verify;

pub use payload::{Change, Part, Webhook};
pub use receiver::{Admission, Intake, Receiver, WebhookMetrics};
pub use verify::PublicKeys;
