//! [`GhlClient`]: the typed implementation of [`GhlApi`] over a [`Transport`] stack, and
//! [`ConnectionSettings`], which assembles the standard stack
//! `Retrying(Budgeted(HttpTransport))` for one connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::GhlApi;
use super::auth::TokenSource;
use super::budget::{BudgetConfig, RequestBudget};
use super::error::{GhlError, Result};
use super::metrics::GhlMetrics;
use super::models::{
    Appointment, AppointmentList, CompleteTask, Contact, ContactEnvelope, ContactList,
    ContactSearch, CreateContact, CreateNote, CreateTask, CustomFieldDefinition, CustomFieldList,
    DeleteAck, ListContactsQuery, Note, NoteEnvelope, NoteList, SearchContactsResponse, TagsBody,
    Task, TaskEnvelope, TaskList, TaskSearch, TaskSearchResponse, UpdateContact, UpdateNote,
    UpdateTask, UpdatedContactEnvelope, UpsertContact, UpsertOutcome,
};
use super::operation::Operation;
use super::request::{ApiRequest, segment};
use super::retry::{RetryPolicy, Retrying};
use super::transport::{Budgeted, BuildError, HttpTimeouts, HttpTransport, Transport};

/// Everything needed to talk to one location.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub base_url: String,
    pub api_version: String,
    pub location_id: String,
    pub budget: BudgetConfig,
    pub retry: RetryPolicy,
    pub timeouts: HttpTimeouts,
    /// An HTTP client shared with other connections (built by
    /// [`http_client`](super::transport::http_client), and then `timeouts` are its own); one
    /// of this connection's own when `None`.
    pub http: Option<reqwest::Client>,
}

impl ConnectionSettings {
    pub fn new(base_url: impl Into<String>, location_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_version: crate::crd::connection::DEFAULT_API_VERSION.to_owned(),
            location_id: location_id.into(),
            budget: BudgetConfig::default(),
            retry: RetryPolicy::default(),
            timeouts: HttpTimeouts::default(),
            http: None,
        }
    }

    /// Builds the standard client: HTTP, then the location's budget, then retries (so every
    /// retry spends budget too). Returns the budget as well, for status reporting.
    pub fn connect(
        &self,
        token: Arc<dyn TokenSource>,
        metrics: Arc<GhlMetrics>,
    ) -> std::result::Result<(GhlClient, Arc<RequestBudget>), BuildError> {
        let http = match &self.http {
            Some(shared) => HttpTransport::over(
                shared.clone(),
                &self.base_url,
                self.api_version.clone(),
                Some(token),
                Arc::clone(&metrics),
            )?,
            None => HttpTransport::new(
                &self.base_url,
                self.api_version.clone(),
                Some(token),
                self.timeouts,
                Arc::clone(&metrics),
            )?,
        };
        let budget = Arc::new(RequestBudget::new(
            self.location_id.clone(),
            self.budget,
            Arc::clone(&metrics),
        ));
        let stack = Retrying::new(
            Budgeted::new(http, Arc::clone(&budget)),
            self.retry,
            metrics,
        );
        Ok((
            GhlClient::new(Arc::new(stack), self.location_id.clone()),
            budget,
        ))
    }
}

/// Typed GHL operations for one location over any transport stack.
#[derive(Clone)]
pub struct GhlClient {
    transport: Arc<dyn Transport>,
    location_id: String,
    /// The location's custom field definitions as last read, and when.
    custom_fields: Arc<std::sync::Mutex<Option<CachedFields>>>,
}

/// Custom field definitions and when they were read.
type CachedFields = (Instant, Arc<Vec<CustomFieldDefinition>>);

/// How long a location's custom field definitions are reused before they are read again (a
/// key not among them reads them again at once).
const CUSTOM_FIELDS_FRESH: Duration = Duration::from_secs(600);

impl std::fmt::Debug for GhlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhlClient")
            .field("location_id", &self.location_id)
            .finish_non_exhaustive()
    }
}

/// A body with the location id added at the top level, as GHL wants it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WithLocation<'a, T: Serialize> {
    location_id: &'a str,
    #[serde(flatten)]
    inner: &'a T,
}

impl GhlClient {
    pub fn new(transport: Arc<dyn Transport>, location_id: impl Into<String>) -> Self {
        Self {
            transport,
            location_id: location_id.into(),
            custom_fields: Arc::default(),
        }
    }

