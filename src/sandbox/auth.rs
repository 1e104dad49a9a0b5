//! Who may call: the location's Private Integration Token, OAuth access tokens that expire,
//! single-use refresh tokens, one-time authorization codes, and location tokens minted from
//! agency tokens. Secrets are random strings; nothing here is logged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::ids::IdGen;

/// Every scope the sandbox knows; the PIT carries all of them.
pub const ALL_SCOPES: &[&str] = &[
    "contacts.readonly",
    "contacts.write",
    "locations/tasks.readonly",
    "locations/customFields.readonly",
    "locations/tags.readonly",
    "locations/tags.write",
    "oauth.readonly",
    "oauth.write",
];

/// How long an authorization code stays valid.
const CODE_TTL: SignedDuration = SignedDuration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserType {
    Location,
    Company,
}

impl UserType {
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Location => "Location",
            UserType::Company => "Company",
        }
    }
}

/// The caller behind a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_type: UserType,
    /// Set for location tokens.
    pub location_id: Option<String>,
    pub company_id: String,
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// Fails with GHL's 401 when the token lacks `scope`.
    pub fn require(&self, scope: &str) -> ApiResult<()> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::unauthorized(
                "The token is not authorized for this scope.",
            ))
        }
    }

    /// The location a location token is for; agency tokens cannot call location routes.
    pub fn location(&self) -> ApiResult<&str> {
        self.location_id.as_deref().ok_or_else(|| {
            ApiError::unauthorized("This route is not yet supported by the IAM Service.")
        })
    }
}

struct AccessToken {
    principal: Principal,
    expires_at: Timestamp,
}

struct RefreshToken {
    principal: Principal,
    used: bool,
}

struct Code {
    principal: Principal,
    expires_at: Timestamp,
    used: bool,
}

/// The OAuth app the sandbox knows.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
}

/// All issued credentials.
pub struct Tokens {
    /// Private Integration Tokens, one per location.
    pits: HashMap<String, Principal>,
    /// The agency's locations (what its tokens may mint location tokens for).
    locations: Vec<String>,
    app: OAuthApp,
    access_ttl: Duration,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, Code>,
    ids: Arc<IdGen>,
    /// Refresh tokens presented again after they were spent.
    pub refresh_token_reuse: u64,
    /// Locations where the app was uninstalled (admin): not listed as installed, and no
    /// location token is minted for them.
    uninstalled: HashSet<String>,
}

impl Tokens {
    /// `pits`: each location's Private Integration Token, as `(token, location)`.
    pub fn new(
        pits: &[(String, String)],
        company_id: &str,
        app: OAuthApp,
        access_ttl: Duration,
        ids: Arc<IdGen>,
    ) -> Self {
        let principal = |location: &str| Principal {
            user_type: UserType::Location,
            location_id: Some(location.to_owned()),
            company_id: company_id.to_owned(),
            scopes: ALL_SCOPES
                .iter()
                .filter(|s| !s.starts_with("oauth."))
                .map(|s| (*s).to_owned())
                .collect(),
        };
        Self {
            pits: pits
                .iter()
                .map(|(token, location)| (token.clone(), principal(location)))
                .collect(),
            locations: pits.iter().map(|(_, location)| location.clone()).collect(),
            app,
            access_ttl,
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            ids,
            refresh_token_reuse: 0,
            uninstalled: HashSet::new(),
        }
    }

