//! A connection's durable outbox: what the webhook receiver accepted for the change feed is
//! committed to storage the operator owns before GHL gets its 2xx, and leaves only once every
//! sink that wanted it has it (or gave up). After a crash, a restart or a shard handover, the
//! next holder delivers what the outbox holds before anything else; a repeated delivery
//! carries the same event id (ids follow the content), so receivers deduplicate it.
//!
//! - [`book`]: the entries, their coalescing and bounds (pure);
//! - [`store`]: the Secret they live in (compare-and-swap writes);
//! - this module: [`Outbox`], the handle the feed and the receiver use, and its writer task.
//!   Changes accepted while a write is in flight (or within [`GROUP_WINDOW`]) share the next
//!   write; acknowledgements ride on the next write, or are written alone after
//!   [`ACK_DELAY`] (a crash in between re-sends those changes, with their ids).

pub mod book;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub use self::book::{Book, Change, Entry, Limits};
pub use self::store::{OUTBOX_SECRET_TYPE, OutboxOwner};
use self::store::{Store, StoreError};
use super::FeedMetrics;
use crate::engine::fence::Fence;

/// How long the writer waits for more changes before writing (one write carries them all).
pub const GROUP_WINDOW: Duration = Duration::from_millis(2);
/// How long acknowledgements alone wait to be written.
pub const ACK_DELAY: Duration = Duration::from_secs(1);
/// Conflicting writes retried (each after reading and merging what the other wrote).
const CONFLICT_RETRIES: usize = 3;
/// Operations applied per write, at most.
const MAX_BATCH: usize = 4096;

/// Sizes for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub entries: usize,
    pub bytes: usize,
    /// When the oldest entry was accepted (Unix milliseconds).
    pub oldest_ms: Option<i64>,
}

enum Op {
    Add(Entry, oneshot::Sender<bool>),
    Ack { contact: String, seq: u64 },
    Flush(oneshot::Sender<()>),
}

/// Sequence numbers: Unix microseconds, strictly increasing in a process, so a new holder's
/// numbers follow the last holder's.
#[derive(Debug, Default)]
struct Clock(AtomicU64);

