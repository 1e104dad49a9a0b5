//! No crash from data: arbitrary custom-resource specs, `contactsFrom` sources, GHL answers
//! and webhook bodies go through validation, planning, applying and parsing without a panic
//! and without hanging. Inputs are generated (proptest) from the real field names, so most
//! cases get past deserialization and reach the logic behind it; numbers include the extremes
//! (`u64::MAX` durations, counters, `Retry-After` and rate-limit headers).

mod admission;
mod answers;
mod inputs;
mod outbox;
mod specs;
mod webhooks;
