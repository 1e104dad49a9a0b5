//! GHL-style identifiers: 20 alphanumeric characters (`seD4PfOuKoVMLkEZqohJ`).

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Generates ids and secrets. Seeded, so a sandbox run with the same seed and the same request
/// order hands out the same ids.
#[derive(Debug)]
pub struct IdGen {
    rng: Mutex<StdRng>,
}

impl IdGen {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// A 20-character id.
    pub fn id(&self) -> String {
        self.string(20)
    }

    /// A random alphanumeric string of `len` characters.
    pub fn string(&self, len: usize) -> String {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_ghl_ids_and_follow_the_seed() {
        let a = IdGen::new(1);
        let b = IdGen::new(1);
        let id = a.id();
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(id, b.id());
        assert_ne!(a.id(), id);
    }
}
