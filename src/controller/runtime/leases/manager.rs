//! The shard Leases of one replica: every `renew_every` it renews the shards it holds, renews
//! its membership Lease (`<name>-member-<identity>`), reads who else is alive, and takes or
//! gives up shards ([`super::plan::moves`]) until the live replicas hold them evenly. A shard
//! given up stops writing first (its fence closes), lets its running reconciles finish, and
//! only then gives its Lease up, so the replica that takes it over never overlaps with it.
//! A replica that dies stops renewing: the others see its membership go stale and its shard
//! Leases expire, and take them over within the Lease duration.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use prometheus_client::metrics::gauge::Gauge;

use super::plan::{self, Members};
use crate::controller::registry::shards::Shards;
use crate::controller::runtime::leases::leader::{Attempt, Elector, LeaseConfig};

/// How long a given-up shard's running reconciles may take before its Lease is given up.
const HANDOVER_GRACE: Duration = Duration::from_secs(15);

/// Membership Leases unchanged this many Lease durations are deleted (a replica that died).
const FORGET_AFTER: u32 = 4;

/// The name of shard `shard`'s Lease.
pub fn shard_lease(base: &str, shard: u32) -> String {
    format!("{base}-shard-{shard}")
}

/// The annotation on a membership Lease naming where the replica takes webhooks
/// (`host:port`), so the others can forward the webhooks of its shards to it.
pub const WEBHOOK_ADDRESS: &str = "ghl.servis.ai/webhook-address";

fn member_prefix(base: &str) -> String {
    format!("{base}-member-")
}

/// A Lease name for `identity` (a DNS subdomain: lower case, digits, `-` and `.`).
fn member_lease(base: &str, identity: &str) -> String {
    let tail: String = identity
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    let mut name = format!("{}{}", member_prefix(base), tail);
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_owned()
}

/// One replica's part in sharding.
pub struct Manager {
    leases: Api<Lease>,
    config: LeaseConfig,
    shards: Arc<Shards>,
    electors: Vec<Elector>,
    /// The replicas as their membership Leases show them.
    peers: Peers,
    /// Called when a shard is lost or given up (forget what was kept about its objects).
    on_lost: Box<dyn Fn(u32) + Send + Sync>,
    /// Shards held, for `/metrics`.
    gauge: Gauge,
    /// Where this replica takes webhooks, advertised on its membership Lease.
    advertise: Option<String>,
}

/// The replicas seen through their membership Leases, and where each takes webhooks.
#[derive(Default)]
struct Peers {
    members: Members,
    /// Where each live replica takes webhooks, as its membership Lease says.
    addresses: BTreeMap<String, String>,
}

impl Manager {
    /// `config` names the base of the Lease names and this replica's identity and timing.
    pub fn new(
        client: Client,
        config: LeaseConfig,
        shards: Arc<Shards>,
        gauge: Gauge,
        on_lost: impl Fn(u32) + Send + Sync + 'static,
    ) -> Self {
        let electors = (0..shards.count())
            .map(|shard| {
                let mut lease = config.clone();
                lease.name = shard_lease(&config.name, shard);
                Elector::new(client.clone(), lease)
            })
            .collect();
        Self {
            leases: Api::namespaced(client, &config.namespace),
            config,
            shards,
            electors,
            peers: Peers::default(),
            on_lost: Box::new(on_lost),
            gauge,
            advertise: None,
        }
    }

    /// Advertises `address` (`host:port` of this replica's webhook receiver) to the others.
    pub fn advertising(mut self, address: Option<String>) -> Self {
        self.advertise = address;
        self
    }

