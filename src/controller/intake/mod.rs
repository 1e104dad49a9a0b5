//! Intake: what the operator does with the webhooks GHL sends it, and the change feeds it
//! sends on.
//!
//! - [`webhooks`]: the [`Handler`](webhooks::Handler) the webhook receiver hands verified
//!   webhooks to: counted per connection, fed to the change feeds of the location, queued as
//!   targeted reconciles for the policies concerned, waking the location's TagRules;
//! - [`feeds`]: the connections' change feeds and webhook counts, the backlog the receiver's
//!   429 is measured against, and the task that writes `status.webhooks` / `status.export`;
//! - [`batches`]: contacts waiting for a targeted reconcile, batched by policy;
//! - [`consent`]: `GET /oauth/callback`, where GHL sends a person back after consenting;
//! - [`sources`]: the refresher of the policies' HTTP sources, waking a policy whose
//!   document changed.
//!
//! [`Intake`] is the part of the [`Context`](super::context::Context) they share.

pub mod batches;
pub mod consent;
pub mod feeds;
pub mod sources;
pub mod webhooks;

use self::batches::Batches;
use self::feeds::Feeds;

/// The feeds and the contacts waiting for targeted reconciles.
pub struct Intake {
    pub feeds: Feeds,
    pub batches: Batches,
    /// Whether this process serves `GET /oauth/callback` (it listens on `--webhook-addr`):
    /// without it, no consent link can bring a code back.
    pub callback_served: std::sync::atomic::AtomicBool,
}