    /// The caller behind `Authorization: Bearer <token>`.
    pub fn authenticate(&self, header: Option<&str>, now: Timestamp) -> ApiResult<Principal> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Invalid JWT"))?;
        if let Some(principal) = self.pits.get(token) {
            return Ok(principal.clone());
        }
        match self.access.get(token) {
            Some(access) if access.expires_at > now => Ok(access.principal.clone()),
            _ => Err(ApiError::unauthorized("Invalid JWT")),
        }
    }

    /// The OAuth app's client id.
    pub fn client_id(&self) -> &str {
        &self.app.client_id
    }

    /// Mints an authorization code (what GHL's consent screen hands the redirect URI).
    pub fn mint_code(
        &mut self,
        user_type: UserType,
        location_id: &str,
        company_id: &str,
        scopes: Option<Vec<String>>,
        now: Timestamp,
    ) -> String {
        let scopes = scopes.unwrap_or_else(|| ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        let principal = Principal {
            user_type,
            location_id: (user_type == UserType::Location).then(|| location_id.to_owned()),
            company_id: company_id.to_owned(),
            scopes: scopes.into_iter().collect(),
        };
        let code = self.ids.string(40);
        self.codes.insert(
            code.clone(),
            Code {
                principal,
                expires_at: now.checked_add(CODE_TTL).unwrap_or(Timestamp::MAX),
                used: false,
            },
        );
        code
    }

    fn check_client(&self, form: &HashMap<String, String>) -> ApiResult<()> {
        let id = form.get("client_id").map(String::as_str);
        let secret = form.get("client_secret").map(String::as_str);
        if id == Some(self.app.client_id.as_str())
            && secret == Some(self.app.client_secret.as_str())
        {
            Ok(())
        } else {
            Err(ApiError::unauthorized("Invalid client credentials"))
        }
    }

    /// `POST /oauth/token`.
    pub fn token(&mut self, form: &HashMap<String, String>, now: Timestamp) -> ApiResult<Value> {
        let mut missing = Vec::new();
        for field in ["client_id", "client_secret", "grant_type"] {
            if form.get(field).is_none_or(|v| v.is_empty()) {
                missing.push(format!("{field} should not be empty"));
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::unprocessable(missing));
        }
        self.check_client(form)?;
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").map(String::as_str).unwrap_or_default();
                let principal = match self.codes.get_mut(code) {
                    Some(c) if !c.used && c.expires_at > now => {
                        c.used = true;
                        c.principal.clone()
                    }
                    _ => {
                        return Err(ApiError::bad_request(
                            "Invalid grant: authorization code is invalid",
                        ));
                    }
                };
                Ok(self.issue(principal, now))
            }
            Some("refresh_token") => {
                let presented = form
                    .get("refresh_token")
                    .map(String::as_str)
                    .unwrap_or_default();
                let principal = match self.refresh.get_mut(presented) {
                    Some(r) if !r.used => {
                        r.used = true;
                        r.principal.clone()
                    }
                    Some(_) => {
                        self.refresh_token_reuse += 1;
                        return Err(ApiError::bad_request(
                            "Invalid grant: refresh token is invalid",
                        ));
                    }
                    None => {
                        return Err(ApiError::bad_request(
                            "Invalid grant: refresh token is invalid",
                        ));
                    }
                };
                Ok(self.issue(principal, now))
            }
            Some(other) => Err(ApiError::unprocessable(vec![format!(
                "grant_type must be one of authorization_code, refresh_token; got {other}"
            )])),
            None => Err(ApiError::unprocessable(vec![
                "grant_type should not be empty".into(),
            ])),
        }
    }

    /// The app's id: its client id up to the first `-`, as GHL's SDK reads it.
    pub fn app_id(&self) -> &str {
        self.app.client_id.split('-').next().unwrap_or_default()
    }

    /// `GET /oauth/installedLocations`: the agency's locations and whether the app is
    /// installed on each (every sandbox location has it), a page at a time.
    pub fn installed_locations(
        &self,
        caller: &Principal,
        query: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        if caller.user_type != UserType::Company {
            return Err(ApiError::unauthorized(
                "This route requires an agency (Company) token.",
            ));
        }
        caller.require("oauth.readonly")?;
        let (Some(company), Some(app)) = (query.get("companyId"), query.get("appId")) else {
            return Err(ApiError::unprocessable(vec![
                "companyId and appId should not be empty".into(),
            ]));
        };
        if *company != caller.company_id {
            return Err(ApiError::bad_request("Company not found"));
        }
        if app != self.app_id() {
            return Err(ApiError::bad_request("App not found"));
        }
        let number = |key: &str, default: usize| -> ApiResult<usize> {
            match query.get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| ApiError::unprocessable(vec![format!("{key} must be a number")])),
            }
        };
        let skip = number("skip", 0)?;
        let limit = number("limit", 20)?.min(100);
        // The app is installed on every sandbox location: `isInstalled=false` lists none.
        let installed = self
            .locations
            .iter()
            .filter(|l| !self.uninstalled.contains(*l));
        let matching: Vec<&String> = match query.get("isInstalled").map(String::as_str) {
            Some("false") => Vec::new(),
            _ => installed.collect(),
        };
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(limit)
            .enumerate()
            .map(|(i, id)| {
                json!({"_id": id, "name": format!("Sandbox location {}", skip + i + 1),
                       "address": "1 Sandbox Way", "isInstalled": true})
            })
            .collect();
        Ok(json!({"locations": page, "count": matching.len(), "installToFutureLocations": false}))
    }

    /// Installs (`true`) or uninstalls the app on one of the agency's locations (admin); `false`
    /// when the location is not the agency's.
    pub fn set_installed(&mut self, location: &str, installed: bool) -> bool {
        if !self.locations.iter().any(|l| l == location) {
            return false;
        }
        if installed {
            self.uninstalled.remove(location);
        } else {
            self.uninstalled.insert(location.to_owned());
        }
        true
    }

    /// `POST /oauth/locationToken`: an agency token mints a location token.
    pub fn location_token(
        &mut self,
        caller: &Principal,
        form: &HashMap<String, String>,
        now: Timestamp,
    ) -> ApiResult<Value> {
        if caller.user_type != UserType::Company {
            return Err(ApiError::unauthorized(
                "This route requires an agency (Company) token.",
            ));
        }
        caller.require("oauth.write")?;
        let company = form.get("companyId").map(String::as_str);
        let location = form.get("locationId").map(String::as_str);
        let (Some(company), Some(location)) = (company, location) else {
            return Err(ApiError::unprocessable(vec![
                "companyId and locationId should not be empty".into(),
            ]));
        };
        if company != caller.company_id || !self.locations.iter().any(|l| l == location) {
            return Err(ApiError::bad_request("Location not found for this company"));
        }
        if self.uninstalled.contains(location) {
            return Err(ApiError::bad_request(
                "The app is not installed on this location",
            ));
        }
        let principal = Principal {
            user_type: UserType::Location,
            location_id: Some(location.to_owned()),
            company_id: company.to_owned(),
            scopes: caller
                .scopes
                .iter()
                .filter(|s| !s.starts_with("oauth."))
                .cloned()
                .collect(),
        };
        let mut grant = self.issue(principal, now);
        if let Value::Object(map) = &mut grant {
            map.remove("userType");
            map.remove("companyId");
            map.insert("appId".into(), json!(self.app_id()));
        }
        Ok(grant)
    }

    fn issue(&mut self, principal: Principal, now: Timestamp) -> Value {
        let access = format!("sbx-at-{}", self.ids.string(32));
        let refresh = format!("sbx-rt-{}", self.ids.string(32));
        let ttl = SignedDuration::try_from(self.access_ttl).unwrap_or(SignedDuration::MAX);
        self.access.insert(
            access.clone(),
            AccessToken {
                principal: principal.clone(),
                expires_at: now.checked_add(ttl).unwrap_or(Timestamp::MAX),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                principal: principal.clone(),
                used: false,
            },
        );
        let scope = principal
            .scopes
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let mut grant = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl.as_secs(),
            "refresh_token": refresh,
            "scope": scope,
            "userType": principal.user_type.as_str(),
            "companyId": principal.company_id,
            "userId": "sandboxUser000000001",
        });
        match &principal.location_id {
            Some(location) => grant["locationId"] = json!(location),
            None => grant["approvedLocations"] = json!([]),
        }
        grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            &[("pit".into(), "loc".into())],
            "co",
            OAuthApp {
                client_id: "id".into(),
                client_secret: "secret".into(),
            },
            Duration::from_secs(60),
            Arc::new(IdGen::new(1)),
        )
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn codes_and_refresh_tokens_are_single_use() {
        let mut t = tokens();
        let now = Timestamp::now();
        let code = t.mint_code(UserType::Location, "loc", "co", None, now);
        let exchange = form(&[
            ("client_id", "id"),
            ("client_secret", "secret"),
            ("grant_type", "authorization_code"),
            ("code", &code),
        ]);
        let grant = t.token(&exchange, now).unwrap();
        assert_eq!(
            t.token(&exchange, now).unwrap_err().status,
            400,
            "a code works once"
        );

        let refresh = grant["refresh_token"].as_str().unwrap().to_owned();
        let refresh_form = form(&[
            ("client_id", "id"),
            ("client_secret", "secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
        ]);
        let second = t.token(&refresh_form, now).unwrap();
        assert_ne!(second["refresh_token"], grant["refresh_token"]);
        assert_eq!(t.refresh_token_reuse, 0);
        assert_eq!(t.token(&refresh_form, now).unwrap_err().status, 400);
        assert_eq!(t.refresh_token_reuse, 1, "the reuse is counted");
    }

    #[test]
    fn access_tokens_expire_and_clients_must_match() {
        let mut t = tokens();
        let now = Timestamp::now();
        let code = t.mint_code(UserType::Location, "loc", "co", None, now);
        let wrong = form(&[
            ("client_id", "id"),
            ("client_secret", "nope"),
            ("grant_type", "authorization_code"),
            ("code", &code),
        ]);
        assert_eq!(t.token(&wrong, now).unwrap_err().status, 401);
        let right = form(&[
            ("client_id", "id"),
            ("client_secret", "secret"),
            ("grant_type", "authorization_code"),
            ("code", &code),
        ]);
        let grant = t.token(&right, now).unwrap();
        let bearer = format!("Bearer {}", grant["access_token"].as_str().unwrap());
        assert!(t.authenticate(Some(&bearer), now).is_ok());
        let later = now.checked_add(SignedDuration::from_secs(61)).unwrap();
        assert_eq!(
            t.authenticate(Some(&bearer), later).unwrap_err().status,
            401
        );
        assert!(
            t.authenticate(Some("Bearer pit"), later).is_ok(),
            "the PIT does not expire"
        );
        assert!(t.authenticate(None, now).is_err());
    }
}
