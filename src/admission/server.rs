//! The webhook's HTTP side: `POST /approvals` takes an AdmissionReview, asks the API server
//! whether the user may approve when the request approves (a SubjectAccessReview), and
//! answers with [`review::decide`]'s verdict as a JSON patch of the annotations.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::{Api, Client};

use super::registration::PATH;
use super::review::{self, Request, Side, Verdict};
use super::stamps::{Subject, spec_digest};
use crate::controller::runtime::scope::Scope;
use crate::crd::{ContactSyncPolicy, Kind, TagRule};
use crate::credentials::keys::OperatorKeys;

/// AdmissionReviews carry the whole object twice; the API server caps objects at about 1.5 MiB.
const MAX_REVIEW: usize = 4 * 1024 * 1024;

/// What the webhook needs.
pub struct Webhook {
    pub client: Client,
    pub keys: OperatorKeys,
    /// Objects outside it are admitted untouched (another operator's, or none's).
    pub scope: Scope,
}

/// The router: `POST /approvals`.
pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route(PATH, post(approvals))
        .layer(DefaultBodyLimit::max(MAX_REVIEW))
        .with_state(webhook)
}

async fn approvals(
    State(webhook): State<Arc<Webhook>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => return Json(AdmissionResponse::invalid(error).into_review()),
    };
    Json(webhook.respond(&request).await.into_review())
}

fn in_scope(scope: &Scope, namespace: &str) -> bool {
    match scope {
        Scope::All => true,
        Scope::Namespaces(list) => list.iter().any(|n| n == namespace),
    }
}

/// The digest of the object's spec as the operator's types read it (a spec they cannot read
/// gets a digest the operator never computes, so nothing of it is trusted).
fn digest_of(kind: Kind, object: &DynamicObject) -> String {
    let value = serde_json::to_value(object).unwrap_or_default();
    let typed = match kind {
        Kind::ContactSyncPolicy => {
            serde_json::from_value::<ContactSyncPolicy>(value.clone()).map(|o| spec_digest(&o.spec))
        }
        Kind::TagRule => {
            serde_json::from_value::<TagRule>(value.clone()).map(|o| spec_digest(&o.spec))
        }
        Kind::GhlConnection => return String::new(),
    };
    typed.unwrap_or_else(|_| format!("unreadable:{}", spec_digest(&value["spec"])))
}

impl Webhook {
    async fn respond(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let allow = AdmissionResponse::from(request);
        let kind = match request.kind.kind.as_str() {
            "ContactSyncPolicy" => Kind::ContactSyncPolicy,
            "TagRule" => Kind::TagRule,
            _ => return allow,
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let Some(object) = request.object.as_ref() else {
            return allow;
        };
        if !in_scope(&self.scope, &namespace) {
            return allow;
        }
        let empty = BTreeMap::new();
        let name = object
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| request.name.clone());
        let new_digest = digest_of(kind, object);
        let old_digest = request.old_object.as_ref().map(|old| digest_of(kind, old));
        let user = request.user_info.username.clone().unwrap_or_default();
        let facts = Request {
            subject: Subject {
                kind,
                namespace: &namespace,
                name: &name,
            },
            uid: request
                .old_object
                .as_ref()
                .and_then(|old| old.metadata.uid.as_deref()),
            user: &user,
            old: request
                .old_object
                .as_ref()
                .zip(old_digest.as_deref())
                .map(|(old, digest)| Side {
                    annotations: old.metadata.annotations.as_ref().unwrap_or(&empty),
                    digest,
                }),
            new: Side {
                annotations: object.metadata.annotations.as_ref().unwrap_or(&empty),
                digest: &new_digest,
            },
        };
        let may_approve = match review::approval_to_check(&facts) {
            None => false,
            Some(_) => match self.may_approve(request, kind, &namespace, &name).await {
                Ok(allowed) => allowed,
                Err(error) => {
                    return allow.deny(format!(
                        "could not check whether {user} may approve ({error}); try again"
                    ));
                }
            },
        };
        match review::decide(&self.keys, &facts, may_approve) {
            Verdict::Deny(why) => {
                tracing::info!(kind = %kind, %namespace, %name, %user, "approval refused: {why}");
                allow.deny(why)
            }
            Verdict::Allow {
                annotations,
                warning,
            } => {
                let mut response = allow;
                if let Some(annotations) = annotations {
                    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
                        {"op": "add", "path": "/metadata/annotations", "value": annotations}
                    ]))
                    .expect("a JSON patch");
                    response = match response.with_patch(patch) {
                        Ok(patched) => patched,
                        Err(error) => {
                            return AdmissionResponse::from(request)
                                .deny(format!("could not write the stamps: {error}"));
                        }
                    };
                }
                if let Some(warning) = warning {
                    response.warnings = Some(vec![warning]);
                }
                response
            }
        }
    }

    /// Whether the request's user may `approve` this object, as the API server's authorizer
    /// answers for that user, their groups and extra attributes.
    async fn may_approve(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<bool, kube::Error> {
        let user = &request.user_info;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("ghl.servis.ai".to_owned()),
                    resource: Some(kind.plural().to_owned()),
                    verb: Some("approve".to_owned()),
                    namespace: Some(namespace.to_owned()),
                    name: Some(name.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}
