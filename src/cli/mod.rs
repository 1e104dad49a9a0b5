//! The command line: one module per subcommand. `main` parses, sets up telemetry and calls
//! [`Command::run`].

mod apply;
pub mod cluster;
mod connect;
mod console;
mod crds;
mod demo;
mod import;
mod ledger;
pub mod manifests;
mod plan;
mod run;
mod sandbox;
pub mod sources;
pub mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Kubernetes operator and Terraform-style CLI for GHL (HighLevel) contacts.
#[derive(Debug, Parser)]
#[command(name = "ghl-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "GHL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator in a cluster (controllers for the three kinds).
    Run(Box<run::RunArgs>),
    /// Show what applying the manifests would change in GHL.
    Plan(Box<plan::PlanArgs>),
    /// Apply the manifests to GHL.
    Apply(Box<apply::ApplyArgs>),
    /// Write a ContactSyncPolicy manifest from what GHL holds now.
    Import(Box<import::ImportArgs>),
    /// Run the embedded GHL sandbox (a stateful emulator of the Contacts API).
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Plan and apply the examples against the embedded sandbox, then repair a drift.
    Demo(demo::DemoArgs),
    /// Print the CustomResourceDefinitions, or write one file per kind.
    Crds(crds::CrdsArgs),
    /// What the operator reports in the cluster: Ready, reason, plan and its hash per object.
    Status(cluster::StatusArgs),
    /// Approve a ContactSyncPolicy's or TagRule's waiting plan (applied once by the operator).
    Approve(cluster::ApproveArgs),
    /// Connect a GhlConnection to GHL: print (or --open) its consent link and wait until it is
    /// Authenticated.
    Connect(connect::ConnectArgs),
    /// Export a policy's or rule's ledger to a file, or import one (another cluster, a restore).
    Ledger(ledger::LedgerArgs),
    /// The web console on loopback, as your kubeconfig's identity (a one-time login URL).
    Console(console::ConsoleArgs),
}

/// `kubectl ghl`: the commands a person runs against a cluster (plan, apply and import of
/// manifests, and the operator's objects). Installed as `kubectl-ghl`, the binary offers only
/// these: running the operator or the sandbox is not a kubectl verb.
#[derive(Debug, Parser)]
#[command(name = "kubectl ghl", version, about = "GHL (HighLevel) contacts as code: plans, approvals and connections in your cluster", long_about = None)]
pub struct PluginCli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "GHL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what applying the manifests would change in GHL.
    Plan(Box<plan::PlanArgs>),
    /// Apply the manifests to GHL.
    Apply(Box<apply::ApplyArgs>),
    /// Write a ContactSyncPolicy manifest from what GHL holds now.
    Import(Box<import::ImportArgs>),
    /// What the operator reports in the cluster: Ready, reason, plan and its hash per object.
    Status(cluster::StatusArgs),
    /// Approve a ContactSyncPolicy's or TagRule's waiting plan (applied once by the operator).
    Approve(cluster::ApproveArgs),
    /// Connect a GhlConnection to GHL: print (or --open) its consent link and wait until it is
    /// Authenticated.
    Connect(connect::ConnectArgs),
    /// The web console on loopback, as your kubeconfig's identity (a one-time login URL).
    Console(console::ConsoleArgs),
}

impl From<PluginCli> for Cli {
    fn from(plugin: PluginCli) -> Self {
        let command = match plugin.command {
            PluginCommand::Plan(args) => Command::Plan(args),
            PluginCommand::Apply(args) => Command::Apply(args),
            PluginCommand::Import(args) => Command::Import(args),
            PluginCommand::Status(args) => Command::Status(args),
            PluginCommand::Approve(args) => Command::Approve(args),
            PluginCommand::Connect(args) => Command::Connect(args),
            PluginCommand::Console(args) => Command::Console(args),
        };
        Self {
            log_format: plugin.log_format,
            command,
        }
    }
}

impl Command {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(args) => run::run(*args).await,
            Command::Plan(args) => plan::run(*args).await,
            Command::Apply(args) => apply::run(*args).await,
            Command::Import(args) => import::run(*args).await,
            Command::Sandbox(args) => sandbox::run(*args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Crds(args) => crds::run(args),
            Command::Status(args) => cluster::status(args).await,
            Command::Approve(args) => cluster::approve(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Ledger(args) => ledger::run(args).await,
            Command::Console(args) => console::run(args).await,
        }
    }
}
