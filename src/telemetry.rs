//! Logging setup: human-readable text for the CLI, JSON lines for the in-cluster operator.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The commit the binary was built from (`build.rs`: `GHL_OPERATOR_COMMIT`, else `git`),
/// or `unknown`.
pub const COMMIT: &str = env!("GHL_OPERATOR_COMMIT");

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines on stderr (default).
    #[default]
    Text,
    /// One JSON object per line on stderr.
    Json,
}

/// Installs the global subscriber. Verbosity comes from `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already set (e.g. in tests); keep that one.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
