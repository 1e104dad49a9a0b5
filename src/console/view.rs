//! What the pages show of each object, read off its status: pure, so every state the operator
//! writes has a table test. No personal data: objects carry none (counts, reasons, ids).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::crd::common::PlanSummary;
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// One condition as shown: its status, reason and message (`-` when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl Shown {
    fn of(conditions: &[Condition], type_: &str) -> Self {
        conditions.iter().find(|c| c.type_ == type_).map_or_else(
            || Shown {
                status: "-".into(),
                reason: "-".into(),
                message: String::new(),
            },
            |c| Shown {
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            },
        )
    }

    /// A CSS class for the state: good, bad or waiting.
    pub fn tone(&self, good_when: &str) -> &'static str {
        match self.status.as_str() {
            "-" | "Unknown" => "wait",
            s if s == good_when => "good",
            _ => "bad",
        }
    }
}

/// A sink of a connection's change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRow {
    pub name: String,
    pub delivered: u64,
    pub backlog: u64,
    pub rejected: u64,
    pub failing: bool,
    pub last_error: String,
}

/// A connection on the overview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRow {
    pub namespace: String,
    pub name: String,
    pub location: String,
    pub ready: Shown,
    pub authenticated: Shown,
    pub exporting: Option<Shown>,
    pub expires: String,
    pub renews: String,
    pub budget_window: String,
    pub budget_day: String,
    pub webhooks: u64,
    pub sinks: Vec<SinkRow>,
    pub consent_url: Option<String>,
}

/// A policy or rule on the overview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRow {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub mode: String,
    pub ready: Shown,
    pub synced: Shown,
    pub drifted: Option<Shown>,
    pub conflict: Shown,
    pub counts: String,
    pub last_sync: String,
    pub plan: Option<PlanSummary>,
}

impl OwnerRow {
    /// The hash of a plan waiting for approval.
    pub fn waiting(&self) -> Option<&str> {
        let plan = self.plan.as_ref()?;
        plan.blocked.as_ref()?;
        plan.hash.as_deref()
    }
}

fn when(at: Option<Timestamp>, now: Timestamp) -> String {
    let Some(at) = at else { return "-".into() };
    let seconds = at.as_second() - now.as_second();
    let (sign, abs) = if seconds < 0 {
        ("ago", -seconds)
    } else {
        ("in", seconds)
    };
    let span = match abs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    };
    match sign {
        "in" => format!("in {span}"),
        _ => format!("{span} ago"),
    }
}

fn remaining(left: Option<u32>, limit: Option<u32>) -> String {
    match (left, limit) {
        (Some(left), Some(limit)) => format!("{left}/{limit}"),
        (None, Some(limit)) => format!("?/{limit}"),
        _ => "-".into(),
    }
}

/// A consent link worth a button: https only (it is a door out of the cluster).
fn consent_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    (parsed.scheme() == "https" || parsed.host_str() == Some("127.0.0.1")).then(|| url.to_owned())
}

