//! Where a policy or rule stands with the GhlConnection it names: usable (with its live client
//! and location), or not — and why, in the words its status will use. Reads the caches only.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::registry::clients::{Clients, ConnectionKey, Handle, Readiness};
use crate::crd::GhlConnection;
use crate::crd::common::ConnectionRef;
use crate::crd::conditions::Phase;
use crate::crd::vocabulary::{condition, reason};

/// A connection a reconcile can use now.
#[derive(Clone, Debug)]
pub struct Usable {
    pub key: ConnectionKey,
    pub location: String,
    pub handle: Arc<Handle>,
}

impl Usable {
    /// `namespace/name`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.key.0, self.key.1)
    }
}

/// Where an object stands with its connection.
#[derive(Clone, Debug)]
pub enum ConnectionState {
    Usable(Usable),
    Unusable {
        key: ConnectionKey,
        phase: Phase,
        reason: &'static str,
        message: String,
        /// The location, when the connection is declared (and allowed).
        location: Option<String>,
    },
}

impl ConnectionState {
    pub fn location(&self) -> Option<&str> {
        match self {
            ConnectionState::Usable(u) => Some(&u.location),
            ConnectionState::Unusable { location, .. } => location.as_deref(),
        }
    }

    pub fn key(&self) -> &ConnectionKey {
        match self {
            ConnectionState::Usable(u) => &u.key,
            ConnectionState::Unusable { key, .. } => key,
        }
    }
}

/// The connection `reference` names from an object in `namespace` (its own unless it says).
pub fn target(namespace: &str, reference: &ConnectionRef) -> ConnectionKey {
    (
        reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        reference.name.clone(),
    )
}

