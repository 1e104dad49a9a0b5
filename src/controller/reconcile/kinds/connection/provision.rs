//! An agency grant's fleet (`spec.provision`): one GhlConnection per location where the app
//! is installed, borrowing the agency grant (`auth.agencyGrant`), owned by the agency
//! connection and labeled `ghl.servis.ai/agency`.
//!
//! [`plan`] decides (pure, table-tested) from what GHL lists as installed and the connections
//! of the namespace; [`reconcile`] carries it out with server-side apply under its own field
//! manager and never forces: a field a person changed on a child is a conflict, reported
//! (`status.provisioned.handEdited`, one Warning Event) and left as the person wrote it.
//! A child is deleted only when GHL's complete list no longer names its location and
//! `onUninstall: Delete` says so, with a uid precondition; only connections this agency owns
//! (by uid) are ever changed or deleted.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::controller::reconcile::verdict::Notice;
use crate::controller::registry::installed::Installed;
use crate::crd::GhlConnection;
use crate::crd::connection::{OnUninstall, ProvisionSpec, ProvisionStatus};
use crate::crd::vocabulary::{action, annotation, label, reason};
use crate::credentials::oauth::borrowed::may_borrow;

/// The field manager of the children's specs (apart from the operator's status writes).
pub const FIELD_MANAGER: &str = "ghl-operator-provision";
/// Names listed in status at most.
const LISTED: usize = 50;

/// The child of `agency` for `location`: `<agency>-<locationId in lowercase>`.
pub fn child_name(agency: &str, location: &str) -> String {
    let agency = &agency[..agency.len().min(180)];
    format!(
        "{}-{}",
        agency.trim_end_matches(['-', '.']),
        location.to_ascii_lowercase()
    )
}

/// A location id that can be part of a name (GHL's are 20 alphanumerics).
fn nameable(location: &str) -> bool {
    (1..=64).contains(&location.len())
        && location.chars().all(|c| c.is_ascii_alphanumeric())
        && location.chars().any(|c| c.is_ascii_alphanumeric())
}

/// The `ghl.servis.ai/agency` label value for `agency` (a label value is at most 63
/// characters, and ends alphanumeric).
fn label_value(agency: &str) -> String {
    agency[..agency.len().min(63)]
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Whether `child` is one `agency` created (its owner by uid, not only by label).
pub fn owned_by(child: &GhlConnection, agency: &GhlConnection) -> bool {
    let Some(uid) = agency.metadata.uid.as_deref() else {
        return false;
    };
    child
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.kind == "GhlConnection")
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the child, or bring it to `object` (server-side apply).
    Apply {
        name: String,
        location: String,
        object: Value,
        /// It does not exist yet.
        create: bool,
        /// Its location uninstalled the app just now and it is kept (`onUninstall: Keep`).
        kept: bool,
        /// No one but the agency wrote its spec: the apply takes every field (also those its
        /// create wrote). Otherwise it is not forced, and a conflict is a hand edit.
        force: bool,
    },
    /// Delete the child (`onUninstall: Delete`), if it still has this uid.
    Delete {
        name: String,
        location: String,
        uid: String,
    },
}

/// What [`plan`] decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Children that exist and stay (whether or not a step touches them).
    pub children: u64,
    /// Installed locations with no child, and why.
    pub skipped: Vec<String>,
}

