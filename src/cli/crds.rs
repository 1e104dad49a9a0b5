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
}

pub fn run(args: CrdsArgs) -> anyhow::Result<ExitCode> {
    match args.out_dir {
        None => print!("{}", crd::all_to_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, definition) in crd::all() {
                let path = dir.join(file);
                std::fs::write(&path, crd::to_yaml(&definition)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
