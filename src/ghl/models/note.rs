//! Contact notes (`GetNoteSchema`, `NotesDTO`, `UpdateNoteDTO`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nullable_vec;

/// What a note carries besides its body (GHL's notes have no more than this).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NoteDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
}

/// A note as GHL returns it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_added: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(flatten)]
    pub details: NoteDetails,
}

/// Body of `POST /contacts/:id/notes`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct CreateNote {
    pub body: String,
    #[serde(flatten)]
    pub details: NoteDetails,
}

/// Body of `PUT /contacts/:id/notes/:noteId`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct UpdateNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(flatten)]
    pub details: NoteDetails,
}

/// `{note: ...}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct NoteEnvelope {
    pub note: Note,
}

/// `{notes: [...]}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct NoteList {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub notes: Vec<Note>,
}
