use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Installed as `kubectl-ghl`, it is the kubectl plugin (`kubectl ghl plan|status|approve|
    // connect|...`), offering only the plugin's commands.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plugin = args
        .first()
        .and_then(|a| a.to_str())
        .is_some_and(ghl_operator::cli::cluster::invoked_as_plugin);
    if plugin && let Some(first) = args.first_mut() {
        *first = "kubectl ghl".into();
    }
    let cli = if plugin {
        ghl_operator::cli::PluginCli::parse_from(args).into()
    } else {
        ghl_operator::cli::Cli::parse_from(args)
    };
    ghl_operator::telemetry::init(cli.log_format);
    ghl_operator::tls::install_default_provider();
    match cli.command.run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
