//! Group commit: concurrent writes of one kind share one write transaction.
//!
//! Every Send takes the notification log head's lock and every MarkRead that changes
//! something the read-event log head's (see docs/subscribe-cursor.md), so each kind commits
//! one at a time whatever the pool size, and each write would pay a whole transaction (and,
//! on PostgreSQL, a flush and a NOTIFY) alone. Here the API hands each validated write to
//! the committer task of its kind, which takes the first waiting write plus everything
//! queued behind it (up to the kind's bounds), stores them with one call to the store, tells
//! the feed once and answers each caller. There is no timer: while one batch commits the
//! next one queues up, so batches grow exactly as fast as load does and a lone write waits
//! for nobody.
//!
//! A caller is answered only after the commit, so nothing acknowledged can be lost. A batch
//! that fails with a database error is committed again one write at a time, so one write the
//! database refuses fails alone and each caller gets its own answer.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use switchboard::{Error, time::now_micros};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{Marked, NewMark, NewSend, Notification},
    feed::Feed,
    store::{MarkBatches, SendBatches, Sent},
};

/// Most Sends in one transaction: bounds how long the head lock is held and what one
/// failure sends into the one-by-one retry.
pub const MAX_BATCH_SENDS: usize = 256;

/// Most notifications in one transaction (two of the largest Sends). A Send that does not
/// fit goes first in the next batch; a Send is never split.
pub const MAX_BATCH_ROWS: usize = 2 * crate::domain::MAX_RECIPIENTS;

/// One kind of write the committer batches: what a caller hands in, what it gets back, the
/// store call that commits many at once, and what the feed hears afterwards.
#[async_trait]
pub trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Done: Send + 'static;
    /// Most writes in one transaction.
    const MAX_ITEMS: usize;
    /// Most rows in one transaction; a write that does not fit starts the next batch.
    const MAX_ROWS: usize;

    fn rows(item: &Self::Item) -> usize;

    /// Stores `items` in one transaction and answers each, in order; all or nothing.
    async fn commit(&self, items: &[Self::Item], now: i64) -> Result<Vec<Self::Done>, Error>;

    /// Tells the feed what committed, in commit order.
    fn publish(&self, feed: &Feed, done: Vec<&Self::Done>);
}

/// Sends: the new notifications go to the feed as committed, without a read-back.
pub struct Sends(pub Arc<dyn SendBatches>);

#[async_trait]
impl Batch for Sends {
    type Item = NewSend;
    type Done = Sent;
    const MAX_ITEMS: usize = MAX_BATCH_SENDS;
    const MAX_ROWS: usize = MAX_BATCH_ROWS;

    fn rows(send: &NewSend) -> usize {
        send.row_count()
    }

    async fn commit(&self, sends: &[NewSend], now: i64) -> Result<Vec<Sent>, Error> {
        self.0.send_batch(sends, now).await
    }

    fn publish(&self, feed: &Feed, done: Vec<&Sent>) {
        let mut created: Vec<Notification> = done
            .into_iter()
            .filter(|sent| sent.created)
            .flat_map(|sent| sent.notifications.iter().cloned())
            .collect();
        created.sort_by_key(|n| n.seq);
        feed.committed(created);
    }
}

/// MarkReads: the feed is woken to read the new read events itself.
pub struct Marks(pub Arc<dyn MarkBatches>);

#[async_trait]
impl Batch for Marks {
    type Item = NewMark;
    type Done = Marked;
    const MAX_ITEMS: usize = 256;
    /// Two of the largest MarkReads by ids.
    const MAX_ROWS: usize = 2 * crate::domain::MAX_MARK_IDS;

    fn rows(mark: &NewMark) -> usize {
        mark.row_count()
    }

    async fn commit(&self, marks: &[NewMark], now: i64) -> Result<Vec<Marked>, Error> {
        self.0.mark_batch(marks, now).await
    }

    fn publish(&self, feed: &Feed, done: Vec<&Marked>) {
        if done.iter().any(|marked| marked.count > 0) {
            feed.poke();
        }
    }
}

