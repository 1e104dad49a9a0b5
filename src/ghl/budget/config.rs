//! A connection's request budget as configured: GHL's published limits, and the share of them
//! `spec.rateLimit` gives the connection. Pure.

use std::time::Duration;

use crate::crd::common::{InvalidField, duration_field};
use crate::crd::connection::RateLimitSpec;

/// GHL's published burst limit.
pub const GHL_WINDOW_LIMIT: u32 = 100;
/// GHL's published burst window.
pub const GHL_WINDOW: Duration = Duration::from_secs(10);
/// GHL's published daily limit.
pub const GHL_DAILY_LIMIT: u32 = 200_000;

/// The limits a budget starts from, before GHL's headers correct them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetConfig {
    pub requests_per_window: u32,
    pub window: Duration,
    pub daily_limit: u32,
    /// Percentage (1-100) of the location's budget this connection may use.
    pub share_percent: u8,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            requests_per_window: GHL_WINDOW_LIMIT,
            window: GHL_WINDOW,
            daily_limit: GHL_DAILY_LIMIT,
            share_percent: 100,
        }
    }
}

impl BudgetConfig {
    /// The budget a GhlConnection's `spec.rateLimit` asks for; a value that cannot be used is
    /// refused with a message naming its field.
    pub fn from_spec(limit: Option<&RateLimitSpec>) -> Result<Self, InvalidField> {
        let mut budget = Self::default();
        let Some(limit) = limit else {
            return Ok(budget);
        };
        if let Some(share) = limit.share_percent {
            if !(1..=100).contains(&share) {
                return Err(InvalidField::OutOfRange {
                    field: "spec.rateLimit.sharePercent".into(),
                    value: share.to_string(),
                    min: "1".into(),
                    max: "100".into(),
                });
            }
            budget.share_percent = share;
        }
        if let Some(n) = limit.requests_per_window {
            budget.requests_per_window = n.max(1);
        }
        budget.window = duration_field(
            limit.window.as_ref(),
            "spec.rateLimit.window",
            GHL_WINDOW,
            Duration::from_secs(1),
            Duration::from_secs(3_600),
        )?;
        if let Some(daily) = limit.daily_limit {
            budget.daily_limit = daily.max(1);
        }
        Ok(budget)
    }

    pub(super) fn share(&self, limit: u32) -> u32 {
        let share = u64::from(self.share_percent.clamp(1, 100));
        ((u64::from(limit) * share / 100) as u32).max(1)
    }

    /// Our share of a burst window, less a 5% reserve (at least one request) for network
    /// jitter and for the server's window starting where we cannot see it.
    pub(super) fn window_share(&self, limit: u32) -> u32 {
        let ours = self.share(limit);
        let reserve = limit.div_ceil(20).max(1);
        ours.saturating_sub(reserve).max(1)
    }
}
