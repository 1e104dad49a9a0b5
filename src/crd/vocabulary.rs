//! The operator's fixed vocabulary: API group, condition types, reasons, Event actions,
//! finalizers, annotation and label keys, and the field manager. Everything that appears in
//! status, Events or metadata is named here once, so the words stay stable for users' alerts
//! and GitOps health checks. What the words mean (Event, webhook, delivery, fence, declaration,
//! yielded, release…), one word per idea: `docs/architecture.md`.

/// API group of the custom resources.
pub const GROUP: &str = "ghl.servis.ai";
/// API version of the custom resources.
pub const VERSION: &str = "v1alpha1";

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "ghl-operator";
/// Field manager for what the operator writes of received webhooks and the change feed
/// (`status.webhooks`, `status.export`), so the connection reconciler's status writes and
/// these never remove each other's fields. (The value predates the word "intake"; it stays,
/// as clusters hold fields under it.)
pub const FIELD_MANAGER_INTAKE: &str = "ghl-operator-events";

/// Condition types. `Ready`, `Reconciling` and `Stalled` follow kstatus; the rest are domain
/// conditions.
pub mod condition {
    /// The object reached its desired state (kstatus).
    pub const READY: &str = "Ready";
    /// The operator is working towards the desired state (kstatus).
    pub const RECONCILING: &str = "Reconciling";
    /// Progress is impossible until something outside the operator changes (kstatus).
    pub const STALLED: &str = "Stalled";
    /// GhlConnection: GHL accepted the credentials.
    pub const AUTHENTICATED: &str = "Authenticated";
    /// GhlConnection: the credential is older than its `maxAge` or scheduled rotation is due.
    pub const ROTATION_DUE: &str = "RotationDue";
    /// GhlConnection (OAuth): renewal departs from `renewBefore` as written (it is not shorter
    /// than the token's lifetime, and would refresh in a loop).
    pub const RENEWAL_ADJUSTED: &str = "RenewalAdjusted";
    /// GhlConnection (OAuth): GHL granted every scope `spec.auth.oauth.scopes` asks for.
    pub const SCOPES_GRANTED: &str = "ScopesGranted";
    /// GhlConnection (OAuth, consenting through the operator): `redirectUri` is the operator's
    /// `/oauth/callback` and this operator serves it.
    pub const REDIRECT_URI_SERVED: &str = "RedirectUriServed";
    /// ContactSyncPolicy / TagRule: GHL matches the declared state.
    pub const SYNCED: &str = "Synced";
    /// ContactSyncPolicy: GHL differs from the declared state (changed outside the operator).
    pub const DRIFTED: &str = "Drifted";
    /// ContactSyncPolicy: some records are declared first by an older policy and left to it.
    /// TagRule: another owner (a policy, or another rule) wants the opposite for a tag this
    /// rule manages, and the rule leaves that tag alone.
    pub const CONFLICT: &str = "Conflict";
    /// GhlConnection with `spec.export`: every sink accepts what it is sent (True), or a sink
    /// fails (False, `SinkFailing`, naming it). Written by the change feed every second.
    pub const EXPORTING: &str = "Exporting";
}

