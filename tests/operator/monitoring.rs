//! The chart's alerts and dashboard against what the operator really exports: `promtool`
//! runs the alert tests (`tests/alerts/alerts.test.yaml`), and every metric an alert or a
//! dashboard query names — and every label it matches or groups on — is checked against a real
//! scrape of a running operator (the lifecycle test's, after a sync).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::Value;

fn chart_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/ghl-operator/files")
        .join(name)
}

/// Sample names a scrape exports, each with the label names its samples carry (`None`: the
/// family is declared but has no sample yet, so its labels cannot be checked).
fn exported(scrape: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut names = BTreeMap::new();
    let labels = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)=""#).unwrap();
    for line in scrape.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut fields = declared.split_whitespace();
            let (Some(name), Some(type_)) = (fields.next(), fields.next()) else {
                continue;
            };
            let samples: Vec<String> = match type_ {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|suffix| format!("{name}{suffix}"))
                    .collect(),
                _ => vec![name.to_owned()],
            };
            for sample in samples {
                names.entry(sample).or_insert(None);
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let found: BTreeSet<String> = labels
                .captures_iter(&line[name_end..])
                .map(|c| c[1].to_owned())
                .collect();
            names
                .entry(line[..name_end].to_owned())
                .or_insert(None)
                .get_or_insert_with(BTreeSet::new)
                .extend(found);
        }
    }
    names
}

/// Every PromQL expression of the alert rules and the dashboard, with where it comes from.
fn queries() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let alerts: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_file("alerts.yaml")).unwrap())
            .unwrap();
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            found.push((
                format!("alert {name}"),
                rule["expr"].as_str().unwrap().into(),
            ));
        }
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(chart_file("dashboard.json")).unwrap())
            .unwrap();
    fn panels(list: &Value, found: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                found.push((
                    format!("panel {title:?}"),
                    target["expr"].as_str().unwrap().into(),
                ));
            }
            panels(&panel["panels"], found);
        }
    }
    panels(&dashboard["panels"], &mut found);
    found
}

/// What in `queries` the scrape does not back: unknown metrics, and labels matched or grouped
/// on that the named metrics' samples do not carry.
fn unbacked(scrape: &str, queries: &[(String, String)], absent: &[&str]) -> Vec<String> {
    let exported = exported(scrape);
    let metric = Regex::new(r"\b(ghl_[a-z0-9_]+)\s*(\{[^}]*\})?").unwrap();
    let matcher = Regex::new(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)").unwrap();
    let grouping = Regex::new(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)").unwrap();
    let mut problems = Vec::new();
    for (source, expr) in queries {
        let mut labels_in_expr: BTreeSet<String> = ["le".to_owned()].into();
        let mut all_known = true;
        for found in metric.captures_iter(expr) {
            let name = &found[1];
            let Some(samples) = exported.get(name) else {
                if !absent.contains(&name) {
                    problems.push(format!("{source}: {name} is not exported"));
                }
                all_known = false;
                continue;
            };
            let Some(labels) = samples else {
                all_known = false;
                continue;
            };
            labels_in_expr.extend(labels.iter().cloned());
            for label in found
                .get(2)
                .map(|m| matcher.captures_iter(m.as_str()).map(|c| c[1].to_owned()))
                .into_iter()
                .flatten()
            {
                if !labels.contains(&label) {
                    problems.push(format!("{source}: {name} has no label {label:?}"));
                }
            }
        }
        if all_known {
            for group in grouping.captures_iter(expr) {
                for label in group[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    if !labels_in_expr.contains(label) {
                        problems.push(format!(
                            "{source}: groups by {label:?}, which no metric in it has"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Checks the alerts and the dashboard against a scrape of a running operator. A family
/// with labels appears with its first sample, so `absent` names those the scraped run cannot
/// have had (errors, retries; OAuth gauges in a run without OAuth); each must be a name the
/// queries use, and another scrape covers it.
pub fn check_against_scrape(scrape: &str, absent: &[&str]) {
    let queries = queries();
    assert!(
        queries.len() > 20,
        "alerts and panels found: {}",
        queries.len()
    );
    for name in absent {
        assert!(
            queries.iter().any(|(_, expr)| expr.contains(name)),
            "{name} is not used by any alert or panel"
        );
    }
    let problems = unbacked(scrape, &queries, absent);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Families that appear with their first failure (no test run has one to scrape).
pub const FIRST_FAILURE: [&str; 2] = ["ghl_operator_reconcile_errors_total", "ghl_retries_total"];

/// Families only a connection with a change feed sink has (the feed health test scrapes one).
pub const SINK_ONLY: [&str; 3] = [
    "ghl_operator_feed_sink_failing",
    "ghl_operator_feed_sink_backlog",
    "ghl_operator_feed_sink_deliveries_total",
];

/// Gauges only OAuth connections have.
pub const OAUTH_ONLY: [&str; 3] = [
    "ghl_operator_credential_expiry_timestamp_seconds",
    "ghl_operator_credential_renewal_timestamp_seconds",
    "ghl_operator_credential_refresh_failures",
];

#[test]
fn the_check_catches_unknown_metrics_and_labels() {
    let scrape = "# TYPE ghl_requests counter\n\
                  ghl_requests_total{operation=\"search\",status_class=\"429\"} 1\n\
                  # TYPE ghl_operator_feed_pending gauge\n";
    let queries = |expr: &str| vec![("q".to_owned(), expr.to_owned())];
    for (expr, expected) in [
        (
            "sum by (operation) (rate(ghl_requests_total{status_class=\"429\"}[5m]))",
            0,
        ),
        ("ghl_operator_feed_pending{anything=\"x\"}", 0),
        ("rate(ghl_request_total[5m])", 1),
        ("ghl_requests_total{status=\"429\"}", 1),
        ("sum by (location) (ghl_requests_total)", 1),
    ] {
        assert_eq!(
            unbacked(scrape, &queries(expr), &[]).len(),
            expected,
            "{expr}"
        );
    }
}

#[test]
fn promtool_passes_the_alert_rules_and_their_tests() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for args in [
        vec!["check", "rules", "charts/ghl-operator/files/alerts.yaml"],
        vec!["test", "rules", "tests/alerts/alerts.test.yaml"],
    ] {
        let output = Command::new("promtool")
            .args(&args)
            .current_dir(repo)
            .output()
            .expect("promtool runs (scripts/install-test-deps.sh installs it)");
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
