//! What else, besides their own spec, makes an object reconcile: the Secret a connection reads,
//! the ConfigMaps and Secrets a policy reads its records from, a connection becoming ready or
//! not, and another owner on the same location changing what it wants. Pure mappers over the
//! controllers' caches.

use futures::{Stream, stream};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::sync::broadcast;

use crate::controller::object::ObjectKey;
use crate::controller::registry::clients::ConnectionKey;
use crate::controller::registry::declarations::DeclarationChange;
use crate::crd::Kind;
use crate::crd::owner::Owner;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};
use crate::engine::ownership::Seniority;

/// Secret names a connection reads.
fn secrets_of(connection: &GhlConnection) -> Vec<&str> {
    let auth = &connection.spec.auth;
    let mut names = Vec::new();
    if let Some(pit) = &auth.private_integration_token {
        names.push(pit.secret_ref.name.as_str());
    }
    if let Some(oauth) = &auth.oauth {
        names.push(oauth.client_secret_ref.name.as_str());
        names.push(oauth.token_secret_ref.name.as_str());
        if let Some(code) = &oauth.authorization_code_secret_ref {
            names.push(code.name.as_str());
        }
    }
    if let Some(agency) = &auth.agency_grant {
        names.push(agency.token_secret_ref.name.as_str());
    }
    if let Some(export) = &connection.spec.export {
        names.extend(
            export
                .sinks
                .iter()
                .map(|s| s.signing_secret_ref.name.as_str()),
        );
    }
    names
}

