//! Contact tasks (`TaskSchema`, `CreateTaskParams`, `UpdateTaskBody`, `UpdateTaskStatusParams`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::nullable_vec;

/// A task as GHL returns it.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub title: Option<String>,
    pub body: Option<String>,
    pub assigned_to: Option<String>,
    /// ISO-8601 (`2021-07-08T02:30:00.000Z`).
    pub due_date: Option<String>,
    #[serde(default)]
    pub completed: bool,
    pub contact_id: Option<String>,
}

/// Body of `POST /contacts/:id/tasks`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateTask {
    pub title: String,
    pub body: Option<String>,
    pub due_date: String,
    pub completed: bool,
    pub assigned_to: Option<String>,
}

/// Body of `PUT /contacts/:id/tasks/:taskId`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTask {
    pub title: Option<String>,
    pub body: Option<String>,
    pub due_date: Option<String>,
    pub completed: Option<bool>,
    pub assigned_to: Option<String>,
}

/// Body of `PUT /contacts/:id/tasks/:taskId/completed`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct CompleteTask {
    pub completed: bool,
}

/// `{task: ...}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct TaskEnvelope {
    pub task: Task,
}

/// `{tasks: [...]}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TaskList {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub tasks: Vec<Task>,
}
