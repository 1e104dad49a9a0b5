//! `GhlConnection`: where and how to talk to one GHL sub-account (location).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::common::{Conditions, DurationString, SecretKeyRef, SecretRef, conditions_schema};
use super::export::{ExportSpec, ExportStatus, WebhookStatus};

/// GHL's public API endpoint.
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";
/// The `Version` header every v2 Contacts operation requires.
pub const DEFAULT_API_VERSION: &str = "2021-07-28";

/// How to reach one GHL sub-account (location) and which credentials to use.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ghl.servis.ai",
    version = "v1alpha1",
    kind = "GhlConnection",
    namespaced,
    status = "GhlConnectionStatus",
    shortname = "ghlconn",
    category = "ghl",
    doc = "A connection to one GHL sub-account (location): endpoint, credentials, request budget and credential consumers.",
    printcolumn = r#"{"name": "Location", "type": "string", "jsonPath": ".spec.locationId"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Authenticated", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Authenticated\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Authenticated\")].reason"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "priority": 1}"#,
    printcolumn = r#"{"name": "Credential", "type": "string", "jsonPath": ".status.credentials.type"}"#,
    printcolumn = r#"{"name": "Expires", "type": "date", "jsonPath": ".status.credentials.expiresAt", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct GhlConnectionSpec {
    /// The GHL sub-account (location) id this connection serves. Immutable: create a new
    /// connection to serve another location.
    #[x_kube(validation = Rule::new("self == oldSelf").message("locationId is immutable"))]
    #[schemars(length(min = 1, max = 64))]
    pub location_id: String,

    /// Base URL of the GHL API. If omitted, `https://services.leadconnectorhq.com`; point it at
    /// `ghl-operator sandbox` to try things without a GHL account.
    pub base_url: Option<String>,

    /// Value of the `Version` header sent with every request. If omitted, `2021-07-28`, the only
    /// version the v2 Contacts API accepts.
    pub api_version: Option<String>,

    /// The credentials: exactly one of `privateIntegrationToken` or `oauth`.
    pub auth: ConnectionAuth,

    /// This connection's share of GHL's per-location request budget. If omitted, GHL's published
    /// limits (100 requests / 10 s, 200,000 / day) at a 100% share.
    pub rate_limit: Option<RateLimitSpec>,

    /// Where to publish the current access token, and which workloads to restart when it
    /// rotates. If omitted, the token stays private to the operator.
    pub consumers: Option<Consumers>,

    /// The change feed: every change in the location (contact, tasks, notes, appointments),
    /// as GHL's webhooks report it and a periodic catch-up finds what they missed, delivered to
    /// downstream systems as signed CloudEvents. Annotate the connection
    /// `ghl.servis.ai/export-snapshot=<any new value>` to send every contact once more. If
    /// omitted, nothing is exported.
    pub export: Option<ExportSpec>,

    /// Namespaces whose ContactSyncPolicies and TagRules may name this connection in their
    /// `connectionRef` (this connection's own namespace always may). If omitted, only its own:
    /// the connection's owner grants the reference, as Gateway API's ReferenceGrant does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub allowed_namespaces: Vec<String>,

    /// Agency grants only (`auth.oauth.userType: Company`): a fleet from one install. The
    /// operator creates one GhlConnection per location where the app is installed (named
    /// `<this name>-<locationId in lowercase>`, borrowing this grant through
    /// `auth.agencyGrant`, owned by this connection and labeled `ghl.servis.ai/agency`), at once
    /// on an INSTALL webhook, and keeps or deletes it on UNINSTALL. If omitted, nothing is
    /// created (`status.installedLocations` lists what could be).
    pub provision: Option<ProvisionSpec>,
}

/// The connections an agency grant creates, one per installed location.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionSpec {
    /// What every child's spec gets besides its location and the borrowed grant. A change
    /// rolls out to every child; a field a person changed on a child by hand is reported
    /// (`status.provisioned.handEdited`) and not overwritten.
    #[serde(default)]
    pub template: ProvisionTemplate,

    /// A child whose location uninstalls the app: `Keep` (the default; it stops working when
    /// its token can no longer be minted) or `Delete`. Either way with an Event.
    #[serde(default)]
    pub on_uninstall: OnUninstall,
}

