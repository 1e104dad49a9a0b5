//! Full pagination over GHL's list and search endpoints, as streams of pages.
//!
//! Contact search pages by `searchAfter` cursors (taken from the last record of each page),
//! which is the only way past GHL's 10,000-record cap on `page` numbers; it falls back to
//! page numbers when GHL sends no cursor, and fails clearly at the cap. `GET /contacts/` pages
//! by `startAfterId` + `startAfter`, always resending `locationId` and `limit`.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::api::GhlApi;
use super::error::{GhlError, Result};
use super::models::{
    Contact, ContactSearch, ListContactsQuery, MAX_PAGE_LIMIT, PAGE_NUMBER_CAP, SearchSort,
    SortDirection, Task, TaskSearch,
};
use super::operation::Operation;

/// One page of search results with GHL's reported total.
#[derive(Clone, Debug)]
pub struct SearchPage {
    pub contacts: Vec<Contact>,
    pub total: Option<u64>,
}

enum SearchCursor {
    First,
    After(Vec<serde_json::Value>),
    Page(u32),
    Done,
}

/// All pages of a contact search. `search.page` and `search.searchAfter` are ignored; a sort
/// on `dateAdded` is added when none is given, so cursors are stable.
pub fn search_pages<'a>(
    api: &'a dyn GhlApi,
    search: ContactSearch,
) -> BoxStream<'a, Result<SearchPage>> {
    let mut base = search;
    base.page_limit = base.page_limit.clamp(1, MAX_PAGE_LIMIT);
    base.page = None;
    base.search_after.clear();
    if base.sort.is_empty() {
        base.sort.push(SearchSort {
            field: "dateAdded".into(),
            direction: SortDirection::Asc,
        });
    }
    stream::try_unfold(SearchCursor::First, move |cursor| {
        let base = base.clone();
        async move {
            let mut request = base;
            let page_number = match cursor {
                SearchCursor::Done => return Ok(None),
                SearchCursor::First => 1,
                SearchCursor::After(after) => {
                    request.search_after = after;
                    0
                }
                SearchCursor::Page(page) => {
                    let skipped = u64::from(page - 1) * u64::from(request.page_limit);
                    if skipped >= PAGE_NUMBER_CAP {
                        return Err(GhlError::InvalidRequest {
                            operation: Operation::SearchContacts,
                            message: format!(
                                "GHL sent no searchAfter cursor and page numbers stop at {PAGE_NUMBER_CAP} records"
                            ),
                        });
                    }
                    request.page = Some(page);
                    page
                }
            };
            let answer = api.search_contacts(&request).await?;
            let full_page = answer.contacts.len() >= request.page_limit as usize;
            let next = match answer.contacts.last() {
                _ if !full_page => SearchCursor::Done,
                Some(last) if !last.search_after.is_empty() => {
                    if last.search_after == request.search_after {
                        // The same cursor again would page forever.
                        return Err(GhlError::InvalidRequest {
                            operation: Operation::SearchContacts,
                            message: "GHL's searchAfter cursor did not advance; stopping".into(),
                        });
                    }
                    SearchCursor::After(last.search_after.clone())
                }
                _ if page_number > 0 => SearchCursor::Page(page_number.saturating_add(1)),
                // A cursor page without a cursor on its last record: nothing to continue from.
                _ => SearchCursor::Done,
            };
            let page = SearchPage {
                contacts: answer.contacts,
                total: answer.total,
            };
            Ok(Some((page, next)))
        }
    })
    .boxed()
}

/// Every contact a search matches.
pub fn search_all<'a>(
    api: &'a dyn GhlApi,
    search: ContactSearch,
) -> BoxStream<'a, Result<Contact>> {
    search_pages(api, search)
        .map_ok(|page| stream::iter(page.contacts.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Every contact of the location through the deprecated `GET /contacts/`, `limit` per page
/// (at most 100).
pub fn list_all<'a>(
    api: &'a dyn GhlApi,
    limit: u32,
    query: Option<String>,
) -> BoxStream<'a, Result<Contact>> {
    let limit = limit.clamp(1, 100);
    let first = ListContactsQuery {
        limit: Some(limit),
        query,
        ..ListContactsQuery::default()
    };
    stream::try_unfold(Some(first), move |next| async move {
        let Some(request) = next else {
            return Ok(None);
        };
        let answer = api.list_contacts(&request).await?;
        let full_page = answer.contacts.len() >= limit as usize;
        let cursor = answer
            .meta
            .as_ref()
            .and_then(|meta| Some((meta.start_after_id.clone()?, meta.start_after)));
        let cursor = cursor.or_else(|| {
            let last = answer.contacts.last()?;
            let after = last
                .date_added
                .as_deref()
                .and_then(|d| d.parse::<jiff::Timestamp>().ok())
                .and_then(|t| u64::try_from(t.as_millisecond()).ok());
            Some((last.id.clone(), after))
        });
        let following = match cursor {
            Some((id, after)) if full_page && Some(&id) != request.start_after_id.as_ref() => {
                Some(ListContactsQuery {
                    start_after_id: Some(id),
                    start_after: after,
                    ..request.clone()
                })
            }
            _ => None,
        };
        Ok(Some((
            stream::iter(answer.contacts.into_iter().map(Ok)),
            following,
        )))
    })
    .try_flatten()
    .boxed()
}

/// Every task of the location matching `search`, paging by `skip`.
pub fn location_tasks_all<'a>(
    api: &'a dyn GhlApi,
    search: TaskSearch,
) -> BoxStream<'a, Result<Task>> {
    let mut first = search;
    first.limit = first.limit.max(1);
    first.skip = 0;
    stream::try_unfold(Some(first), move |next| async move {
        let Some(request) = next else {
            return Ok(None);
        };
        let tasks = api.search_location_tasks(&request).await?;
        // A full page continues, while `skip` can still grow.
        let following = match request.skip.checked_add(request.limit) {
            Some(skip) if tasks.len() >= request.limit as usize => Some(TaskSearch {
                skip,
                ..request.clone()
            }),
            _ => None,
        };
        Ok(Some((stream::iter(tasks.into_iter().map(Ok)), following)))
    })
    .try_flatten()
    .boxed()
}
