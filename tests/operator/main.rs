//! The operator on a real Kubernetes API server (`scripts/k8s-testenv.sh`) against the sandbox.
//! Each test has its own namespace and its own operator process(es) watching only it.

#[path = "../support/mod.rs"]
mod support;

mod agency;
mod approval;
mod argocd;
mod chaos;
mod chart;
mod consent;
mod credentials;
mod deletion;
mod durability;
mod feed_health;
mod harness;
mod hostile;
mod import;
mod leader;
mod ledger;
mod lifecycle;
mod monitoring;
mod ownership;
mod plugin;
mod pr_plan;
mod restore;
mod rules_act;
mod shards;
mod sources;
mod trust;
mod waiting;
mod webhooks;