/// The fields a provisioned child takes from its agency connection.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionTemplate {
    /// Each child's share of its location's request budget.
    pub rate_limit: Option<RateLimitSpec>,

    /// Each child's consumers; a `secretName` gets `-<locationId in lowercase>` appended, so
    /// that children never share a Secret.
    pub consumers: Option<Consumers>,

    /// Each child's change feed.
    pub export: Option<ExportSpec>,

    /// Namespaces whose policies and rules may name the children.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub allowed_namespaces: Vec<String>,

    /// Mint each child's location token this long before it expires. If omitted, `1h`.
    pub renew_before: Option<DurationString>,
}

/// What happens to a provisioned child when its location uninstalls the app.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUninstall {
    /// Leave it (the default).
    #[default]
    Keep,
    /// Delete it.
    Delete,
}

/// Credentials for GHL. Exactly one member must be set.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.privateIntegrationToken), has(self.oauth), has(self.agencyGrant)].filter(x, x).size() == 1").message("set exactly one of privateIntegrationToken, oauth or agencyGrant"))]
pub struct ConnectionAuth {
    /// A Private Integration Token (static; rotated by a human in GHL and then in the Secret).
    pub private_integration_token: Option<PrivateIntegrationTokenAuth>,

    /// A Marketplace app's OAuth 2.0 grant; the operator refreshes and stores the tokens.
    pub oauth: Option<OAuthAuth>,

    /// A location token minted from another GhlConnection's agency grant (`oauth` with
    /// `userType: Company`): one consent serves every sub-account of the agency.
    pub agency_grant: Option<AgencyGrantAuth>,
}

impl GhlConnectionSpec {
    /// Whether an object in `namespace` may name this connection (in `own_namespace`): its
    /// own namespace's always, another's when `allowedNamespaces` lists it. Pure.
    pub fn admits(&self, own_namespace: &str, namespace: &str) -> bool {
        own_namespace == namespace || self.allowed_namespaces.iter().any(|n| n == namespace)
    }
}

impl ConnectionAuth {
    /// The token Secret the operator writes for this connection, if any.
    pub fn token_secret(&self) -> Option<&str> {
        match (&self.oauth, &self.agency_grant) {
            (Some(oauth), _) => Some(&oauth.token_secret_ref.name),
            (None, Some(grant)) => Some(&grant.token_secret_ref.name),
            (None, None) => None,
        }
    }
}

/// A location token minted from an agency grant held by another GhlConnection.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgencyGrantAuth {
    /// The GhlConnection whose `auth.oauth` is the agency (`userType: Company`) grant, which
    /// must list this connection as a grantee. Only that connection refreshes the agency
    /// token; this one only reads it, from the token Secret the operator wrote, and only for
    /// the same `baseUrl`.
    pub connection_ref: AgencyConnectionRef,

    /// Secret the operator creates and owns for this location's token. Do not edit it.
    pub token_secret_ref: SecretRef,

    /// Mint a new location token this long before the current one expires. If omitted, `1h`.
    pub renew_before: Option<DurationString>,
}

/// The GhlConnection holding an agency grant.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgencyConnectionRef {
    /// Name of the GhlConnection holding the agency grant.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Its namespace. If omitted, this connection's own. Either way the agency connection must
    /// list this connection's namespace (and location) in `spec.auth.oauth.grantees`.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// A Private Integration Token kept in a Secret.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrivateIntegrationTokenAuth {
    /// The Secret key holding the token. The operator picks up a changed value at once.
    pub secret_ref: SecretKeyRef,

    /// Report `RotationDue` once the token is older than this (e.g. `90d`). If omitted, the
    /// token's age is tracked but never reported as due.
    pub max_age: Option<DurationString>,
}

/// Which kind of GHL user the OAuth grant belongs to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserType {
    /// A sub-account token, used directly (the default).
    #[default]
    Location,
    /// An agency token; the operator mints a location token for `locationId` from it.
    Company,
}

