//! The webhook configuration `ghl-operator-approvals` (by default): which requests the API server sends to
//! the operator (creates and updates of ContactSyncPolicies and TagRules, never their status),
//! where (a URL, or the chart's Service), and the CA to trust. `failurePolicy: Ignore`: when
//! the operator is down, requests pass unstamped, and approvals then wait (unsealed approvals
//! are not honoured), so nothing else depends on the webhook. Written by server-side apply at
//! every start, by every replica alike.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    WebhookClientConfig,
};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use url::Url;

use crate::crd::Kind;
use crate::crd::vocabulary::label;

/// The webhook configuration's default name (`--admission-configuration`). Releases that
/// each watch their own namespaces name one each; each admits what is outside its scope
/// untouched.
pub const CONFIGURATION: &str = "ghl-operator-approvals";
/// The path the webhook is served at.
pub const PATH: &str = "/approvals";
const WEBHOOK: &str = "approvals.ghl.servis.ai";

/// Where the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A URL (the operator outside the cluster, or any reachable address).
    Url(Url),
    /// `https://<name>.<namespace>.svc[:port]/…`: the Service, as the API server resolves it.
    Service {
        namespace: String,
        name: String,
        port: u16,
        path: String,
    },
}

/// `--admission-url` is not usable.
#[derive(Debug, thiserror::Error)]
#[error("--admission-url {url}: {problem}")]
pub struct InvalidTarget {
    url: String,
    problem: &'static str,
}

impl Target {
    /// Reads `--admission-url`: an `https` URL; a host `<name>.<namespace>.svc` (optionally
    /// `.cluster.local`) names a Service. Its path defaults to `/approvals`.
    pub fn parse(text: &str) -> Result<Self, InvalidTarget> {
        let invalid = |problem| InvalidTarget {
            url: text.to_owned(),
            problem,
        };
        let mut url = Url::parse(text).map_err(|_| invalid("not a URL"))?;
        if url.scheme() != "https" {
            return Err(invalid("the API server calls webhooks over https only"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?.to_owned();
        if url.path() == "/" {
            url.set_path(PATH);
        }
        let service = host
            .strip_suffix(".cluster.local")
            .unwrap_or(&host)
            .strip_suffix(".svc")
            .and_then(|rest| rest.split_once('.'))
            .filter(|(name, namespace)| !name.is_empty() && !namespace.contains('.'));
        Ok(match service {
            Some((name, namespace)) => Target::Service {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port: url.port().unwrap_or(443),
                path: url.path().to_owned(),
            },
            None => Target::Url(url),
        })
    }

    /// The names the serving certificate must carry.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Target::Url(url) => vec![url.host_str().unwrap_or_default().to_owned()],
            Target::Service {
                namespace, name, ..
            } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
            ],
        }
    }
}

/// The webhook configuration for `target`, trusting `ca_pem`. Pure.
pub fn configuration(name: &str, target: &Target, ca_pem: &str) -> MutatingWebhookConfiguration {
    let client_config = match target {
        Target::Url(url) => WebhookClientConfig {
            url: Some(url.to_string()),
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            service: None,
        },
        Target::Service {
            namespace,
            name,
            port,
            path,
        } => WebhookClientConfig {
            url: None,
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.clone()),
                port: Some(i32::from(*port)),
            }),
        },
    };
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                [(
                    label::MANAGED_BY.to_owned(),
                    label::MANAGED_BY_VALUE.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: WEBHOOK.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config,
            failure_policy: Some("Ignore".to_owned()),
            match_policy: Some("Equivalent".to_owned()),
            reinvocation_policy: Some("IfNeeded".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(5),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["ghl.servis.ai".to_owned()]),
                api_versions: Some(vec!["*".to_owned()]),
                operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
                // The main resources only: status writes are the operator's.
                resources: Some(vec![
                    Kind::ContactSyncPolicy.plural().to_owned(),
                    Kind::TagRule.plural().to_owned(),
                ]),
                scope: Some("Namespaced".to_owned()),
            }]),
            ..MutatingWebhook::default()
        }]),
    }
}

/// Creates or updates the webhook configuration.
pub async fn register(
    client: &Client,
    name: &str,
    target: &Target,
    ca_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let params = PatchParams::apply("ghl-operator").force();
    let mut wanted = configuration(name, target, ca_pem);
    wanted.metadata.managed_fields = None;
    let value = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": wanted.metadata,
        "webhooks": wanted.webhooks,
    });
    api.patch(name, &params, &Patch::Apply(&value))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_urls_name_a_url_or_a_service() {
        let service = |namespace: &str, name: &str, port, path: &str| Target::Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
            path: path.into(),
        };
        let url = |text: &str| Target::Url(Url::parse(text).unwrap());
        let table = [
            (
                "https://ghl-operator-admission.ghl-system.svc",
                Some(service("ghl-system", "ghl-operator-admission", 443, PATH)),
            ),
            (
                "https://hook.ops.svc.cluster.local:8443/x",
                Some(service("ops", "hook", 8443, "/x")),
            ),
            (
                "https://127.0.0.1:9443",
                Some(url("https://127.0.0.1:9443/approvals")),
            ),
            (
                "https://hooks.example.com/approvals",
                Some(url("https://hooks.example.com/approvals")),
            ),
            ("http://127.0.0.1:9443", None),
            ("127.0.0.1:9443", None),
        ];
        for (text, expected) in table {
            assert_eq!(Target::parse(text).ok(), expected, "{text}");
        }
        assert_eq!(
            Target::parse("https://hook.ops.svc").unwrap().hosts(),
            ["hook.ops.svc", "hook.ops.svc.cluster.local"]
        );
    }

    #[test]
    fn the_configuration_ignores_failures_and_skips_status() {
        let config = configuration(
            CONFIGURATION,
            &Target::parse("https://127.0.0.1:9443").unwrap(),
            "CA",
        );
        assert_eq!(
            config.metadata.name.as_deref(),
            Some("ghl-operator-approvals")
        );
        let hook = &config.webhooks.as_ref().unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(hook.side_effects, "None");
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/approvals")
        );
        let rules = hook.rules.as_ref().unwrap();
        assert_eq!(
            rules[0].resources.as_deref().unwrap(),
            ["contactsyncpolicies", "tagrules"]
        );
    }
}
