//! What the admission webhook does with one create or update of a ContactSyncPolicy or
//! TagRule. Pure: the caller has asked the API server whether the user may approve (a
//! SubjectAccessReview) when [`approval_to_check`] said so.
//!
//! - A spec change is stamped with its author; an unchanged spec keeps the stamp it had.
//! - Setting or changing the approval needs the RBAC verb `approve` on the kind, an object
//!   that exists (its plan hash is in its status), no spec change in the same request, and a
//!   user other than the author of the current spec. Refused requests are denied with why.
//!   An allowed one is stamped with the approver.
//! - Stamps a request tried to write or change are put back as they were: only this webhook
//!   stamps.

use std::collections::BTreeMap;

use super::stamps::{self, Subject};
use crate::crd::vocabulary::annotation;
use crate::credentials::keys::OperatorKeys;

/// The stamp annotations (all four restored or rewritten by the webhook alone).
const STAMPS: [&str; 4] = [
    annotation::SPEC_AUTHOR,
    annotation::SPEC_AUTHOR_SEAL,
    annotation::APPROVED_BY,
    annotation::APPROVAL_SEAL,
];

/// An object as the request shows it: its annotations and its spec's digest.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    pub annotations: &'a BTreeMap<String, String>,
    pub digest: &'a str,
}

/// One admission request, reduced to what the decision needs.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub subject: Subject<'a>,
    /// The object's uid (none on create: the API server assigns it after admission).
    pub uid: Option<&'a str>,
    /// The user the API server authenticated.
    pub user: &'a str,
    /// The object before (`None`: a create).
    pub old: Option<Side<'a>>,
    pub new: Side<'a>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admit, with these annotations in place of the request's (`None`: unchanged).
    Allow {
        annotations: Option<BTreeMap<String, String>>,
        warning: Option<String>,
    },
    Deny(String),
}

fn approval(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations
        .get(annotation::APPROVE_PLAN)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// The plan hash the request sets or changes the approval to, if it does: the user must then
/// be allowed the verb `approve`.
pub fn approval_to_check<'a>(request: &Request<'a>) -> Option<&'a str> {
    let new = approval(request.new.annotations)?;
    let old = request.old.and_then(|old| approval(old.annotations));
    (old != Some(new)).then_some(new)
}

