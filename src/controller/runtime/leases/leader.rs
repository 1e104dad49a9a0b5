//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it: a candidate
//! takes the Lease when it is free or its holder stopped renewing for `lease_duration` (measured
//! on the candidate's own clock from when it last saw the record change, so clock skew between
//! nodes does not matter); the leader renews every `renew_every` and gives up leadership when it
//! cannot renew within `lease_duration`; a graceful stop gives the Lease up so a standby takes
//! over at once. Every write carries the resourceVersion it read (compare-and-swap), so two
//! candidates can never both believe they hold it. The elector keeps a [`Fence`] that is
//! open only until the renew deadline after its last successful write, which every GHL and
//! ledger write of the process checks.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::engine::fence::Fence;

/// Lease timing and identity.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This process (usually the pod name).
    pub identity: String,
    /// How long a holder that stopped renewing keeps the Lease.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How often a standby retries.
    pub retry_every: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What a candidate saw of the Lease record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    transitions: i32,
}

fn record_of(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// Whether `me` may take a Lease whose record is `record`, last seen changing at `observed`.
fn may_take(
    record: &Record,
    me: &str,
    observed: Instant,
    now: Instant,
    lease_duration: Duration,
) -> bool {
    match &record.holder {
        None => true,
        Some(holder) if holder == me => true,
        Some(_) => now.duration_since(observed) >= lease_duration,
    }
}

/// The outcome of one acquire-or-renew attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Held,
    HeldByOther,
}

/// A candidate for (or holder of) the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The record last seen and when it was first seen in that form.
    seen: Option<(Record, Instant)>,
    /// Open while the Lease is known held (until the renew deadline after the last success).
    fence: Fence,
    /// This fence's tenure has held the Lease (then a Lease found not ours means another
    /// process held it meanwhile: the tenure is over, whatever the Lease says now).
    tenure: bool,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            seen: None,
            fence: Fence::leased(),
            tenure: false,
        }
    }

    /// The write fence this elector keeps: open from a successful acquire or renew until the
    /// renew deadline after it, closed when leadership is lost or given up.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Leadership proven by a write that started at `attempted`: writes may go on until the
    /// renew deadline after it (before any other candidate may take the Lease).
    fn held_since(&mut self, attempted: Instant) {
        self.tenure = true;
        self.fence.extend(attempted + self.renew_deadline());
    }

    fn renew_deadline(&self) -> Duration {
        self.config.lease_duration * 2 / 3
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn spec(&self, transitions: i32, acquire: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Whether this process holds the Lease or could take it now (free, or its holder stopped
    /// renewing for the Lease duration), from one read; the read counts as an observation.
    pub async fn takeable(&mut self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(true);
        };
        let record = record_of(&lease);
        let observed = match &self.seen {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        self.seen = Some((record.clone(), observed));
        Ok(may_take(
            &record,
            &self.config.identity,
            observed,
            now,
            self.config.lease_duration,
        ))
    }

    /// Who held the Lease when it was last read (`None`: free, or never read).
    pub fn holder(&self) -> Option<&str> {
        self.seen
            .as_ref()
            .and_then(|(record, _)| record.holder.as_deref())
    }

    /// A new fence for a new tenure: the previous one is closed for good, so work left over
    /// from an earlier tenure can never write again.
    pub fn fresh_fence(&mut self) -> Fence {
        self.fence.close();
        self.fence = Fence::leased();
        self.tenure = false;
        self.fence.clone()
    }

    /// One attempt to take or keep the Lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            if self.tenure {
                // Deleted under us: someone may have held it meanwhile (see below).
                self.fence.close();
                self.tenure = false;
                return Ok(Attempt::HeldByOther);
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.seen = Some((record_of(&created), now));
                    self.held_since(now);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldByOther),
                Err(e) => Err(e),
            };
        };
        let record = record_of(&lease);
        let observed = match &self.seen {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        self.seen = Some((record.clone(), observed));
        if !may_take(
            &record,
            &self.config.identity,
            observed,
            now,
            self.config.lease_duration,
        ) {
            return Ok(Attempt::HeldByOther);
        }
        let ours = record.holder.as_deref() == Some(self.config.identity.as_str());
        if !ours && self.tenure {
            // Held by another process since our last renewal (and free again now): work of
            // this tenure must never write again, so it ends here; a new one needs a fresh
            // fence.
            self.fence.close();
            self.tenure = false;
            return Ok(Attempt::HeldByOther);
        }
        let spec = lease.spec.clone().unwrap_or_default();
        lease.spec = Some(if ours {
            self.spec(record.transitions, spec.acquire_time)
        } else {
            self.spec(record.transitions.saturating_add(1), None)
        });
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.seen = Some((record_of(&updated), Instant::now()));
                self.held_since(now);
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldByOther),
            Err(e) => Err(e),
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => return,
                Ok(Attempt::HeldByOther) => {}
                Err(error) => tracing::warn!(%error, "could not read or take the leader Lease"),
            }
            tokio::time::sleep(self.config.retry_every).await;
        }
    }

    /// Renews until renewal fails past the renew deadline (two thirds of the Lease duration,
    /// as client-go) or another process took the Lease; returns when leadership is lost.
    pub async fn hold(&mut self) {
        self.hold_until_lost().await;
        self.fence.close();
    }

    async fn hold_until_lost(&mut self) {
        let deadline = self.renew_deadline();
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            let left = deadline.saturating_sub(last_renewed.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => last_renewed = Instant::now(),
                Ok(Ok(Attempt::HeldByOther)) => {
                    tracing::error!("another process took the leader Lease");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "could not renew the leader Lease"),
                Err(_) => tracing::warn!("renewing the leader Lease timed out"),
            }
            // Stop before the Lease can expire in others' eyes.
            if last_renewed.elapsed() + self.config.renew_every > deadline {
                tracing::error!("could not renew the leader Lease in time");
                return;
            }
        }
    }

    /// Releases the Lease if this process holds it (graceful shutdown), so a standby takes
    /// over without waiting for it to expire.
    pub async fn step_down(&mut self) {
        self.fence.close();
        self.tenure = false;
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        if let Err(error) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "could not give up the leader Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>) -> Record {
        Record {
            holder: holder.map(str::to_owned),
            renew_time: Some("2026-11-26T00:00:00Z".into()),
            transitions: 3,
        }
    }

    #[test]
    fn a_free_or_own_lease_can_be_taken_at_once() {
        let now = Instant::now();
        let d = Duration::from_secs(15);
        assert!(may_take(&held_by(None), "me", now, now, d));
        assert!(may_take(&held_by(Some("me")), "me", now, now, d));
    }

    #[test]
    fn another_holder_keeps_the_lease_until_it_stops_renewing_for_the_duration() {
        let start = Instant::now();
        let d = Duration::from_secs(15);
        let other = held_by(Some("other"));
        assert!(!may_take(
            &other,
            "me",
            start,
            start + Duration::from_secs(14),
            d
        ));
        assert!(may_take(
            &other,
            "me",
            start,
            start + Duration::from_secs(15),
            d
        ));
    }
}
