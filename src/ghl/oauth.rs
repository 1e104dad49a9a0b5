//! GHL's OAuth endpoints: code exchange, refresh, and location tokens from agency tokens.
//!
//! None of these requests is retried after a lost answer: a refresh token is single-use, and a
//! second try with the same token after GHL consumed it would lose the connection. Only 429
//! (certainly not processed) is retried. The credentials module persists what these return.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};

use super::error::{GhlError, Result};
use super::metrics::GhlMetrics;
use super::models::{GrantType, InstalledLocations, LocationTokenGrant, TokenGrant, UserTypeParam};
use super::operation::Operation;
use super::request::{ApiRequest, RequestAuth};
use super::retry::{RetryPolicy, Retrying};
use super::transport::{BuildError, HttpTimeouts, HttpTransport, Transport};

/// A Marketplace app's client credentials.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Calls `POST /oauth/token` and `POST /oauth/locationToken`.
#[derive(Clone)]
pub struct OAuthClient {
    transport: Arc<dyn Transport>,
}

impl OAuthClient {
    pub fn new(
        base_url: &str,
        api_version: &str,
        timeouts: HttpTimeouts,
        retry: RetryPolicy,
        metrics: Arc<GhlMetrics>,
    ) -> std::result::Result<Self, BuildError> {
        let http = HttpTransport::new(base_url, api_version, None, timeouts, Arc::clone(&metrics))?;
        Ok(Self {
            transport: Arc::new(Retrying::new(http, retry, metrics)),
        })
    }

    /// Exchanges a one-time authorization code for a token pair.
    pub async fn exchange_code(
        &self,
        client: &ClientCredentials,
        code: &SecretString,
        redirect_uri: Option<&str>,
        user_type: UserTypeParam,
    ) -> Result<TokenGrant> {
        let mut form = client_fields(client, GrantType::AuthorizationCode, user_type);
        form.push(("code", code.clone()));
        if let Some(uri) = redirect_uri {
            form.push(("redirect_uri", uri.to_owned().into()));
        }
        self.token_call(form).await
    }

    /// Spends a refresh token for a new pair. The old refresh token is dead afterwards,
    /// whether or not the answer arrives.
    pub async fn refresh(
        &self,
        client: &ClientCredentials,
        refresh_token: &SecretString,
        user_type: UserTypeParam,
    ) -> Result<TokenGrant> {
        let mut form = client_fields(client, GrantType::RefreshToken, user_type);
        form.push(("refresh_token", refresh_token.clone()));
        self.token_call(form).await
    }

    /// Mints a location token from an agency (company) token.
    pub async fn location_token(
        &self,
        agency_token: &SecretString,
        company_id: &str,
        location_id: &str,
    ) -> Result<LocationTokenGrant> {
        let operation = Operation::LocationToken;
        let form = vec![
            ("companyId", SecretString::from(company_id.to_owned())),
            ("locationId", SecretString::from(location_id.to_owned())),
        ];
        let request = ApiRequest::new(operation, Method::POST, "/oauth/locationToken".into())
            .form(form)
            .auth(RequestAuth::Bearer(agency_token.clone()));
        self.decode(operation, request).await
    }

    /// One page of the locations where the app is installed (`isInstalled=true`), read with
    /// an agency token (`oauth.readonly`).
    pub async fn installed_locations(
        &self,
        agency_token: &SecretString,
        company_id: &str,
        app_id: &str,
        skip: u64,
        limit: u64,
    ) -> Result<InstalledLocations> {
        let operation = Operation::InstalledLocations;
        let request = ApiRequest::new(operation, Method::GET, "/oauth/installedLocations".into())
            .query(vec![
                ("companyId", company_id.to_owned()),
                ("appId", app_id.to_owned()),
                ("isInstalled", "true".to_owned()),
                ("skip", skip.to_string()),
                ("limit", limit.to_string()),
            ])
            .auth(RequestAuth::Bearer(agency_token.clone()));
        self.decode(operation, request).await
    }

    async fn token_call(&self, form: Vec<(&'static str, SecretString)>) -> Result<TokenGrant> {
        let operation = Operation::OAuthToken;
        let request = ApiRequest::new(operation, Method::POST, "/oauth/token".into())
            .form(form)
            .auth(RequestAuth::None);
        self.decode(operation, request).await
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        request: ApiRequest,
    ) -> Result<T> {
        let response = self.transport.send(&request).await?;
        parse_grant(operation, response.status, &response.body)
    }
}

fn client_fields(
    client: &ClientCredentials,
    grant: GrantType,
    user_type: UserTypeParam,
) -> Vec<(&'static str, SecretString)> {
    let grant = match grant {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
    };
    let user_type = match user_type {
        UserTypeParam::Location => "Location",
        UserTypeParam::Company => "Company",
    };
    vec![
        ("client_id", client.client_id.clone().into()),
        (
            "client_secret",
            client.client_secret.expose_secret().to_owned().into(),
        ),
        ("grant_type", grant.to_owned().into()),
        ("user_type", user_type.to_owned().into()),
    ]
}

/// Decodes a grant. A grant without an access token is malformed, not a success.
fn parse_grant<T: serde::de::DeserializeOwned>(
    operation: Operation,
    status: u16,
    body: &Bytes,
) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| GhlError::malformed(operation, status, &e))
}
