//! Group commit: concurrent writes of one kind share one write transaction.
//!
//! Every Send takes the notification log head's lock and every state change (MarkRead,
//! MarkSeen, ...) the read-event log head's (see docs/subscribe-cursor.md), so each kind commits
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

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use switchboard::{
    Error,
    metrics::{Histogram, Registry},
    time::now_micros,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{Marked, NewMark, NewSend, Notification},
    feed::Feed,
    store::{MarkBatches, SendBatches, SendOutcome},
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
    type Done = SendOutcome;
    const MAX_ITEMS: usize = MAX_BATCH_SENDS;
    const MAX_ROWS: usize = MAX_BATCH_ROWS;

    fn rows(send: &NewSend) -> usize {
        send.row_count()
    }

    async fn commit(&self, sends: &[NewSend], now: i64) -> Result<Vec<SendOutcome>, Error> {
        self.0.send_batch(sends, now).await
    }

    fn publish(&self, feed: &Feed, done: Vec<&SendOutcome>) {
        let mut created: Vec<Notification> = done
            .into_iter()
            .filter(|sent| sent.created)
            .flat_map(|sent| sent.notifications.iter().cloned())
            .collect();
        created.sort_by_key(|n| n.seq);
        feed.committed(created);
    }
}

/// State changes (MarkRead, MarkSeen, ...): the feed is woken to read the new read events
/// itself.
pub struct Marks(pub Arc<dyn MarkBatches>);

#[async_trait]
impl Batch for Marks {
    type Item = NewMark;
    type Done = Marked;
    const MAX_ITEMS: usize = 256;
    /// Two of the largest state changes by ids.
    const MAX_ROWS: usize = 2 * crate::domain::MAX_SELECTION_IDS;

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
    /// `switchboard_group_commit_batch_size`, when the server keeps metrics.
    batch_sizes: OnceLock<Histogram>,
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

    /// Records each committed batch's size in `registry`, labelled `committer`.
    pub fn observe_batch_sizes(&self, registry: &Registry, committer: &'static str) {
        let _ = self.batch_sizes.set(registry.histogram(
            "switchboard_group_commit_batch_size",
            "Writes committed per group-commit transaction, by committer (send or state).",
            vec![("committer", committer.into())],
        ));
    }