/// Connections that read the changed Secret.
pub fn connections_reading<S>(
    store: &Store<GhlConnection>,
    secret: &PartialObjectMeta<S>,
) -> Vec<ObjectRef<GhlConnection>> {
    let (namespace, name) = (
        secret.metadata.namespace.clone(),
        secret.metadata.name.clone().unwrap_or_default(),
    );
    store
        .state()
        .iter()
        .filter(|c| {
            c.namespace() == namespace
                && (secrets_of(c).contains(&name.as_str())
                    || consent_secret_of(c).as_ref() == Some(&name))
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The Secret the operator's `/oauth/callback` keeps a consent's code in (any replica may
/// take the callback; the one holding the connection exchanges the code).
fn consent_secret_of(connection: &GhlConnection) -> Option<String> {
    let uid = connection.metadata.uid.as_deref()?;
    connection.spec.auth.oauth.as_ref()?;
    Some(crate::credentials::oauth::consent::code_secret_name(
        &connection.name_any(),
        uid,
    ))
}

/// Which kind of object a policy source names.
#[derive(Clone, Copy, Debug)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

/// Policies that read their records from the changed ConfigMap or Secret.
pub fn policies_reading<S>(
    store: &Store<ContactSyncPolicy>,
    kind: SourceKind,
    object: &PartialObjectMeta<S>,
) -> Vec<ObjectRef<ContactSyncPolicy>> {
    let (namespace, name) = (
        object.metadata.namespace.clone(),
        object.metadata.name.clone().unwrap_or_default(),
    );
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == namespace)
        .filter(|p| {
            p.spec.contacts_from.iter().any(|source| match kind {
                SourceKind::ConfigMap => source
                    .config_map_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name),
                SourceKind::Secret => source.secret_ref.as_ref().is_some_and(|r| r.name == name),
            })
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Objects in `store` on connection `key`.
pub fn users_of<K: Owner>(store: &Store<K>, key: &ConnectionKey) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .filter(|o| {
            let reference = o.connection_ref();
            let namespace = reference
                .namespace
                .clone()
                .or_else(|| o.namespace())
                .unwrap_or_default();
            reference.name == key.1 && namespace == key.0
        })
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The location of the connection `obj` names, as far as the caches know.
fn location_of<K: Owner>(connections: &Store<GhlConnection>, obj: &K) -> Option<String> {
    let reference = obj.connection_ref();
    let namespace = reference
        .namespace
        .clone()
        .or_else(|| obj.namespace())
        .unwrap_or_default();
    connections
        .get(&ObjectRef::new(&reference.name).within(&namespace))
        .map(|c| c.spec.location_id.clone())
}

/// Policies to re-plan after `change`: the other policies on its location junior to the
/// policy that changed (all of them when it is gone: they may take its contacts over). Rules'
/// declared never change what a policy does.
pub fn policies_after(
    change: &DeclarationChange,
    policies: &Store<ContactSyncPolicy>,
    connections: &Store<GhlConnection>,
) -> Vec<ObjectRef<ContactSyncPolicy>> {
    if change.by.kind != Kind::ContactSyncPolicy {
        return Vec::new();
    }
    let changer = policies
        .get(&ObjectRef::new(&change.by.name).within(&change.by.namespace))
        .map(|p| Seniority::of(p.as_ref()));
    policies
        .state()
        .iter()
        .filter(|p| ObjectKey::of(Kind::ContactSyncPolicy, p.as_ref()) != change.by)
        .filter(|p| location_of(connections, p.as_ref()).as_deref() == Some(&change.location))
        .filter(|p| {
            changer
                .as_ref()
                .is_none_or(|c| Seniority::of(p.as_ref()) > *c)
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Rules to re-plan after `change`: every other rule on its location.
pub fn rules_after(
    change: &DeclarationChange,
    rules: &Store<TagRule>,
    connections: &Store<GhlConnection>,
) -> Vec<ObjectRef<TagRule>> {
    rules
        .state()
        .iter()
        .filter(|r| ObjectKey::of(Kind::TagRule, r.as_ref()) != change.by)
        .filter(|r| location_of(connections, r.as_ref()).as_deref() == Some(&change.location))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// A broadcast as a stream of the objects `map` picks for each message.
pub fn on_broadcast<T, K, F>(
    changes: broadcast::Receiver<T>,
    map: F,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    T: Clone + Send + 'static,
    K: Resource<DynamicType = ()> + 'static,
    F: Fn(&T) -> Vec<ObjectRef<K>> + Send + 'static,
{
    let messages = stream::unfold(changes, |mut rx| async move {
        match rx.recv().await {
            Ok(message) => Some((Some(message), rx)),
            // Missed some: the periodic resync covers them; keep listening.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed change notices");
                Some((None, rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    futures::StreamExt::flat_map(messages, move |message| {
        stream::iter(message.map(|m| map(&m)).unwrap_or_default())
    })
}

/// Objects of kind `K` asked to reconcile now (by key).
pub fn woken<K: Resource<DynamicType = ()> + 'static>(
    wakes: broadcast::Receiver<ObjectKey>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    let kind = K::kind(&()).into_owned();
    on_broadcast(wakes, move |key: &ObjectKey| {
        if key.kind.as_str() == kind {
            vec![ObjectRef::new(&key.name).within(&key.namespace)]
        } else {
            Vec::new()
        }
    })
}

/// A tick each time this process gains a shard: its objects are to be reconciled (they were
/// skipped while another replica held it).
pub fn on_shards_gained(
    mut gained: tokio::sync::watch::Receiver<u64>,
) -> impl Stream<Item = ()> + Send + 'static {
    gained.mark_unchanged();
    stream::unfold(gained, |mut gained| async move {
        gained.changed().await.ok()?;
        Some(((), gained))
    })
}

/// The objects to reconcile whenever a connection's readiness changes.
pub fn on_connection_change<K: Owner + Send + Sync>(
    changes: broadcast::Receiver<ConnectionKey>,
    store: Store<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    on_broadcast(changes, move |key| users_of(&store, key))
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn policy(
        namespace: &str,
        name: &str,
        connection: serde_json::Value,
        config_map: &str,
    ) -> ContactSyncPolicy {
        let mut policy: ContactSyncPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"connectionRef": connection,
                     "contactsFrom": [{"configMapRef": {"name": config_map, "key": "c.csv"}}]}
        }))
        .unwrap();
        policy.metadata.uid = Some(format!("uid-{name}"));
        policy
    }

    #[test]
    fn connection_users_resolve_the_reference_namespace() {
        let (reader, mut writer) = reflector::store::<ContactSyncPolicy>();
        writer.apply_watcher_event(&Event::Apply(policy(
            "crm",
            "local",
            serde_json::json!({"name": "acme"}),
            "a",
        )));
        writer.apply_watcher_event(&Event::Apply(policy(
            "other",
            "remote",
            serde_json::json!({"name": "acme", "namespace": "crm"}),
            "b",
        )));
        writer.apply_watcher_event(&Event::Apply(policy(
            "other",
            "own",
            serde_json::json!({"name": "acme"}),
            "c",
        )));
        let mut names: Vec<String> = users_of(&reader, &("crm".into(), "acme".into()))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["local", "remote"]);
    }

    #[test]
    fn a_config_map_change_maps_to_the_policies_reading_it() {
        let (reader, mut writer) = reflector::store::<ContactSyncPolicy>();
        writer.apply_watcher_event(&Event::Apply(policy(
            "crm",
            "p1",
            serde_json::json!({"name": "acme"}),
            "leads",
        )));
        writer.apply_watcher_event(&Event::Apply(policy(
            "crm",
            "p2",
            serde_json::json!({"name": "acme"}),
            "other",
        )));
        let changed: PartialObjectMeta<k8s_openapi::api::core::v1::ConfigMap> = PartialObjectMeta {
            metadata: kube::api::ObjectMeta {
                name: Some("leads".into()),
                namespace: Some("crm".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let hits = policies_reading(&reader, SourceKind::ConfigMap, &changed);
        assert_eq!(
            hits.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["p1"]
        );
        assert!(policies_reading(&reader, SourceKind::Secret, &changed).is_empty());
    }
}