    fn json<T: Serialize + ?Sized>(operation: Operation, body: &T) -> Result<Bytes> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| GhlError::InvalidRequest {
                operation,
                message: format!("cannot encode the request body: {e}"),
            })
    }

    fn located<'a, T: Serialize>(&'a self, inner: &'a T) -> WithLocation<'a, T> {
        WithLocation {
            location_id: &self.location_id,
            inner,
        }
    }

    async fn call<R: DeserializeOwned>(&self, request: ApiRequest) -> Result<R> {
        let operation = request.operation;
        let response = self.transport.send(&request).await?;
        serde_json::from_slice(&response.body)
            .map_err(|e| GhlError::malformed(operation, response.status, &e))
    }

    async fn call_json<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        path: String,
        body: &B,
    ) -> Result<R> {
        let bytes = Self::json(operation, body)?;
        self.call(ApiRequest::new(operation, method, path).json(bytes))
            .await
    }

    async fn delete(&self, operation: Operation, path: String) -> Result<()> {
        let _: DeleteAck = self
            .call(ApiRequest::new(operation, Method::DELETE, path))
            .await?;
        Ok(())
    }

    fn location_query(&self) -> (&'static str, String) {
        ("locationId", self.location_id.clone())
    }
}

fn contact_path(contact_id: &str) -> String {
    format!("/contacts/{}", segment(contact_id))
}

#[async_trait]
impl GhlApi for GhlClient {
    fn location_id(&self) -> &str {
        &self.location_id
    }

    async fn get_contact(&self, contact_id: &str) -> Result<Contact> {
        let op = Operation::GetContact;
        let envelope: ContactEnvelope = self
            .call(ApiRequest::new(op, Method::GET, contact_path(contact_id)))
            .await?;
        Ok(envelope.contact)
    }

    async fn create_contact(&self, body: &CreateContact) -> Result<Contact> {
        let op = Operation::CreateContact;
        let envelope: ContactEnvelope = self
            .call_json(op, Method::POST, "/contacts/".into(), &self.located(body))
            .await?;
        Ok(envelope.contact)
    }

    async fn update_contact(&self, contact_id: &str, body: &UpdateContact) -> Result<Contact> {
        let op = Operation::UpdateContact;
        let envelope: UpdatedContactEnvelope = self
            .call_json(op, Method::PUT, contact_path(contact_id), body)
            .await?;
        Ok(envelope.contact)
    }

    async fn delete_contact(&self, contact_id: &str) -> Result<()> {
        self.delete(Operation::DeleteContact, contact_path(contact_id))
            .await
    }

    async fn upsert_contact(&self, body: &UpsertContact) -> Result<UpsertOutcome> {
        let op = Operation::UpsertContact;
        self.call_json(
            op,
            Method::POST,
            "/contacts/upsert".into(),
            &self.located(body),
        )
        .await
    }

    async fn list_contacts(&self, query: &ListContactsQuery) -> Result<ContactList> {
        let op = Operation::ListContacts;
        let mut params = vec![self.location_query()];
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(id) = &query.start_after_id {
            params.push(("startAfterId", id.clone()));
        }
        if let Some(after) = query.start_after {
            params.push(("startAfter", after.to_string()));
        }
        if let Some(q) = &query.query {
            params.push(("query", q.clone()));
        }
        self.call(ApiRequest::new(op, Method::GET, "/contacts/".into()).query(params))
            .await
    }

    async fn search_contacts(&self, search: &ContactSearch) -> Result<SearchContactsResponse> {
        let op = Operation::SearchContacts;
        self.call_json(
            op,
            Method::POST,
            "/contacts/search".into(),
            &self.located(search),
        )
        .await
    }

    async fn list_tasks(&self, contact_id: &str) -> Result<Vec<Task>> {
        let path = format!("{}/tasks", contact_path(contact_id));
        let list: TaskList = self
            .call(ApiRequest::new(Operation::ListTasks, Method::GET, path))
            .await?;
        Ok(list.tasks)
    }

    async fn get_task(&self, contact_id: &str, task_id: &str) -> Result<Task> {
        let path = format!("{}/tasks/{}", contact_path(contact_id), segment(task_id));
        let envelope: TaskEnvelope = self
            .call(ApiRequest::new(Operation::GetTask, Method::GET, path))
            .await?;
        Ok(envelope.task)
    }

    async fn create_task(&self, contact_id: &str, body: &CreateTask) -> Result<Task> {
        let path = format!("{}/tasks", contact_path(contact_id));
        let envelope: TaskEnvelope = self
            .call_json(Operation::CreateTask, Method::POST, path, body)
            .await?;
        Ok(envelope.task)
    }