/// Condition reasons (CamelCase, stable: users alert on them).
pub mod reason {
    pub const RECONCILED: &str = "Reconciled";
    pub const PROGRESSING: &str = "Progressing";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const CONNECTION_NOT_READY: &str = "ConnectionNotReady";
    pub const CONNECTION_NOT_FOUND: &str = "ConnectionNotFound";
    pub const CROSS_NAMESPACE_REF_DENIED: &str = "CrossNamespaceReferenceDenied";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A Secret the object names does not carry the `ghl.servis.ai/secret-type` label of the
    /// role it would play: nothing is read from it or sent with it.
    pub const SECRET_NOT_USABLE: &str = "SecretNotUsable";
    /// A `contactsFrom[].http` URL outside `--allowed-source-url`: never fetched.
    pub const SOURCE_NOT_ALLOWED: &str = "SourceNotAllowed";
    pub const CREDENTIALS_ACCEPTED: &str = "CredentialsAccepted";
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    pub const REAUTHORIZATION_REQUIRED: &str = "ReauthorizationRequired";
    /// An OAuth connection with no grant: `status.consent.url` is the link to open.
    pub const CONSENT_REQUIRED: &str = "ConsentRequired";
    /// A consent came back for another location or company than the connection declares (or
    /// its state was refused): nothing was stored.
    pub const CONSENT_REFUSED: &str = "ConsentRefused";
    pub const AUTHORIZATION_CODE_INVALID: &str = "AuthorizationCodeInvalid";
    /// The grant could not be renewed; its access token still serves until it expires, and
    /// `status.consent.url` is ready for a new consent before then.
    pub const RENEWAL_FAILED: &str = "RenewalFailed";
    /// An agency connection created a GhlConnection for an installed location.
    pub const PROVISIONED: &str = "Provisioned";
    /// An agency connection deleted the GhlConnection of a location that uninstalled the app.
    pub const DEPROVISIONED: &str = "Deprovisioned";
    /// A provisioned GhlConnection stays although its location uninstalled the app.
    pub const KEPT_AFTER_UNINSTALL: &str = "KeptAfterUninstall";
    /// A provisioned GhlConnection was changed by hand where the template applies: left as is.
    pub const HAND_EDITED: &str = "HandEdited";
    /// `redirectUri` is the operator's `/oauth/callback`, which it serves.
    pub const CALLBACK_SERVED: &str = "CallbackServed";
    /// `redirectUri` is not the operator's callback, or the operator serves none: a consent
    /// could not come back, so no link is published.
    pub const REDIRECT_URI_NOT_SERVED: &str = "RedirectUriNotServed";
    pub const MAX_AGE_EXCEEDED: &str = "MaxAgeExceeded";
    pub const WITHIN_MAX_AGE: &str = "WithinMaxAge";
    pub const RATE_LIMITED: &str = "RateLimited";
    pub const GHL_UNAVAILABLE: &str = "GhlUnavailable";
    pub const GHL_REJECTED: &str = "GhlRejected";
    pub const SAFETY_LIMIT_EXCEEDED: &str = "SafetyLimitExceeded";
    pub const PLAN_ONLY: &str = "PlanOnly";
    pub const PLAN_APPLIED: &str = "PlanApplied";
    /// An approved plan (`ghl.servis.ai/approve-plan`) was applied.
    pub const PLAN_APPROVED: &str = "PlanApproved";
    /// The approval names a plan that is no longer the current one.
    pub const APPROVAL_OUTDATED: &str = "ApprovalOutdated";
    /// The approval is not honoured: not stamped by the admission webhook, or by the author
    /// of the spec it would apply.
    pub const APPROVAL_REFUSED: &str = "ApprovalRefused";
    /// The connection's grant lacks a scope the object's mode needs.
    pub const MISSING_SCOPE: &str = "MissingScope";
    /// GhlConnection: every declared scope was granted.
    pub const ALL_SCOPES_GRANTED: &str = "AllScopesGranted";
    /// GhlConnection: GHL granted fewer scopes than the connection declares.
    pub const SCOPES_NOT_GRANTED: &str = "ScopesNotGranted";
    pub const IN_SYNC: &str = "InSync";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT: &str = "NoDrift";
    pub const PARTIAL_FAILURE: &str = "PartialFailure";
    pub const TAG_CONFLICT: &str = "TagConflict";
    /// A ContactSyncPolicy leaves records to an older policy declaring the same contacts.
    pub const RECORD_CONFLICT: &str = "RecordConflict";
    pub const NO_CONFLICT: &str = "NoConflict";
    /// Waiting for the other owners on the location to declare what they want first.
    pub const WAITING_FOR_OWNERS: &str = "WaitingForOtherOwners";
    pub const RECOVERED: &str = "Recovered";
    /// `Exporting`: every sink accepts what it is sent.
    pub const DELIVERING: &str = "Delivering";
    /// `Exporting`: a sink cannot be sent to, or its last delivery failed (an error answer, a
    /// refusal, no answer); also the Warning Event when a sink starts failing.
    pub const SINK_FAILING: &str = "SinkFailing";
    /// Event: a failing sink accepted a delivery again.
    pub const SINK_RECOVERED: &str = "SinkRecovered";
    /// GhlConnection: its `baseUrl` is not among the URLs the operator may send a token to.
    pub const BASE_URL_NOT_ALLOWED: &str = "BaseUrlNotAllowed";
    /// `renewBefore` plus the skew margin is not shorter than the token's lifetime.
    pub const RENEW_BEFORE_TOO_LONG: &str = "RenewBeforeTooLong";
    /// Renewal follows the spec as written.
    pub const AS_DECLARED: &str = "AsDeclared";
    /// A Secret the operator would write exists and is not the operator's.
    pub const SECRET_NOT_OWNED: &str = "SecretNotOwned";
    /// A connection names an agency grant whose connection does not list it in
    /// `spec.auth.oauth.grantees`.
    pub const NOT_A_GRANTEE: &str = "NotAGrantee";
    /// Event: a rollout target does not opt in to restarts by this connection.
    pub const ROLLOUT_NOT_PERMITTED: &str = "RolloutNotPermitted";
    /// Event: what a policy or rule owned was removed from GHL on its deletion.
    pub const DELETED: &str = "Deleted";
    /// Event: GHL data left in place on deletion (the connection is gone).
    pub const ORPHANED: &str = "Orphaned";
    /// Event: a connection's access token was renewed.
    pub const CREDENTIALS_ROTATED: &str = "CredentialsRotated";
    /// A ledger of an earlier object of the same kind, namespace and name exists (a restore,
    /// or a delete-and-recreate): nothing is planned until it is adopted
    /// (`ghl.servis.ai/adopt-ledger`) or deleted.
    pub const LEDGER_FROM_PREVIOUS_OWNER: &str = "LedgerFromPreviousOwner";
    /// Event: a workload was restarted for a new access token.
    pub const ROLLOUT_RESTARTED: &str = "RolloutRestarted";
}