/// An OAuth 2.0 authorization-code grant of a GHL Marketplace app.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAuth {
    /// Secret with the app's `client_id` and `client_secret` keys.
    pub client_secret_ref: SecretRef,

    /// Secret the operator owns and writes: access token, refresh token, expiry, scopes and a
    /// revision. Do not edit it by hand while the connection is in use.
    pub token_secret_ref: SecretRef,

    /// One-time bootstrap: the key holding an authorization code from GHL's consent screen.
    /// The operator exchanges it once; afterwards the token Secret is the source of truth.
    pub authorization_code_secret_ref: Option<SecretKeyRef>,

    /// The redirect URI registered with the app (sent with the code exchange): the operator's
    /// own `https://<public host>/oauth/callback` (on the webhook listener), so that consent
    /// needs no code copied by hand.
    pub redirect_uri: Option<String>,

    /// GHL's consent screen. If omitted, `https://marketplace.gohighlevel.com/oauth/chooselocation`;
    /// the white-label host (`https://marketplace.leadconnectorhq.com/oauth/chooselocation`) and
    /// the sandbox's `/oauth/chooselocation` are also valid.
    pub authorization_url: Option<String>,

    /// `Location` (default) or `Company`.
    #[serde(default)]
    pub user_type: UserType,

    /// Agency (company) id; required with `userType: Company` to mint location tokens.
    pub company_id: Option<String>,

    /// Scopes the app asks for (e.g. `contacts.readonly`, `contacts.write`), for whoever
    /// builds the consent link. What GHL granted is `status.scopes`, and it is what counts: a
    /// policy or rule whose mode needs a scope the grant lacks (`contacts.readonly` to plan,
    /// `contacts.write` to apply) is not Ready (`MissingScope`, naming it) and writes nothing.
    /// The connection's `ScopesGranted` condition says whether GHL granted all of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,

    /// Refresh this long before the access token expires. If omitted, `1h`.
    pub renew_before: Option<DurationString>,

    /// Also refresh on this cron schedule (five fields, UTC), e.g. `0 */12 * * *`. If omitted,
    /// tokens are refreshed only before they expire.
    pub rotation_schedule: Option<String>,

    /// With `userType: Company`: which connections may mint location tokens from this grant
    /// (`auth.agencyGrant`), by namespace and optionally by location. If omitted, connections
    /// of this connection's own namespace, for any location of the company.
    pub grantees: Option<Vec<Grantee>>,
}

/// Connections that may borrow an agency grant.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grantee {
    /// Connections of this namespace.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,

    /// Only for these locations. If omitted, any location of the company.
    #[schemars(length(max = 1000), inner(length(min = 1, max = 64)))]
    pub location_ids: Option<Vec<String>>,
}

/// This connection's part of GHL's per-location request budget.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Percentage of the location's budget this connection may spend (1-100). If omitted, 100.
    /// Lower it when other integrations share the sub-account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub share_percent: Option<u8>,

    /// Requests GHL allows per burst window. If omitted, 100 (GHL's published limit); the
    /// operator follows `X-RateLimit-Max` when GHL reports another value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_window: Option<u32>,

    /// Length of the burst window. If omitted, `10s`.
    pub window: Option<DurationString>,

    /// Requests GHL allows per day. If omitted, 200000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub daily_limit: Option<u32>,
}

/// Who else needs the access token.
#[skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Consumers {
    /// Name of a Secret (in this namespace) the operator keeps filled with the current access
    /// token under the key `token`. The Secret is owned by this connection.
    pub secret_name: Option<String>,

    /// Workloads to restart (rollout) when the access token's content changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout_restart_targets: Vec<RolloutTarget>,

    /// At most one restart per target within this interval. If omitted, `10m`.
    pub min_interval: Option<DurationString>,
}

