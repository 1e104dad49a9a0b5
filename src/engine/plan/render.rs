//! Showing a plan the way Terraform does: `+` create, `~` update, `-` delete, `!` refused
//! records, then a summary line. Personal data (names, emails, phones, addresses, note bodies)
//! is masked unless the reader asks for values.

use std::fmt::Write;

use serde_json::Value;

use crate::engine::ledger::ItemKind;

use super::{ContactPlan, ItemBody, ItemOp, Plan, Release, Target};

/// How much to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// Show personal values instead of `(sensitive)`.
    pub show_sensitive: bool,
}

const MASK: &str = "(sensitive)";

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Renders a plan under a heading (e.g. `ContactSyncPolicy crm/vip`).
pub fn render(heading: &str, plan: &Plan, options: RenderOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}");
    let mut any = false;
    for contact in &plan.contacts {
        if contact.is_noop() && contact.observed_drift.is_empty() {
            continue;
        }
        any = true;
        render_contact(&mut out, contact, options);
    }
    for release in &plan.releases {
        any = true;
        render_release(&mut out, release);
    }
    for failure in &plan.failures {
        any = true;
        let field = failure
            .field
            .as_deref()
            .map(|f| format!("{f}: "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  ! {}: {field}{} ({})",
            failure.record, failure.message, failure.reason
        );
    }
    if let Some(why) = &plan.releases_deferred {
        let _ = writeln!(out, "  ! {why}");
    }
    if !any {
        let _ = writeln!(out, "  No changes. GHL matches the declared state.");
    }
    if let Some(why) = &plan.blocked {
        let _ = writeln!(out, "  ✋ Not applied: {why}.");
    }
    out
}

/// `Plan: 3 to create, 1 to adopt, 2 to update, 0 to delete.`
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary();
    format!(
        "Plan: {} to create, {} to adopt, {} to update, {} to delete.",
        s.create, s.adopt, s.update, s.delete
    )
}

fn render_contact(out: &mut String, c: &ContactPlan, options: RenderOptions) {
    let shown = |personal: bool, value: String| {
        if personal && !options.show_sensitive {
            MASK.to_owned()
        } else {
            value
        }
    };
    match &c.target {
        Target::Create { body, resolve } => {
            let note = if *resolve {
                ", after checking whether an interrupted run created it"
            } else {
                ""
            };
            let reason = if c.replaces.is_some() {
                " (deleted in GHL)"
            } else {
                ""
            };
            let _ = writeln!(out, "  + contact {}{reason}{note}", c.source);
            let body = serde_json::to_value(body).unwrap_or_default();
            if let Some(fields) = body.as_object() {
                for (name, value) in fields {
                    let personal = crate::engine::fields::Field::from_name(name)
                        .is_some_and(|f| f.is_personal());
                    let _ = writeln!(
                        out,
                        "      + {name:<14} = {}",
                        shown(personal, value_text(value))
                    );
                }
            }
        }
        Target::Existing { id, adopt } => {
            let how = if *adopt { " (adopt existing)" } else { "" };
            let drift = if c.drifted { " (changed in GHL)" } else { "" };
            let sign = if c.writes() > 0 { "~" } else { "=" };
            let _ = writeln!(out, "  {sign} contact {} → {id}{how}{drift}", c.source);
        }
    }
    for change in c.changes.iter().chain(&c.upsert_changes) {
        let personal = change.attribute.is_personal();
        let from = change
            .from
            .clone()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "(unset)".into());
        let _ = writeln!(
            out,
            "      ~ {:<14} {} → {}",
            change.attribute.name(),
            shown(personal, from),
            shown(personal, value_text(&change.to))
        );
    }
    if !c.add_tags.is_empty() {
        let _ = writeln!(out, "      + tags           {:?}", c.add_tags);
    }
    if !c.remove_tags.is_empty() {
        let _ = writeln!(out, "      - tags           {:?}", c.remove_tags);
    }
    for field in &c.observed_drift {
        let _ = writeln!(
            out,
            "      ? {field:<14} differs in GHL (fieldPolicy Observe: not changed)"
        );
    }
    for item in &c.items {
        render_item(out, item, options);
    }
}

fn kind_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Task => "task",
        ItemKind::Note => "note",
    }
}

fn render_item(out: &mut String, item: &ItemOp, options: RenderOptions) {
    match item {
        ItemOp::Create {
            kind,
            key,
            body,
            replaces,
            ..
        } => {
            let detail = match body {
                ItemBody::Task(t) => format!(
                    " {:?} due {}{}",
                    t.title,
                    t.due_date,
                    if t.completed { ", completed" } else { "" }
                ),
                ItemBody::Note(n) if options.show_sensitive => format!(" {:?}", n.body),
                ItemBody::Note(_) => String::new(),
            };
            let again = if replaces.is_some() {
                " (deleted in GHL)"
            } else {
                ""
            };
            let _ = writeln!(out, "      + {} {key}{detail}{again}", kind_name(*kind));
        }
        ItemOp::Adopt { kind, key, id, .. } => {
            let _ = writeln!(
                out,
                "      = {} {key} → {id} (adopt existing)",
                kind_name(*kind)
            );
        }
        ItemOp::Update {
            kind, key, fields, ..
        } => {
            let _ = writeln!(
                out,
                "      ~ {} {key} ({})",
                kind_name(*kind),
                fields.join(", ")
            );
        }
        ItemOp::Complete { key, completed, .. } => {
            let state = if *completed {
                "completed"
            } else {
                "not completed"
            };
            let _ = writeln!(out, "      ~ task {key} → {state}");
        }
        ItemOp::Delete { kind, key, id } => {
            let _ = writeln!(
                out,
                "      - {} {key} ({id}, no longer declared)",
                kind_name(*kind)
            );
        }
        ItemOp::Forget { kind, key } => {
            let _ = writeln!(
                out,
                "      · {} {key} (no longer managed)",
                kind_name(*kind)
            );
        }
    }
}

fn render_release(out: &mut String, r: &Release) {
    if r.gone {
        let _ = writeln!(out, "  · contact {} (gone from GHL; forgotten)", r.id);
    } else if r.delete_contact {
        let _ = writeln!(out, "  - contact {} (no longer declared; prune)", r.id);
    } else {
        let _ = writeln!(out, "  · contact {} (no longer declared; released)", r.id);
        if !r.remove_tags.is_empty() {
            let _ = writeln!(out, "      - tags           {:?}", r.remove_tags);
        }
        for (kind, key, id) in &r.delete_items {
            let _ = writeln!(out, "      - {} {key} ({id})", kind_name(*kind));
        }
    }
}
