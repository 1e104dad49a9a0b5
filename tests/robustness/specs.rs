//! Arbitrary specs and sources through validation and planning; arbitrary durations through
//! every schedule computation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ghl_operator::crd::common::{DurationString, MAX_DURATION, duration_field};
use ghl_operator::crd::connection::GhlConnectionSpec;
use ghl_operator::crd::contact_sync_policy::{ContactSyncPolicySpec, MatchBy};
use ghl_operator::crd::tag_rule::TagRuleSpec;
use ghl_operator::credentials::schedule::{
    self, RenewalPolicy, Schedule, next_renewal, pit_due_at, refresh_due, renewal_adjusted,
};
use ghl_operator::egress::AllowList;
use ghl_operator::engine::desired::{SourceText, build};
use ghl_operator::engine::ledger::{Change, ItemKind, KeyDigest, Ledger};
use ghl_operator::engine::observed::{ContactView, Observed};
use ghl_operator::engine::ownership::{SeenContact, TagDeclarations};
use ghl_operator::engine::plan::{PlanOptions, plan};
use ghl_operator::engine::tag_rule::{
    RuleItems, RuleObservation, plan_rule, rule_block, search_filters,
};
use ghl_operator::ghl::BudgetConfig;
use ghl_operator::ghl::models::Contact;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::inputs::{STRINGS, json, object_over, source_text};

const IDS: &[&str] = &["c1", "c2", "c3", "c4"];
const EMAILS: &[&str] = &["a@example.com", "b@example.com", "", "A@EXAMPLE.COM"];

/// Ledger changes over a few ids and keys (so they collide).
fn change() -> impl Strategy<Value = Change> {
    let id = || prop::sample::select(IDS).prop_map(str::to_owned);
    let key = || prop::sample::select(EMAILS).prop_map(KeyDigest::of);
    let tags = || prop::collection::btree_set("[a-z]{0,3}", 0..3);
    let kind = || prop_oneof![Just(ItemKind::Task), Just(ItemKind::Note)];
    prop_oneof![
        (key(), id(), any::<bool>()).prop_map(|(key, id, created)| Change::ContactBound {
            key,
            id,
            created
        }),
        id().prop_map(|id| Change::ContactForgotten { id }),
        (id(), tags()).prop_map(|(id, tags)| Change::TagsAdded { id, tags }),
        (id(), tags()).prop_map(|(id, tags)| Change::TagsReleased { id, tags }),
        (key(), any::<i64>()).prop_map(|(key, s)| Change::CreateStarted {
            key,
            at: Timestamp::from_second(s.rem_euclid(250_000_000_000)).unwrap_or_default(),
        }),
        key().prop_map(|key| Change::CreateAbandoned { key }),
        (id(), kind(), "[a-z]{0,3}", "[a-z]{0,3}", any::<u64>()).prop_map(
            |(id, kind, key, item_id, fingerprint)| Change::ItemBound {
                id,
                kind,
                key,
                item_id,
                fingerprint
            }
        ),
        (id(), kind(), "[a-z]{0,3}").prop_map(|(id, kind, key)| Change::ItemForgotten {
            id,
            kind,
            key
        }),
    ]
}

fn ledger() -> impl Strategy<Value = Ledger> {
    prop::collection::vec(change(), 0..12).prop_map(|changes| {
        let mut ledger = Ledger::default();
        changes.iter().for_each(|c| ledger.apply(c));
        ledger
    })
}

