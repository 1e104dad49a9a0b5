//! Where the client gets its access token. The client asks for the token on every request,
//! so a rotation swaps the token under a live client without rebuilding it.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use secrecy::SecretString;

/// Why no access token is available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// Nothing was ever provided (e.g. the OAuth bootstrap has not happened).
    #[error("no access token has been provided yet")]
    Missing,
    /// The source knows the token cannot work (e.g. re-authorization is required).
    #[error("the credential is unusable: {0}")]
    Unusable(String),
}

/// Supplies the bearer token for the connection's requests.
#[async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// The token to send now.
    async fn access_token(&self) -> Result<SecretString, TokenError>;
}

/// A fixed token (a Private Integration Token read once, or a test token).
#[derive(Debug, Clone)]
pub struct StaticToken(SecretString);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }
}

#[async_trait]
impl TokenSource for StaticToken {
    async fn access_token(&self) -> Result<SecretString, TokenError> {
        Ok(self.0.clone())
    }
}

/// A token that can be replaced while clients use it: the credentials controller writes,
/// every client holding a clone reads the newest value on its next request.
#[derive(Debug, Clone, Default)]
pub struct SharedToken {
    state: Arc<RwLock<SharedState>>,
}

#[derive(Debug, Default)]
struct SharedState {
    token: Option<SecretString>,
    unusable: Option<String>,
    revision: u64,
}

impl SharedToken {
    pub fn new(token: SecretString) -> Self {
        let shared = Self::default();
        shared.set(token);
        shared
    }

    /// Installs a token (clearing any unusable mark) and returns the revision, which changes
    /// only when the value does.
    pub fn set(&self, token: SecretString) -> u64 {
        use secrecy::ExposeSecret;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let same = state
            .token
            .as_ref()
            .is_some_and(|t| t.expose_secret() == token.expose_secret());
        state.unusable = None;
        if !same {
            state.token = Some(token);
            state.revision += 1;
        }
        state.revision
    }

    /// Marks the credential unusable (requests fail fast with [`TokenError::Unusable`]).
    pub fn mark_unusable(&self, reason: impl Into<String>) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        state.unusable = Some(reason.into());
    }

    /// How many times a token was installed.
    pub fn revision(&self) -> u64 {
        self.state
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .revision
    }
}

#[async_trait]
impl TokenSource for SharedToken {
    async fn access_token(&self) -> Result<SecretString, TokenError> {
        let state = self
            .state
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(reason) = &state.unusable {
            return Err(TokenError::Unusable(reason.clone()));
        }
        state.token.clone().ok_or(TokenError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn shared_token_swaps_for_every_holder() {
        let source = SharedToken::default();
        let holder = source.clone();
        assert!(matches!(
            holder.access_token().await,
            Err(TokenError::Missing)
        ));
        assert_eq!(source.set("one".to_owned().into()), 1);
        assert_eq!(holder.access_token().await.unwrap().expose_secret(), "one");
        assert_eq!(source.set("two".to_owned().into()), 2);
        assert_eq!(holder.access_token().await.unwrap().expose_secret(), "two");
        source.mark_unusable("refresh token already used");
        assert!(matches!(
            holder.access_token().await,
            Err(TokenError::Unusable(_))
        ));
        source.set("three".to_owned().into());
        assert_eq!(
            holder.access_token().await.unwrap().expose_secret(),
            "three"
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = StaticToken::new("pit-very-secret");
        assert!(!format!("{token:?}").contains("very-secret"));
        let shared = SharedToken::new("pit-very-secret".to_owned().into());
        assert!(!format!("{shared:?}").contains("very-secret"));
    }
}
