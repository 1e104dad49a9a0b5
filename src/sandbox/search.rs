//! Contact search as GHL does it: over an index that lags writes (eventual consistency),
//! with filters, sort, `page`/`pageLimit` (capped at 10,000 records) and `searchAfter` cursors.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::errors::{ApiError, ApiResult};

/// Records GHL returns through page numbers at most.
pub const PAGE_CAP: u64 = 10_000;
pub const MAX_PAGE_LIMIT: u64 = 500;

/// Contact snapshots as search sees them: each write becomes visible `lag` after it happened.
#[derive(Debug, Default)]
pub struct SearchIndex {
    visible: BTreeMap<String, Value>,
    pending: VecDeque<(Instant, String, Option<Value>)>,
    lag: Duration,
}

impl SearchIndex {
    pub fn new(lag: Duration) -> Self {
        Self {
            lag,
            ..Self::default()
        }
    }

    /// Schedules a contact's new state (`None`: deleted) to become visible.
    pub fn record(&mut self, id: &str, snapshot: Option<Value>) {
        if self.lag.is_zero() {
            self.apply(id.to_owned(), snapshot);
        } else {
            self.pending
                .push_back((Instant::now() + self.lag, id.to_owned(), snapshot));
        }
    }

    /// Makes visible everything whose time has come, and returns the visible contacts.
    pub fn visible(&mut self) -> impl Iterator<Item = &Value> {
        let now = Instant::now();
        while self.pending.front().is_some_and(|(at, _, _)| *at <= now) {
            if let Some((_, id, snapshot)) = self.pending.pop_front() {
                self.apply(id, snapshot);
            }
        }
        self.visible.values()
    }

    /// Makes a snapshot visible at once (seeded data is old data).
    pub fn insert_now(&mut self, id: String, snapshot: Value) {
        self.apply(id, Some(snapshot));
    }

    pub fn clear(&mut self) {
        self.visible.clear();
        self.pending.clear();
    }

    fn apply(&mut self, id: String, snapshot: Option<Value>) {
        match snapshot {
            Some(contact) => {
                self.visible.insert(id, contact);
            }
            None => {
                self.visible.remove(&id);
            }
        }
    }
}

/// A parsed search request.
pub struct SearchRequest {
    pub page_limit: u64,
    pub page: Option<u64>,
    pub search_after: Option<Vec<Value>>,
    pub filters: Vec<Value>,
    pub sort: Vec<(String, bool)>,
    pub query: Option<String>,
}

const SEARCH_FIELDS: &[&str] = &[
    "locationId",
    "pageLimit",
    "page",
    "searchAfter",
    "filters",
    "sort",
    "query",
];

