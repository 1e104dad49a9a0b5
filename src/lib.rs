//! ghl-operator: keeps GHL (HighLevel) Contacts data matched to state declared in Kubernetes
//! custom resources, Terraform-style.
//!
//! The layout follows the architecture:
//! - [`crd`]: the custom resource types (the API users write);
//! - [`ghl`]: the GHL client (trait, HTTP, models, budget, retry, errors, auth);
//! - [`sandbox`]: the GHL emulator (embedded default and test double);
//! - [`engine`]: observe → plan → apply, the ledger and its stores;
//! - [`credentials`]: PIT age, the OAuth lifecycle with fenced refresh, schedules, dependents;
//! - [`controller`]: the in-cluster operator (kube-runtime controllers, leader election);
//! - [`admission`]: the admission webhook that turns approvals into authorizations;
//! - [`cli`]: one module per subcommand;
//! - [`console`]: the web console, acting with each person's own Kubernetes identity;
//! - [`feed`], [`webhook`]: the change feed's deliveries, and GHL's webhooks received;
//! - [`sources`]: `contactsFrom[].http` documents, fetched conditionally and kept;
//! - [`egress`], [`refs`], [`telemetry`], [`privacy`], [`tls`]: cross-cutting plumbing.

pub mod admission;
pub mod cli;
pub mod console;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod egress;
pub mod engine;
pub mod feed;
pub mod ghl;
pub mod privacy;
pub mod refs;
pub mod sandbox;
pub mod sources;
pub mod telemetry;
pub mod tls;
pub mod webhook;