/// Event actions (what the operator was doing when it recorded an Event).
pub mod action {
    pub const PLAN: &str = "Plan";
    pub const APPLY: &str = "Apply";
    pub const RECONCILE: &str = "Reconcile";
    pub const DELETE: &str = "Delete";
    pub const CHECK_CREDENTIALS: &str = "CheckCredentials";
    pub const ROTATE: &str = "Rotate";
    pub const RESTART: &str = "Restart";
    pub const EXPORT: &str = "Export";
}

/// Finalizers: only on objects whose deletion must clean GHL data.
pub mod finalizer {
    /// Held by a ContactSyncPolicy or TagRule with `deletionPolicy: Delete` until its ledger is removed from GHL.
    pub const CLEANUP: &str = "ghl.servis.ai/cleanup";
}

/// Annotation and label keys the operator reads or writes.
pub mod annotation {
    /// On a PIT Secret: when the operator first saw this token value (RFC 3339).
    pub const TOKEN_OBSERVED_AT: &str = "ghl.servis.ai/token-observed-at";
    /// On a PIT Secret: a fingerprint (truncated SHA-256) of the token the observation refers to.
    pub const TOKEN_FINGERPRINT: &str = "ghl.servis.ai/token-fingerprint";
    /// On the operator-managed OAuth token Secret: monotonically increasing revision.
    pub const TOKEN_REVISION: &str = "ghl.servis.ai/token-revision";
    /// On a Deployment, StatefulSet or DaemonSet: the GhlConnections (comma-separated names in
    /// the workload's namespace) allowed to restart it when their token rotates. Without it,
    /// the operator restarts nothing.
    pub const RESTART_ON_ROTATION: &str = "ghl.servis.ai/restart-on-rotation";
    /// On a ContactSyncPolicy: the `status.plan.hash` of a plan to apply once, safety limits
    /// (and `mode: Plan`) lifted for that plan alone.
    pub const APPROVE_PLAN: &str = "ghl.servis.ai/approve-plan";
    /// Stamped by the admission webhook: the user the API server authenticated as setting the
    /// approval.
    pub const APPROVED_BY: &str = "ghl.servis.ai/approved-by";
    /// Stamped by the admission webhook: the operator's seal over uid, plan hash and approver.
    pub const APPROVAL_SEAL: &str = "ghl.servis.ai/approval-seal";
    /// Stamped by the admission webhook: the user who made the last spec change.
    pub const SPEC_AUTHOR: &str = "ghl.servis.ai/spec-author";
    /// Stamped by the admission webhook: the operator's seal over the object, its spec and
    /// the spec's author.
    pub const SPEC_AUTHOR_SEAL: &str = "ghl.servis.ai/spec-author-seal";
    /// On restarted workloads' pod templates: the credential revision that caused the restart.
    pub const RESTARTED_FOR_REVISION: &str = "ghl.servis.ai/restarted-for-revision";
    /// On restarted workloads' pod templates: when the operator restarted them (RFC 3339).
    pub const RESTARTED_AT: &str = "ghl.servis.ai/restarted-at";
    /// On restarted workloads' pod templates: what `kubectl rollout restart` sets, so the
    /// rollout is the one users know.
    pub const KUBECTL_RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
    /// On a GhlConnection: any new value re-sends every contact of the location to the change
    /// feed's sinks once.
    pub const EXPORT_SNAPSHOT: &str = "ghl.servis.ai/export-snapshot";
    /// On a ledger Secret: the uid of the object whose ledger it is (as its ownerReference
    /// says; kept apart because a restore may drop ownerReferences).
    pub const LEDGER_OWNER_UID: &str = "ghl.servis.ai/ledger-owner-uid";
    /// On the OAuth token Secret: the fence written before a single-use refresh token is spent.
    pub const REFRESH_CLAIM: &str = "ghl.servis.ai/refresh-claim";
    /// On an OAuth token Secret: the uid of the one GhlConnection whose tokens it holds; no
    /// other connection writes it (nor, for an agency grant, reads it unless a grantee).
    pub const TOKEN_OF: &str = "ghl.servis.ai/token-of";
    /// On a provisioned GhlConnection kept after its location uninstalled the app
    /// (`onUninstall: Keep`).
    pub const UNINSTALLED: &str = "ghl.servis.ai/uninstalled";
    /// On a provisioned GhlConnection: a digest of what its agency connection last applied.
    pub const PROVISIONED_AS: &str = "ghl.servis.ai/provisioned-as";
}