impl Clock {
    fn next(&self) -> u64 {
        let now = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
        let mut last = self.0.load(Ordering::SeqCst);
        loop {
            let next = now.max(last.saturating_add(1));
            match self
                .0
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// One connection's outbox; its writer stops when the handle is dropped.
pub struct Outbox {
    ops: mpsc::UnboundedSender<Op>,
    clock: Clock,
    stats: Arc<Mutex<OutboxStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the outbox held when it was opened (delivered before anything else).
pub type Loaded = oneshot::Receiver<Vec<Entry>>;

impl Outbox {
    /// Opens `owner`'s outbox: its writer reads what is stored (retrying until it can) and
    /// hands it to the returned receiver, then writes what is accepted, under `fence`.
    pub fn open(
        client: kube::Client,
        owner: OutboxOwner,
        limits: Limits,
        fence: Fence,
        metrics: FeedMetrics,
    ) -> (Self, Loaded) {
        let (ops, receiver) = mpsc::unbounded_channel();
        let (loaded_tx, loaded) = oneshot::channel();
        let stats = Arc::new(Mutex::new(OutboxStats::default()));
        let writer = Writer {
            store: Store::new(client, owner),
            book: Book::default(),
            limits,
            fence,
            stats: Arc::clone(&stats),
            metrics,
            reported: OutboxStats::default(),
        };
        let task = tokio::spawn(writer.run(receiver, loaded_tx));
        let outbox = Self {
            ops,
            clock: Clock::default(),
            stats,
            task,
        };
        (outbox, loaded)
    }

    /// Accepts a change: its sequence number, and whether it was committed (false: full, or
    /// storage refused; the receiver then answers 429 and GHL retries).
    pub fn accept(
        &self,
        contact: &str,
        change: Change,
        trigger: &str,
    ) -> (u64, oneshot::Receiver<bool>) {
        let seq = self.clock.next();
        let entry = Entry {
            seq,
            change,
            contact: contact.to_owned(),
            trigger: trigger.to_owned(),
            at_ms: jiff::Timestamp::now().as_millisecond(),
        };
        let (reply, committed) = oneshot::channel();
        // A stopped writer drops `reply`: the receiver reads that as not committed.
        let _ = self.ops.send(Op::Add(entry, reply));
        (seq, committed)
    }

    /// `contact`'s entries up to `seq` are delivered to every sink that wanted them.
    pub fn ack(&self, contact: &str, seq: u64) {
        let _ = self.ops.send(Op::Ack {
            contact: contact.to_owned(),
            seq,
        });
    }

    /// Writes what is pending now (a graceful stop).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.ops.send(Op::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    pub fn stats(&self) -> OutboxStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Writer {
    store: Store,
    book: Book,
    limits: Limits,
    fence: Fence,
    stats: Arc<Mutex<OutboxStats>>,
    metrics: FeedMetrics,
    /// What this outbox last added to the metrics' totals.
    reported: OutboxStats,
}

impl Writer {
    async fn run(
        mut self,
        mut ops: mpsc::UnboundedReceiver<Op>,
        loaded: oneshot::Sender<Vec<Entry>>,
    ) {
        self.load(&mut ops).await;
        let _ = loaded.send(self.book.entries().cloned().collect());
        self.publish();
        // Acknowledgements applied but not written since.
        let mut acked_since: Option<Instant> = None;
        loop {
            let deadline = acked_since.map(|at| at + ACK_DELAY);
            let first = tokio::select! {
                op = ops.recv() => op,
                () = sleep_until(deadline) => {
                    self.commit(&mut Vec::new()).await;
                    acked_since = None;
                    continue;
                }
            };
            let Some(first) = first else {
                // The handle is gone.
                return;
            };
            let mut batch = vec![first];
            let window = tokio::time::Instant::now() + GROUP_WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(window, ops.recv()).await {
                    Ok(Some(op)) => batch.push(op),
                    Ok(None) | Err(_) => break,
                }
            }
            let mut waiters = Vec::new();
            let mut flushes = Vec::new();
            for op in batch {
                match op {
                    Op::Add(entry, reply) => match self.book.add(entry, self.limits) {
                        Ok(()) => waiters.push(reply),
                        Err(full) => {
                            tracing::debug!(%full, "change feed outbox full: the webhook is answered 429");
                            self.metrics.count_outbox("full");
                            let _ = reply.send(false);
                        }
                    },
                    Op::Ack { contact, seq } => {
                        if self.book.ack(&contact, seq) {
                            acked_since.get_or_insert_with(Instant::now);
                        }
                    }
                    Op::Flush(done) => flushes.push(done),
                }
            }
            let due = acked_since.is_some_and(|at| at.elapsed() >= ACK_DELAY);
            if !waiters.is_empty() || !flushes.is_empty() || due {
                let needed = !waiters.is_empty() || acked_since.is_some();
                if needed {
                    self.commit(&mut waiters).await;
                    acked_since = None;
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
            self.publish();
        }
    }

    /// Reads what is stored, until it can; changes offered meanwhile are refused (429).
    async fn load(&mut self, ops: &mut mpsc::UnboundedReceiver<Op>) {
        let mut wait = Duration::from_millis(500);
        loop {
            match self.store.load().await {
                Ok(book) => {
                    self.book = book;
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the change feed's outbox; webhooks are answered 429 until it can");
                }
            }
            let until = tokio::time::Instant::now() + wait;
            while let Ok(Some(op)) = tokio::time::timeout_at(until, ops.recv()).await {
                if let Op::Add(_, reply) = op {
                    let _ = reply.send(false);
                }
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Writes the book; tells `waiters` whether their changes are stored.
    async fn commit(&mut self, waiters: &mut Vec<oneshot::Sender<bool>>) {
        let stored = self.write().await;
        for reply in waiters.drain(..) {
            let _ = reply.send(stored);
        }
    }

    async fn write(&mut self) -> bool {
        for _ in 0..=CONFLICT_RETRIES {
            if !self.fence.is_open() {
                // Another holder's now: it reads the outbox and delivers it.
                self.metrics.count_outbox("fenced");
                return false;
            }
            match self.store.write(&self.book).await {
                Ok(()) => {
                    self.metrics.count_outbox("written");
                    return true;
                }
                Err(StoreError::Conflict { .. }) => {
                    self.metrics.count_outbox("conflict");
                    match self.store.load().await {
                        Ok(theirs) => self.book.merge(&theirs),
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the change feed's outbox after a conflict");
                            return false;
                        }
                    }
                }
                Err(error) => {
                    self.metrics.count_outbox("failed");
                    tracing::warn!(%error, "cannot write the change feed's outbox");
                    return false;
                }
            }
        }
        false
    }

    /// Updates the stats and this outbox's share of the metrics' totals.
    fn publish(&mut self) {
        let now = OutboxStats {
            entries: self.book.len(),
            bytes: self.book.bytes(),
            oldest_ms: self.book.oldest_ms(),
        };
        self.metrics.outbox_delta(&self.reported, &now);
        self.reported = now;
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Stopped (the connection is gone or another holder has it): not counted here.
        self.metrics
            .outbox_delta(&self.reported, &OutboxStats::default());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
