//! The admission webhook and the stamps it writes, under hostile input: any AdmissionReview
//! body is answered (never a panic, never a 5xx); a stamp written by hand never verifies; any
//! `--admission-url` text is parsed or refused, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ghl_operator::admission::Target;
use ghl_operator::admission::review::{self, Side, Verdict};
use ghl_operator::admission::server::{Webhook, router};
use ghl_operator::admission::stamps::{self, Subject};
use ghl_operator::controller::runtime::scope::Scope;
use ghl_operator::crd::Kind;
use ghl_operator::credentials::keys::OperatorKeys;
use proptest::prelude::*;
use serde_json::json;
use tower::ServiceExt;

use crate::inputs::{json, object_over};

const STAMPS: [&str; 5] = [
    "ghl.servis.ai/spec-author",
    "ghl.servis.ai/spec-author-seal",
    "ghl.servis.ai/approved-by",
    "ghl.servis.ai/approval-seal",
    "ghl.servis.ai/approve-plan",
];

fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        prop::sample::select(STAMPS.to_vec()).prop_map(str::to_owned),
        "[a-z./-]{1,20}",
    ];
    let value = prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9_=-]{0,64}",
        "[ -~]{0,80}",
        "\\PC{0,40}",
    ];
    prop::collection::btree_map(key, value, 0..8)
}

fn review_body() -> impl Strategy<Value = Vec<u8>> {
    let object = |annotations: BTreeMap<String, String>| {
        json!({"apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
               "metadata": {"name": "vip", "namespace": "crm", "uid": "u1", "annotations": annotations},
               "spec": {"connectionRef": {"name": "acme"}, "contacts": []}})
    };
    let review = (annotations(), annotations(), any::<bool>()).prop_flat_map(move |(old, new, create)| {
        let base = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r1", "kind": {"group": "ghl.servis.ai", "version": "v1alpha1", "kind": "ContactSyncPolicy"},
                        "resource": {"group": "ghl.servis.ai", "version": "v1alpha1", "resource": "contactsyncpolicies"},
                        "name": "vip", "namespace": "crm", "operation": if create {"CREATE"} else {"UPDATE"},
                        "userInfo": {"username": "alice"},
                        "object": object(new), "oldObject": if create {json!(null)} else {object(old)}}});
        object_over(base)
    });
    prop_oneof![
        review.prop_map(|r| r.to_string().into_bytes()),
        json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

const SUBJECT: Subject<'static> = Subject {
    kind: Kind::ContactSyncPolicy,
    namespace: "crm",
    name: "vip",
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_admission_review_is_answered(body in review_body()) {
        ghl_operator::tls::install_default_provider();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // An API server nobody answers: an access review fails, and the webhook says so.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let response = runtime.block_on(async {
            let client = kube::Client::try_from(config).unwrap();
            let webhook = Webhook { client, keys: OperatorKeys::ephemeral(), scope: Scope::All };
            let request = Request::post("/approvals")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            router(Arc::new(webhook)).oneshot(request).await.unwrap()
        });
        let status = response.status().as_u16();
        prop_assert!((200..500).contains(&status), "answered {status}");
    }

    #[test]
    fn a_stamp_written_by_hand_never_verifies(
        annotations in annotations(),
        hash in "[a-f0-9]{0,16}",
        digest in "[a-f0-9]{0,16}",
    ) {
        let keys = OperatorKeys::ephemeral();
        prop_assert_eq!(stamps::verified_author(&keys, &annotations, &SUBJECT, &digest), None);
        prop_assert_eq!(stamps::verified_approver(&keys, &annotations, "u1", &hash), None);
        prop_assert!(stamps::authorize(&keys, &annotations, (&SUBJECT, "u1"), &hash, &digest).is_err());
    }

    #[test]
    fn without_the_verb_no_request_carries_an_approval_stamp(
        old in annotations(),
        new in annotations(),
        user in "[a-z:-]{0,20}",
        same_spec in any::<bool>(),
    ) {
        let keys = OperatorKeys::ephemeral();
        let request = review::Request {
            subject: SUBJECT,
            uid: Some("u1"),
            user: &user,
            old: Some(Side { annotations: &old, digest: "d1" }),
            new: Side { annotations: &new, digest: if same_spec { "d1" } else { "d2" } },
        };
        match review::decide(&keys, &request, false) {
            Verdict::Deny(why) => prop_assert!(why.contains("may not approve"), "{}", why),
            Verdict::Allow { annotations, .. } => {
                let written = annotations.unwrap_or(new.clone());
                // Whatever the request wrote, no approval seal is minted: one that was
                // there may stay, or go with the approval.
                let seal = written.get("ghl.servis.ai/approval-seal");
                prop_assert!(seal.is_none() || seal == old.get("ghl.servis.ai/approval-seal"), "{:?}", written);
            }
        }
    }

    #[test]
    fn any_admission_url_is_parsed_or_refused(text in prop_oneof![
        "\\PC{0,60}",
        "https://[a-z0-9.-]{0,30}(:[0-9]{0,6})?(/[ -~]{0,20})?",
        "https://[a-z-]{0,10}\\.[a-z-]{0,10}\\.svc(\\.cluster\\.local)?(:[0-9]{0,6})?",
    ]) {
        if let Ok(target) = Target::parse(&text) {
            prop_assert!(text.starts_with("https://"), "{}", text);
            prop_assert!(!target.hosts().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any `state` a browser brings to `/oauth/callback` is read or refused, never a panic,
    /// and none verifies unless the operator issued it for that connection.
    #[test]
    fn any_consent_state_is_refused_unless_issued(state in prop_oneof![
        "\\PC{0,80}",
        "[a-z0-9-]{1,12}\\.[a-z0-9.-]{1,20}\\.[0-9]{1,12}\\.[a-f0-9]{0,24}\\.[a-f0-9]{0,64}",
    ]) {
        use ghl_operator::credentials::oauth::consent;
        let keys = OperatorKeys::ephemeral();
        if let Ok(named) = consent::parse(&state) {
            prop_assert!(consent::verify(&keys, &named, "uid-1", jiff::Timestamp::UNIX_EPOCH).is_err());
        }
    }
}