/// Counters of one committer, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct CommitStats {
    submitted: AtomicU64,
    batches: AtomicU64,
    committed: AtomicU64,
    refused: AtomicU64,
}

impl CommitStats {
    /// Writes accepted into the queue so far.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Transactions committed (a write retried alone counts as one).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Acquire)
    }

    /// Writes committed (repeats of an idempotency key included).
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Batches the database refused, whose writes were then committed one by one.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    fn record_commit(&self, writes: usize) {
        self.committed.fetch_add(writes as u64, Ordering::AcqRel);
        self.batches.fetch_add(1, Ordering::AcqRel);
    }
}

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Done, Error>>;

struct Request<B: Batch> {
    item: B::Item,
    reply: Reply<B>,
}

/// Hands writes of one kind to its committer task. Cheap to clone.
pub struct Committer<B: Batch> {
    queue: mpsc::Sender<Request<B>>,
    stats: Arc<CommitStats>,
}

impl<B: Batch> Clone for Committer<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<B: Batch> Committer<B> {
    /// Writes waiting for the committer before [`Committer::submit`] itself waits
    /// (backpressure reaching the callers). Four full batches: enough to fill the next batch
    /// while one commits, few enough that a stalled database holds up callers instead of
    /// piling up work.
    pub const QUEUE_CAPACITY: usize = 4 * B::MAX_ITEMS;

    /// Starts the committer task. It commits until `stop` is cancelled (after the server has
    /// drained, so in-flight writes still commit), finishing the batch in progress; writes
    /// still queued then are answered UNAVAILABLE. Await the handle before closing the
    /// database.
    pub fn start(
        batch: B,
        feed: Feed,
        stats: Arc<CommitStats>,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (queue, requests) = mpsc::channel(Self::QUEUE_CAPACITY);
        let task = tokio::spawn(run(batch, feed, stats.clone(), requests, stop));
        (Committer { queue, stats }, task)
    }

    /// Stores `item` with whatever other writes are waiting, and answers once that commits.
    /// UNAVAILABLE when the committer has stopped (the caller may retry elsewhere): never
    /// waits forever.
    pub async fn submit(&self, item: B::Item) -> Result<B::Done, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { item, reply })
            .await
            .map_err(|_| stopped())?;
        self.stats.submitted.fetch_add(1, Ordering::AcqRel);
        // A dropped reply means the task ended without answering (it panicked): the write
        // may or may not have committed, which a retry (with the same idempotency key, for
        // a Send) settles.
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Unavailable("the service is shutting down; retry".into())
}

async fn run<B: Batch>(
    batch: B,
    feed: Feed,
    stats: Arc<CommitStats>,
    mut requests: mpsc::Receiver<Request<B>>,
    stop: CancellationToken,
) {
    // A write taken from the queue that did not fit the batch before: it starts the next.
    let mut carried: Option<Request<B>> = None;
    while !stop.is_cancelled() {
        let first = match carried.take() {
            Some(request) => request,
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                request = requests.recv() => match request {
                    Some(request) => request,
                    // Every sender is gone: nobody can be waiting.
                    None => return,
                },
            },
        };
        let mut rows = B::rows(&first.item);
        let mut pending = vec![first];
        while pending.len() < B::MAX_ITEMS {
            let Ok(next) = requests.try_recv() else { break };
            if rows + B::rows(&next.item) > B::MAX_ROWS {
                carried = Some(next);
                break;
            }
            rows += B::rows(&next.item);
            pending.push(next);
        }
        commit(&batch, &feed, &stats, pending).await;
    }
    // Stopped: refuse new writes and tell everyone still queued, rather than leave them to
    // their deadlines.
    requests.close();
    let queued = carried
        .into_iter()
        .chain(std::iter::from_fn(|| requests.try_recv().ok()));
    for request in queued {
        let _ = request.reply.send(Err(stopped()));
    }
}

