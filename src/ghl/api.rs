//! The GHL operations the engine uses, as a trait: the engine and controllers hold an
//! `Arc<dyn GhlApi>` and never see HTTP. One implementation is bound to one location.

use std::sync::Arc;

use async_trait::async_trait;

use super::error::Result;
use super::models::{
    Appointment, Contact, ContactList, ContactSearch, CreateContact, CreateNote, CreateTask,
    CustomFieldDefinition, ListContactsQuery, Note, SearchContactsResponse, Task, TaskSearch,
    UpdateContact, UpdateNote, UpdateTask, UpsertContact, UpsertOutcome,
};

/// GHL's Contacts API for one location.
#[async_trait]
pub trait GhlApi: Send + Sync {
    /// The location (sub-account) every call is made for.
    fn location_id(&self) -> &str;

    // --- contacts ---
    async fn get_contact(&self, contact_id: &str) -> Result<Contact>;
    async fn create_contact(&self, body: &CreateContact) -> Result<Contact>;
    async fn update_contact(&self, contact_id: &str, body: &UpdateContact) -> Result<Contact>;
    async fn delete_contact(&self, contact_id: &str) -> Result<()>;
    async fn upsert_contact(&self, body: &UpsertContact) -> Result<UpsertOutcome>;
    /// One page of the deprecated `GET /contacts/` (see `paginate::list_all`).
    async fn list_contacts(&self, query: &ListContactsQuery) -> Result<ContactList>;
    /// One page of `POST /contacts/search` (see `paginate::search_all`).
    async fn search_contacts(&self, search: &ContactSearch) -> Result<SearchContactsResponse>;

    // --- tasks ---
    async fn list_tasks(&self, contact_id: &str) -> Result<Vec<Task>>;
    async fn get_task(&self, contact_id: &str, task_id: &str) -> Result<Task>;
    async fn create_task(&self, contact_id: &str, body: &CreateTask) -> Result<Task>;
    async fn update_task(&self, contact_id: &str, task_id: &str, body: &UpdateTask)
    -> Result<Task>;
    async fn complete_task(&self, contact_id: &str, task_id: &str, completed: bool)
    -> Result<Task>;
    async fn delete_task(&self, contact_id: &str, task_id: &str) -> Result<()>;
    /// One page of `POST /locations/:locationId/tasks/search`.
    async fn search_location_tasks(&self, search: &TaskSearch) -> Result<Vec<Task>>;

    // --- notes ---
    async fn list_notes(&self, contact_id: &str) -> Result<Vec<Note>>;
    async fn get_note(&self, contact_id: &str, note_id: &str) -> Result<Note>;
    async fn create_note(&self, contact_id: &str, body: &CreateNote) -> Result<Note>;
    async fn update_note(&self, contact_id: &str, note_id: &str, body: &UpdateNote)
    -> Result<Note>;
    async fn delete_note(&self, contact_id: &str, note_id: &str) -> Result<()>;

    // --- appointments ---
    async fn list_appointments(&self, contact_id: &str) -> Result<Vec<Appointment>>;

    // --- custom fields ---
    /// The location's contact custom fields (`GET /locations/:locationId/customFields`),
    /// reused for a while once read; `refresh` reads them again.
    async fn custom_fields(&self, refresh: bool) -> Result<Arc<Vec<CustomFieldDefinition>>>;

    // --- tags ---
    /// Adds tags (others stay); returns GHL's tag list from the answer.
    async fn add_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>>;
    /// Removes tags (others stay); returns GHL's tag list from the answer.
    async fn remove_tags(&self, contact_id: &str, tags: &[String]) -> Result<Vec<String>>;
}
