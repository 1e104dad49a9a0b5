//! The operator's fixed vocabulary: API group, condition types, reasons, finalizers, annotation
//! keys and the field manager. Everything that appears in status, Events or metadata is named
//! here once, so the words stay stable for users' alerts and GitOps health checks.

/// API group of the custom resources.
pub const GROUP: &str = "ghl.servis.ai";
/// API version of the custom resources.
pub const VERSION: &str = "v1alpha1";

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "ghl-operator";

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
    /// ContactSyncPolicy / TagRule: GHL matches the declared state.
    pub const SYNCED: &str = "Synced";
    /// ContactSyncPolicy: GHL differs from the declared state (changed outside the operator).
    pub const DRIFTED: &str = "Drifted";
    /// TagRule: another rule wants the opposite for a tag this rule manages.
    pub const CONFLICT: &str = "Conflict";
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
    pub const CREDENTIALS_ACCEPTED: &str = "CredentialsAccepted";
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    pub const REAUTHORIZATION_REQUIRED: &str = "ReauthorizationRequired";
    pub const AUTHORIZATION_CODE_INVALID: &str = "AuthorizationCodeInvalid";
    pub const MAX_AGE_EXCEEDED: &str = "MaxAgeExceeded";
    pub const WITHIN_MAX_AGE: &str = "WithinMaxAge";
    pub const RATE_LIMITED: &str = "RateLimited";
    pub const GHL_UNAVAILABLE: &str = "GhlUnavailable";
    pub const GHL_REJECTED: &str = "GhlRejected";
    pub const SAFETY_LIMIT_EXCEEDED: &str = "SafetyLimitExceeded";
    pub const PLAN_ONLY: &str = "PlanOnly";
    pub const PLAN_APPLIED: &str = "PlanApplied";
    pub const IN_SYNC: &str = "InSync";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT: &str = "NoDrift";
    pub const PARTIAL_FAILURE: &str = "PartialFailure";
    pub const TAG_CONFLICT: &str = "TagConflict";
    pub const NO_CONFLICT: &str = "NoConflict";
    pub const RECOVERED: &str = "Recovered";
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
    /// On restarted workloads' pod templates: the credential revision that caused the restart.
    pub const RESTARTED_FOR_REVISION: &str = "ghl.servis.ai/restarted-for-revision";
}

/// Labels on objects the operator creates.
pub mod label {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "ghl-operator";
    /// On ledger shards: the owning object's kind.
    pub const OWNER_KIND: &str = "ghl.servis.ai/owner-kind";
    /// On ledger shards: the owning object's name.
    pub const OWNER_NAME: &str = "ghl.servis.ai/owner-name";
}
