//! TLS setup: one rustls crypto provider (ring) for every client in the process.

use std::sync::Once;

/// Installs ring as rustls' process-wide crypto provider. Idempotent; called before any
/// client is built.
pub fn install_default_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