/// A workload to roll when the token rotates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: WorkloadKind,
    /// Name of the workload in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Workload kinds that can be rolled.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// Observed state of a GhlConnection. Written only by the operator.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GhlConnectionStatus {
    /// The `metadata.generation` this status describes.
    pub observed_generation: Option<i64>,

    /// `Ready`, `Authenticated`, `RotationDue`, `RenewalAdjusted`, `ScopesGranted` (and
    /// kstatus `Reconciling` / `Stalled`).
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,

    /// Facts about the credential in use (never the credential itself).
    pub credentials: Option<CredentialStatus>,

    /// Scopes GHL granted to the credential, when GHL reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,

    /// The request budget as last reported by GHL's `X-RateLimit-*` headers.
    pub budget: Option<BudgetStatus>,

    /// The webhooks received for the location.
    pub webhooks: Option<WebhookStatus>,

    /// Where the change feed stands.
    pub export: Option<ExportStatus>,

    /// Agency grants (`userType: Company`): the company's locations where the app is
    /// installed, and which of them no GhlConnection in this namespace serves yet. Listing
    /// them creates nothing.
    pub installed_locations: Option<InstalledLocationsStatus>,

    /// An OAuth connection with no usable grant: the link a person opens to grant access
    /// (`kubectl ghl connect NAME` prints it). GHL then sends the browser back to the
    /// operator's `/oauth/callback`, which completes the connection.
    pub consent: Option<ConsentStatus>,

    /// With `spec.provision`: the connections this agency grant created.
    pub provisioned: Option<ProvisionStatus>,
}

/// The children of an agency connection with `spec.provision`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionStatus {
    /// Children that exist.
    #[serde(default)]
    pub children: u64,
    /// Children a person changed where the template applies: reported, never overwritten
    /// (names, at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hand_edited: Vec<String>,
    /// Installed locations with no child, and why (`<locationId>: <why>`, at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// A consent link.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsentStatus {
    /// GHL's consent screen, with this connection's client id, redirect URI, scopes and a
    /// single-use `state`.
    pub url: String,
    /// After this the link is refused; a new one is published before.
    pub expires_at: Option<Time>,
}

/// GHL's consent screen.
pub const DEFAULT_AUTHORIZATION_URL: &str =
    "https://marketplace.gohighlevel.com/oauth/chooselocation";

/// The locations of an agency grant's company where the app is installed.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstalledLocationsStatus {
    /// When GHL was last asked (again at each connection check, and after an install or
    /// uninstall webhook).
    pub checked_at: Option<Time>,
    /// Locations with the app installed, as GHL counts them.
    #[serde(default)]
    pub count: u64,
    /// Of the installed locations read, those a GhlConnection in this namespace serves.
    #[serde(default)]
    pub served: u64,
    /// Installed locations no GhlConnection in this namespace serves yet (ids, at most 100):
    /// the ones a new connection (e.g. with `auth.agencyGrant`) can serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available: Vec<String>,
    /// Not every installed location was read, or not every available one is listed.
    #[serde(default)]
    pub truncated: bool,
}

/// The kind of credential a connection uses.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialType {
    PrivateIntegrationToken,
    OAuth,
}

/// Facts about a connection's credential.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    /// `PrivateIntegrationToken` or `OAuth`.
    #[serde(rename = "type")]
    pub type_: CredentialType,
    /// A fingerprint (truncated SHA-256) of the token in use — never the token itself.
    pub fingerprint: Option<String>,
    /// Increases by one each time the credential in use changes.
    #[serde(default)]
    pub revision: i64,
    /// When the access token expires (OAuth only).
    pub expires_at: Option<Time>,
    /// When the operator will next refresh or rotate the credential.
    pub renewal_time: Option<Time>,
    /// When the credential last changed.
    pub last_rotated_at: Option<Time>,
    /// Refresh attempts that failed since the last success.
    #[serde(default)]
    pub failed_refresh_attempts: i32,
}

/// Remaining request budget of the location, as GHL last reported it.
#[skip_serializing_none]
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// Requests left in the current burst window.
    pub window_remaining: Option<u32>,
    /// Requests allowed per burst window.
    pub window_limit: Option<u32>,
    /// Requests left today.
    pub daily_remaining: Option<u32>,
    /// Requests allowed per day.
    pub daily_limit: Option<u32>,
}

impl GhlConnectionSpec {
    /// The API base URL, with the default filled in.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL)
    }

    /// The `Version` header value, with the default filled in.
    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION)
    }
}
