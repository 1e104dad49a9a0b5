//! What a rule needs from GHL (network): the contacts its selector matches, and the contacts
//! of its ledger that no longer match (to release its tags).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};

use super::RuleObservation;
use super::items::needs_leaving;
use super::plan::search_filters;
use crate::crd::tag_rule::TagRuleSpec;
use crate::engine::ledger::Ledger;
use crate::engine::observe::get_contacts;
use crate::engine::ownership::SeenContact;
use crate::ghl::models::ContactSearch;
use crate::ghl::paginate::search_all;
use crate::ghl::{ErrorClass, GhlApi, GhlError};

/// Reads what the rule needs. `policy_contacts`: the ids of the referenced policy's contacts,
/// when the selector names one.
pub async fn observe_rule(
    api: &dyn GhlApi,
    spec: &TagRuleSpec,
    ledger: &Ledger,
    policy_contacts: Option<&BTreeSet<String>>,
    concurrency: usize,
) -> Result<RuleObservation, GhlError> {
    let mut filters = search_filters(spec);
    crate::engine::custom_fields::resolve_filter_keys(api, &mut filters).await?;
    let search = ContactSearch {
        page_limit: 500,
        filters,
        ..ContactSearch::default()
    };
    let mut candidates: BTreeMap<String, SeenContact> = BTreeMap::new();
    let mut pages = search_all(api, search);
    while let Some(contact) = pages.try_next().await? {
        if policy_contacts.is_some_and(|ids| !ids.contains(&contact.id)) {
            continue;
        }
        candidates.insert(contact.id.clone(), SeenContact::from_contact(&contact));
    }
    if let Some(phrase) = spec
        .selector
        .note_contains
        .as_deref()
        .map(str::to_lowercase)
    {
        let ids: Vec<String> = candidates.keys().cloned().collect();
        let checks: Vec<(String, Result<bool, GhlError>)> = stream::iter(ids)
            .map(|id| {
                let phrase = phrase.clone();
                async move {
                    let found = api.list_notes(&id).await.map(|notes| {
                        notes
                            .iter()
                            .any(|n| n.body.to_lowercase().contains(&phrase))
                    });
                    (id, found)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (id, found) in checks {
            match found {
                Ok(true) => {}
                Ok(false) => {
                    candidates.remove(&id);
                }
                Err(e) if e.class() == ErrorClass::NotFound => {
                    candidates.remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
    }
    // Contacts that left: read only those with something to do as they leave (a contact
    // whose tasks the rule is done with is remembered unread).
    let outside: Vec<String> = ledger
        .contacts
        .iter()
        .filter(|(id, owned)| {
            !candidates.contains_key(id.as_str()) && needs_leaving(spec.on_leave, owned)
        })
        .map(|(id, _)| id.to_string())
        .collect();
    Ok(RuleObservation {
        matched: candidates,
        others: get_all(api, outside, concurrency).await?,
        deleting: false,
    })
}

/// What a rule being deleted with `deletionPolicy: Delete` sees: only its own contacts (no
/// search).
pub async fn observe_release(
    api: &dyn GhlApi,
    ledger: &Ledger,
    concurrency: usize,
) -> Result<RuleObservation, GhlError> {
    let ids = ledger.contacts.keys().map(|id| id.to_string()).collect();
    Ok(RuleObservation {
        matched: BTreeMap::new(),
        others: get_all(api, ids, concurrency).await?,
        deleting: true,
    })
}

/// Reads contacts by id; `None` for those GHL no longer has.
async fn get_all(
    api: &dyn GhlApi,
    ids: Vec<String>,
    concurrency: usize,
) -> Result<BTreeMap<String, Option<SeenContact>>, GhlError> {
    let fetched = get_contacts(api, ids, concurrency, SeenContact::from_contact).await?;
    Ok(fetched.into_iter().collect())
}
