//! The stamps the admission webhook puts on ContactSyncPolicies and TagRules, and what they
//! prove. Pure.
//!
//! - **Spec author**: on every change of the spec, `ghl.servis.ai/spec-author` (the user the
//!   API server authenticated) and `ghl.servis.ai/spec-author-seal`, an HMAC over the object's
//!   kind, namespace, name, a digest of the spec and the user. It verifies only for the spec
//!   it was stamped on: a spec changed while the webhook was down has no author anyone can
//!   trust.
//! - **Approval**: when `ghl.servis.ai/approve-plan` is set or changed by a user allowed the
//!   RBAC verb `approve`, `ghl.servis.ai/approved-by` and `ghl.servis.ai/approval-seal`, an
//!   HMAC over the object's uid, the plan hash and the user.
//!
//! The seal key is the operator's own ([`OperatorKeys`]), in a Secret only it reads: a stamp
//! written by anyone else, copied from another object or left from another spec does not
//! verify. The webhook restores stamps a request tried to change, and the operator honours an
//! approval only when both stamps verify and name different users.

use std::collections::BTreeMap;

use crate::crd::Kind;
use crate::crd::vocabulary::annotation;
use crate::credentials::keys::OperatorKeys;

/// The object a stamp is about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
}

pub use crate::crd::owner::spec_digest;

fn author_parts<'a>(subject: &Subject<'a>, digest: &'a str, user: &'a str) -> [&'a str; 6] {
    [
        "spec-author",
        subject.kind.as_str(),
        subject.namespace,
        subject.name,
        digest,
        user,
    ]
}

fn approval_parts<'a>(uid: &'a str, hash: &'a str, user: &'a str) -> [&'a str; 4] {
    ["approval", uid, hash, user]
}

/// The stamps' annotations, set to `author` for the spec of digest `digest`.
pub fn author_stamp(
    keys: &OperatorKeys,
    subject: &Subject<'_>,
    digest: &str,
    user: &str,
) -> [(&'static str, String); 2] {
    [
        (annotation::SPEC_AUTHOR, user.to_owned()),
        (
            annotation::SPEC_AUTHOR_SEAL,
            keys.seal(&author_parts(subject, digest, user)),
        ),
    ]
}

/// The approval stamp: `user` approved plan `hash` of the object `uid`.
pub fn approval_stamp(
    keys: &OperatorKeys,
    uid: &str,
    hash: &str,
    user: &str,
) -> [(&'static str, String); 2] {
    [
        (annotation::APPROVED_BY, user.to_owned()),
        (
            annotation::APPROVAL_SEAL,
            keys.seal(&approval_parts(uid, hash, user)),
        ),
    ]
}

/// Who wrote the spec of digest `digest`, if the object carries a stamp that verifies for it.
pub fn verified_author<'a>(
    keys: &OperatorKeys,
    annotations: &'a BTreeMap<String, String>,
    subject: &Subject<'_>,
    digest: &str,
) -> Option<&'a str> {
    let user = annotations.get(annotation::SPEC_AUTHOR)?;
    let seal = annotations.get(annotation::SPEC_AUTHOR_SEAL)?;
    keys.verify_seal(&author_parts(subject, digest, user), seal)
        .then_some(user.as_str())
}

/// Who approved plan `hash` of the object `uid`, if the object carries a stamp that verifies.
pub fn verified_approver<'a>(
    keys: &OperatorKeys,
    annotations: &'a BTreeMap<String, String>,
    uid: &str,
    hash: &str,
) -> Option<&'a str> {
    let user = annotations.get(annotation::APPROVED_BY)?;
    let seal = annotations.get(annotation::APPROVAL_SEAL)?;
    keys.verify_seal(&approval_parts(uid, hash, user), seal)
        .then_some(user.as_str())
}

/// Why an approval is not honoured (with the webhook on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    #[error(
        "the approval carries no valid stamp of the admission webhook (it was down, or the annotation was written around it): approve again while the operator runs"
    )]
    NotSealed,
    #[error(
        "the last spec change was not seen by the admission webhook, so its author is unknown: apply the spec again while the operator runs, then approve"
    )]
    AuthorUnknown,
    #[error("{0} made the last spec change; another person must approve it")]
    OwnChange(String),
}