    async fn update_task(
        &self,
        contact_id: &str,
        task_id: &str,
        body: &UpdateTask,
    ) -> Result<Task> {
        let path = format!("{}/tasks/{}", contact_path(contact_id), segment(task_id));
        let envelope: TaskEnvelope = self
            .call_json(Operation::UpdateTask, Method::PUT, path, body)
            .await?;
        Ok(envelope.task)
    }

    async fn complete_task(
        &self,
        contact_id: &str,
        task_id: &str,
        completed: bool,
    ) -> Result<Task> {
        let path = format!(
            "{}/tasks/{}/completed",
            contact_path(contact_id),
            segment(task_id)
        );
        let envelope: TaskEnvelope = self
            .call_json(
                Operation::CompleteTask,
                Method::PUT,
                path,
                &CompleteTask { completed },
            )
            .await?;
        Ok(envelope.task)
    }

    async fn delete_task(&self, contact_id: &str, task_id: &str) -> Result<()> {
        let path = format!("{}/tasks/{}", contact_path(contact_id), segment(task_id));
        self.delete(Operation::DeleteTask, path).await
    }

    async fn search_location_tasks(&self, search: &TaskSearch) -> Result<Vec<Task>> {
        let path = format!("/locations/{}/tasks/search", segment(&self.location_id));
        let response: TaskSearchResponse = self
            .call_json(Operation::SearchLocationTasks, Method::POST, path, search)
            .await?;
        Ok(response.tasks)
    }

    async fn custom_fields(&self, refresh: bool) -> Result<Arc<Vec<CustomFieldDefinition>>> {
        let cached = self
            .custom_fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((read, fields)) = cached
            && !refresh
            && read.elapsed() < CUSTOM_FIELDS_FRESH
        {
            return Ok(fields);
        }
        let path = format!("/locations/{}/customFields", segment(&self.location_id));
        let request = ApiRequest::new(Operation::ListCustomFields, Method::GET, path)
            .query(vec![("model", "contact".to_owned())]);
        let list: CustomFieldList = self.call(request).await?;
        let fields = Arc::new(list.custom_fields);
        *self.custom_fields.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), Arc::clone(&fields)));
        Ok(fields)
    }

    async fn list_notes(&self, contact_id: &str) -> Result<Vec<Note>> {
        let path = format!("{}/notes", contact_path(contact_id));
        let list: NoteList = self
            .call(ApiRequest::new(Operation::ListNotes, Method::GET, path))
            .await?;
        Ok(list.notes)
    }

    async fn get_note(&self, contact_id: &str, note_id: &str) -> Result<Note> {
        let path = format!("{}/notes/{}", contact_path(contact_id), segment(note_id));
        let envelope: NoteEnvelope = self
            .call(ApiRequest::new(Operation::GetNote, Method::GET, path))
            .await?;
        Ok(envelope.note)
    }

    async fn create_note(&self, contact_id: &str, body: &CreateNote) -> Result<Note> {
        let path = format!("{}/notes", contact_path(contact_id));
        let envelope: NoteEnvelope = self
            .call_json(Operation::CreateNote, Method::POST, path, body)
            .await?;
        Ok(envelope.note)
    }

    async fn update_note(
        &self,
        contact_id: &str,
        note_id: &str,
        body: &UpdateNote,
    ) -> Result<Note> {
        let path = format!("{}/notes/{}", contact_path(contact_id), segment(note_id));
        let envelope: NoteEnvelope = self
            .call_json(Operation::UpdateNote, Method::PUT, path, body)
            .await?;
        Ok(envelope.note)
    }

    async fn delete_note(&self, contact_id: &str, note_id: &str) -> Result<()> {
        let path = format!("{}/notes/{}", contact_path(contact_id), segment(note_id));
        self.delete(Operation::DeleteNote, path).await
    }

    async fn list_appointments(&self, contact_id: &str) -> Result<Vec<Appointment>> {
        let path = format!("{}/appointments", contact_path(contact_id));
        let list: AppointmentList = self
            .call(ApiRequest::new(
                Operation::ListAppointments,
                Method::GET,
                path,
            ))
            .await?;
        Ok(list.events)
    }

    async fn add_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>> {
        let path = format!("{}/tags", contact_path(contact_id));
        let body = TagsBody {
            tags: tags.to_vec(),
        };
        let answer: TagsBody = self
            .call_json(Operation::AddTags, Method::POST, path, &body)
            .await?;
        Ok(answer.tags)
    }

    async fn remove_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>> {
        let path = format!("{}/tags", contact_path(contact_id));
        let body = TagsBody {
            tags: tags.to_vec(),
        };
        let answer: TagsBody = self
            .call_json(Operation::RemoveTags, Method::DELETE, path, &body)
            .await?;
        Ok(answer.tags)
    }
}
