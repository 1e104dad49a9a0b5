//! Which object: a typed key naming one object of the operator's kinds (for backoff,
//! per-object counters, declarations and log fields).

use std::fmt;

use kube::{Resource, ResourceExt};

use crate::crd::Kind;

/// One object of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of<K: Resource>(kind: Kind, obj: &K) -> Self {
        Self::new(kind, obj.namespace().unwrap_or_default(), obj.name_any())
    }

    /// `<Kind> <namespace>/<name>`, as messages name an owner.
    pub fn owner(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_kind_namespace_and_name() {
        let key = ObjectKey::new(Kind::TagRule, "crm", "smb");
        assert_eq!(key.to_string(), "TagRule/crm/smb");
        assert_eq!(key.owner(), "TagRule crm/smb");
        assert_ne!(key, ObjectKey::new(Kind::ContactSyncPolicy, "crm", "smb"));
    }
}
