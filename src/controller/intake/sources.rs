//! The refresher of `contactsFrom[].http` sources: every second, the sources whose
//! `refreshInterval` has passed are asked again (conditionally); a policy whose document
//! changed (or failed, or recovered) is reconciled at once. Sources of policies that are gone,
//! or that no longer name the URL, are forgotten.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use crate::controller::context::Context;
use crate::crd::ContactSyncPolicy;

/// How often due sources are looked for.
const TICK: Duration = Duration::from_secs(1);

/// Runs until `stop`.
pub async fn refresh(ctx: Arc<Context>, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => return,
        }
        if ctx.sources.is_empty() {
            continue;
        }
        let policies = &ctx.registry.stores.policies;
        ctx.sources.retain(|key, index, url| {
            let policy = policies
                .get(&ObjectRef::<ContactSyncPolicy>::new(&key.name).within(&key.namespace));
            policy.is_some_and(|p| {
                p.spec
                    .contacts_from
                    .get(index)
                    .and_then(|s| s.http.as_ref())
                    .is_some_and(|h| h.url == url)
            })
        });
        for key in ctx.sources.refresh_due().await {
            tracing::debug!(object = %key, "a source document changed; reconciling");
            ctx.registry.wake(key);
        }
    }
}