impl SearchRequest {
    /// Validates a search body (422 for what GHL refuses).
    ///
    /// One piece: a recursive-descent reader of GHL's filter grammar, each branch one form.
    pub fn parse(body: &Map<String, Value>) -> ApiResult<Self> {
        let mut problems = Vec::new();
        for key in body.keys() {
            if !SEARCH_FIELDS.contains(&key.as_str()) {
                problems.push(format!("property {key} should not exist"));
            }
        }
        let page_limit = body.get("pageLimit").and_then(Value::as_u64);
        match page_limit {
            None => problems
                .push("pageLimit must be a number conforming to the specified constraints".into()),
            Some(0) => problems.push("pageLimit must not be less than 1".into()),
            Some(n) if n > MAX_PAGE_LIMIT => problems.push(format!(
                "pageLimit must not be greater than {MAX_PAGE_LIMIT}"
            )),
            _ => {}
        }
        let page = match body.get("page") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|p| *p >= 1) {
                Some(p) => Some(p),
                None => {
                    problems.push("page must be a positive number".into());
                    None
                }
            },
        };
        let search_after = match body.get("searchAfter") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.len() == 2 => Some(items.clone()),
            Some(_) => {
                problems.push("searchAfter must be an array of [sort value, id]".into());
                None
            }
        };
        if page.is_some() && search_after.is_some() {
            problems.push("page and searchAfter cannot be used together".into());
        }
        let filters = match body.get("filters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                problems.push("filters must be an array".into());
                Vec::new()
            }
        };
        let mut sort = Vec::new();
        match body.get("sort") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.len() <= 2 => {
                for item in items {
                    let field = item.get("field").and_then(Value::as_str);
                    let direction = item.get("direction").and_then(Value::as_str);
                    match (field, direction) {
                        (Some(f), Some("asc")) => sort.push((f.to_owned(), true)),
                        (Some(f), Some("desc")) => sort.push((f.to_owned(), false)),
                        _ => problems
                            .push("sort items need a field and a direction of asc or desc".into()),
                    }
                }
            }
            Some(_) => problems.push("sort must be an array of at most 2 items".into()),
        }
        let query = match body.get("query") {
            None | Some(Value::Null) => None,
            Some(Value::String(q)) if q.chars().count() <= 75 => Some(q.to_lowercase()),
            Some(_) => {
                problems.push("query must be a string of at most 75 characters".into());
                None
            }
        };
        if let Some(p) = page
            && let Some(limit) = page_limit
            && p.saturating_mul(limit) > PAGE_CAP
        {
            problems.push(format!(
                "page and pageLimit reach past {PAGE_CAP} records; use searchAfter to go further"
            ));
        }
        for filter in &filters {
            if let Err(problem) = check_filter(filter) {
                problems.push(problem.to_string());
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::unprocessable(problems));
        }
        if sort.is_empty() {
            sort.push(("dateAdded".to_owned(), false));
        }
        Ok(Self {
            page_limit: page_limit.unwrap_or(1),
            page,
            search_after,
            filters,
            sort,
            query,
        })
    }

    /// Runs the search: `(page of contacts with their searchAfter cursors, total matches)`.
    pub fn run<'a>(&self, contacts: impl Iterator<Item = &'a Value>) -> (Vec<Value>, u64) {
        let (field, ascending) = self.sort[0].clone();
        let mut matched: Vec<(SortValue, String, &Value)> = contacts
            .filter(|c| self.query.as_ref().is_none_or(|q| full_text(c, q)))
            .filter(|c| self.filters.iter().all(|f| matches(c, f)))
            .map(|c| {
                let id = c["id"].as_str().unwrap_or_default().to_owned();
                (sort_value(c, &field), id, c)
            })
            .collect();
        let order = |a: &SortValue, a_id: &str, b: &SortValue, b_id: &str| {
            let primary = a.cmp(b);
            let primary = if ascending {
                primary
            } else {
                primary.reverse()
            };
            primary.then_with(|| a_id.cmp(b_id))
        };
        let total = matched.len() as u64;
        // Only the page is sorted: the records after the cursor (or before the page's end)
        // are selected in linear time, so a page costs O(n), not O(n log n), at any depth.
        let start = match (&self.search_after, self.page) {
            (Some(after), _) => {
                let cursor = (
                    SortValue::from_cursor(&after[0]),
                    after[1].as_str().unwrap_or_default().to_owned(),
                );
                matched
                    .retain(|(v, id, _)| order(v, id, &cursor.0, &cursor.1) == Ordering::Greater);
                0
            }
            (None, page) => ((page.unwrap_or(1) - 1) * self.page_limit) as usize,
        };
        let end = start.saturating_add(self.page_limit as usize);
        let by_order = |a: &(SortValue, String, &Value), b: &(SortValue, String, &Value)| {
            order(&a.0, &a.1, &b.0, &b.1)
        };
        if matched.len() > end {
            matched.select_nth_unstable_by(end, by_order);
            matched.truncate(end);
        }
        matched.sort_by(by_order);
        let page = matched
            .into_iter()
            .skip(start)
            .take(self.page_limit as usize)
            .map(|(value, id, contact)| {
                let mut out = contact.clone();
                out["searchAfter"] = json!([value.to_cursor(), id]);
                out
            })
            .collect();
        (page, total)
    }
}

/// A sortable value: numbers (dates as epoch ms) before strings before missing.
#[derive(Clone, Debug)]
enum SortValue {
    Number(f64),
    Text(String),
    Missing,
}

impl SortValue {
    fn rank(&self) -> u8 {
        match self {
            SortValue::Number(_) => 0,
            SortValue::Text(_) => 1,
            SortValue::Missing => 2,
        }
    }
}

impl Ord for SortValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortValue::Number(a), SortValue::Number(b)) => a.total_cmp(b),
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for SortValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortValue {}

impl SortValue {
    fn to_cursor(&self) -> Value {
        match self {
            SortValue::Number(n) => json!(*n as i64),
            SortValue::Text(t) => json!(t),
            SortValue::Missing => Value::Null,
        }
    }

