//! How many objects stand in which condition, for alerts and the dashboard:
//! `ghl_operator_objects{kind}` counts the objects this process reconciles and
//! `ghl_operator_object_conditions{kind,condition}` those with a condition `True` (a policy
//! Stalled for an hour, a connection with `RotationDue`). Counts, never names: which object it
//! is lives in its status and Events.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::controller::object::ObjectKey;
use crate::crd::vocabulary::condition;

/// The conditions counted (every other type is left out of the metric).
const COUNTED: [&str; 8] = [
    condition::READY,
    condition::RECONCILING,
    condition::STALLED,
    condition::AUTHENTICATED,
    condition::ROTATION_DUE,
    condition::SYNCED,
    condition::DRIFTED,
    condition::CONFLICT,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindCondition {
    kind: &'static str,
    condition: &'static str,
}

/// The counted conditions that are `True` in `conditions`. Pure.
pub fn true_conditions(conditions: &[Condition]) -> Vec<&'static str> {
    COUNTED
        .into_iter()
        .filter(|type_| {
            conditions
                .iter()
                .any(|c| c.type_ == *type_ && c.status == "True")
        })
        .collect()
}

/// The gauges and what each object last counted in them.
#[derive(Debug, Default)]
pub struct ObjectStates {
    counted: Mutex<HashMap<ObjectKey, Vec<&'static str>>>,
    objects: Family<KindLabel, Gauge>,
    conditions: Family<KindCondition, Gauge>,
}

impl ObjectStates {
    pub fn register(registry: &mut Registry) -> Self {
        let states = Self::default();
        let sub = registry.sub_registry_with_prefix("ghl_operator");
        sub.register(
            "objects",
            "Objects this process reconciles, by kind",
            states.objects.clone(),
        );
        sub.register(
            "object_conditions",
            "Objects with a condition True, by kind and condition (Ready, Reconciling, Stalled, Authenticated, RotationDue, Synced, Drifted, Conflict)",
            states.conditions.clone(),
        );
        states
    }

    fn adjust(&self, key: &ObjectKey, conditions: &[&'static str], by: i64) {
        let kind = key.kind.as_str();
        for condition in conditions {
            self.conditions
                .get_or_create(&KindCondition { kind, condition })
                .inc_by(by);
        }
    }

    /// Counts `key` with the conditions its status now has.
    pub fn record(&self, key: &ObjectKey, conditions: &[Condition]) {
        let now = true_conditions(conditions);
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        match counted.insert(key.clone(), now.clone()) {
            Some(before) => self.adjust(key, &before, -1),
            None => {
                self.objects
                    .get_or_create(&KindLabel {
                        kind: key.kind.as_str(),
                    })
                    .inc();
            }
        }
        self.adjust(key, &now, 1);
    }

    /// Stops counting an object that is gone (or moved to another replica's shard).
    pub fn forget(&self, key: &ObjectKey) {
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = counted.remove(key) {
            self.adjust(key, &before, -1);
            self.objects
                .get_or_create(&KindLabel {
                    kind: key.kind.as_str(),
                })
                .dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Kind;

    fn conditions(pairs: &[(&str, &str)]) -> Vec<Condition> {
        pairs
            .iter()
            .map(|(type_, status)| Condition {
                type_: (*type_).into(),
                status: (*status).into(),
                reason: "Test".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
            })
            .collect()
    }

    #[test]
    fn only_counted_conditions_that_are_true() {
        let table = [
            (vec![], vec![]),
            (vec![("Ready", "True")], vec!["Ready"]),
            (
                vec![("Ready", "False"), ("Stalled", "True")],
                vec!["Stalled"],
            ),
            (
                vec![("Drifted", "Unknown"), ("Synced", "True")],
                vec!["Synced"],
            ),
            (vec![("RenewalAdjusted", "True")], vec![]),
            (
                vec![("RotationDue", "True"), ("Authenticated", "True")],
                vec!["Authenticated", "RotationDue"],
            ),
        ];
        for (given, expected) in table {
            assert_eq!(true_conditions(&conditions(&given)), expected, "{given:?}");
        }
    }

    fn gauge(states: &ObjectStates, kind: &'static str, condition: &'static str) -> i64 {
        states
            .conditions
            .get_or_create(&KindCondition { kind, condition })
            .get()
    }

    #[test]
    fn counts_follow_each_objects_latest_status_and_its_removal() {
        let states = ObjectStates::default();
        let a = ObjectKey::new(Kind::ContactSyncPolicy, "crm", "a");
        let b = ObjectKey::new(Kind::ContactSyncPolicy, "crm", "b");
        let policies = KindLabel {
            kind: "ContactSyncPolicy",
        };
        states.record(&a, &conditions(&[("Stalled", "True")]));
        states.record(&b, &conditions(&[("Stalled", "True")]));
        assert_eq!(gauge(&states, "ContactSyncPolicy", "Stalled"), 2);
        states.record(&a, &conditions(&[("Ready", "True"), ("Stalled", "False")]));
        assert_eq!(gauge(&states, "ContactSyncPolicy", "Stalled"), 1);
        assert_eq!(gauge(&states, "ContactSyncPolicy", "Ready"), 1);
        assert_eq!(states.objects.get_or_create(&policies).get(), 2);
        states.forget(&b);
        states.forget(&b);
        assert_eq!(gauge(&states, "ContactSyncPolicy", "Stalled"), 0);
        assert_eq!(states.objects.get_or_create(&policies).get(), 1);
        assert_eq!(gauge(&states, "TagRule", "Ready"), 0);
    }
}