/// The decision on `request`; `may_approve`: the answer of the access review (asked only
/// when [`approval_to_check`] returns a hash).
pub fn decide(keys: &OperatorKeys, request: &Request<'_>, may_approve: bool) -> Verdict {
    let user = request.user;
    let what = request.subject.kind.plural();
    let spec_changed = request
        .old
        .is_none_or(|old| old.digest != request.new.digest);
    // The stamps start as they were (none on a create), whatever the request wrote.
    let mut annotations = request.new.annotations.clone();
    for key in STAMPS {
        match request.old.and_then(|old| old.annotations.get(key)) {
            Some(value) => annotations.insert(key.to_owned(), value.clone()),
            None => annotations.remove(key),
        };
    }
    if approval(&annotations).is_none() {
        annotations.remove(annotation::APPROVED_BY);
        annotations.remove(annotation::APPROVAL_SEAL);
    }
    let mut warning = None;
    if let Some(hash) = approval_to_check(request) {
        if !may_approve {
            return Verdict::Deny(format!(
                "{user} may not approve plans of {what} in namespace {} (approving needs the RBAC verb approve on {what}.ghl.servis.ai)",
                request.subject.namespace
            ));
        }
        let Some(uid) = request.uid.filter(|_| request.old.is_some()) else {
            return Verdict::Deny(
                "a plan is approved on an object that exists: create it, read status.plan.hash, then approve that hash".to_owned(),
            );
        };
        if spec_changed {
            return Verdict::Deny(format!(
                "an approval cannot come with a spec change ({user} changes the spec in this request); another person approves the plan of the new spec"
            ));
        }
        let author = request.old.and_then(|old| {
            stamps::verified_author(keys, old.annotations, &request.subject, old.digest)
        });
        match author {
            Some(author) if author == user => {
                return Verdict::Deny(format!(
                    "{user} made the last spec change; another person must approve its plan"
                ));
            }
            Some(_) => {}
            None => {
                warning = Some(
                    "the last spec change was not seen by the admission webhook, so the approval waits: apply the spec again, then approve".to_owned(),
                )
            }
        }
        annotations
            .extend(stamps::approval_stamp(keys, uid, hash, user).map(|(k, v)| (k.to_owned(), v)));
    }
    if spec_changed {
        annotations.extend(
            stamps::author_stamp(keys, &request.subject, request.new.digest, user)
                .map(|(k, v)| (k.to_owned(), v)),
        );
    }
    Verdict::Allow {
        annotations: (&annotations != request.new.annotations).then_some(annotations),
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Kind;

    const SUBJECT: Subject<'static> = Subject {
        kind: Kind::ContactSyncPolicy,
        namespace: "crm",
        name: "vip",
    };

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn with_author(keys: &OperatorKeys, digest: &str, user: &str) -> BTreeMap<String, String> {
        stamps::author_stamp(keys, &SUBJECT, digest, user)
            .map(|(k, v)| (k.to_owned(), v))
            .into()
    }

    fn request<'a>(user: &'a str, old: Option<Side<'a>>, new: Side<'a>) -> Request<'a> {
        Request {
            subject: SUBJECT,
            uid: old.map(|_| "uid-1"),
            user,
            old,
            new,
        }
    }

    fn allowed(verdict: &Verdict) -> Option<BTreeMap<String, String>> {
        match verdict {
            Verdict::Allow { annotations, .. } => Some(annotations.clone().unwrap_or_default()),
            Verdict::Deny(_) => None,
        }
    }

    #[test]
    fn spec_changes_are_stamped_with_their_author_and_forged_stamps_put_back() {
        let keys = OperatorKeys::ephemeral();
        let empty = BTreeMap::new();
        // A create: the author stamp, and nothing the request wrote itself.
        let forged = map(&[
            (annotation::SPEC_AUTHOR, "mallory"),
            (annotation::APPROVED_BY, "bob"),
            ("team", "crm"),
        ]);
        let created = decide(
            &keys,
            &request(
                "alice",
                None,
                Side {
                    annotations: &forged,
                    digest: "d1",
                },
            ),
            false,
        );
        let stamped = allowed(&created).unwrap();
        assert_eq!(stamped.get("team").map(String::as_str), Some("crm"));
        assert_eq!(
            stamps::verified_author(&keys, &stamped, &SUBJECT, "d1"),
            Some("alice")
        );
        assert!(!stamped.contains_key(annotation::APPROVED_BY));

        // An update that leaves the spec alone keeps the stamp, even if it tries to rewrite it.
        let old = with_author(&keys, "d1", "alice");
        let mut rewritten = old.clone();
        rewritten.insert(annotation::SPEC_AUTHOR.into(), "bob".into());
        let kept = decide(
            &keys,
            &request(
                "bob",
                Some(Side {
                    annotations: &old,
                    digest: "d1",
                }),
                Side {
                    annotations: &rewritten,
                    digest: "d1",
                },
            ),
            false,
        );
        assert_eq!(allowed(&kept).unwrap(), old);
        // An unchanged object is admitted as it is.
        let same = decide(
            &keys,
            &request(
                "bob",
                Some(Side {
                    annotations: &old,
                    digest: "d1",
                }),
                Side {
                    annotations: &old,
                    digest: "d1",
                },
            ),
            false,
        );
        assert_eq!(
            same,
            Verdict::Allow {
                annotations: None,
                warning: None
            }
        );
        // A spec change by bob makes bob the author.
        let changed = decide(
            &keys,
            &request(
                "bob",
                Some(Side {
                    annotations: &old,
                    digest: "d1",
                }),
                Side {
                    annotations: &empty,
                    digest: "d2",
                },
            ),
            false,
        );
        let stamped = allowed(&changed).unwrap();
        assert_eq!(
            stamps::verified_author(&keys, &stamped, &SUBJECT, "d2"),
            Some("bob")
        );
    }

    #[test]
    fn an_approval_needs_the_verb_an_existing_object_and_another_author() {
        let keys = OperatorKeys::ephemeral();
        let by_alice = with_author(&keys, "d1", "alice");
        let mut approving = by_alice.clone();
        approving.insert(annotation::APPROVE_PLAN.into(), "h1".into());
        let unstamped = BTreeMap::new();
        let mut approving_unstamped = BTreeMap::new();
        approving_unstamped.insert(annotation::APPROVE_PLAN.to_owned(), "h1".to_owned());
        let old = |annotations| {
            Some(Side {
                annotations,
                digest: "d1",
            })
        };
        let new = |annotations, digest| Side {
            annotations,
            digest,
        };
        // (case, user, old, new, may approve, denied with, approved by)
        let table = [
            (
                "bob, allowed",
                "bob",
                old(&by_alice),
                new(&approving, "d1"),
                true,
                None,
                Some("bob"),
            ),
            (
                "alice, patch only",
                "alice",
                old(&by_alice),
                new(&approving, "d1"),
                false,
                Some("may not approve"),
                None,
            ),
            (
                "alice approves her own change",
                "alice",
                old(&by_alice),
                new(&approving, "d1"),
                true,
                Some("made the last spec change"),
                None,
            ),
            (
                "bob, with a spec change",
                "bob",
                old(&by_alice),
                new(&approving, "d2"),
                true,
                Some("cannot come with a spec change"),
                None,
            ),
            (
                "bob, at creation",
                "bob",
                None,
                new(&approving, "d1"),
                true,
                Some("object that exists"),
                None,
            ),
            (
                "bob, author unknown",
                "bob",
                old(&unstamped),
                new(&approving_unstamped, "d1"),
                true,
                None,
                Some("bob"),
            ),
        ];
        for (case, user, old, new, may, denied, approver) in table {
            let verdict = decide(&keys, &request(user, old, new), may);
            match (&verdict, denied) {
                (Verdict::Deny(why), Some(expected)) => {
                    assert!(why.contains(expected), "{case}: {why}")
                }
                (Verdict::Allow { annotations, .. }, None) => {
                    let annotations = annotations.clone().unwrap_or_default();
                    assert_eq!(
                        stamps::verified_approver(&keys, &annotations, "uid-1", "h1"),
                        approver,
                        "{case}"
                    );
                }
                (verdict, _) => panic!("{case}: {verdict:?}"),
            }
        }
        // The approval unchanged: no access check, the stamp stays; removed: the stamp goes.
        let approved = match decide(
            &keys,
            &request("bob", old(&by_alice), new(&approving, "d1")),
            true,
        ) {
            Verdict::Allow { annotations, .. } => annotations.unwrap(),
            Verdict::Deny(why) => panic!("{why}"),
        };
        let again = request("carol", old(&approved), new(&approved, "d1"));
        assert_eq!(approval_to_check(&again), None);
        assert!(matches!(
            decide(&keys, &again, false),
            Verdict::Allow {
                annotations: None,
                ..
            }
        ));
        let mut withdrawn = approved.clone();
        withdrawn.remove(annotation::APPROVE_PLAN);
        let after = allowed(&decide(
            &keys,
            &request("carol", old(&approved), new(&withdrawn, "d1")),
            false,
        ))
        .unwrap();
        assert!(!after.contains_key(annotation::APPROVED_BY));
        assert!(!after.contains_key(annotation::APPROVAL_SEAL));
    }
}