/// The connection `reference` names from an object in `namespace`, and whether it may be used.
///
/// One piece: each early return is one way a connection can be unusable, in the order they
/// are checked.
pub fn resolve(
    connections: &Store<GhlConnection>,
    registry: &Clients,
    allow_cross_namespace: bool,
    namespace: &str,
    reference: &ConnectionRef,
) -> ConnectionState {
    let key = target(namespace, reference);
    let unusable = |phase, reason, message, location| ConnectionState::Unusable {
        key: key.clone(),
        phase,
        reason,
        message,
        location,
    };
    let declared = connections
        .get(&ObjectRef::new(&key.1).within(&key.0))
        .filter(|c| c.meta().deletion_timestamp.is_none());
    let Some(declared) = declared else {
        let message = format!("waiting for GhlConnection {}/{} to exist", key.0, key.1);
        return unusable(
            Phase::Progressing,
            reason::CONNECTION_NOT_FOUND,
            message,
            None,
        );
    };
    if !(allow_cross_namespace || declared.spec.admits(&key.0, namespace)) {
        let message = format!(
            "connectionRef names GhlConnection {}/{}, which does not list namespace {namespace} in spec.allowedNamespaces; its owner must add it",
            key.0, key.1
        );
        return unusable(
            Phase::Stalled,
            reason::CROSS_NAMESPACE_REF_DENIED,
            message,
            None,
        );
    }
    let location = Some(declared.spec.location_id.clone());
    let Some(handle) = registry.get(&key) else {
        // Declared, but no client yet: its credential is not usable; say why, from its status.
        let ready = declared
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY));
        let message = match ready {
            Some(c) if c.status != "True" => format!(
                "GhlConnection {}/{} is not ready ({}): {}",
                key.0, key.1, c.reason, c.message
            ),
            // No verdict yet, or one from an earlier process: not checked by this one.
            _ => format!("GhlConnection {}/{} is not checked yet", key.0, key.1),
        };
        return unusable(
            Phase::Stalled,
            reason::CONNECTION_NOT_READY,
            message,
            location,
        );
    };
    let Readiness {
        ready,
        reason: why,
        message,
    } = handle.readiness();
    if !ready {
        let message = format!(
            "GhlConnection {}/{} is not ready ({why}): {message}",
            key.0, key.1
        );
        return unusable(
            Phase::Stalled,
            reason::CONNECTION_NOT_READY,
            message,
            location,
        );
    }
    ConnectionState::Usable(Usable {
        location: declared.spec.location_id.clone(),
        key,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::ghl::GhlMetrics;
    use crate::ghl::budget::BudgetConfig;

    fn connection(namespace: &str, name: &str, ready_reason: Option<&str>) -> GhlConnection {
        let mut value = json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "spec": {"locationId": "loc-1", "baseUrl": "http://127.0.0.1:1",
                     "auth": {"privateIntegrationToken": {"secretRef": {"name": "s", "key": "k"}}}}
        });
        if let Some(why) = ready_reason {
            value["status"] = json!({"conditions": [{"type": "Ready", "status": "False",
                "reason": why, "message": "Secret s does not exist",
                "lastTransitionTime": "2030-01-01T00:00:00Z"}]});
        }
        serde_json::from_value(value).unwrap()
    }

    fn reference(name: &str, namespace: Option<&str>) -> ConnectionRef {
        ConnectionRef {
            name: name.into(),
            namespace: namespace.map(str::to_owned),
        }
    }

    #[test]
    fn each_way_a_connection_can_be_unusable() {
        let (store, mut writer) = reflector::store::<GhlConnection>();
        writer.apply_watcher_event(&Event::Apply(connection("crm", "acme", None)));
        writer.apply_watcher_event(&Event::Apply(connection(
            "crm",
            "broken",
            Some("SecretNotFound"),
        )));
        writer.apply_watcher_event(&Event::Apply(connection("other", "acme", None)));
        let mut allowing = connection("shared", "acme", None);
        allowing.spec.allowed_namespaces = vec!["crm".into()];
        writer.apply_watcher_event(&Event::Apply(allowing));
        let registry = Clients::new(Arc::new(GhlMetrics::default()));
        let state = |r: &ConnectionRef, cross: bool| resolve(&store, &registry, cross, "crm", r);

        let cases: [(&str, ConnectionState, &str, Option<&str>); 7] = [
            (
                "another namespace, not allowed",
                state(&reference("acme", Some("other")), false),
                reason::CROSS_NAMESPACE_REF_DENIED,
                None,
            ),
            (
                "another namespace, allowed by the deprecated flag",
                state(&reference("acme", Some("other")), true),
                reason::CONNECTION_NOT_READY,
                Some("loc-1"),
            ),
            (
                "another namespace, allowed by the connection",
                state(&reference("acme", Some("shared")), false),
                reason::CONNECTION_NOT_READY,
                Some("loc-1"),
            ),
            (
                "another namespace, missing",
                state(&reference("nope", Some("other")), false),
                reason::CONNECTION_NOT_FOUND,
                None,
            ),
            (
                "missing",
                state(&reference("nope", None), false),
                reason::CONNECTION_NOT_FOUND,
                None,
            ),
            (
                "declared, never checked",
                state(&reference("acme", None), false),
                reason::CONNECTION_NOT_READY,
                Some("loc-1"),
            ),
            (
                "declared, its status says why not",
                state(&reference("broken", None), false),
                reason::CONNECTION_NOT_READY,
                Some("loc-1"),
            ),
        ];
        for (name, got, expected, location) in cases {
            let ConnectionState::Unusable {
                reason, message, ..
            } = &got
            else {
                panic!("{name}: usable");
            };
            assert_eq!(*reason, expected, "{name}: {message}");
            assert_eq!(got.location(), location, "{name}");
        }
        let broken = state(&reference("broken", None), false);
        let ConnectionState::Unusable { message, .. } = broken else {
            panic!("usable")
        };
        assert!(message.contains("SecretNotFound"), "{message}");

        // A live client that is not ready yet, then ready.
        let key = ("crm".to_owned(), "acme".to_owned());
        let spec = connection("crm", "acme", None).spec;
        let handle = registry
            .upsert(&key, &spec, BudgetConfig::default(), "t".to_owned().into())
            .unwrap();
        assert!(matches!(
            state(&reference("acme", None), false),
            ConnectionState::Unusable { .. }
        ));
        handle.set_readiness(Readiness {
            ready: true,
            reason: reason::CREDENTIALS_ACCEPTED,
            message: String::new(),
        });
        let ConnectionState::Usable(usable) = state(&reference("acme", None), false) else {
            panic!("not usable once ready");
        };
        assert_eq!(
            (usable.location.as_str(), usable.label()),
            ("loc-1", "crm/acme".into())
        );
        assert!(matches!(
            state(&reference("acme", Some("crm")), false),
            ConnectionState::Usable(_)
        ));
    }
}
