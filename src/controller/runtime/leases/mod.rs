//! Leases: the leader Lease ([`leader`]) and, with `--shards N`, the shard Leases the live
//! replicas divide ([`plan`], pure) and that [`manager`] takes, renews and hands over. What
//! this process holds is recorded in the registry's
//! [`Shards`](crate::controller::registry::shards::Shards), whose fences every write checks.

pub mod leader;
pub mod manager;
pub mod plan;
