//! `connect NAME [-n NS] [--open]` (also `kubectl ghl connect`): prints the connection's
//! consent link (opens it in a browser with `--open`), waits until the connection is
//! Authenticated, and says so. On a connection that needs no consent it says which grant it
//! already holds.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kube::Api;

use super::cluster::{Target, client_and_namespace};
use crate::crd::GhlConnection;
use crate::crd::vocabulary::condition;

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The GhlConnection.
    pub name: String,
    #[command(flatten)]
    pub target: Target,
    /// Open the consent link in a browser (`xdg-open`, or `open` on macOS).
    #[arg(long)]
    pub open: bool,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Where a connection stands, for a person about to consent. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Authenticated: what it holds.
    Connected(String),
    /// Waiting for a person to open this link.
    Consent(String),
    /// Not there yet (checking, or no link published yet): why.
    Waiting(String),
}

pub fn standing(connection: &GhlConnection) -> Standing {
    let status = connection.status.clone().unwrap_or_default();
    let authenticated = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::AUTHENTICATED);
    if authenticated.is_some_and(|c| c.status == "True") {
        let grant = match &connection.spec.auth.oauth {
            Some(oauth) => format!("an OAuth grant ({:?})", oauth.user_type),
            None if connection.spec.auth.agency_grant.is_some() => {
                "a location token from its agency's grant".to_owned()
            }
            None => "a Private Integration Token".to_owned(),
        };
        return Standing::Connected(format!(
            "connected to location {} with {grant}",
            connection.spec.location_id
        ));
    }
    if let Some(consent) = &status.consent {
        return Standing::Consent(consent.url.clone());
    }
    Standing::Waiting(authenticated.map_or_else(
        || "not checked yet".to_owned(),
        |c| format!("{}: {}", c.reason, c.message),
    ))
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client_and_namespace(&args.target).await?;
    let api: Api<GhlConnection> = Api::namespaced(client, &namespace);
    let deadline = Instant::now() + args.timeout;
    let mut shown: Option<String> = None;
    let mut last_wait = String::new();
    loop {
        let connection = api.get(&args.name).await?;
        match standing(&connection) {
            Standing::Connected(what) => {
                let connected = serde_json::json!({
                    "kind": "GhlConnection",
                    "namespace": namespace,
                    "name": args.name,
                    "connected": true,
                    "message": what,
                    "conditions": connection.status.as_ref().map(|s| &s.conditions),
                });
                if !super::cluster::print_structured(args.target.output, &connected)? {
                    println!("{namespace}/{}: {what}", args.name);
                }
                return Ok(ExitCode::SUCCESS);
            }
            // With -o json|yaml, stdout holds the one document; the link goes to stderr.
            Standing::Consent(url)
                if shown.as_deref() != Some(url.as_str())
                    && args
                        .target
                        .output
                        .is_some_and(|f| f != super::cluster::Format::Wide) =>
            {
                eprintln!(
                    "Open this link to grant {namespace}/{} access to GHL:\n\n  {url}\n",
                    args.name
                );
                if args.open {
                    open(&url);
                }
                shown = Some(url);
            }
            Standing::Consent(url) if shown.as_deref() != Some(url.as_str()) => {
                println!(
                    "Open this link to grant {namespace}/{} access to GHL:\n\n  {url}\n",
                    args.name
                );
                if args.open {
                    open(&url);
                }
                println!("Waiting for the consent…");
                shown = Some(url);
            }
            Standing::Consent(_) => {}
            Standing::Waiting(why) if why != last_wait && shown.is_none() => {
                eprintln!("{namespace}/{}: {why}", args.name);
                last_wait = why;
            }
            Standing::Waiting(_) => {}
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{namespace}/{} is not connected after {:?}",
                args.name, args.timeout
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Opens `url` in the desktop's browser; a failure only means the person copies the link.
pub(super) fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(error) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("could not start {opener} ({error}); open the link yourself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::connection::{ConsentStatus, GhlConnectionStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn connection(authenticated: Option<(&str, &str)>, consent: Option<&str>) -> GhlConnection {
        let mut c: GhlConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "ghl.servis.ai/v1alpha1", "kind": "GhlConnection",
            "metadata": {"name": "acme", "namespace": "crm"},
            "spec": {"locationId": "loc1", "auth": {"oauth": {
                "clientSecretRef": {"name": "app"}, "tokenSecretRef": {"name": "t"}}}}
        }))
        .unwrap();
        c.status = Some(GhlConnectionStatus {
            conditions: authenticated
                .map(|(status, reason)| Condition {
                    type_: "Authenticated".into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: "m".into(),
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::UNIX_EPOCH,
                    ),
                    observed_generation: None,
                })
                .into_iter()
                .collect(),
            consent: consent.map(|url| ConsentStatus {
                url: url.into(),
                expires_at: None,
            }),
            ..GhlConnectionStatus::default()
        });
        c
    }

    #[test]
    fn a_person_is_told_to_consent_to_wait_or_that_it_is_done() {
        let table = [
            (connection(None, None), "waiting"),
            (
                connection(
                    Some(("False", "ConsentRequired")),
                    Some("https://x/c?state=s"),
                ),
                "consent",
            ),
            (connection(Some(("False", "Progressing")), None), "waiting"),
            (
                connection(Some(("True", "CredentialsAccepted")), None),
                "connected",
            ),
        ];
        for (c, expected) in table {
            let got = match standing(&c) {
                Standing::Connected(what) => {
                    assert!(what.contains("loc1") && what.contains("OAuth"), "{what}");
                    "connected"
                }
                Standing::Consent(url) => {
                    assert_eq!(url, "https://x/c?state=s");
                    "consent"
                }
                Standing::Waiting(_) => "waiting",
            };
            assert_eq!(got, expected);
        }
    }
}