/// What GHL shows: contacts deserialized from arbitrary JSON (those that deserialize).
fn observed() -> impl Strategy<Value = Observed> {
    let contact = object_over(json!({"id": "c1"}));
    (
        prop::collection::vec((contact, any::<bool>()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(contacts, by_phone)| {
            let mut observed = Observed::default();
            let match_by = if by_phone {
                MatchBy::Phone
            } else {
                MatchBy::Email
            };
            for (value, complete) in contacts {
                if let Ok(contact) = serde_json::from_value::<Contact>(value) {
                    observed.insert(ContactView::from_contact(&contact, complete), match_by);
                }
            }
            observed
        })
}

fn sources() -> impl Strategy<Value = Vec<SourceText>> {
    let key = prop::sample::select(&["list.csv", "list.json", "list.yaml", "list", ""][..]);
    prop::collection::vec((key, source_text(), any::<bool>(), any::<bool>()), 0..3).prop_map(
        |sources| {
            sources
                .into_iter()
                .map(|(key, text, readable, sensitive)| SourceText {
                    key: key.to_owned(),
                    text: if readable {
                        Ok(text)
                    } else {
                        Err(ghl_operator::refs::RefError::NoRef)
                    },
                    sensitive,
                })
                .collect()
        },
    )
}

/// A declared record with fields of the right types (so the spec deserializes) and hostile
/// values.
fn record() -> impl Strategy<Value = Value> {
    // Mostly plausible (so planning has contacts to work on), sometimes hostile.
    let text = |plausible: &'static str| {
        prop::option::weighted(
            0.8,
            prop_oneof![
                12 => plausible,
                1 => prop::sample::select(STRINGS).prop_map(str::to_owned),
                1 => ".{0,20}",
            ],
        )
    };
    let item = (
        text("[a-c]{1,2}"),
        text("[A-Z][a-z]{1,6}"),
        text("2030-0[1-9]-1[0-9]T00:00:00Z"),
    )
        .prop_map(|(key, title, due)| {
            json!({"key": key.unwrap_or_default(), "title": title.unwrap_or_default(),
                   "body": "b", "dueDate": due.unwrap_or_default()})
        });
    (
        (
            text("[a-e]{1,2}@example\\.com"),
            text("\\+1415555[0-9]{4}"),
            text("[A-Z][a-z]{1,6}"),
            text("[A-Z][a-z]{1,6} Inc"),
            any::<bool>(),
        ),
        prop::collection::vec("[a-z]{1,4}|.{0,6}", 0..4),
        prop::collection::btree_map("[a-zA-Z0-9]{1,6}", json(), 0..2),
        prop::collection::vec(item, 0..3),
    )
        .prop_map(
            |((email, phone, first, company, dnd), tags, custom, items)| {
                let notes: Vec<Value> = items
                    .iter()
                    .map(|i| json!({"key": i["key"], "body": i["title"]}))
                    .collect();
                let mut record = json!({"email": email, "phone": phone, "firstName": first,
                "companyName": company, "tags": tags, "customFields": custom,
                "tasks": items, "notes": notes});
                if dnd {
                    record["dnd"] = json!(true);
                }
                record
            },
        )
}

/// A policy spec: typed records, sources, and arbitrary other fields.
fn policy_spec() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(record(), 0..6),
        0usize..3,
        object_over(json!({})),
    )
        .prop_map(|(records, from, extra)| {
            let sources: Vec<Value> = (0..from)
                .map(|i| json!({"configMapRef": {"name": "list", "key": format!("k{i}.csv")}}))
                .collect();
            let mut spec = json!({"connectionRef": {"name": "acme"}, "contacts": records,
                                  "contactsFrom": sources});
            if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                for (k, v) in extra {
                    spec.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            spec
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_policy_spec_validates_and_plans_without_panic(
        spec in policy_spec(),
        sources in sources(),
        observed in observed(),
        ledger in ledger(),
    ) {
        let Ok(spec) = serde_json::from_value::<ContactSyncPolicySpec>(spec) else {
            return Ok(());
        };
        let _ = duration_field(
            spec.resync_interval.as_ref(), "spec.resyncInterval",
            Duration::from_secs(600), Duration::from_secs(1), MAX_DURATION,
        );
        // The sources the spec names, in order (whatever was generated, padded).
        let mut texts = sources;
        texts.resize(spec.contacts_from.len(), SourceText {
            key: "list.json".into(), text: Ok("[]".into()), sensitive: false,
        });
        if let Ok(desired) = build(&spec, &texts) {
            let plan = plan(&desired, &observed, &ledger, PlanOptions::for_spec(&spec));
            // What status reports is computable from any plan.
            let _ = (plan.writes(), plan.deletes(), plan.changes(), plan.summary());
            for failure in &plan.failures {
                prop_assert!(!failure.message.is_empty());
            }
        }
    }

    #[test]
    fn any_tag_rule_plans_without_panic(
        spec in object_over(json!({"connectionRef": {"name": "acme"}, "selector": {}, "addTags": ["x"],
            "tasks": [{"key": "call", "title": "Call", "dueIn": "1d"}], "notes": [{"key": "n", "body": "b"}], "onLeave": "CompleteTasks"})),
        matched in prop::collection::btree_map(prop::sample::select(IDS), prop::collection::btree_set("[a-zA-Z ]{0,4}", 0..4), 0..4),
        ledger in ledger(),
    ) {
        let Ok(spec) = serde_json::from_value::<TagRuleSpec>(spec) else {
            return Ok(());
        };
        let _ = search_filters(&spec);
        let seen = |tags: BTreeSet<String>| SeenContact { tags, email: Some(KeyDigest::of("a@example.com")), phone: None };
        let observation = RuleObservation {
            matched: matched.into_iter().map(|(id, tags)| (id.to_owned(), seen(tags))).collect(),
            others: BTreeMap::new(),
            deleting: false,
        };
        let Ok(items) = RuleItems::of(&spec) else {
            return Ok(());
        };
        let plan = plan_rule(&spec, &items, &observation, &ledger, &TagDeclarations::default(), jiff::Timestamp::now());
        let _ = (rule_block(&spec, &plan), plan.summary(), plan.changes());
    }

    #[test]
    fn any_connection_spec_is_checked_without_panic(
        spec in object_over(json!({"locationId": "loc", "auth": {"privateIntegrationToken": {"secretRef": {"name": "s", "key": "k"}}}})),
    ) {
        let Ok(spec) = serde_json::from_value::<GhlConnectionSpec>(spec) else {
            return Ok(());
        };
        let _ = BudgetConfig::from_spec(spec.rate_limit.as_ref());
        if let Some(url) = &spec.base_url {
            let _ = AllowList::ghl().check(url);
        }
        if let Some(oauth) = &spec.auth.oauth {
            if let Some(schedule) = &oauth.rotation_schedule {
                let _ = schedule.parse::<Schedule>();
            }
            let _ = oauth.renew_before.as_ref().map(DurationString::parse);
        }
    }

    #[test]
    fn any_duration_text_parses_or_is_refused(text in ".{0,40}|[0-9]{1,30}(ms|s|m|h|d|w)") {
        let value = DurationString::new(text);
        if let Ok(d) = value.parse_field("spec.x", Duration::ZERO, MAX_DURATION) {
            prop_assert!(d <= MAX_DURATION);
        }
    }

    #[test]
    fn renewal_arithmetic_never_overflows(
        renew_before in any::<u64>(),
        lifetime in any::<i64>(),
        rotated in any::<i64>(),
        now in any::<i64>(),
        every_minute in any::<bool>(),
    ) {
        let clamp = |s: i64| Timestamp::from_second(s.rem_euclid(500_000_000_000) - 250_000_000_000).unwrap_or_default();
        let policy = RenewalPolicy {
            renew_before: Duration::from_secs(renew_before),
            schedule: every_minute.then(|| "* * * * *".parse().unwrap()),
        };
        let last = clamp(rotated);
        let expires = clamp(rotated.wrapping_add(lifetime));
        let next = next_renewal(&policy, expires, last);
        let _ = refresh_due(&policy, expires, last, clamp(now));
        let _ = renewal_adjusted(&policy, expires, last);
        let _ = schedule::requeue_in(next, clamp(now), Duration::from_secs(300));
        let _ = pit_due_at(last, Duration::from_secs(renew_before));
        let _ = schedule::expiry_of(last, Some(renew_before));
    }
}

#[test]
fn extreme_values_in_a_spec_are_refused_with_the_field_named() {
    let spec: ContactSyncPolicySpec = serde_json::from_value(json!({
        "connectionRef": {"name": "acme"},
        "resyncInterval": "18446744073709551615s",
        "safety": {"maxDeletes": u32::MAX, "maxChanges": u32::MAX},
    }))
    .unwrap();
    let refused = duration_field(
        spec.resync_interval.as_ref(),
        "spec.resyncInterval",
        Duration::from_secs(600),
        Duration::from_secs(1),
        MAX_DURATION,
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("spec.resyncInterval"), "{refused}");
    let options = PlanOptions::for_spec(&spec);
    assert_eq!(options.max_changes, u32::MAX);
    let _: Value = serde_json::to_value(&spec).unwrap();
}
