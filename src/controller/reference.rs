//! Where a policy or rule stands with the GhlConnection it names: usable (with its live client
//! and location), or not — and why, in the words its status will use. Reads the caches only.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use super::conditions::Phase;
use super::connections::{ConnectionKey, Handle, Readiness, Registry};
use crate::crd::GhlConnection;
use crate::crd::common::ConnectionRef;
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

/// The connection `reference` names from an object in `namespace`, and whether it may be used.
///
/// One piece: each early return is one way a connection can be unusable, in the order they
/// are checked.
pub fn resolve(
    connections: &Store<GhlConnection>,
    registry: &Registry,
    allow_cross_namespace: bool,
    namespace: &str,
    reference: &ConnectionRef,
) -> ConnectionState {
    let key: ConnectionKey = (
        reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        reference.name.clone(),
    );
    let unusable = |phase, reason, message, location| ConnectionState::Unusable {
        key: key.clone(),
        phase,
        reason,
        message,
        location,
    };
    if key.0 != namespace && !allow_cross_namespace {
        let message = format!(
            "connectionRef names namespace {}; the operator does not allow cross-namespace references",
            key.0
        );
        return unusable(
            Phase::Stalled,
            reason::CROSS_NAMESPACE_REF_DENIED,
            message,
            None,
        );
    }
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
    let location = Some(declared.spec.location_id.clone());
    let Some(handle) = registry.get(&key) else {
        // Declared, but no client yet: its credential is not usable; say why, from its status.
        let ready = declared
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY));
        let message = match ready {
            Some(c) => format!(
                "GhlConnection {}/{} is not ready ({}): {}",
                key.0, key.1, c.reason, c.message
            ),
            None => format!("GhlConnection {}/{} is not checked yet", key.0, key.1),
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
