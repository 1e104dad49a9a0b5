//! Tags on contacts: the per-contact add/remove body (`TagsDTO`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nullable_vec;

/// `{tags: [...]}`: the body of `POST`/`DELETE /contacts/:id/tags` and their responses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TagsBody {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub tags: Vec<String>,
}
