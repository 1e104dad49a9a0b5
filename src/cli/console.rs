//! `ghl-operator console [--addr 127.0.0.1:0] [--open]` (also `kubectl ghl console`): the
//! console on loopback, acting with the kubeconfig's identity, behind a one-time login URL it
//! prints (like Jupyter's token URL). Anything that has not opened that URL gets 401.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use super::cluster::{Target, client_and_namespace};
use crate::console::{self, Console};

#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Where to listen: loopback only (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Open the login URL in a browser (`xdg-open`, or `open` on macOS).
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    if !args.addr.ip().is_loopback() {
        bail!(
            "the local console listens on loopback only ({} is not): it acts with your kubeconfig's identity; in a cluster use `run --console-addr`, where each person logs in with their own token",
            args.addr
        );
    }
    let (client, namespace) = client_and_namespace(&args.target).await?;
    let hint: console::access::Hint = Arc::new(move || vec![namespace.clone()]);
    let (console, secret) = Console::local(client, hint);
    let (listener, local) = console::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let url = format!("http://{local}/login/{secret}");
    println!("The console, as your kubeconfig's identity (one-time login URL):\n\n  {url}\n");
    if args.open {
        super::connect::open(&url);
    }
    console::serve(
        listener,
        Arc::new(console),
        crate::controller::runtime::run::termination(),
    )
    .await
    .context("serving the console")?;
    Ok(ExitCode::SUCCESS)
}