    fn from_cursor(value: &Value) -> Self {
        match value {
            Value::Number(n) => SortValue::Number(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => SortValue::Text(s.clone()),
            _ => SortValue::Missing,
        }
    }
}

fn sort_value(contact: &Value, field: &str) -> SortValue {
    match lookup(contact, field) {
        Some(Value::String(s)) if field.starts_with("date") => s
            .parse::<jiff::Timestamp>()
            .map(|t| SortValue::Number(t.as_millisecond() as f64))
            .unwrap_or(SortValue::Text(s.to_lowercase())),
        Some(Value::String(s)) => SortValue::Text(s.to_lowercase()),
        Some(Value::Number(n)) => SortValue::Number(n.as_f64().unwrap_or(0.0)),
        Some(Value::Bool(b)) => SortValue::Number(if *b { 1.0 } else { 0.0 }),
        _ => SortValue::Missing,
    }
}

fn full_text(contact: &Value, query: &str) -> bool {
    [
        "firstName",
        "lastName",
        "name",
        "email",
        "phone",
        "companyName",
    ]
    .iter()
    .filter_map(|f| contact.get(*f).and_then(Value::as_str))
    .any(|v| v.to_lowercase().contains(query))
}

const OPERATORS: &[&str] = &[
    "eq",
    "not_eq",
    "contains",
    "not_contains",
    "exists",
    "not_exists",
    "range",
];

/// What GHL refuses in a search filter (its 422 message).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum FilterProblem {
    #[error("filter groups must be AND or OR")]
    Group,
    #[error("filter groups need a filters array")]
    GroupFilters,
    #[error("each filter needs a field")]
    NoField,
    #[error("filter operator {0} needs a value")]
    NoValue(String),
    #[error("filter values are limited to 75 characters")]
    LongValue,
    #[error("unsupported filter operator {0}")]
    Operator(String),
}

fn check_filter(filter: &Value) -> Result<(), FilterProblem> {
    if let Some(group) = filter.get("group") {
        if !matches!(group.as_str(), Some("AND" | "OR")) {
            return Err(FilterProblem::Group);
        }
        let Some(inner) = filter.get("filters").and_then(Value::as_array) else {
            return Err(FilterProblem::GroupFilters);
        };
        return inner.iter().try_for_each(check_filter);
    }
    let field = filter.get("field").and_then(Value::as_str);
    let operator = filter.get("operator").and_then(Value::as_str);
    match (field, operator) {
        (None, _) => Err(FilterProblem::NoField),
        (_, Some(op)) if OPERATORS.contains(&op) => {
            let needs_value = !matches!(op, "exists" | "not_exists");
            let value = filter.get("value").filter(|v| !v.is_null());
            if needs_value && value.is_none() {
                Err(FilterProblem::NoValue(op.to_owned()))
            } else if value
                .and_then(Value::as_str)
                .is_some_and(|v| v.chars().count() > 75)
            {
                Err(FilterProblem::LongValue)
            } else {
                Ok(())
            }
        }
        (_, other) => Err(FilterProblem::Operator(
            other.unwrap_or("(none)").to_owned(),
        )),
    }
}

/// The value of `field` on a contact snapshot (`customFields.<id>` looks into custom fields).
fn lookup<'a>(contact: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(id) = field.strip_prefix("customFields.") {
        return contact
            .get("customFields")?
            .as_array()?
            .iter()
            .find(|f| f.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|f| f.get("value"));
    }
    contact.get(field).filter(|v| !v.is_null())
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

fn matches(contact: &Value, filter: &Value) -> bool {
    if let Some(group) = filter.get("group").and_then(Value::as_str) {
        let inner = filter.get("filters").and_then(Value::as_array);
        let mut results = inner.into_iter().flatten().map(|f| matches(contact, f));
        return if group == "OR" {
            results.any(|m| m)
        } else {
            results.all(|m| m)
        };
    }
    let field = filter["field"].as_str().unwrap_or_default();
    let operator = filter["operator"].as_str().unwrap_or_default();
    let wanted = filter.get("value").map(text_of).unwrap_or_default();
    let actual = lookup(contact, field);
    let values: Vec<String> = match actual {
        Some(Value::Array(items)) => items.iter().map(text_of).collect(),
        Some(v) => vec![text_of(v)],
        None => Vec::new(),
    };
    let present = values.iter().any(|v| !v.is_empty());
    match operator {
        "exists" => present,
        "not_exists" => !present,
        "eq" => values.contains(&wanted),
        "not_eq" => !values.contains(&wanted),
        "contains" => values.iter().any(|v| v.contains(&wanted)),
        "not_contains" => !values.iter().any(|v| v.contains(&wanted)),
        "range" => in_range(actual, filter.get("value")),
        _ => false,
    }
}

