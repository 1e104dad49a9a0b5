//! `POST /oauth/token` and `POST /oauth/locationToken` (form-encoded bodies, JSON responses).

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{lenient_u64, nullable_vec};

/// `grant_type` of a token request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

/// `user_type` of a token request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserTypeParam {
    Location,
    Company,
}

/// Form body of `POST /oauth/token` (`GetAccessCodebodyDto`).
#[derive(Serialize, JsonSchema, Clone, Debug)]
pub struct TokenRequest<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub grant_type: GrantType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserTypeParam>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<&'a str>,
}

/// The tokens every grant carries. Token values are secrets: their `Debug` output is redacted.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
pub struct Tokens {
    #[schemars(with = "String")]
    pub access_token: SecretString,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime of the access token in seconds.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub refresh_token: Option<SecretString>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: Option<String>,
}

impl Tokens {
    /// The granted scopes as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// A token grant (`GetAccessCodeSuccessfulResponseDto`).
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    #[serde(flatten)]
    pub tokens: Tokens,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub company_id: Option<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub approved_locations: Vec<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub plan_id: Option<String>,
}

/// Form body of `POST /oauth/locationToken` (`GetLocationAccessCodeBodyDto`).
#[derive(Serialize, JsonSchema, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LocationTokenRequest<'a> {
    pub company_id: &'a str,
    pub location_id: &'a str,
}

/// A location token minted from an agency token (`GetLocationAccessTokenSuccessfulResponseDto`;
/// GHL added `refresh_token` in 2026).
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct LocationTokenGrant {
    #[serde(flatten)]
    pub tokens: Tokens,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `GET /oauth/installedLocations` (`GetInstalledLocationsSuccessfulResponseDto`). Only ids
/// and the installed flag are read: a location's name and address may be a person's.
#[derive(Deserialize, JsonSchema, Clone, Debug, Default)]
pub struct InstalledLocations {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub locations: Vec<InstalledLocation>,
    /// All locations of the company matching the query (not only this page).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub count: Option<u64>,
}

/// One location of `InstalledLocations` (`InstalledLocationSchema`).
#[derive(Deserialize, JsonSchema, Clone, Debug)]
pub struct InstalledLocation {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "isInstalled", default)]
    pub is_installed: Option<bool>,
}