/// The child object for `location`, as the agency wants it.
fn child(
    agency: &GhlConnection,
    provision: &ProvisionSpec,
    location: &str,
    uninstalled: bool,
) -> Value {
    let name = child_name(&agency.name_any(), location);
    let template = &provision.template;
    let mut grant = json!({
        "connectionRef": {"name": agency.name_any()},
        "tokenSecretRef": {"name": format!("{name}-token")},
    });
    if let Some(renew_before) = &template.renew_before {
        grant["renewBefore"] = json!(renew_before);
    }
    let mut spec = json!({"locationId": location, "auth": {"agencyGrant": grant}});
    if let Some(base_url) = &agency.spec.base_url {
        spec["baseUrl"] = json!(base_url);
    }
    if let Some(version) = &agency.spec.api_version {
        spec["apiVersion"] = json!(version);
    }
    if let Some(rate_limit) = &template.rate_limit {
        spec["rateLimit"] = serde_json::to_value(rate_limit).unwrap_or(Value::Null);
    }
    if let Some(consumers) = &template.consumers {
        let mut consumers = consumers.clone();
        if let Some(secret) = &mut consumers.secret_name {
            *secret = format!("{secret}-{}", location.to_ascii_lowercase());
        }
        spec["consumers"] = serde_json::to_value(consumers).unwrap_or(Value::Null);
    }
    if let Some(export) = &template.export {
        spec["export"] = serde_json::to_value(export).unwrap_or(Value::Null);
    }
    if !template.allowed_namespaces.is_empty() {
        spec["allowedNamespaces"] = json!(template.allowed_namespaces);
    }
    let labels = json!({label::AGENCY: label_value(&agency.name_any())});
    // What this apply says, so that a field the template no longer sets is noticed (and
    // removed by the apply, which owns it).
    let applied = crate::engine::ledger::key_digest(
        &json!({"spec": spec, "labels": labels, "uninstalled": uninstalled}).to_string(),
    );
    let mut metadata = json!({
        "name": name,
        "namespace": agency.namespace(),
        "labels": labels,
        "annotations": {annotation::PROVISIONED_AS: applied},
        "ownerReferences": [{
            "apiVersion": GhlConnection::api_version(&()),
            "kind": GhlConnection::kind(&()),
            "name": agency.name_any(),
            "uid": agency.metadata.uid,
            "controller": true,
        }],
    });
    if uninstalled {
        metadata["annotations"][annotation::UNINSTALLED] = json!("true");
    }
    json!({
        "apiVersion": GhlConnection::api_version(&()),
        "kind": GhlConnection::kind(&()),
        "metadata": metadata,
        "spec": spec,
    })
}

/// Whether `current` already holds everything `wanted` says (objects by key, the rest
/// equal). Pure.
fn holds(current: &Value, wanted: &Value) -> bool {
    match (current, wanted) {
        (Value::Object(current), Value::Object(wanted)) => wanted
            .iter()
            .all(|(k, w)| current.get(k).is_some_and(|c| holds(c, w))),
        (current, wanted) => current == wanted,
    }
}

/// Whether someone other than the agency wrote the child's spec (by its managedFields).
fn edited_by_hand(child: &GhlConnection) -> bool {
    child.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() != Some(FIELD_MANAGER)
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
    })
}

/// Whether `existing` is as `wanted` would make it: its spec, labels and annotation (an
/// apply is not sent then).
fn up_to_date(existing: &GhlConnection, wanted: &Value) -> bool {
    let spec = serde_json::to_value(&existing.spec).unwrap_or(Value::Null);
    let applied = existing
        .annotations()
        .get(annotation::PROVISIONED_AS)
        .map(String::as_str);
    applied == wanted["metadata"]["annotations"][annotation::PROVISIONED_AS].as_str()
        && holds(&spec, &wanted["spec"])
        && existing.labels().get(label::AGENCY).map(String::as_str)
            == wanted["metadata"]["labels"][label::AGENCY].as_str()
}

