//! Deterministic fault injection: request number `n` draws from a generator seeded with
//! `(seed, n)`, so the same seed and the same request order fail the same requests.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::config::FaultSpec;

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer this 5xx status without carrying the request out.
    ServerError(u16),
    /// Carry it out, answer after the delay.
    Slow(Duration),
    /// Carry it out, never answer.
    Timeout,
    /// Carry it out, break the connection mid-answer.
    Drop,
    /// Carry out a contact create, answer 422 anyway.
    CreatedBut422,
}

/// Decides the fault for request number `index`, an operation named `operation`.
pub fn decide(spec: &FaultSpec, index: u64, operation: &str) -> Fault {
    if spec.is_off() || !operation.starts_with(&spec.only) {
        return Fault::None;
    }
    let mut rng = StdRng::seed_from_u64(spec.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let draw: f64 = rng.random();
    let quirk: f64 = rng.random();
    if operation == "contacts.create" && quirk < spec.created_but_422 {
        return Fault::CreatedBut422;
    }
    let mut edge = spec.server_error;
    if draw < edge {
        return Fault::ServerError([500, 502, 503][rng.random_range(0..3)]);
    }
    edge += spec.slow;
    if draw < edge {
        return Fault::Slow(spec.slow_delay);
    }
    edge += spec.timeout;
    if draw < edge {
        return Fault::Timeout;
    }
    edge += spec.drop;
    if draw < edge {
        return Fault::Drop;
    }
    Fault::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FaultSpec {
        "seed=3,5xx=0.1,slow=0.1,timeout=0.05,drop=0.05,422-created=0.5"
            .parse()
            .unwrap()
    }

    #[test]
    fn same_seed_same_faults() {
        let a: Vec<Fault> = (0..200)
            .map(|i| decide(&spec(), i, "contacts.get"))
            .collect();
        let b: Vec<Fault> = (0..200)
            .map(|i| decide(&spec(), i, "contacts.get"))
            .collect();
        assert_eq!(a, b);
        let mut other = spec();
        other.seed = 4;
        let c: Vec<Fault> = (0..200)
            .map(|i| decide(&other, i, "contacts.get"))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn shares_are_roughly_respected() {
        let n = 10_000;
        let faults: Vec<Fault> = (0..n).map(|i| decide(&spec(), i, "contacts.get")).collect();
        let share =
            |f: fn(&Fault) -> bool| faults.iter().filter(|x| f(x)).count() as f64 / n as f64;
        assert!((share(|f| matches!(f, Fault::ServerError(_))) - 0.1).abs() < 0.02);
        assert!((share(|f| matches!(f, Fault::Timeout)) - 0.05).abs() < 0.015);
        assert_eq!(
            share(|f| matches!(f, Fault::CreatedBut422)),
            0.0,
            "only creates"
        );
        let creates: Vec<Fault> = (0..n)
            .map(|i| decide(&spec(), i, "contacts.create"))
            .collect();
        let quirky = creates
            .iter()
            .filter(|f| **f == Fault::CreatedBut422)
            .count() as f64
            / n as f64;
        assert!((quirky - 0.5).abs() < 0.03);
    }

    #[test]
    fn faults_can_be_limited_to_some_operations() {
        let spec: FaultSpec = "seed=1,5xx=1,on=oauth.".parse().unwrap();
        assert!(matches!(
            decide(&spec, 0, "oauth.token"),
            Fault::ServerError(_)
        ));
        assert_eq!(decide(&spec, 1, "contacts.get"), Fault::None);
    }

    #[test]
    fn no_faults_when_off() {
        let off = FaultSpec::default();
        assert!((0..100).all(|i| decide(&off, i, "contacts.create") == Fault::None));
    }
}