/// The user who approved plan `hash`, when the approval is authorized: sealed by the webhook,
/// for this object and plan, and by someone other than the author of the current spec. Pure.
pub fn authorize(
    keys: &OperatorKeys,
    annotations: &BTreeMap<String, String>,
    (subject, uid): (&Subject<'_>, &str),
    hash: &str,
    digest: &str,
) -> Result<String, Unauthorized> {
    let approver =
        verified_approver(keys, annotations, uid, hash).ok_or(Unauthorized::NotSealed)?;
    let author =
        verified_author(keys, annotations, subject, digest).ok_or(Unauthorized::AuthorUnknown)?;
    if author == approver {
        return Err(Unauthorized::OwnChange(approver.to_owned()));
    }
    Ok(approver.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        kind: Kind::ContactSyncPolicy,
        namespace: "crm",
        name: "vip",
    };

    fn stamped(
        keys: &OperatorKeys,
        author: Option<(&str, &str)>,
        approval: Option<(&str, &str, &str)>,
    ) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        if let Some((digest, user)) = author {
            annotations
                .extend(author_stamp(keys, &SUBJECT, digest, user).map(|(k, v)| (k.to_owned(), v)));
        }
        if let Some((uid, hash, user)) = approval {
            annotations
                .extend(approval_stamp(keys, uid, hash, user).map(|(k, v)| (k.to_owned(), v)));
        }
        annotations
    }

    #[test]
    fn only_a_sealed_approval_by_someone_other_than_the_author_authorizes() {
        let keys = OperatorKeys::ephemeral();
        let other_keys = OperatorKeys::ephemeral();
        let alice_wrote = Some(("d1", "alice"));
        let bob_approved = Some(("uid-1", "h1", "bob"));
        let forged = {
            let mut a = stamped(&keys, alice_wrote, None);
            a.insert(annotation::APPROVED_BY.into(), "bob".into());
            a.insert(annotation::APPROVAL_SEAL.into(), "00".repeat(32));
            a
        };
        let renamed = {
            let mut a = stamped(&keys, alice_wrote, bob_approved);
            a.insert(annotation::APPROVED_BY.into(), "carol".into());
            a
        };
        let table = [
            (
                "bob approves alice's change",
                stamped(&keys, alice_wrote, bob_approved),
                Ok("bob".to_owned()),
            ),
            (
                "bob approves his own change",
                stamped(&keys, Some(("d1", "bob")), bob_approved),
                Err(Unauthorized::OwnChange("bob".into())),
            ),
            (
                "no approval stamp",
                stamped(&keys, alice_wrote, None),
                Err(Unauthorized::NotSealed),
            ),
            ("a forged seal", forged, Err(Unauthorized::NotSealed)),
            (
                "the approver renamed",
                renamed,
                Err(Unauthorized::NotSealed),
            ),
            (
                "sealed for another object",
                stamped(&keys, alice_wrote, Some(("uid-2", "h1", "bob"))),
                Err(Unauthorized::NotSealed),
            ),
            (
                "sealed for another plan",
                stamped(&keys, alice_wrote, Some(("uid-1", "h0", "bob"))),
                Err(Unauthorized::NotSealed),
            ),
            (
                "sealed by another key",
                stamped(&other_keys, alice_wrote, bob_approved),
                Err(Unauthorized::NotSealed),
            ),
            (
                "the author stamp is of an older spec",
                stamped(&keys, Some(("d0", "alice")), bob_approved),
                Err(Unauthorized::AuthorUnknown),
            ),
            (
                "no author stamp",
                stamped(&keys, None, bob_approved),
                Err(Unauthorized::AuthorUnknown),
            ),
        ];
        for (case, annotations, expected) in table {
            assert_eq!(
                authorize(&keys, &annotations, (&SUBJECT, "uid-1"), "h1", "d1"),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn spec_digests_follow_the_spec() {
        let a = serde_json::json!({"mode": "Plan", "contacts": []});
        let b = serde_json::json!({"mode": "Apply", "contacts": []});
        assert_eq!(spec_digest(&a), spec_digest(&a.clone()));
        assert_ne!(spec_digest(&a), spec_digest(&b));
    }
}