/// Labels on objects the operator creates.
pub mod label {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "ghl-operator";
    /// On ledger shards: the owning object's kind.
    pub const OWNER_KIND: &str = "ghl.servis.ai/owner-kind";
    /// On ledger shards: the owning object's name.
    pub const OWNER_NAME: &str = "ghl.servis.ai/owner-name";
    /// On ledger Secrets: `head` (names the live generation), `shard` (compacted) or
    /// `journal` (changes since).
    pub const LEDGER_ROLE: &str = "ghl.servis.ai/ledger-role";
    /// On ledger shards and pages: the generation they belong to (absent: 0).
    pub const LEDGER_GENERATION: &str = "ghl.servis.ai/ledger-generation";
    /// On ledger Secrets: the shard's or page's number.
    pub const LEDGER_INDEX: &str = "ghl.servis.ai/ledger-index";
    /// On a Secret a user names: the role it may play for the operator's objects (`pit`,
    /// `oauth-client`, `oauth-code`, `feed-signing`, `contacts`). A Secret without it is never
    /// read on an object's behalf.
    pub const SECRET_TYPE: &str = "ghl.servis.ai/secret-type";
    /// On a GhlConnection an agency connection created (`spec.provision`): that agency
    /// connection's name.
    pub const AGENCY: &str = "ghl.servis.ai/agency";
}

/// On a ContactSyncPolicy or TagRule: the uid of an earlier object of the same kind,
/// namespace and name (before a restore, or a delete-and-recreate) whose ledger this one takes
/// over. Without it, such a ledger stops the object with `LedgerFromPreviousOwner`.
pub const ADOPT_LEDGER: &str = "ghl.servis.ai/adopt-ledger";

/// The `type` of the Secrets holding ledgers.
pub const LEDGER_SECRET_TYPE: &str = "ghl.servis.ai/ledger";