/// `range` with `{gte, lte, gt, lt}` bounds on numbers or dates.
fn in_range(actual: Option<&Value>, bounds: Option<&Value>) -> bool {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond() as f64)
            .ok()
            .or_else(|| s.parse().ok()),
        _ => None,
    };
    let (Some(actual), Some(bounds)) = (actual.and_then(number), bounds) else {
        return false;
    };
    let bound = |key: &str| bounds.get(key).and_then(number);
    bound("gte").is_none_or(|b| actual >= b)
        && bound("gt").is_none_or(|b| actual > b)
        && bound("lte").is_none_or(|b| actual <= b)
        && bound("lt").is_none_or(|b| actual < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                json!({"id": format!("c{i:04}"), "email": format!("p{i}@{}", if i % 2 == 0 {"bigcorp.com"} else {"small.io"}),
                       "tags": if i % 3 == 0 { json!(["vip"]) } else { json!([]) },
                       "dateAdded": format!("2024-01-01T00:{:02}:{:02}.000Z", i / 60, i % 60)})
            })
            .collect()
    }

    fn search(body: Value) -> SearchRequest {
        SearchRequest::parse(body.as_object().unwrap()).unwrap()
    }

    #[test]
    fn filters_combine_with_and() {
        let all = contacts(30);
        let request = search(json!({"pageLimit": 100, "filters": [
            {"field": "email", "operator": "contains", "value": "@bigcorp.com"},
            {"field": "tags", "operator": "eq", "value": "VIP"}]}));
        let (page, total) = request.run(all.iter());
        assert_eq!(total, 5); // i in {0, 6, 12, 18, 24}
        assert!(
            page.iter()
                .all(|c| c["email"].as_str().unwrap().ends_with("bigcorp.com"))
        );
    }

    #[test]
    fn search_after_walks_every_record_once() {
        let all = contacts(95);
        let mut seen = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body =
                json!({"pageLimit": 10, "sort": [{"field": "dateAdded", "direction": "asc"}]});
            if let Some(cursor) = &after {
                body["searchAfter"] = cursor.clone();
            }
            let (page, total) = search(body).run(all.iter());
            assert_eq!(total, 95);
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap()["searchAfter"].clone());
            seen.extend(
                page.into_iter()
                    .map(|c| c["id"].as_str().unwrap().to_owned()),
            );
        }
        let expected: Vec<String> = (0..95).map(|i| format!("c{i:04}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn page_numbers_stop_at_the_cap_and_bad_bodies_are_refused() {
        let ok = json!({"pageLimit": 500, "page": 20});
        assert!(SearchRequest::parse(ok.as_object().unwrap()).is_ok());
        for bad in [
            json!({"pageLimit": 500, "page": 21}),
            json!({"pageLimit": 501}),
            json!({}),
            json!({"pageLimit": 10, "page": 2, "searchAfter": [1, "x"]}),
            json!({"pageLimit": 10, "filters": [{"field": "email", "operator": "like", "value": "x"}]}),
            json!({"pageLimit": 10, "filters": [{"field": "email", "operator": "eq"}]}),
            json!({"pageLimit": 10, "bogus": 1}),
        ] {
            let err = SearchRequest::parse(bad.as_object().unwrap())
                .err()
                .unwrap();
            assert_eq!(err.status, 422, "{bad}");
        }
    }

    #[test]
    fn the_index_lags_writes() {
        tokio_test_paused(async {
            let mut index = SearchIndex::new(Duration::from_secs(2));
            index.record("a", Some(json!({"id": "a"})));
            assert_eq!(index.visible().count(), 0);
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(index.visible().count(), 1);
            index.record("a", None);
            assert_eq!(
                index.visible().count(),
                1,
                "a delete is not seen at once either"
            );
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(index.visible().count(), 0);
        });
    }

    fn tokio_test_paused(test: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(test);
    }
}
