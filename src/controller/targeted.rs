//! Targeted reconciles: a webhook about contact X queues X for every ContactSyncPolicy that
//! declares or owns it. Changes to one policy's contacts coalesce into one targeted sync (GET
//! just those contacts, plan and apply them — `engine::targeted`), run under the policy's lock
//! so it never overlaps the policy's full reconcile. Full resyncs remain the safety net.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, stream};

use super::context::Context;

/// Policies synced at once.
const CONCURRENCY: usize = 4;

/// Runs targeted syncs as changes come, until `stop`.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ctx.targets.woken() => {},
            _ = &mut stop => return,
        }
        let batches = ctx.targets.take();
        stream::iter(batches)
            .for_each_concurrent(CONCURRENCY, |(key, batch)| {
                let ctx = Arc::clone(&ctx);
                async move {
                    let contacts = batch.scope.ids.len();
                    let result = super::policy::sync_targeted(&ctx, &key, batch.scope).await;
                    ctx.metrics
                        .targeted(result, batch.since.map(|s| s.elapsed()).unwrap_or_default());
                    ctx.events.release(contacts);
                }
            })
            .await;
    }
}
