//! Contact notes (`GetNoteSchema`, `NotesDTO`, `UpdateNoteDTO`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::nullable_vec;

/// What a note carries besides its body (GHL's notes have no more than this).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NoteDetails {
    pub user_id: Option<String>,
    pub title: Option<String>,
    pub color: Option<String>,
    pub pinned: Option<bool>,
}

/// A note as GHL returns it.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    #[serde(default)]
    pub body: String,
    pub date_added: Option<String>,
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
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct UpdateNote {
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
