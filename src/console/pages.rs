//! The pages, as HTML (maud: compile-time, auto-escaping). No JavaScript: links and forms.
//! Every POST form carries the CSRF token of the person it was shown to.

use maud::{DOCTYPE, Markup, html};

use super::forms::{FILTER_FIELDS, operators};
use super::view::{ConnectionRow, OwnerRow, Shown};
use k8s_openapi::api::core::v1::Event;

/// The page frame: the stylesheet, the navigation, and the person's way out.
pub fn layout(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ghl-operator" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    a.brand href="/" { "ghl-operator" }
                    @if let Some(csrf) = csrf {
                        nav {
                            a href="/" { "Overview" }
                            a href="/new/tagrule" { "New TagRule" }
                            a href="/new/policy" { "New policy from CSV" }
                            a href="/new/sink" { "New feed sink" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The login page: a token, pasted once (kept server-side; the cookie holds a session id).
pub fn login(login_csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            p { "The console acts with your own Kubernetes identity: paste a bearer token the API server accepts for you (" code { "kubectl create token NAME" } " for a ServiceAccount, or your OIDC ID token). It shows and does exactly what your RBAC allows." }
            @if let Some(error) = error { p.error { (error) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(login_csrf);
                label for="token" { "Token" }
                textarea id="token" name="token" rows="4" autocomplete="off" spellcheck="false" required {}
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

fn state(shown: &Shown, good: &str) -> Markup {
    html! {
        span class=(format!("state {}", shown.tone(good))) title=(shown.message) {
            (shown.status) " " small { (shown.reason) }
        }
    }
}

/// The overview: every connection, policy and rule the person may read.
pub fn overview(
    namespaces: &[String],
    connections: &[ConnectionRow],
    owners: &[OwnerRow],
    csrf: &str,
) -> Markup {
    layout(
        "Overview",
        Some(csrf),
        html! {
            p.namespaces { "Namespaces you can read here: "
                @if namespaces.is_empty() { em { "none with GHL objects" } }
                @for ns in namespaces { code { (ns) } " " }
            }
            h2 { "Connections" }
            table id="connections" {
                thead { tr { th { "Connection" } th { "Location" } th { "Ready" } th { "Authenticated" } th { "Token expires" } th { "Renews" } th { "Budget (window / day)" } th { "Webhooks" } th { "Feed" } } }
                tbody {
                    @for c in connections {
                        tr data-object=(format!("{}/{}", c.namespace, c.name)) {
                            td { a href=(format!("/o/{}/ghlconnection/{}", c.namespace, c.name)) { (c.namespace) "/" (c.name) } }
                            td { code { (c.location) } }
                            td { (state(&c.ready, "True")) }
                            td { (state(&c.authenticated, "True")) }
                            td { (c.expires) }
                            td { (c.renews) }
                            td { (c.budget_window) " / " (c.budget_day) }
                            td { (c.webhooks) }
                            td {
                                @if let Some(exporting) = &c.exporting { (state(exporting, "True")) }
                                @for s in &c.sinks {
                                    div.sink { (s.name) ": " (s.delivered) " delivered, " (s.backlog) " waiting"
                                        @if s.rejected > 0 { ", " (s.rejected) " rejected" }
                                        @if s.failing { " — " span.bad { (s.last_error) } } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Policies and rules" }
            table id="owners" {
                thead { tr { th { "Object" } th { "Mode" } th { "Ready" } th { "Synced" } th { "Drifted" } th { "Conflict" } th { "Counts" } th { "Last sync" } th { "Plan" } } }
                tbody {
                    @for o in owners {
                        tr data-object=(format!("{}/{}", o.namespace, o.name)) {
                            td { a href=(format!("/o/{}/{}/{}", o.namespace, o.kind.to_lowercase(), o.name)) { (o.kind) " " (o.namespace) "/" (o.name) } }
                            td { (o.mode) }
                            td { (state(&o.ready, "True")) }
                            td { (state(&o.synced, "True")) }
                            td { @if let Some(d) = &o.drifted { (state(d, "False")) } @else { "-" } }
                            td { (state(&o.conflict, "False")) }
                            td { (o.counts) }
                            td { (o.last_sync) }
                            td { @if let Some(hash) = o.waiting() { span.bad { "waiting for approval: " code { (hash) } } } @else if let Some(p) = &o.plan { "+" (p.create) " ~" (p.update) " -" (p.delete) } }
                        }
                    }
                }
            }
        },
    )
}

fn conditions(list: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> Markup {
    html! {
        table.conditions {
            thead { tr { th { "Condition" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
            tbody { @for c in list { tr { td { (c.type_) } td { (c.status) } td { (c.reason) } td { (c.message) } td { (c.last_transition_time.0.to_string()) } } } }
        }
    }
}

fn events(list: &[Event]) -> Markup {
    html! {
        h2 { "Recent Events" }
        @if list.is_empty() { p { em { "None you may read." } } }
        @else {
            table.events {
                thead { tr { th { "Type" } th { "Reason" } th { "Message" } th { "Count" } } }
                tbody { @for e in list { tr { td { (e.type_.clone().unwrap_or_default()) } td { (e.reason.clone().unwrap_or_default()) } td { (e.message.clone().unwrap_or_default()) } td { (e.count.unwrap_or(1)) } } } }
            }
        }
    }
}

/// A connection's page.
pub fn connection(
    row: &ConnectionRow,
    all: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    installed: Option<&crate::crd::connection::InstalledLocationsStatus>,
    recent: &[Event],
    csrf: &str,
) -> Markup {
    layout(
        &format!("GhlConnection {}/{}", row.namespace, row.name),
        Some(csrf),
        html! {
            p { "Location " code { (row.location) } " · token expires " (row.expires) " · renews " (row.renews) " · budget " (row.budget_window) " / " (row.budget_day) }
            @if let Some(url) = &row.consent_url {
                p { a.button href=(url) rel="noreferrer noopener" target="_blank" { "Connect HighLevel" } " (the consent page GHL shows you; the operator receives the code)" }
            }
            (conditions(all))
            @if let Some(installed) = installed {
                h2 { "Installed locations" }
                p { (installed.count) " installed, " (installed.served) " served here" }
                @if !installed.available.is_empty() { ul { @for l in &installed.available { li { code { (l) } } } } }
            }
            @if !row.sinks.is_empty() {
                h2 { "Change feed" }
                table { thead { tr { th { "Sink" } th { "Delivered" } th { "Waiting" } th { "Rejected" } th { "Last error" } } }
                    tbody { @for s in &row.sinks { tr { td { (s.name) } td { (s.delivered) } td { (s.backlog) } td { (s.rejected) } td { (s.last_error) } } } } }
            }
            (events(recent))
        },
    )
}

/// A policy's or rule's page: the plan (and its field-by-field diff when the person may read
/// what computing it takes), the Approve button for a waiting plan, Events.
pub fn owner(
    row: &OwnerRow,
    all: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    diff: Result<&str, &str>,
    recent: &[Event],
    notice: Option<&str>,
    csrf: &str,
) -> Markup {
    layout(
        &format!("{} {}/{}", row.kind, row.namespace, row.name),
        Some(csrf),
        html! {
            @if let Some(notice) = notice { p.notice { (notice) } }
            p { "Mode " (row.mode) " · " (row.counts) " · last sync " (row.last_sync) }
            @if let Some(plan) = &row.plan {
                h2 { "Plan" }
                p id="plan-summary" { "+" (plan.create) " to create, " (plan.adopt) " to adopt, ~" (plan.update) " to update, -" (plan.delete) " to delete · hash " code id="plan-hash" { (plan.hash.clone().unwrap_or_else(|| "-".into())) } }
                @if let Some(blocked) = &plan.blocked { p.bad id="plan-blocked" { (blocked) } }
                @if let Some(by) = &plan.approved_by { p { "Last approved by " (by) } }
                @if let Some(hash) = row.waiting() {
                    form method="post" action=(format!("/o/{}/{}/{}/approve", row.namespace, row.kind.to_lowercase(), row.name)) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="hash" value=(hash);
                        button id="approve" type="submit" { "Approve plan " (hash) }
                        " — applied once by the operator, as approved by you"
                    }
                }
            }
            h2 { "Field by field" }
            @match diff {
                Ok(text) => pre id="plan-diff" { (text) },
                Err(why) => p id="plan-diff-unavailable" { em { (why) } },
            }
            (conditions(all))
            (events(recent))
        },
    )
}

/// The TagRule form (fields and operators from the CRD).
pub fn tagrule_form(
    namespaces: &[String],
    values: &super::forms::TagRuleForm,
    error: Option<&str>,
    csrf: &str,
) -> Markup {
    let ops = operators();
    layout(
        "New TagRule",
        Some(csrf),
        html! {
            @if let Some(error) = error { p.error id="form-error" { (error) } }
            form method="post" action="/new/tagrule" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Namespace" input name="namespace" list="namespaces" value=(values.namespace) required; }
                datalist id="namespaces" { @for ns in namespaces { option value=(ns) {} } }
                label { "Name" input name="name" value=(values.name) required; }
                label { "Connection" input name="connection" value=(values.connection) required; }
                fieldset {
                    legend { "Contacts where all of" }
                    @for (i, (f, o, v)) in [(&values.field1, &values.op1, &values.value1), (&values.field2, &values.op2, &values.value2), (&values.field3, &values.op3, &values.value3)].into_iter().enumerate() {
                        div.filter {
                            select name=(format!("field{}", i + 1)) {
                                option value="" { "—" }
                                @for field in FILTER_FIELDS { option value=(field) selected[f == field] { (field) } }
                            }
                            select name=(format!("op{}", i + 1)) {
                                @for op in &ops { option value=(op) selected[o == op] { (op) } }
                            }
                            input name=(format!("value{}", i + 1)) value=(v) placeholder="value";
                        }
                    }
                }
                label { "Add tags (comma-separated)" input name="add_tags" value=(values.add_tags); }
                label { "Remove tags" input name="remove_tags" value=(values.remove_tags); }
                label { "Mode" select name="mode" { option value="Plan" selected[values.mode != "Apply"] { "Plan (report only)" } option value="Apply" selected[values.mode == "Apply"] { "Apply" } } }
                button id="preview" type="submit" name="action" value="preview" { "Preview" }
            }
        },
    )
}

/// A form's result: the YAML, what the API server's dry run said, and Apply / Download.
pub fn preview(
    title: &str,
    action: &str,
    yaml: &str,
    dry_run: Result<&str, &str>,
    fields: &[(&str, &str)],
    csrf: &str,
) -> Markup {
    layout(
        title,
        Some(csrf),
        html! {
            h2 { "YAML" }
            pre id="yaml" { (yaml) }
            h2 { "Dry run (the API server, as you)" }
            @match dry_run {
                Ok(text) => p.good id="dry-run" { (text) },
                Err(text) => p.bad id="dry-run" { (text) },
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
                button id="apply" type="submit" name="action" value="apply" { "Apply as me" }
                button id="download" type="submit" name="action" value="download" { "Download for Git" }
            }
        },
    )
}

/// The policy-from-CSV form.
pub fn policy_form(
    values: &super::forms::CsvPolicyForm,
    error: Option<&str>,
    csrf: &str,
) -> Markup {
    layout(
        "New ContactSyncPolicy from a CSV",
        Some(csrf),
        html! {
            @if let Some(error) = error { p.error id="form-error" { (error) } }
            p { "The CSV goes into a ConfigMap the policy reads; the policy starts in " code { "mode: Plan" } ", so nothing is written to GHL before you read its plan." }
            form method="post" action="/new/policy" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Namespace" input name="namespace" value=(values.namespace) required; }
                label { "Name" input name="name" value=(values.name) required; }
                label { "Connection" input name="connection" value=(values.connection) required; }
                label { "CSV (header row: email or phone, then contact fields)" textarea name="csv" rows="10" required { (values.csv) } }
                button id="preview" type="submit" name="action" value="preview" { "Preview" }
            }
        },
    )
}

/// The sink form.
pub fn sink_form(values: &super::forms::SinkForm, error: Option<&str>, csrf: &str) -> Markup {
    layout(
        "New change feed sink",
        Some(csrf),
        html! {
            @if let Some(error) = error { p.error id="form-error" { (error) } }
            p { "Adds a sink to a connection's " code { "spec.export" } ". The signing Secret (key " code { "secret" } ", labelled " code { "ghl.servis.ai/secret-type: feed-signing" } ") holds " code { "whsec_" } " + base64; the URL must be one the operator's installer allows." }
            form method="post" action="/new/sink" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Namespace" input name="namespace" value=(values.namespace) required; }
                label { "Connection" input name="connection" value=(values.connection) required; }
                label { "Sink name" input name="sink" value=(values.sink) required; }
                label { "URL" input name="url" type="url" value=(values.url) required; }
                label { "Signing Secret" input name="secret" value=(values.secret) required; }
                fieldset { legend { "Include" }
                    @for part in ["tasks", "notes", "appointments"] { label.check { input type="checkbox" name="include" value=(part) checked[values.include.iter().any(|p| p == part)]; (part) } }
                }
                button id="preview" type="submit" name="action" value="preview" { "Preview" }
            }
        },
    )
}

/// A plain message page (errors, refusals).
pub fn message(title: &str, text: &str, csrf: Option<&str>) -> Markup {
    layout(
        title,
        csrf,
        html! { p { (text) } p { a href="/" { "Back to the overview" } } },
    )
}
