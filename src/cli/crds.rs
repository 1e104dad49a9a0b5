//! `ghl-operator crds`: print the CRDs generated from the types, or write them to a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::crd;

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per kind into this folder (e.g. `crds/`) instead of printing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write them as Helm chart templates (`--out-dir charts/ghl-operator/templates/crds`):
    /// installed while `crds.install`, kept at uninstall while `crds.keep`.
    #[arg(long, requires = "out_dir")]
    pub chart: bool,
}

pub fn run(args: CrdsArgs) -> anyhow::Result<ExitCode> {
    match args.out_dir {
        None => print!("{}", crd::all_to_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, definition) in crd::all() {
                let path = dir.join(file);
                let text = if args.chart {
                    crd::to_chart_template(&definition)?
                } else {
                    crd::to_yaml(&definition)?
                };
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
