//! The GHL operations the product uses: a bounded set, safe as a metrics label, with what the
//! transport stack needs to know about each (idempotency, budget, headers).

use std::fmt;

/// Every GHL operation the product uses. A bounded set: safe as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    GetContact,
    CreateContact,
    UpdateContact,
    DeleteContact,
    UpsertContact,
    ListContacts,
    SearchContacts,
    ListTasks,
    GetTask,
    CreateTask,
    UpdateTask,
    CompleteTask,
    DeleteTask,
    SearchLocationTasks,
    ListCustomFields,
    ListNotes,
    GetNote,
    CreateNote,
    UpdateNote,
    DeleteNote,
    ListAppointments,
    AddTags,
    RemoveTags,
    OAuthToken,
    LocationToken,
    InstalledLocations,
}

impl Operation {
    /// Stable name for metrics, logs and errors.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            GetContact => "contacts.get",
            CreateContact => "contacts.create",
            UpdateContact => "contacts.update",
            DeleteContact => "contacts.delete",
            UpsertContact => "contacts.upsert",
            ListContacts => "contacts.list",
            SearchContacts => "contacts.search",
            ListTasks => "tasks.list",
            GetTask => "tasks.get",
            CreateTask => "tasks.create",
            UpdateTask => "tasks.update",
            CompleteTask => "tasks.complete",
            DeleteTask => "tasks.delete",
            SearchLocationTasks => "tasks.search",
            ListCustomFields => "custom_fields.list",
            ListNotes => "notes.list",
            GetNote => "notes.get",
            CreateNote => "notes.create",
            UpdateNote => "notes.update",
            DeleteNote => "notes.delete",
            ListAppointments => "appointments.list",
            AddTags => "tags.add",
            RemoveTags => "tags.remove",
            OAuthToken => "oauth.token",
            LocationToken => "oauth.location_token",
            InstalledLocations => "oauth.installed_locations",
        }
    }

    /// Whether sending the request twice has the same effect as sending it once, so that a
    /// lost answer can safely be retried. Creates are not: a retried create that had in fact
    /// succeeded makes a duplicate. A token refresh is not: the refresh token is single-use.
    pub fn is_idempotent(self) -> bool {
        use Operation::*;
        !matches!(
            self,
            CreateContact | CreateTask | CreateNote | OAuthToken | LocationToken
        )
    }

    /// Whether the request counts against the location's request budget.
    pub fn uses_location_budget(self) -> bool {
        !matches!(
            self,
            Operation::OAuthToken | Operation::LocationToken | Operation::InstalledLocations
        )
    }

    /// Whether GHL requires the `Version` header (the token endpoint declares none).
    pub fn sends_version_header(self) -> bool {
        !matches!(self, Operation::OAuthToken)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