    fn record_commit(&self, writes: usize) {
        self.committed.fetch_add(writes as u64, Ordering::AcqRel);
        self.batches.fetch_add(1, Ordering::AcqRel);
        if let Some(sizes) = self.batch_sizes.get() {
            sizes.record(writes as f64);
        }
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
        if let Some(fault) = commit(&batch, &feed, &stats, pending).await {
            // Whatever queued while that batch waited for the database would wait as long
            // again only to fail the same way (a Send behind a failing batch took twice the
            // pool's acquire timeout, 4 s): it is answered now, and callers retry.
            fail_queued(&mut requests, &mut carried, &fault);
        }
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

/// How many times a batch the database aborted (deadlock, serialization failure: rolled
/// back whole, through no fault of its writes) is tried again before its callers are told
/// ABORTED.
const ABORTED_RETRIES: usize = 2;

/// Builds one kind of [`Error`] from its reason (`Error::Unavailable`, ...).
type MakeError = fn(String) -> Error;

/// When the database, not one of the writes, is the problem (unreachable, storage failing,
/// a conflict that rolled the batch back): how to build the error every caller gets.
fn database_fault(err: &Error) -> Option<(MakeError, &str)> {
    match err {
        Error::Unavailable(reason) => Some((Error::Unavailable, reason)),
        Error::StorageFailing(reason) => Some((Error::StorageFailing, reason)),
        Error::Aborted(reason) => Some((Error::Aborted, reason)),
        _ => None,
    }
}

/// Answers every write queued right now (and the one carried over) with `fault`.
fn fail_queued<B: Batch>(
    requests: &mut mpsc::Receiver<Request<B>>,
    carried: &mut Option<Request<B>>,
    fault: &Error,
) {
    let Some((fault, reason)) = database_fault(fault) else {
        return;
    };
    let queued = carried
        .take()
        .into_iter()
        .chain(std::iter::from_fn(|| requests.try_recv().ok()));
    for request in queued {
        let _ = request.reply.send(Err(fault(reason.to_owned())));
    }
}

/// How long a batch must have waited for a database that then failed it for the writes queued
/// meanwhile to be failed with it: the database is not answering (the pool's acquire timed
/// out), and another attempt would wait as long. A batch that failed at once (a refused
/// connection) costs the next one little, so it gets its own attempt.
const SLOW_FAILURE: Duration = Duration::from_millis(250);

/// Commits one batch and answers its callers (a caller that went away is no reason to undo
/// anything: a retried Send with its idempotency key finds the committed one, a MarkRead
/// marks nothing twice). Returns the error when the database could not take writes at all
/// after keeping the batch waiting ([`SLOW_FAILURE`]), so what queued meanwhile is answered
/// at once rather than after as long a wait again.
async fn commit<B: Batch>(
    batch: &B,
    feed: &Feed,
    stats: &CommitStats,
    pending: Vec<Request<B>>,
) -> Option<Error> {
    let (items, replies): (Vec<B::Item>, Vec<Reply<B>>) =
        pending.into_iter().map(|r| (r.item, r.reply)).unzip();
    let now = now_micros();
    let started = Instant::now();
    let mut attempt = batch.commit(&items, now).await;
    for _ in 0..ABORTED_RETRIES {
        match attempt {
            Err(Error::Aborted(_)) => attempt = batch.commit(&items, now).await,
            _ => break,
        }
    }
    let mut unavailable = None;
    let results: Vec<Result<B::Done, Error>> = match attempt {
        Ok(done) => {
            tracing::debug!(writes = done.len(), "batch committed");
            stats.record_commit(done.len());
            done.into_iter().map(Ok).collect()
        }
        Err(err) => match database_fault(&err) {
            // The database is out of reach, its storage refuses writes, or it rolled the
            // batch back again and again: no write is at fault. Retrying each alone could
            // store Sends twice (the connection may have died during COMMIT) and would only
            // multiply the wait. Every caller gets the error and may retry.
            Some((fault, reason)) => {
                if !matches!(err, Error::Aborted(_)) && started.elapsed() >= SLOW_FAILURE {
                    unavailable = Some(fault(reason.to_owned()));
                }
                items
                    .iter()
                    .map(|_| Err(fault(reason.to_owned())))
                    .collect()
            }
            None if items.len() == 1 => vec![Err(err)],
            // The database refused the batch (and rolled it back): find the write it refused.
            None => {
                tracing::warn!(error = ?err, writes = items.len(), "batch refused; committing its writes one by one");
                stats.refused.fetch_add(1, Ordering::AcqRel);
                one_by_one(batch, stats, &items, now).await
            }
        },
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
    unavailable
}

async fn one_by_one<B: Batch>(
    batch: &B,
    stats: &CommitStats,
    items: &[B::Item],
    now: i64,
) -> Vec<Result<B::Done, Error>> {
    let mut results = Vec::with_capacity(items.len());
    // Once the database is out of reach (or its storage fails) the rest would only wait to
    // fail the same way.
    let mut unreachable: Option<(MakeError, String)> = None;
    for item in items {
        if let Some((fault, reason)) = &unreachable {
            results.push(Err(fault(reason.clone())));
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
            Err(err @ (Error::Unavailable(_) | Error::StorageFailing(_))) => {
                unreachable = database_fault(err).map(|(fault, reason)| (fault, reason.to_owned()));
            }
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
        /// Errors the next batches fail with, in order, before the store works again.
        failures: Mutex<std::collections::VecDeque<Error>>,
    }

    #[async_trait]
    impl SendBatches for GatedStore {
        async fn send_batch(
            &self,
            sends: &[NewSend],
            _now: i64,
        ) -> Result<Vec<SendOutcome>, Error> {
            self.batches
                .lock()
                .unwrap()
                .push(sends.iter().map(NewSend::row_count).collect());
            let _ = self.entered.send(());
            let _open = self.gate.acquire().await.unwrap();
            if self.fail_with_unavailable {
                return Err(Error::Unavailable("down".into()));
            }
            if let Some(err) = self.failures.lock().unwrap().pop_front() {
                return Err(err);
            }
            Ok(sends
                .iter()
                .map(|_| SendOutcome {
                    notifications: Vec::new(),
                    muted_recipient_ids: Vec::new(),
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
            failures: Mutex::default(),
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
            data: None,
            critical: false,
        }
    }

    impl Harness {
        fn submit(&self, send: NewSend) -> JoinHandle<Result<SendOutcome, Error>> {
            let committer = self.committer.clone();
            tokio::spawn(async move { committer.submit(send).await })
        }

        /// Submits one Send and waits until the store holds it: the committer is busy.
        async fn occupy(&mut self) -> JoinHandle<Result<SendOutcome, Error>> {
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

    /// A database that kept the batch waiting before failing it (an acquire timeout) would
    /// keep the next batch waiting as long: what queued meanwhile fails with the first, so no
    /// Send takes twice the timeout.
    #[tokio::test]
    async fn writes_queued_behind_a_batch_the_database_failed_slowly_fail_with_it() {
        let mut h = harness(true);
        let first = h.occupy().await;
        let rest: Vec<_> = (0..5).map(|_| h.submit(send_to(1))).collect();
        h.until_submitted(6).await;
        tokio::time::sleep(SLOW_FAILURE).await;
        h.store.gate.add_permits(1);
        for sent in std::iter::once(first).chain(rest) {
            assert!(matches!(sent.await.unwrap(), Err(Error::Unavailable(_))));
        }
        assert_eq!(
            h.batches().len(),
            1,
            "the queued Sends were not tried again"
        );
    }

    /// Storage that refuses writes (disk full) is no write's fault: the batch is not split
    /// into one transaction per Send, each failing the same way.
    #[tokio::test]
    async fn failing_storage_fails_the_batch_without_retrying_each_send() {
        let mut h = harness(false);
        let first = h.occupy().await;
        let rest: Vec<_> = (0..5).map(|_| h.submit(send_to(1))).collect();
        h.until_submitted(6).await;
        h.store.failures.lock().unwrap().extend([
            Error::StorageFailing("full".into()),
            Error::StorageFailing("full".into()),
        ]);
        h.store.gate.add_permits(1);
        for sent in std::iter::once(first).chain(rest) {
            assert!(matches!(sent.await.unwrap(), Err(Error::StorageFailing(_))));
        }
        assert_eq!(h.batches().len(), 2, "one attempt per batch, none per send");
        assert_eq!(h.stats.refused(), 0);
    }

    /// A batch the database aborted (deadlock, serialization failure) was rolled back whole
    /// through no fault of its writes: it is tried again as it is.
    #[tokio::test]
    async fn an_aborted_batch_is_tried_again_whole() {
        let mut h = harness(false);
        h.store.failures.lock().unwrap().extend([
            Error::Aborted("deadlock".into()),
            Error::Aborted("serialization".into()),
        ]);
        let first = h.occupy().await;
        h.store.gate.add_permits(1);
        assert!(first.await.unwrap().is_ok());
        assert_eq!(h.batches().len(), 3, "tried three times");
        assert_eq!(h.stats.refused(), 0, "not split into single writes");
        assert_eq!(h.stats.committed(), 1);
    }

    #[tokio::test]
    async fn a_batch_aborted_again_and_again_answers_aborted() {
        let mut h = harness(false);
        h.store
            .failures
            .lock()
            .unwrap()
            .extend((0..=ABORTED_RETRIES).map(|_| Error::Aborted("deadlock".into())));
        let first = h.occupy().await;
        h.store.gate.add_permits(1);
        assert!(matches!(first.await.unwrap(), Err(Error::Aborted(_))));
        assert_eq!(h.batches().len(), ABORTED_RETRIES + 1);
    }
}