/// Commits one batch and answers its callers (a caller that went away is no reason to undo
/// anything: a retried Send with its idempotency key finds the committed one, a MarkRead
/// marks nothing twice).
async fn commit<B: Batch>(batch: &B, feed: &Feed, stats: &CommitStats, pending: Vec<Request<B>>) {
    let (items, replies): (Vec<B::Item>, Vec<Reply<B>>) =
        pending.into_iter().map(|r| (r.item, r.reply)).unzip();
    let now = now_micros();
    let results: Vec<Result<B::Done, Error>> = match batch.commit(&items, now).await {
        Ok(done) => {
            tracing::debug!(writes = done.len(), "batch committed");
            stats.record_commit(done.len());
            done.into_iter().map(Ok).collect()
        }
        // The database is out of reach, or the connection died (possibly during COMMIT, so
        // the batch may be stored): retrying here could store Sends twice and would only
        // multiply the wait. Every caller gets UNAVAILABLE and may retry.
        Err(Error::Unavailable(reason)) => items
            .iter()
            .map(|_| Err(Error::Unavailable(reason.clone())))
            .collect(),
        Err(err) if items.len() == 1 => vec![Err(err)],
        // The database refused the batch (and rolled it back): find the write it refused.
        Err(err) => {
            tracing::warn!(error = ?err, writes = items.len(), "batch refused; committing its writes one by one");
            stats.refused.fetch_add(1, Ordering::AcqRel);
            one_by_one(batch, stats, &items, now).await
        }
    };
    // One transaction per batch (or per write when retried one by one), each in position
    // order: the feed hears them in that order.
    batch.publish(
        feed,
        results.iter().filter_map(|r| r.as_ref().ok()).collect(),
    );
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

async fn one_by_one<B: Batch>(
    batch: &B,
    stats: &CommitStats,
    items: &[B::Item],
    now: i64,
) -> Vec<Result<B::Done, Error>> {
    let mut results = Vec::with_capacity(items.len());
    // Once the database is out of reach the rest would only wait to fail the same way.
    let mut unreachable: Option<String> = None;
    for item in items {
        if let Some(reason) = &unreachable {
            results.push(Err(Error::Unavailable(reason.clone())));
            continue;
        }
        let result = batch
            .commit(std::slice::from_ref(item), now)
            .await
            .and_then(|mut done| {
                done.pop().ok_or_else(|| {
                    Error::Internal(anyhow::anyhow!("the store answered no write of one"))
                })
            });
        match &result {
            Ok(_) => stats.record_commit(1),
            Err(Error::Unavailable(reason)) => unreachable = Some(reason.clone()),
            Err(_) => {}
        }
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    //! The committer against a store that records each batch and holds the first one until
    //! the test opens its gate: what queues meanwhile is exactly what the next batch sees.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::domain::Audience;

    struct GatedStore {
        gate: Semaphore,
        /// Rows of every batch the store was asked to commit, in order.
        batches: Mutex<Vec<Vec<usize>>>,
        entered: mpsc::UnboundedSender<()>,
        fail_with_unavailable: bool,
    }

    #[async_trait]
    impl SendBatches for GatedStore {
        async fn send_batch(&self, sends: &[NewSend], _now: i64) -> Result<Vec<Sent>, Error> {
            self.batches
                .lock()
                .unwrap()
                .push(sends.iter().map(NewSend::row_count).collect());
            let _ = self.entered.send(());
            let _open = self.gate.acquire().await.unwrap();
            if self.fail_with_unavailable {
                return Err(Error::Unavailable("down".into()));
            }
            Ok(sends
                .iter()
                .map(|_| Sent {
                    notifications: Vec::new(),
                    created: true,
                })
                .collect())
        }
    }

    struct Harness {
        store: Arc<GatedStore>,
        committer: Committer<Sends>,
        task: JoinHandle<()>,
        stats: Arc<CommitStats>,
        stop: CancellationToken,
        entered: mpsc::UnboundedReceiver<()>,
    }

    fn harness(fail_with_unavailable: bool) -> Harness {
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let store = Arc::new(GatedStore {
            gate: Semaphore::new(0),
            batches: Mutex::default(),
            entered: entered_tx,
            fail_with_unavailable,
        });
        let stats = Arc::new(CommitStats::default());
        let stop = CancellationToken::new();
        let (committer, task) = Committer::start(
            Sends(store.clone()),
            Feed::default(),
            stats.clone(),
            stop.clone(),
        );
        Harness {
            store,
            committer,
            task,
            stats,
            stop,
            entered,
        }
    }

    fn send_to(recipients: usize) -> NewSend {
        NewSend {
            caller_id: "service".into(),
            audience: Audience::Recipients((0..recipients).map(|i| format!("u{i}")).collect()),
            category: "test".into(),
            content: "x".into(),
            link: String::new(),
            sender_id: "service".into(),
            idempotency_key: None,
        }
    }

    impl Harness {
        fn submit(&self, send: NewSend) -> JoinHandle<Result<Sent, Error>> {
            let committer = self.committer.clone();
            tokio::spawn(async move { committer.submit(send).await })
        }

        /// Submits one Send and waits until the store holds it: the committer is busy.
        async fn occupy(&mut self) -> JoinHandle<Result<Sent, Error>> {
            let first = self.submit(send_to(1));
            self.entered.recv().await.unwrap();
            first
        }

        async fn until_submitted(&self, count: u64) {
            while self.stats.submitted() < count {
                tokio::task::yield_now().await;
            }
        }

        fn batches(&self) -> Vec<Vec<usize>> {
            self.store.batches.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn what_queues_during_a_commit_goes_in_the_next_batch_up_to_the_send_bound() {
        let mut h = harness(false);
        let first = h.occupy().await;
        let rest: Vec<_> = (0..300).map(|_| h.submit(send_to(1))).collect();
        h.until_submitted(301).await;
        h.store.gate.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        for sent in rest {
            assert!(sent.await.unwrap().is_ok());
        }
        let sizes: Vec<usize> = h.batches().iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, MAX_BATCH_SENDS, 300 - MAX_BATCH_SENDS]);
        assert_eq!((h.stats.batches(), h.stats.committed()), (3, 301));
    }

    #[tokio::test]
    async fn a_send_that_does_not_fit_the_row_bound_starts_the_next_batch() {
        let mut h = harness(false);
        let first = h.occupy().await;
        let big: Vec<_> = (0..3).map(|_| h.submit(send_to(1000))).collect();
        h.until_submitted(4).await;
        h.store.gate.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        for sent in big {
            assert!(sent.await.unwrap().is_ok());
        }
        assert_eq!(h.batches(), [vec![1], vec![1000, 1000], vec![1000]]);
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_batch_without_retrying_each_send() {
        let mut h = harness(true);
        let first = h.occupy().await;
        let rest: Vec<_> = (0..5).map(|_| h.submit(send_to(1))).collect();
        h.until_submitted(6).await;
        h.store.gate.add_permits(1);
        for sent in std::iter::once(first).chain(rest) {
            assert!(matches!(sent.await.unwrap(), Err(Error::Unavailable(_))));
        }
        assert_eq!(h.batches().len(), 2, "one attempt per batch, none per send");
        assert_eq!(h.stats.batches(), 0);
    }

    #[tokio::test]
    async fn at_shutdown_the_batch_in_progress_commits_and_the_queue_is_told_unavailable() {
        let mut h = harness(false);
        let first = h.occupy().await;
        let queued: Vec<_> = (0..5).map(|_| h.submit(send_to(1))).collect();
        h.until_submitted(6).await;
        h.stop.cancel();
        h.store.gate.add_permits(1);
        assert!(
            first.await.unwrap().is_ok(),
            "the batch in progress commits"
        );
        for sent in queued {
            assert!(matches!(sent.await.unwrap(), Err(Error::Unavailable(_))));
        }
        assert_eq!(h.batches().len(), 1);
        h.task.await.unwrap();
        let late = h.committer.submit(send_to(1)).await;
        assert!(
            matches!(late, Err(Error::Unavailable(_))),
            "refused, not hung"
        );
    }
}
