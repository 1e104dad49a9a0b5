//! `ghl-operator apply -f PATH...`: apply the manifests to GHL, with a progress bar on a
//! terminal and a final summary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::plan::{print, totals};
use super::workspace::{CommonArgs, Workspace};
use crate::crd::common::Mode;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    if args.common.cluster.wanted() {
        anyhow::bail!(
            "apply does not write a cluster's ledgers: the operator there applies what is merged \
             (plan --kubeconfig shows what it will do; kubectl ghl approve applies a waiting plan)"
        );
    }
    let workspace = Workspace::open(&args.common).await?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} GHL writes  {elapsed}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("applying");
        bar
    });
    let progress: Option<Arc<dyn Fn(u64) + Send + Sync>> = bar.clone().map(|bar| {
        let report: Arc<dyn Fn(u64) + Send + Sync> =
            Arc::new(move |writes| bar.set_position(writes));
        report
    });
    let reports = workspace.run(Mode::Apply, progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let failed = reports
        .iter()
        .any(|r| r.error.is_some() || r.failures > 0 || r.blocked);
    print(&reports, args.common.output, &summary(&reports))?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `Apply complete: ...` over all reports.
pub fn summary(reports: &[super::workspace::Report]) -> String {
    let writes: u64 = reports.iter().map(|r| r.writes).sum();
    let failures: usize = reports.iter().map(|r| r.failures).sum();
    let errors = reports.iter().filter(|r| r.error.is_some()).count();
    let blocked = reports.iter().filter(|r| r.blocked).count();
    let planned = totals(reports).replacen("Plan:", "Applied:", 1);
    let mut line = format!("{planned} {writes} GHL writes.");
    if failures > 0 {
        line.push_str(&format!(" {failures} record(s) failed."));
    }
    if blocked > 0 {
        line.push_str(&format!(" {blocked} held back by safety limits."));
    }
    if errors > 0 {
        line.push_str(&format!(" {errors} object(s) could not be processed."));
    }
    line
}