pub fn connection_row(c: &GhlConnection, now: Timestamp) -> ConnectionRow {
    let status = c.status.clone().unwrap_or_default();
    let credentials = status.credentials.as_ref();
    let budget = status.budget.as_ref();
    let sinks = status
        .export
        .as_ref()
        .map(|e| {
            e.sinks
                .iter()
                .map(|s| SinkRow {
                    name: s.name.clone(),
                    delivered: s.delivered,
                    backlog: s.pending,
                    rejected: s.rejected,
                    failing: s.failing,
                    last_error: s.last_error.clone().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    ConnectionRow {
        namespace: c.namespace().unwrap_or_default(),
        name: c.name_any(),
        location: c.spec.location_id.clone(),
        ready: Shown::of(&status.conditions, "Ready"),
        authenticated: Shown::of(&status.conditions, "Authenticated"),
        exporting: c
            .spec
            .export
            .as_ref()
            .map(|_| Shown::of(&status.conditions, "Exporting")),
        expires: when(
            credentials.and_then(|c| c.expires_at.as_ref()).map(|t| t.0),
            now,
        ),
        renews: when(
            credentials
                .and_then(|c| c.renewal_time.as_ref())
                .map(|t| t.0),
            now,
        ),
        budget_window: remaining(
            budget.and_then(|b| b.window_remaining),
            budget.and_then(|b| b.window_limit),
        ),
        budget_day: remaining(
            budget.and_then(|b| b.daily_remaining),
            budget.and_then(|b| b.daily_limit),
        ),
        webhooks: status.webhooks.as_ref().map_or(0, |w| w.received),
        sinks,
        consent_url: status.consent.as_ref().and_then(|c| consent_link(&c.url)),
    }
}

pub fn policy_row(p: &ContactSyncPolicy, now: Timestamp) -> OwnerRow {
    let status = p.status.clone().unwrap_or_default();
    OwnerRow {
        kind: "ContactSyncPolicy",
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        mode: format!("{:?}", p.spec.mode),
        ready: Shown::of(&status.conditions, "Ready"),
        synced: Shown::of(&status.conditions, "Synced"),
        drifted: Some(Shown::of(&status.conditions, "Drifted")),
        conflict: Shown::of(&status.conditions, "Conflict"),
        counts: status.counts.as_ref().map_or_else(
            || "-".into(),
            |c| {
                format!(
                    "{} desired, {} in sync, {} drifted, {} failed",
                    c.desired, c.in_sync, c.drifted, c.failed
                )
            },
        ),
        last_sync: when(status.last_sync_time.as_ref().map(|t| t.0), now),
        plan: status.plan,
    }
}

pub fn rule_row(r: &TagRule, now: Timestamp) -> OwnerRow {
    let status = r.status.clone().unwrap_or_default();
    OwnerRow {
        kind: "TagRule",
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        mode: format!("{:?}", r.spec.mode),
        ready: Shown::of(&status.conditions, "Ready"),
        synced: Shown::of(&status.conditions, "Synced"),
        drifted: None,
        conflict: Shown::of(&status.conditions, "Conflict"),
        counts: format!(
            "{} matched, {} compliant, {} pending",
            status.matched, status.compliant, status.pending
        ),
        last_sync: when(status.last_sync_time.as_ref().map(|t| t.0), now),
        plan: status.plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn times_read_as_people_say_them() {
        let cases = [
            (None, "-"),
            (Some("2030-01-01T00:00:30Z"), "in 30s"),
            (Some("2029-12-31T23:50:00Z"), "10m ago"),
            (Some("2030-01-01T05:00:00Z"), "in 5h"),
            (Some("2030-01-04T00:00:00Z"), "in 3d"),
        ];
        for (at, expected) in cases {
            let at = at.map(|t: &str| t.parse().unwrap());
            assert_eq!(when(at, now()), expected);
        }
    }

    #[test]
    fn a_connection_shows_its_credential_budget_feed_and_consent() {
        let c: GhlConnection = serde_json::from_value(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": "acme", "namespace": "crm"},
            "spec": {"locationId": "loc1", "auth": {"privateIntegrationToken": {"secretRef": {"name": "p", "key": "token"}}},
                     "export": {"sinks": [{"name": "s", "url": "https://x/h", "signingSecretRef": {"name": "k", "key": "secret"}}]}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "CredentialsAccepted", "message": "ok", "lastTransitionTime": "2030-01-01T00:00:00Z"},
                    {"type": "Exporting", "status": "False", "reason": "SinkFailing", "message": "sink s: 500", "lastTransitionTime": "2030-01-01T00:00:00Z"}],
                "credentials": {"type": "OAuth", "expiresAt": "2030-01-01T02:00:00Z", "renewalTime": "2030-01-01T01:00:00Z"},
                "budget": {"windowRemaining": 80, "windowLimit": 100, "dailyLimit": 200000},
                "webhooks": {"received": 7},
                "export": {"sinks": [{"name": "s", "delivered": 3, "pending": 2, "rejected": 1, "failing": true, "lastError": "the sink answered 500"}]},
                "consent": {"url": "javascript:alert(1)"}
            }
        }))
        .unwrap();
        let row = connection_row(&c, now());
        assert_eq!(row.ready.tone("True"), "good");
        assert_eq!(row.authenticated.tone("True"), "wait");
        let exporting = row.exporting.clone().unwrap();
        assert_eq!(
            (exporting.reason.as_str(), exporting.tone("True")),
            ("SinkFailing", "bad")
        );
        assert_eq!(
            (row.expires.as_str(), row.renews.as_str()),
            ("in 2h", "in 60m")
        );
        assert_eq!(
            (row.budget_window.as_str(), row.budget_day.as_str()),
            ("80/100", "?/200000")
        );
        assert_eq!(row.webhooks, 7);
        assert_eq!(row.sinks[0].backlog, 2);
        assert!(row.sinks[0].failing);
        assert_eq!(
            row.consent_url, None,
            "only an https consent link becomes a button"
        );
    }

    #[test]
    fn a_policy_shows_its_waiting_plan() {
        let p: ContactSyncPolicy = serde_json::from_value(json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "ContactSyncPolicy",
            "metadata": {"name": "big", "namespace": "crm"},
            "spec": {"connectionRef": {"name": "acme"}},
            "status": {"plan": {"create": 5, "update": 0, "delete": 0, "adopt": 0, "hash": "aaaa", "blocked": "maxChanges"},
                       "counts": {"desired": 5, "inSync": 0, "drifted": 0, "failed": 0}}
        }))
        .unwrap();
        let row = policy_row(&p, now());
        assert_eq!(row.waiting(), Some("aaaa"));
        assert_eq!(row.counts, "5 desired, 0 in sync, 0 drifted, 0 failed");
        assert_eq!(row.ready.status, "-");
        let mut applied = p.clone();
        applied
            .status
            .as_mut()
            .unwrap()
            .plan
            .as_mut()
            .unwrap()
            .blocked = None;
        assert_eq!(policy_row(&applied, now()).waiting(), None);
    }
}
