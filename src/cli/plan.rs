//! `ghl-operator plan -f PATH...`: show what applying the manifests would change in GHL.

use std::process::ExitCode;

use super::workspace::{CommonArgs, Output, Report, Workspace};
use crate::crd::common::Mode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Exit 0 when nothing would change, 2 when something would, 1 on errors.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let workspace = Workspace::open(&args.common).await?;
    let reports = workspace.run(Mode::Plan, None).await;
    let errors = reports.iter().filter(|r| r.error.is_some()).count();
    let changes = reports.iter().any(|r| r.changes);
    print(&reports, args.common.output, &totals(&reports))?;
    Ok(exit_code(errors > 0, changes, args.detailed_exitcode))
}

/// Prints the reports as `output` asks, text ending with `last`.
pub fn print(reports: &[Report], output: Output, last: &str) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            let all: Vec<&serde_json::Value> = reports.iter().map(|r| &r.json).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Output::Yaml => {
            let all: Vec<&serde_json::Value> = reports.iter().map(|r| &r.json).collect();
            print!("{}", serde_saphyr::to_string(&all)?);
        }
        Output::Text | Output::Wide => {
            for report in reports {
                print!("{}", report.text);
                println!();
            }
            println!("{last}");
        }
    }
    Ok(())
}

/// The summary line over all reports.
pub fn totals(reports: &[Report]) -> String {
    let mut s = crate::crd::common::PlanSummary::default();
    for report in reports {
        if let Some(summary) = report.json.get("summary") {
            let n = |k: &str| summary[k].as_u64().unwrap_or(0) as u32;
            s.create += n("create");
            s.adopt += n("adopt");
            s.update += n("update");
            s.delete += n("delete");
        } else if let Some(changes) = report.json.get("changes").and_then(|c| c.as_array()) {
            s.update += changes.len() as u32;
        }
    }
    format!(
        "Plan: {} to create, {} to adopt, {} to update, {} to delete.",
        s.create, s.adopt, s.update, s.delete
    )
}

/// Terraform's `-detailed-exitcode` convention.
pub fn exit_code(error: bool, changes: bool, detailed: bool) -> ExitCode {
    match (error, changes, detailed) {
        (true, _, _) => ExitCode::from(1),
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}
