//! Writing to the operator's own objects: status by server-side apply under the operator's
//! field manager (never spec), and our finalizer with optimistic concurrency.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::controller::error::{Error, Result};
use crate::crd::kind::Object;
use crate::crd::vocabulary::{FIELD_MANAGER, finalizer};

fn api<K: Object>(client: &Client, obj: &K) -> Api<K> {
    Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default())
}

/// Writes `status` with server-side apply.
pub async fn patch_status<K: Object>(
    client: &Client,
    obj: &K,
    status: &impl Serialize,
) -> Result<()> {
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api(client, obj)
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map(drop)
        .map_err(Error::Kube)
}

/// Whether `obj` carries our finalizer.
pub fn holds_finalizer<K: Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == finalizer::CLEANUP)
}

/// Adds or removes our finalizer; the write fails if the object changed meanwhile.
pub async fn set_finalizer<K: Object>(client: &Client, obj: &K, present: bool) -> Result<()> {
    if holds_finalizer(obj) == present {
        return Ok(());
    }
    let mut finalizers: Vec<String> = obj.finalizers().to_vec();
    if present {
        finalizers.push(finalizer::CLEANUP.to_owned());
    } else {
        finalizers.retain(|f| f != finalizer::CLEANUP);
    }
    let patch =
        json!({"metadata": {"resourceVersion": obj.resource_version(), "finalizers": finalizers}});
    api(client, obj)
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map(drop)
        .map_err(Error::Kube)
}
