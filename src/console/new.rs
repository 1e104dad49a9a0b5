//! The New forms' routes, one pair for every form: `GET` shows it empty; `POST` checks the
//! CSRF token, turns the fields into manifests ([`NewForm::objects`], pure) and answers with
//! their YAML and the API server's dry run, applies them as the person, or sends them as a
//! download for Git.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::access::{self, AccessError};
use super::forms::{self, FormError};
use super::{Console, checked, failure, page, pages};
use crate::crd::{ContactSyncPolicy, GhlConnection, TagRule};

/// A form of the New menu.
pub trait NewForm: DeserializeOwned + Default + Send {
    /// Its route, and where its preview posts.
    const PATH: &'static str;
    const TITLE: &'static str;
    /// Fields a form may repeat (checkboxes), read as lists.
    const LISTS: &'static [&'static str] = &[];

    /// The form as shown first.
    fn blank() -> Self {
        Self::default()
    }
    /// The manifests it makes, or the field that is wrong.
    fn objects(&self) -> Result<Vec<Value>, FormError>;
    /// The form, with an error when it had one.
    fn page(&self, console: &Console, error: Option<&str>, csrf: &str) -> maud::Markup;
}

impl NewForm for forms::TagRuleForm {
    const PATH: &'static str = "/new/tagrule";
    const TITLE: &'static str = "New TagRule";

    fn blank() -> Self {
        Self {
            mode: "Plan".into(),
            op1: "eq".into(),
            ..Self::default()
        }
    }
    fn objects(&self) -> Result<Vec<Value>, FormError> {
        self.manifest().map(|m| vec![m])
    }
    fn page(&self, console: &Console, error: Option<&str>, csrf: &str) -> maud::Markup {
        pages::tagrule_form(&(console.hint)(), self, error, csrf)
    }
}

impl NewForm for forms::CsvPolicyForm {
    const PATH: &'static str = "/new/policy";
    const TITLE: &'static str = "New ContactSyncPolicy from a CSV";

    fn objects(&self) -> Result<Vec<Value>, FormError> {
        self.manifests()
    }
    fn page(&self, _: &Console, error: Option<&str>, csrf: &str) -> maud::Markup {
        pages::policy_form(self, error, csrf)
    }
}

impl NewForm for forms::SinkForm {
    const PATH: &'static str = "/new/sink";
    const TITLE: &'static str = "New change feed sink";
    const LISTS: &'static [&'static str] = &["include"];

    fn objects(&self) -> Result<Vec<Value>, FormError> {
        self.manifest().map(|m| vec![m])
    }
    fn page(&self, _: &Console, error: Option<&str>, csrf: &str) -> maud::Markup {
        pages::sink_form(self, error, csrf)
    }
}

/// What a POST asks for besides the form: preview (the default), apply or download.
#[derive(Deserialize, Default)]
struct Action {
    #[serde(default)]
    action: String,
    #[serde(default)]
    csrf: String,
}

/// Form pairs as a JSON object: the names in `lists` as lists, the others their last value.
fn fields_json(pairs: &[(String, String)], lists: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for list in lists {
        map.insert((*list).to_owned(), Value::Array(Vec::new()));
    }
    for (k, v) in pairs {
        match map.get_mut(k) {
            Some(Value::Array(items)) if lists.contains(&k.as_str()) => {
                items.push(Value::String(v.clone()))
            }
            _ => {
                map.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    Value::Object(map)
}

pub async fn show<F: NewForm>(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    let Some(person) = console.person(&headers, &jar) else {
        return console.unauthenticated();
    };
    let csrf = console.csrf(&person);
    page(F::blank().page(&console, None, &csrf))
}

pub async fn submit<F: NewForm>(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let json = fields_json(&pairs, F::LISTS);
    let action: Action = serde_json::from_value(json.clone()).unwrap_or_default();
    let person = match checked(&console, &headers, &jar, &action.csrf) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = console.csrf(&person);
    let form: F = serde_json::from_value(json).unwrap_or_default();
    let objects = match form.objects() {
        Ok(o) => o,
        Err(e) => {
            let shown = form.page(&console, Some(&e.to_string()), &csrf);
            return (StatusCode::UNPROCESSABLE_ENTITY, page(shown)).into_response();
        }
    };
    let client = match console.client(&person) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The form's fields go along to Apply / Download (not the CSRF token or the action).
    let fields: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "csrf" && k != "action")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let yaml = forms::yaml(&objects);
    match action.action.as_str() {
        "download" => (
            [
                (header::CONTENT_TYPE, "application/yaml"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"ghl-objects.yaml\"",
                ),
            ],
            yaml,
        )
            .into_response(),
        "apply" => match apply_all(&client, &objects, false).await {
            Ok(()) => Redirect::to(&object_path(&objects[objects.len() - 1])).into_response(),
            Err(e) => failure(&e, Some(&csrf)),
        },
        _ => {
            let said = match apply_all(&client, &objects, true).await {
                Ok(()) => Ok("The API server accepts it (schema, admission and your RBAC); nothing was stored. The operator plans it once applied.".to_owned()),
                Err(AccessError::Api(kube::Error::Api(e))) => Err(e.message),
                Err(e) => Err(e.to_string()),
            };
            let said = said.as_deref().map_err(String::as_str);
            page(pages::preview(
                F::TITLE,
                F::PATH,
                &yaml,
                said,
                &fields,
                &csrf,
            ))
        }
    }
}

/// The console page of an object a form made.
fn object_path(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    format!("/o/{namespace}/{kind}/{name}")
}

/// Applies (server-side) each object as the person, in order; `dry_run`: stores nothing.
async fn apply_all(client: &Client, objects: &[Value], dry_run: bool) -> Result<(), AccessError> {
    for object in objects {
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
        match object["kind"].as_str() {
            Some("TagRule") => drop(access::apply::<TagRule>(client, ns, object, dry_run).await?),
            Some("ContactSyncPolicy") => {
                drop(access::apply::<ContactSyncPolicy>(client, ns, object, dry_run).await?)
            }
            Some("GhlConnection") => {
                drop(access::apply::<GhlConnection>(client, ns, object, dry_run).await?)
            }
            Some("ConfigMap") => {
                drop(access::apply::<ConfigMap>(client, ns, object, dry_run).await?)
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_lists_only_where_the_form_says() {
        let pairs: Vec<(String, String)> = [
            ("sink", "a"),
            ("include", "tasks"),
            ("include", "notes"),
            ("sink", "b"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let json = fields_json(&pairs, &["include"]);
        assert_eq!(json["include"], serde_json::json!(["tasks", "notes"]));
        assert_eq!(json["sink"], "b", "the last value of a plain field");
        assert_eq!(
            fields_json(&[], &["include"])["include"],
            serde_json::json!([])
        );
    }
}