/// What to do for `agency` given the locations GHL lists as installed (`complete`: the list
/// was read whole) and the connections of its namespace. Pure.
pub fn plan(
    agency: &GhlConnection,
    provision: &ProvisionSpec,
    installed: &Installed,
    complete: bool,
    existing: &[&GhlConnection],
) -> Plan {
    let namespace = agency.namespace().unwrap_or_default();
    let grantees = agency
        .spec
        .auth
        .oauth
        .as_ref()
        .and_then(|o| o.grantees.as_deref());
    let ours: Vec<&GhlConnection> = existing
        .iter()
        .copied()
        .filter(|c| owned_by(c, agency))
        .collect();
    let installed: BTreeSet<&str> = installed.ids.iter().map(String::as_str).collect();
    let mut plan = Plan::default();
    let mut unnameable = 0;
    for &location in &installed {
        // The agency connection serves its own location.
        if location == agency.spec.location_id {
            continue;
        }
        // Not repeated into status: what GHL sent may be anything.
        if !nameable(location) {
            unnameable += 1;
            continue;
        }
        if !may_borrow(grantees, &namespace, &namespace, location) {
            plan.skipped.push(format!(
                "{location}: spec.auth.oauth.grantees does not admit this namespace for it"
            ));
            continue;
        }
        let name = child_name(&agency.name_any(), location);
        if let Some(other) = existing
            .iter()
            .find(|c| c.spec.location_id == location && !owned_by(c, agency))
        {
            plan.skipped.push(format!(
                "{location}: served by GhlConnection {}",
                other.name_any()
            ));
            continue;
        }
        let current = existing.iter().find(|c| c.name_any() == name);
        if let Some(current) = current
            && (!owned_by(current, agency) || current.spec.location_id != location)
        {
            plan.skipped.push(format!(
                "{location}: the name {name} is taken by another GhlConnection"
            ));
            continue;
        }
        let mut object = child(agency, provision, location, false);
        if current.is_some_and(|c| up_to_date(c, &object)) {
            plan.children += 1;
            continue;
        }
        plan.children += 1;
        // An update names the child's uid: a child deleted and re-created meanwhile by
        // someone else is not taken over.
        if let Some(uid) = current.and_then(|c| c.metadata.uid.as_deref()) {
            object["metadata"]["uid"] = json!(uid);
        }
        plan.steps.push(Step::Apply {
            name,
            location: location.to_owned(),
            object,
            create: current.is_none(),
            kept: false,
            force: !current.is_some_and(|c| edited_by_hand(c)),
        });
    }
    if unnameable > 0 {
        plan.skipped.push(format!(
            "{unnameable} listed id(s) are not location ids a name can carry"
        ));
    }
    // Children whose location is no longer installed (only a complete list says so).
    for child_now in ours {
        let location = child_now.spec.location_id.as_str();
        if installed.contains(location) {
            continue;
        }
        if !complete {
            plan.children += 1;
            continue;
        }
        match provision.on_uninstall {
            OnUninstall::Delete => plan.steps.push(Step::Delete {
                name: child_now.name_any(),
                location: location.to_owned(),
                uid: child_now.metadata.uid.clone().unwrap_or_default(),
            }),
            OnUninstall::Keep => {
                plan.children += 1;
                let mut object = child(agency, provision, location, true);
                object["metadata"]["uid"] = json!(child_now.metadata.uid);
                if !up_to_date(child_now, &object) {
                    plan.steps.push(Step::Apply {
                        name: child_now.name_any(),
                        location: location.to_owned(),
                        object,
                        create: false,
                        kept: true,
                        force: !edited_by_hand(child_now),
                    });
                }
            }
        }
    }
    plan
}

