//! The pure decisions of sharding: which replicas are alive, and which shard Leases one replica should take or give up so that the live
//! replicas hold the shards evenly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How many of `count` shards the replica at `rank` (its place among the live replicas,
/// sorted by identity) should hold: an even split, the first `count % members` one more.
pub fn quota(count: u32, members: usize, rank: usize) -> u32 {
    let members = u32::try_from(members.max(1)).unwrap_or(u32::MAX);
    let rank = u32::try_from(rank).unwrap_or(u32::MAX);
    count / members + u32::from(rank < count % members)
}

/// What one replica should do with the shard Leases this round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    /// Shards to try to take (free or expired ones, lowest first), at most up to the quota.
    pub take: Vec<u32>,
    /// Shards to give up (the highest first), so a replica under its quota can take them.
    pub give_up: Vec<u32>,
}

/// The moves of replica `me` that holds `held`, among the live replicas `members` (which
/// include `me`), given the shards some replica holds (`taken`, by anyone, `me` included).
pub fn moves(
    count: u32,
    me: &str,
    members: &BTreeSet<String>,
    held: &BTreeSet<u32>,
    taken: &BTreeSet<u32>,
) -> Moves {
    let rank = members
        .iter()
        .position(|m| m == me)
        .unwrap_or(members.len());
    let members = members.len() + usize::from(!members.contains(me));
    let quota = quota(count, members, rank) as usize;
    if held.len() > quota {
        return Moves {
            take: Vec::new(),
            give_up: held
                .iter()
                .rev()
                .take(held.len() - quota)
                .copied()
                .collect(),
        };
    }
    Moves {
        take: (0..count)
            .filter(|s| !held.contains(s) && !taken.contains(s))
            .take(quota - held.len())
            .collect(),
        give_up: Vec::new(),
    }
}

/// The replicas seen through their membership Leases: a replica is alive while its renew time
/// keeps changing; one unchanged for the Lease duration (on this process' clock, so clock skew
/// does not matter) is gone.
#[derive(Debug, Default)]
pub struct Members {
    /// Identity → (last renew time seen, when this process first saw it).
    seen: BTreeMap<String, (String, Instant)>,
}

impl Members {
    /// Records what the listing showed at `now` (a replica absent from it is gone).
    pub fn observe(&mut self, listed: &[(String, String)], now: Instant) {
        let mut seen = BTreeMap::new();
        for (identity, renewed) in listed {
            let since = match self.seen.get(identity) {
                Some((previous, at)) if previous == renewed => *at,
                _ => now,
            };
            seen.insert(identity.clone(), (renewed.clone(), since));
        }
        self.seen = seen;
    }

    /// The live replicas at `now`, `me` always among them.
    pub fn alive(&self, me: &str, now: Instant, lease_duration: Duration) -> BTreeSet<String> {
        let mut alive: BTreeSet<String> = self
            .seen
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) < lease_duration)
            .map(|(identity, _)| identity.clone())
            .collect();
        alive.insert(me.to_owned());
        alive
    }

    /// Replicas unchanged for `after`: their membership Lease can be deleted.
    pub fn long_gone(&self, now: Instant, after: Duration) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) >= after)
            .map(|(identity, _)| identity.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
        items.iter().cloned().collect()
    }

    fn names(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn quotas_split_evenly_and_add_up() {
        let cases: [(u32, usize, Vec<u32>); 5] = [
            (2, 2, vec![1, 1]),
            (5, 2, vec![3, 2]),
            (2, 3, vec![1, 1, 0]),
            (8, 1, vec![8]),
            (7, 3, vec![3, 2, 2]),
        ];
        for (count, members, expected) in cases {
            let got: Vec<u32> = (0..members).map(|r| quota(count, members, r)).collect();
            assert_eq!(got, expected, "{count} shards over {members}");
            assert_eq!(got.iter().sum::<u32>(), count);
        }
    }

    #[test]
    fn moves_take_free_shards_up_to_the_quota_and_give_up_the_excess() {
        // (me, live replicas, held by me, taken by anyone) → moves
        type Case<'a> = (&'a str, &'a [&'a str], &'a [u32], &'a [u32], Moves);
        let cases: [Case; 6] = [
            // Alone: take everything free.
            (
                "a",
                &["a"],
                &[],
                &[],
                Moves {
                    take: vec![0, 1, 2, 3],
                    give_up: vec![],
                },
            ),
            // A second replica joined: give up the top half.
            (
                "a",
                &["a", "b"],
                &[0, 1, 2, 3],
                &[0, 1, 2, 3],
                Moves {
                    take: vec![],
                    give_up: vec![3, 2],
                },
            ),
            // The newcomer takes what was given up, not what is still held.
            (
                "b",
                &["a", "b"],
                &[],
                &[0, 1, 3],
                Moves {
                    take: vec![2],
                    give_up: vec![],
                },
            ),
            // At the quota: nothing to do.
            ("b", &["a", "b"], &[2, 3], &[0, 1, 2, 3], Moves::default()),
            // The other replica died: its shards (expired, so not taken) come over.
            (
                "b",
                &["b"],
                &[2, 3],
                &[2, 3],
                Moves {
                    take: vec![0, 1],
                    give_up: vec![],
                },
            ),
            // A replica whose own membership is not listed yet still counts itself.
            (
                "c",
                &["a", "b"],
                &[],
                &[0, 1, 2],
                Moves {
                    take: vec![3],
                    give_up: vec![],
                },
            ),
        ];
        for (me, members, held, taken, expected) in cases {
            assert_eq!(
                moves(4, me, &names(members), &set(held), &set(taken)),
                expected,
                "{me} among {members:?} holding {held:?}"
            );
        }
    }

    #[test]
    fn members_are_alive_while_their_renew_time_changes() {
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let mut members = Members::default();
        members.observe(&[("a".into(), "1".into()), ("b".into(), "1".into())], t0);
        assert_eq!(members.alive("me", t0, d), names(&["a", "b", "me"]));
        // a renews, b does not.
        let t1 = t0 + Duration::from_secs(10);
        members.observe(&[("a".into(), "2".into()), ("b".into(), "1".into())], t1);
        let t2 = t0 + Duration::from_secs(16);
        members.observe(&[("a".into(), "2".into()), ("b".into(), "1".into())], t2);
        assert_eq!(members.alive("me", t2, d), names(&["a", "me"]));
        assert_eq!(members.long_gone(t2, Duration::from_secs(16)), ["b"]);
        // A deleted membership (a graceful stop) is gone at once.
        members.observe(&[("a".into(), "3".into())], t2);
        assert_eq!(members.alive("me", t2, d), names(&["a", "me"]));
    }
}