    /// Takes, keeps and hands over shards until `stop`.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = self.round() => {},
                () = &mut stop => return,
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.renew_every) => {},
                () = &mut stop => return,
            }
        }
    }

    /// One round: membership, renewals, then the moves toward an even split.
    async fn round(&mut self) {
        // Renewals first: they keep the held shards' fences open, and under a slow API server
        // the membership's three calls would otherwise come out of the renew deadline.
        let held = self.renew().await;
        let alive = self.membership().await;
        // Every shard not held is read each round, even at the quota: a holder's Lease is
        // known expired only after it has been seen unchanged for the Lease duration, so
        // watching all the time is what makes a takeover take one duration, not two.
        let mut taken = BTreeSet::new();
        for (shard, elector) in (0u32..).zip(self.electors.iter_mut()) {
            if held.contains(&shard) {
                continue;
            }
            match elector.takeable().await {
                Ok(true) => {}
                Ok(false) => {
                    taken.insert(shard);
                }
                Err(error) => {
                    tracing::warn!(%error, shard, "could not read a shard Lease");
                    taken.insert(shard);
                }
            }
        }
        let moves = plan::moves(
            self.shards.count(),
            &self.config.identity,
            &alive,
            &held,
            &taken,
        );
        for shard in moves.give_up {
            self.give_up(shard).await;
        }
        for shard in moves.take {
            let elector = &mut self.electors[shard as usize];
            let fence = elector.fresh_fence();
            match elector.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(shard, "took a shard");
                    self.shards.gain(shard, fence);
                }
                Ok(Attempt::HeldByOther) => {}
                Err(error) => tracing::warn!(%error, shard, "could not take a shard Lease"),
            }
        }
        self.gauge
            .set(i64::try_from(self.shards.held().len()).unwrap_or(i64::MAX));
        self.route(&alive);
    }

    /// Records, for each shard another live replica holds, where it takes webhooks.
    fn route(&self, alive: &BTreeSet<String>) {
        for (shard, elector) in (0u32..).zip(self.electors.iter()) {
            let address = (!self.shards.holds(shard))
                .then(|| elector.holder())
                .flatten()
                .filter(|holder| alive.contains(*holder) && *holder != self.config.identity)
                .and_then(|holder| self.peers.addresses.get(holder).cloned());
            self.shards.set_route(shard, address);
        }
    }

    /// Renews this replica's membership and returns the live replicas.
    async fn membership(&mut self) -> BTreeSet<String> {
        let name = member_lease(&self.config.name, &self.config.identity);
        let annotations: Option<BTreeMap<String, String>> = self
            .advertise
            .as_ref()
            .map(|a| [(WEBHOOK_ADDRESS.to_owned(), a.clone())].into());
        let spec = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..LeaseSpec::default()
        };
        let renewed = match self.leases.get_opt(&name).await {
            Ok(Some(mut lease)) => {
                lease.spec = Some(spec);
                let kept = lease.metadata.annotations.get_or_insert_default();
                kept.remove(WEBHOOK_ADDRESS);
                kept.extend(annotations.unwrap_or_default());
                self.leases
                    .replace(&name, &PostParams::default(), &lease)
                    .await
                    .map(drop)
            }
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        annotations,
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(drop)
            }
            Err(error) => Err(error),
        };
        if let Err(error) = renewed {
            tracing::warn!(%error, "could not renew the shard membership Lease");
        }
        let now = Instant::now();
        let prefix = member_prefix(&self.config.name);
        match self.leases.list(&ListParams::default()).await {
            Ok(list) => {
                let listed: Vec<(String, String)> = list
                    .items
                    .iter()
                    .filter(|l| {
                        l.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(&prefix))
                    })
                    .filter_map(|l| {
                        let spec = l.spec.as_ref()?;
                        Some((
                            spec.holder_identity.clone()?,
                            spec.renew_time.as_ref()?.0.to_string(),
                        ))
                    })
                    .collect();
                self.peers.members.observe(&listed, now);
                self.peers.addresses = list
                    .items
                    .iter()
                    .filter_map(|l| {
                        let holder = l.spec.as_ref()?.holder_identity.clone()?;
                        // A replica's address only from its own membership Lease's name.
                        if l.metadata.name.as_deref()
                            != Some(member_lease(&self.config.name, &holder).as_str())
                        {
                            return None;
                        }
                        // An IP and a port only: the path is ours, and no name to resolve.
                        let address: SocketAddr = l
                            .metadata
                            .annotations
                            .as_ref()?
                            .get(WEBHOOK_ADDRESS)?
                            .parse()
                            .ok()
                            .filter(|a: &SocketAddr| {
                                !a.ip().is_unspecified() && !a.ip().is_multicast() && a.port() != 0
                            })?;
                        Some((holder, address.to_string()))
                    })
                    .collect();
            }
            Err(error) => tracing::warn!(%error, "could not list the shard membership Leases"),
        }
        let after = self.config.lease_duration * FORGET_AFTER;
        for gone in self.peers.members.long_gone(now, after) {
            let name = member_lease(&self.config.name, &gone);
            let _ = self.leases.delete(&name, &DeleteParams::default()).await;
        }
        self.peers
            .members
            .alive(&self.config.identity, now, self.config.lease_duration)
    }

    /// Renews the shards held; a shard whose Lease was taken or could not be renewed in time
    /// is lost. Returns the shards still held.
    async fn renew(&mut self) -> BTreeSet<u32> {
        let mut held = BTreeSet::new();
        for shard in 0..self.shards.count() {
            if self.shards.held_since(shard).is_none() {
                continue;
            }
            // Bounded: a renewal hanging past the renew deadline must not leave the shard
            // admitting reconciles while another replica may take it.
            let deadline = self.config.lease_duration * 2 / 3;
            let attempt = tokio::time::timeout(
                deadline,
                self.electors[shard as usize].try_acquire_or_renew(),
            )
            .await;
            match attempt {
                Ok(Ok(Attempt::HeldByOther)) => {
                    tracing::error!(shard, "another process took a shard Lease");
                }
                Ok(Err(error)) => tracing::warn!(%error, shard, "could not renew a shard Lease"),
                Err(_) => tracing::warn!(shard, "renewing a shard Lease timed out"),
                Ok(Ok(Attempt::Held)) => {}
            }
            if self.shards.holds(shard) {
                held.insert(shard);
            } else {
                tracing::warn!(shard, "lost a shard");
                self.shards.lose(shard);
                (self.on_lost)(shard);
            }
        }
        held
    }

    /// Stops writing for `shard`, lets its reconciles finish, then gives its Lease up.
    async fn give_up(&mut self, shard: u32) {
        tracing::info!(shard, "handing a shard over");
        self.shards.lose(shard);
        (self.on_lost)(shard);
        if !self.shards.drained(shard, HANDOVER_GRACE).await {
            tracing::warn!(
                shard,
                "a shard's reconciles did not finish; releasing it anyway"
            );
        }
        self.electors[shard as usize].step_down().await;
    }

    /// A graceful stop (after the controllers stopped): gives up every shard and the
    /// membership, so the other replicas take over at once.
    pub async fn step_down_all(&mut self) {
        for shard in 0..self.shards.count() {
            if self.shards.held_since(shard).is_some() {
                self.shards.lose(shard);
            }
            self.electors[shard as usize].step_down().await;
        }
        let name = member_lease(&self.config.name, &self.config.identity);
        let _ = self.leases.delete(&name, &DeleteParams::default()).await;
        self.gauge.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_dns_subdomains() {
        assert_eq!(shard_lease("ghl-operator", 3), "ghl-operator-shard-3");
        assert_eq!(
            member_lease("ghl-operator", "Pod_A.1"),
            "ghl-operator-member-pod-a.1"
        );
        assert_eq!(member_lease("op", "x_"), "op-member-x");
        assert!(member_lease("op", &"a".repeat(400)).len() <= 253);
    }
}