/// Carries out the plan for `agency` after GHL listed `installed`; `None` without
/// `spec.provision`.
pub async fn reconcile(
    ctx: &Context,
    agency: &GhlConnection,
    object: &ObjectKey,
    installed: &Installed,
    complete: bool,
    previous: Option<&ProvisionStatus>,
) -> Option<ProvisionStatus> {
    let provision = agency.spec.provision.as_ref()?;
    let namespace = agency.namespace().unwrap_or_default();
    let state = ctx.registry.stores.connections.state();
    let existing: Vec<&GhlConnection> = state
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| c.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .collect();
    let plan = plan(agency, provision, installed, complete, &existing);
    let api: Api<GhlConnection> = Api::namespaced(ctx.client.clone(), &namespace);
    let reference = agency.object_ref(&());
    let fence = ctx.registry.fence_for(object);
    let mut status = ProvisionStatus {
        children: plan.children,
        hand_edited: Vec::new(),
        skipped: plan.skipped.iter().take(LISTED).cloned().collect(),
    };
    let said = |name: &str| previous.is_some_and(|p| p.hand_edited.iter().any(|n| n == name));
    for step in plan.steps {
        // Only the shard's holder writes.
        if !fence.is_open() {
            return None;
        }
        match step {
            Step::Apply {
                name,
                location,
                object,
                create,
                kept,
                force,
            } => {
                let written = if create {
                    // A create never merges into an object someone made meanwhile.
                    match serde_json::from_value::<GhlConnection>(object) {
                        Ok(new) => {
                            let params = PostParams {
                                field_manager: Some(FIELD_MANAGER.to_owned()),
                                ..PostParams::default()
                            };
                            api.create(&params, &new).await.map(drop)
                        }
                        Err(error) => {
                            tracing::warn!(connection = %name, %error, "a child connection could not be built");
                            continue;
                        }
                    }
                } else {
                    let params = PatchParams::apply(FIELD_MANAGER);
                    let params = if force { params.force() } else { params };
                    api.patch(&name, &params, &Patch::Apply(&object))
                        .await
                        .map(drop)
                };
                match written {
                    Err(kube::Error::Api(e)) if create && e.code == 409 => {
                        if status.skipped.len() < LISTED {
                            status.skipped.push(format!(
                                "{location}: the name {name} is taken by another GhlConnection"
                            ));
                        }
                        status.children = status.children.saturating_sub(1);
                    }
                    Ok(()) if create => {
                        ctx.publish(
                            &reference,
                            &Notice {
                                warning: false,
                                reason: reason::PROVISIONED,
                                action: action::RECONCILE,
                                note: format!(
                                    "created GhlConnection {name} for installed location {location}"
                                ),
                            },
                        )
                        .await;
                    }
                    Ok(_) if kept => {
                        ctx.publish(&reference, &Notice {
                            warning: true,
                            reason: reason::KEPT_AFTER_UNINSTALL,
                            action: action::RECONCILE,
                            note: format!("the app was uninstalled from location {location}; GhlConnection {name} is kept (onUninstall: Keep)"),
                        })
                        .await;
                    }
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        if !said(&name) {
                            ctx.publish(&reference, &Notice {
                                warning: true,
                                reason: reason::HAND_EDITED,
                                action: action::RECONCILE,
                                note: format!(
                                    "GhlConnection {name} was changed by hand where spec.provision.template applies; it is left as it is: {}",
                                    e.message.chars().take(300).collect::<String>()
                                ),
                            })
                            .await;
                        }
                        if status.hand_edited.len() < LISTED {
                            status.hand_edited.push(name);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(connection = %name, %error, "could not provision a child connection");
                        if status.skipped.len() < LISTED {
                            status
                                .skipped
                                .push(format!("{location}: could not be written ({error})"));
                        }
                    }
                }
            }
            Step::Delete {
                name,
                location,
                uid,
            } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        ctx.publish(&reference, &Notice {
                            warning: false,
                            reason: reason::DEPROVISIONED,
                            action: action::DELETE,
                            note: format!("the app was uninstalled from location {location}; deleted GhlConnection {name} (onUninstall: Delete)"),
                        })
                        .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(error) => {
                        status.children += 1;
                        tracing::warn!(connection = %name, %error, "could not delete a child connection");
                    }
                }
            }
        }
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::connection::{Grantee, ProvisionTemplate, RateLimitSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    const NS: &str = "crm";

    fn agency(provision: ProvisionSpec) -> GhlConnection {
        let mut agency: GhlConnection = serde_json::from_value(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": "agency", "namespace": NS, "uid": "agency-uid"},
            "spec": {"locationId": "locAgency0000000001", "baseUrl": "http://sandbox",
                     "auth": {"oauth": {"clientSecretRef": {"name": "app"},
                                        "tokenSecretRef": {"name": "agency-tokens"},
                                        "userType": "Company", "companyId": "co1"}}}
        }))
        .unwrap();
        agency.spec.provision = Some(provision);
        agency
    }

    fn connection(name: &str, location: &str, owner: Option<&str>) -> GhlConnection {
        let mut c: GhlConnection = serde_json::from_value(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-uid")},
            "spec": {"locationId": location, "auth": {"agencyGrant": {
                "connectionRef": {"name": "agency"}, "tokenSecretRef": {"name": "t"}}}}
        }))
        .unwrap();
        if let Some(uid) = owner {
            c.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "ghl.servis.ai/v1alpha1".into(),
                kind: "GhlConnection".into(),
                name: "agency".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]);
        }
        c
    }

    /// The child as the agency would have applied it.
    fn applied(agency: &GhlConnection, location: &str) -> GhlConnection {
        let object = child(
            agency,
            agency.spec.provision.as_ref().unwrap(),
            location,
            false,
        );
        let mut c: GhlConnection = serde_json::from_value(object).unwrap();
        c.metadata.uid = Some(format!("{location}-uid"));
        c
    }

    fn installed(ids: &[&str]) -> Installed {
        Installed {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            count: ids.len() as u64,
            counted: true,
        }
    }

    fn summary(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match s {
                Step::Apply {
                    name, create, kept, ..
                } => format!(
                    "{} {name}",
                    match (create, kept) {
                        (true, _) => "create",
                        (_, true) => "keep",
                        _ => "update",
                    }
                ),
                Step::Delete { name, .. } => format!("delete {name}"),
            })
            .collect()
    }

    #[test]
    fn a_child_per_installed_location_and_nothing_it_does_not_own() {
        let deleting = ProvisionSpec {
            on_uninstall: OnUninstall::Delete,
            template: ProvisionTemplate {
                rate_limit: Some(RateLimitSpec {
                    share_percent: Some(50),
                    requests_per_window: None,
                    window: None,
                    daily_limit: None,
                }),
                ..ProvisionTemplate::default()
            },
        };
        let a = agency(deleting.clone());
        let b_child = applied(&a, "LocB");
        let mut edited = applied(&a, "LocE");
        edited.spec.rate_limit = Some(RateLimitSpec {
            share_percent: Some(80),
            requests_per_window: None,
            window: None,
            daily_limit: None,
        });
        let hand_written = connection("store-c", "LocC", None);
        let squatter = connection("agency-locd", "LocZ", None);
        let gone = applied(&a, "LocGone");
        let foreign_label = {
            let mut c = applied(&a, "LocX");
            c.metadata.owner_references = None;
            c.metadata.name = Some("agency-locx".into());
            c
        };
        let existing = [
            &b_child,
            &edited,
            &hand_written,
            &squatter,
            &gone,
            &foreign_label,
        ];
        let listed = installed(&[
            "locAgency0000000001",
            "LocB",
            "LocC",
            "LocD",
            "LocE",
            "LocF",
            "../x",
        ]);
        let plan = plan(&a, &deleting, &listed, true, &existing);
        assert_eq!(
            summary(&plan),
            [
                // B is up to date: nothing sent. E differs (the apply will conflict and be
                // reported); F is new; the agency's own location has none.
                "update agency-loce",
                "create agency-locf",
                "delete agency-locgone",
            ]
        );
        assert_eq!(plan.children, 3, "B, E and F");
        assert!(
            plan.skipped
                .iter()
                .any(|s| s.starts_with("LocC: served by GhlConnection store-c")),
            "{:?}",
            plan.skipped
        );
        assert!(
            plan.skipped
                .iter()
                .any(|s| s.contains("agency-locd is taken"))
        );
        assert!(
            plan.skipped
                .contains(&"1 listed id(s) are not location ids a name can carry".to_owned()),
            "a hostile id is counted, never repeated: {:?}",
            plan.skipped
        );
        // A connection carrying the label but not owned by the agency's uid is never deleted.
        assert!(!summary(&plan).iter().any(|s| s.contains("locx")));

        // An incomplete list deletes nothing; Keep keeps (once) with the annotation.
        let plan_partial = plan_of(&a, &deleting, &installed(&["LocB"]), false, &existing);
        assert!(
            !summary(&plan_partial)
                .iter()
                .any(|s| s.starts_with("delete"))
        );
        // A field dropped from the template is applied away (its digest changed).
        let keeping = ProvisionSpec::default();
        let k = agency(keeping.clone());
        let dropped = plan_of(&k, &keeping, &installed(&["LocB"]), true, &[&b_child]);
        assert_eq!(summary(&dropped), ["update agency-locb"]);
        let kept_plan = plan_of(&k, &keeping, &installed(&["LocB"]), true, &existing);
        assert!(summary(&kept_plan).contains(&"keep agency-locgone".to_owned()));
        let mut kept: GhlConnection =
            serde_json::from_value(child(&k, &keeping, "LocGone", true)).unwrap();
        kept.metadata.uid = Some("LocGone-uid".into());
        let again = plan_of(
            &k,
            &keeping,
            &installed(&["LocB"]),
            true,
            &[&applied(&k, "LocB"), &kept],
        );
        assert!(
            summary(&again).is_empty(),
            "said once: {:?}",
            summary(&again)
        );
    }

    fn plan_of(
        a: &GhlConnection,
        p: &ProvisionSpec,
        i: &Installed,
        complete: bool,
        e: &[&GhlConnection],
    ) -> Plan {
        plan(a, p, i, complete, e)
    }

    #[test]
    fn only_a_child_no_one_else_wrote_is_applied_with_force() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let provision = ProvisionSpec {
            template: ProvisionTemplate {
                allowed_namespaces: vec!["sales".into()],
                ..ProvisionTemplate::default()
            },
            ..ProvisionSpec::default()
        };
        let a = agency(provision.clone());
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(json!({"f:spec": {"f:rateLimit": {}}}))),
            ..ManagedFieldsEntry::default()
        };
        // Created by the agency (its own create and applies): forced.
        let mut ours = connection("agency-locb", "LocB", Some("agency-uid"));
        ours.metadata.managed_fields = Some(vec![entry(FIELD_MANAGER)]);
        // A person edited the spec: not forced, so their fields conflict instead.
        let mut edited = connection("agency-locc", "LocC", Some("agency-uid"));
        edited.metadata.managed_fields = Some(vec![entry(FIELD_MANAGER), entry("kubectl-edit")]);
        let plan = plan(
            &a,
            &provision,
            &installed(&["LocB", "LocC"]),
            true,
            &[&ours, &edited],
        );
        let forced: Vec<(String, bool)> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Apply { name, force, .. } => Some((name.clone(), *force)),
                Step::Delete { .. } => None,
            })
            .collect();
        assert_eq!(
            forced,
            [
                ("agency-locb".to_owned(), true),
                ("agency-locc".to_owned(), false)
            ]
        );
    }

    #[test]
    fn grantees_and_the_template_shape_the_children() {
        let provision = ProvisionSpec {
            template: ProvisionTemplate {
                rate_limit: Some(RateLimitSpec {
                    share_percent: Some(50),
                    requests_per_window: None,
                    window: None,
                    daily_limit: None,
                }),
                consumers: Some(crate::crd::connection::Consumers {
                    secret_name: Some("ghl-token".into()),
                    rollout_restart_targets: vec![],
                    min_interval: None,
                }),
                ..ProvisionTemplate::default()
            },
            on_uninstall: OnUninstall::Keep,
        };
        let mut a = agency(provision.clone());
        a.spec.auth.oauth.as_mut().unwrap().grantees = Some(vec![Grantee {
            namespace: NS.into(),
            location_ids: Some(vec!["LocB".into()]),
        }]);
        let plan = plan(&a, &provision, &installed(&["LocB", "LocC"]), true, &[]);
        assert_eq!(summary(&plan), ["create agency-locb"]);
        assert!(plan.skipped[0].starts_with("LocC: spec.auth.oauth.grantees"));
        let Step::Apply { object, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(object["spec"]["rateLimit"]["sharePercent"], 50);
        assert_eq!(object["spec"]["consumers"]["secretName"], "ghl-token-locb");
        assert_eq!(object["spec"]["baseUrl"], "http://sandbox");
        assert_eq!(
            object["spec"]["auth"]["agencyGrant"]["tokenSecretRef"]["name"],
            "agency-locb-token"
        );
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["uid"],
            "agency-uid"
        );
        assert_eq!(
            object["metadata"]["labels"]["ghl.servis.ai/agency"],
            "agency"
        );
        // A long agency name still makes valid names and label values.
        let long = "a".repeat(250);
        assert!(child_name(&long, "LocB").len() <= 253 - "-token".len());
        assert_eq!(label_value(&format!("{}-x", "b".repeat(62))).len(), 62);
    }
}
