use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = ghl_operator::cli::Cli::parse();
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
