//! Targeted reconciles: a webhook about contact X queues X for every ContactSyncPolicy that
//! declares or owns it ([`crate::controller::intake::batches`]). Changes to one policy's
//! contacts coalesce into one targeted reconcile — the pipeline's, observing only those
//! contacts — run under the policy's lock so it never overlaps the policy's full reconcile.
//! Full resyncs remain the safety net.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, stream};

use crate::controller::context::Context;
use crate::controller::reconcile::pipeline::reconcile_contacts;
use crate::crd::ContactSyncPolicy;

/// Policies reconciled at once.
const CONCURRENCY: usize = 4;

/// Runs targeted reconciles as changes come, until `stop`.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ctx.intake.batches.woken() => {},
            _ = &mut stop => return,
        }
        let batches = ctx.intake.batches.take();
        stream::iter(batches)
            .for_each_concurrent(CONCURRENCY, |(key, batch)| {
                let ctx = Arc::clone(&ctx);
                async move {
                    let contacts = batch.scope.ids.len();
                    let result =
                        reconcile_contacts::<ContactSyncPolicy>(&ctx, &key, batch.scope).await;
                    ctx.metrics
                        .targeted(result, batch.since.map(|s| s.elapsed()).unwrap_or_default());
                    ctx.intake.feeds.done(contacts);
                }
            })
            .await;
    }
}
