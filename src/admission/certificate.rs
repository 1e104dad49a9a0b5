//! The webhook's serving certificate: self-signed (it is its own CA, handed to the API server
//! as the webhook configuration's `caBundle`), for the host names the API server uses, kept in
//! the Secret `ghl-operator-admission-tls` of the operator's namespace so every replica serves
//! the same one. Created when missing or when it does not name the hosts asked for.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::crd::vocabulary::label;

/// The Secret holding the certificate.
pub const TLS_SECRET: &str = "ghl-operator-admission-tls";
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";
/// The hosts the certificate was made for (comma-separated), to tell when to make another.
const HOSTS_KEY: &str = "hosts";

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Certificate {
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificate(…)")
    }
}

/// The certificate could not be made, stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("making a certificate for {hosts:?}: {source}")]
    Generate {
        hosts: Vec<String>,
        #[source]
        source: rcgen::Error,
    },
    #[error("reading or writing Secret {TLS_SECRET}: {0}")]
    Api(#[source] Box<kube::Error>),
    #[error("Secret {TLS_SECRET} holds no usable certificate and key: {0}")]
    Unusable(String),
}

/// A new self-signed certificate for `hosts` (DNS names or IP addresses).
pub fn generate(hosts: &[String]) -> Result<Certificate, CertificateError> {
    let failed = |source| CertificateError::Generate {
        hosts: hosts.to_vec(),
        source,
    };
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ghl-operator admission webhook");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(Certificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Certificate {
    /// A TLS server configuration serving this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertificateError> {
        let unusable = |what: &str| CertificateError::Unusable(what.to_owned());
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| unusable("tls.crt is not PEM"))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| unusable("tls.key is not a PEM private key"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| unusable(&e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| unusable(&e.to_string()))?;
        Ok(Arc::new(config))
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// The certificate for `hosts`, from the Secret in `namespace`; made (and the Secret created,
/// or replaced with compare-and-swap) when there is none for these hosts. Replicas racing
/// end up with the one that won.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    hosts: &[String],
) -> Result<Certificate, CertificateError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api = |e| CertificateError::Api(Box::new(e));
    let wanted = hosts.join(",");
    let existing = secrets.get_opt(TLS_SECRET).await.map_err(api)?;
    if let Some(secret) = &existing
        && text(secret, HOSTS_KEY).as_deref() == Some(wanted.as_str())
        && let (Some(cert_pem), Some(key_pem)) = (text(secret, CERT_KEY), text(secret, KEY_KEY))
    {
        return Ok(Certificate { cert_pem, key_pem });
    }
    let made = generate(hosts)?;
    let mut secret = existing.unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(TLS_SECRET.to_owned()),
            labels: Some(BTreeMap::from([(
                label::MANAGED_BY.to_owned(),
                label::MANAGED_BY_VALUE.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        ..Secret::default()
    });
    secret.data = Some(BTreeMap::from([
        (
            CERT_KEY.to_owned(),
            ByteString(made.cert_pem.clone().into_bytes()),
        ),
        (
            KEY_KEY.to_owned(),
            ByteString(made.key_pem.clone().into_bytes()),
        ),
        (HOSTS_KEY.to_owned(), ByteString(wanted.into_bytes())),
    ]));
    let written = if secret.metadata.resource_version.is_some() {
        secrets
            .replace(TLS_SECRET, &PostParams::default(), &secret)
            .await
    } else {
        secrets.create(&PostParams::default(), &secret).await
    };
    match written {
        Ok(_) => Ok(made),
        // Another replica wrote one meanwhile: use it.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let secret = secrets.get(TLS_SECRET).await.map_err(api)?;
            match (text(&secret, CERT_KEY), text(&secret, KEY_KEY)) {
                (Some(cert_pem), Some(key_pem)) => Ok(Certificate { cert_pem, key_pem }),
                _ => Err(CertificateError::Unusable("no tls.crt and tls.key".into())),
            }
        }
        Err(e) => Err(api(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_serves_tls_for_its_hosts() {
        let cert = generate(&["127.0.0.1".into(), "ghl-operator.system.svc".into()]).unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        cert.server_config().expect("a usable server configuration");
        let broken = Certificate {
            cert_pem: "not pem".into(),
            key_pem: cert.key_pem.clone(),
        };
        assert!(broken.server_config().is_err());
    }
}
