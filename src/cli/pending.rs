//! Placeholder for subcommands not built yet: says so plainly and exits with status 2.

use std::process::ExitCode;

/// Accepts and ignores any arguments, so scripts get the plain message rather than a usage error.
#[derive(Debug, clap::Args)]
pub struct PendingArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(name: &str, _args: PendingArgs) -> anyhow::Result<ExitCode> {
    eprintln!("`ghl-operator {name}` is not implemented yet in this version.");
    Ok(ExitCode::from(2))
}
