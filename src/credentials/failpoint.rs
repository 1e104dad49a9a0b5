//! Crash points for the credential crash tests: with `GHL_CRASH_POINT=<name>` set, the
//! process aborts (no destructors, no flushing — as abrupt as SIGKILL) the first time it
//! reaches that point. Unset (always, outside tests), a crash point is a no-op.

use std::sync::OnceLock;

/// Points in the refresh and code-exchange sequences, in order.
pub const POINTS: &[&str] = &[
    "before-claim",
    "after-claim",
    "after-spend",
    "after-persist",
    "after-install",
];

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("GHL_CRASH_POINT")
                .ok()
                .filter(|p| !p.is_empty())
        })
        .as_deref()
}

/// Aborts the process here if the tests armed this point.
pub fn crash_point(name: &str) {
    if armed() == Some(name) {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
}
