//! The admission webhook that makes an approval an authorization (`ghl-operator run
//! --admission-addr ADDR [--admission-url URL]`).
//!
//! The API server sends it every create and update of a ContactSyncPolicy or TagRule. It
//! stamps each spec change with its author, and each approval with its approver once the
//! API server says that user may `approve` (a SubjectAccessReview) and is not the author;
//! the stamps are sealed with the operator's key ([`stamps`]). The reconciler then honours an
//! approval only when its stamps verify: a webhook that was down or bypassed makes approvals
//! wait, never pass.
//!
//! - [`review`]: the decision on one request (pure);
//! - [`stamps`]: the stamps and what they prove (pure);
//! - [`certificate`]: the serving certificate, in a Secret of the operator's namespace;
//! - [`registration`]: the webhook configuration (`ghl-operator-approvals`);
//! - [`server`]: the HTTP handler.

pub mod certificate;
pub mod registration;
pub mod review;
pub mod server;
pub mod stamps;

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;

use crate::controller::runtime::scope::Scope;
use crate::credentials::keys::OperatorKeys;
pub use registration::Target;

/// Where to serve the webhook and where the API server reaches it.
#[derive(Clone, Debug)]
pub struct AdmissionOptions {
    pub addr: SocketAddr,
    pub target: Target,
    /// The webhook configuration's name.
    pub configuration: String,
}

/// The webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Certificate(#[from] certificate::CertificateError),
    #[error("registering the webhook configuration {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serving the admission webhook on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Serves the webhook until `stop` and registers it with the API server.
pub async fn start(
    client: &Client,
    namespace: &str,
    keys: OperatorKeys,
    scope: Scope,
    options: &AdmissionOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, AdmissionError> {
    let certificate =
        certificate::load_or_create(client, namespace, &options.target.hosts()).await?;
    let tls = certificate.server_config()?;
    let app = server::router(Arc::new(server::Webhook {
        client: client.clone(),
        keys,
        scope,
    }));
    let serving = crate::controller::runtime::server::serve_router_tls(
        options.addr,
        tls,
        app,
        "the admission webhook",
        stop,
    )
    .await
    .map_err(|source| AdmissionError::Serve {
        addr: options.addr,
        source,
    })?;
    registration::register(
        client,
        &options.configuration,
        &options.target,
        &certificate.cert_pem,
    )
    .await
    .map_err(|source| AdmissionError::Register {
        name: options.configuration.clone(),
        source,
    })?;
    Ok(serving)
}
