//! The operator's three kinds as an enum (what metrics, ledger Secrets and object keys name),
//! and [`Object`], the bound every typed read and write of them uses.

use std::fmt;
use std::fmt::Debug;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::de::DeserializeOwned;

/// The kinds the operator reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    GhlConnection,
    ContactSyncPolicy,
    TagRule,
}

impl Kind {
    /// The Kubernetes kind name (also the `kind` label of metrics and ledger Secrets).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::GhlConnection => "GhlConnection",
            Kind::ContactSyncPolicy => "ContactSyncPolicy",
            Kind::TagRule => "TagRule",
        }
    }

    /// The resource name (`kubectl get <plural>`, RBAC rules).
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::GhlConnection => "ghlconnections",
            Kind::ContactSyncPolicy => "contactsyncpolicies",
            Kind::TagRule => "tagrules",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator's own kinds are, for typed reads and writes.
pub trait Object:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug
{
}

impl<K> Object for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
{
}
