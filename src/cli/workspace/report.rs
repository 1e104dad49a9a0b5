//! What running a policy or rule produced: text for people, JSON for machines, with personal
//! values masked unless asked for.

use serde_json::{Value, json};

use crate::crd::contact_sync_policy::RecordFailure;
use crate::engine::plan::render::RenderOptions;
use crate::engine::plan::{ItemOp, Plan, Target};
use crate::engine::tag_rule::RulePlan;

/// The outcome of one policy or rule.
#[derive(Debug)]
pub struct Report {
    pub heading: String,
    /// Rendered text (text output) and JSON form.
    pub text: String,
    pub json: Value,
    pub changes: bool,
    pub writes: u64,
    pub failures: usize,
    pub error: Option<String>,
    pub blocked: bool,
}

impl Report {
    pub(super) fn new(heading: String) -> Self {
        Self {
            heading,
            text: String::new(),
            json: Value::Null,
            changes: false,
            writes: 0,
            failures: 0,
            error: None,
            blocked: false,
        }
    }

    pub(super) fn failed(mut self, error: String) -> Self {
        self.text = format!("{}\n  ✗ {error}\n", self.heading);
        self.json = json!({"name": self.heading, "error": error});
        self.error = Some(error);
        self
    }
}

pub(super) fn render_rule(heading: &str, plan: &RulePlan) -> String {
    let mut out = format!(
        "{heading}\n  {} matched, {} compliant, {} to change, {} left alone for other owners\n",
        plan.matched, plan.compliant, plan.pending, plan.conflicted
    );
    for change in &plan.changes {
        if !change.add.is_empty() {
            out.push_str(&format!(
                "  ~ contact {}  + tags {:?}\n",
                change.id, change.add
            ));
        }
        if !change.remove.is_empty() {
            out.push_str(&format!(
                "  ~ contact {}  - tags {:?}\n",
                change.id, change.remove
            ));
        }
        for op in &change.items {
            out.push_str(&format!("  ~ contact {}  {}\n", change.id, item_line(op)));
        }
    }
    for (item, contacts) in &plan.kept {
        out.push_str(&format!(
            "  = {item} kept as created on {contacts} contact(s): the rule's text for it changed, and reaches contacts entering from now on\n"
        ));
    }
    for conflict in &plan.conflicts {
        out.push_str(&format!("  ! conflict: {conflict}\n"));
    }
    out
}

/// `+ task <key> "<title>" due <time>`, `+ note <key>`, `~ task <key> completed (left the
/// rule)`, `- task <key>`.
fn item_line(op: &ItemOp) -> String {
    use crate::engine::plan::ItemBody;
    let kind = crate::engine::tag_rule::items::kind_name(op.kind());
    match op {
        ItemOp::Create {
            body: ItemBody::Task(task),
            key,
            ..
        } => format!("+ task {key} {:?} due {}", task.title, task.due_date),
        ItemOp::Create { key, .. } => format!("+ {kind} {key}"),
        ItemOp::Complete { key, .. } => format!("~ task {key} completed (left the rule)"),
        ItemOp::Delete { key, .. } => format!("- {kind} {key}"),
        other => format!("~ {kind} {}", other.key()),
    }
}

/// The JSON form of a policy plan, with personal values masked unless asked for.
pub(super) fn plan_json(
    heading: &str,
    plan: &Plan,
    summary: &crate::crd::common::PlanSummary,
    failures: &[RecordFailure],
    options: RenderOptions,
) -> Value {
    let mask = |personal: bool, value: Value| {
        if personal && !options.show_sensitive {
            json!("(sensitive)")
        } else {
            value
        }
    };
    let contacts: Vec<Value> = plan
        .contacts
        .iter()
        .filter(|c| !c.is_noop())
        .map(|c| {
            let (action, id) = match &c.target {
                Target::Create { .. } => ("create", None),
                Target::Existing { id, adopt: true } => ("adopt", Some(id.clone())),
                Target::Existing { id, .. } => ("update", Some(id.clone())),
            };
            let changes: Vec<Value> = c
                .changes
                .iter()
                .chain(&c.upsert_changes)
                .map(|ch| {
                    let personal = ch.attribute.is_personal();
                    json!({"attribute": ch.attribute.name(), "from": mask(personal, json!(ch.from)), "to": mask(personal, ch.to.clone())})
                })
                .collect();
            let items: Vec<Value> = c
                .items
                .iter()
                .map(|item| {
                    let action = match item {
                        ItemOp::Create { .. } => "create",
                        ItemOp::Adopt { .. } => "adopt",
                        ItemOp::Update { .. } | ItemOp::Complete { .. } => "update",
                        ItemOp::Delete { .. } => "delete",
                        ItemOp::Forget { .. } => "forget",
                    };
                    json!({"kind": item.kind(), "key": item.key(), "action": action})
                })
                .collect();
            json!({"record": c.source, "action": action, "id": id, "drifted": c.drifted, "changes": changes,
                   "addTags": c.add_tags, "removeTags": c.remove_tags, "items": items, "observedDrift": c.observed_drift})
        })
        .collect();
    json!({"name": heading, "summary": summary, "counts": plan.counts(), "contacts": contacts,
           "releases": plan.releases, "failures": failures, "blocked": plan.blocked, "releasesDeferred": plan.releases_deferred})
}
