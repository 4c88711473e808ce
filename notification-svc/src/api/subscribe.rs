//! One Subscribe stream: a spawned producer feeding a small channel that tonic drains.
//!
//! Every notification has a position in the commit-ordered log (`seq`), and the hub receives
//! them in that order, so a stream keeps one number, the position of the last notification it
//! delivered (its watermark), and "no gap, no duplicate" follows:
//! 1. register with the hub, then take the starting position: the `resume_after`
//!    notification's, else the log's head at that moment,
//! 2. with `resume_after`, replay from the database everything after that position, oldest
//!    first, moving the watermark,
//! 3. forward live events whose position is past the watermark,
//! 4. when the hub reports a dropped event (queue full), re-read from the database after the
//!    watermark, then go on with the queue (skipping what the database already gave).
//!
//! The stream also sends the user's inbox counts: once when it is live (after any replay),
//! then whenever an event may have changed them (a notification or wake for the user, a state
//! change, a preference change, a catch-up); with them it reads the preferences and sends
//! them when they changed. Such events only mark the counts stale; they are read
//! [`COUNTS_COALESCE`] after the first of them, so a burst costs one counts query (at most
//! one per that interval however long it lasts), and counts equal to the last ones sent are
//! not sent again.
//!
//! See docs/subscribe-cursor.md for why positions, not ids, are the cursor.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{Stream, StreamExt, stream};
use switchboard::{proto::notification::v1 as pb, time::to_timestamp};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::convert;
use crate::{
    domain::Notification,
    hub::{Event, Subscription},
    metrics::ServiceMetrics,
    preferences::{Mute, is_muted},
    store::NotificationStore,
};

/// The stream a Subscribe answers with.
pub type SubscribeStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

/// Responses buffered between the producer and the HTTP/2 stream. Small on purpose: a
/// client that stops reading must make the producer wait (and the hub queue overflow into a
/// database catch-up) rather than pile notifications up in memory.
const OUTBOUND_BUFFER: usize = 16;

/// Rows read per database round trip during replay and catch-up.
const REPLAY_PAGE: usize = 500;

/// How long after the first change to a user's counts the stream reads them: what else
/// arrives meanwhile (the rest of a batch of Sends, of a mark-all, of a wake) is covered by
/// the same read. Short enough for a badge to follow at once.
pub const COUNTS_COALESCE: Duration = Duration::from_millis(50);

/// What every stream of a process did, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct StreamStats {
    counts_reads: AtomicU64,
}

impl StreamStats {
    /// Counts read for streams so far (each read is one query).
    pub fn counts_reads(&self) -> u64 {
        self.counts_reads.load(Ordering::Acquire)
    }
}

/// Where a stream starts.
pub struct Start {
    pub subscription: Subscription,
    /// Deliver only what comes after this position.
    pub watermark: i64,
    /// Read what the database has after `watermark` first (resuming).
    pub replay: bool,
    pub user_id: String,
    pub categories: Vec<String>,
    pub stats: Arc<StreamStats>,
    pub metrics: Arc<ServiceMetrics>,
}

pub fn start(
    store: Arc<dyn NotificationStore>,
    start: Start,
    heartbeat_interval: Duration,
    shutdown: CancellationToken,
) -> SubscribeStream {
    let (out, out_rx) = mpsc::channel(OUTBOUND_BUFFER);
    let producer = Producer {
        store,
        subscription: start.subscription,
        user_id: start.user_id,
        categories: start.categories,
        out,
        shutdown: shutdown.clone(),
        watermark: start.watermark,
        counts_due: None,
        counts_sent: None,
        mutes: None,
        stats: start.stats,
        metrics: start.metrics,
    };
    tokio::spawn(producer.run(start.replay, heartbeat_interval));

    // End the response with UNAVAILABLE at shutdown even if the client is not reading and
    // the producer is stuck waiting for buffer space. tonic ends the call at the first error,
    // so the status appended after a producer error is never sent.
    let stream = ReceiverStream::new(out_rx)
        .take_until(shutdown.cancelled_owned())
        .chain(stream::once(async {
            Err(Status::unavailable(
                "server shutting down; resubscribe with resume_after",
            ))
        }));
    Box::pin(stream)
}

/// Why the producer stopped.
enum Stop {
    /// The client went away or the server is shutting down.
    Gone,
    /// Reported to the client as the stream's final status.
    Failed(Status),
}

struct Producer {
    store: Arc<dyn NotificationStore>,
    subscription: Subscription,
    user_id: String,
    categories: Vec<String>,
    out: mpsc::Sender<Result<pb::SubscribeResponse, Status>>,
    shutdown: CancellationToken,
    /// Position of the last notification delivered (or known not to be for this stream).
    watermark: i64,
    /// When to read and send the user's counts: set by the first change since the last read.
    counts_due: Option<Instant>,
    /// The counts last sent, so unchanged ones are not sent again.
    counts_sent: Option<pb::Counts>,
    /// The user's mutes as of the last counts read (the first one comes before anything
    /// live): the broadcasts they hide are not delivered, as List does not show them. A
    /// change made meanwhile applies from the next read, which its log entry triggers;
    /// mutes that differ from these are sent as `preferences` then.
    mutes: Option<Vec<Mute>>,
    stats: Arc<StreamStats>,
    metrics: Arc<ServiceMetrics>,
}

impl Producer {
    async fn run(mut self, replay_first: bool, heartbeat_interval: Duration) {
        match self.stream(replay_first, heartbeat_interval).await {
            Stop::Gone => {}
            Stop::Failed(status) => {
                let _ = self.out.send(Err(status)).await;
            }
        }
        tracing::debug!(user_id = %self.user_id, "subscribe stream ended");
    }

    async fn stream(&mut self, replay_first: bool, heartbeat_interval: Duration) -> Stop {
        if replay_first && let Err(stop) = self.deliver_from_db().await {
            return stop;
        }
        // Live: the counts as they stand now.
        if let Err(stop) = self.emit_counts().await {
            return stop;
        }
        let start = tokio::time::Instant::now() + heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(start, heartbeat_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let counts_due = self.counts_due;
            let step = tokio::select! {
                // Counts that are due go before queued events, so a long burst still sends
                // them every COUNTS_COALESCE.
                biased;
                () = self.shutdown.cancelled() => Err(Stop::Gone),
                () = self.out.closed() => Err(Stop::Gone),
                () = tokio::time::sleep_until(counts_due.unwrap_or_else(Instant::now)),
                    if counts_due.is_some() => self.emit_counts().await,
                event = self.subscription.events.recv() => match event {
                    Some(event) => self.deliver_live(event).await,
                    // The hub only goes away with the server.
                    None => Err(Stop::Gone),
                },
                _ = heartbeat.tick() => {
                    self.emit(pb::subscribe_response::Event::Heartbeat(pb::Heartbeat {
                        server_time: Some(to_timestamp(switchboard::time::now_micros())),
                    }))
                    .await
                }
            };
            if let Err(stop) = step {
                return stop;
            }
            if self.subscription.subscriber.take_lag() {
                self.metrics.caught_up();
                tracing::debug!(user_id = %self.user_id, "subscriber fell behind; catching up from the database");
                if let Err(stop) = self.deliver_from_db().await {
                    return stop;
                }
                // Events dropped meanwhile may have changed them.
                self.counts_changed();
            }
        }
    }

    async fn deliver_live(&mut self, event: Event) -> Result<(), Stop> {
        match event {
            Event::Notification(n) => self.deliver_notification(&n, true).await,
            Event::Woke(n) => self.deliver_notification(&n, false).await,
            Event::State(change) => {
                self.counts_changed();
                match convert::state_event(&change) {
                    Some(event) => self.emit(event).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// A notification from the live feed: `sent` when a Send just stored it (its delivery lag
    /// is measured), not when it woke from a snooze (stored long ago).
    async fn deliver_notification(&mut self, n: &Notification, sent: bool) -> Result<(), Stop> {
        if n.seq > self.watermark {
            self.watermark = n.seq;
            // New (or woken) for the user: in the counts whatever the category filter.
            if n.is_visible_to(&self.user_id) {
                self.counts_changed();
            }
            if self.wants(n) {
                self.emit_notification(n).await?;
                if sent {
                    self.metrics.delivered(n.created_at);
                }
            }
        }
        Ok(())
    }

    /// The user's counts may have changed: read them soon, with whatever else changes them
    /// meanwhile.
    fn counts_changed(&mut self) {
        if self.counts_due.is_none() {
            self.counts_due = Some(Instant::now() + COUNTS_COALESCE);
        }
    }

    /// Reads the user's preferences and counts and sends each that differs from the last one
    /// (the preferences read first are the stream's starting point, not news).
    async fn emit_counts(&mut self) -> Result<(), Stop> {
        self.counts_due = None;
        self.stats.counts_reads.fetch_add(1, Ordering::AcqRel);
        let (mutes, counts) = self
            .store
            .inbox(&self.user_id, switchboard::time::now_micros())
            .await
            .map_err(|err| Stop::Failed(err.into()))?;
        let known = self.mutes.replace(mutes);
        if let (Some(known), Some(mutes)) = (known, &self.mutes)
            && known != *mutes
        {
            self.emit(pb::subscribe_response::Event::Preferences(
                convert::preferences(mutes),
            ))
            .await?;
        }
        let counts = convert::counts(&counts);
        if self.counts_sent.as_ref() == Some(&counts) {
            return Ok(());
        }
        self.emit(pb::subscribe_response::Event::Counts(counts.clone()))
            .await?;
        self.counts_sent = Some(counts);
        Ok(())
    }

    /// Delivers every visible notification after the watermark, in commit order.
    async fn deliver_from_db(&mut self) -> Result<(), Stop> {
        loop {
            let page = self
                .store
                .replay(&self.user_id, self.watermark, &self.categories, REPLAY_PAGE)
                .await
                .map_err(|err| Stop::Failed(err.into()))?;
            let done = page.len() < REPLAY_PAGE;
            for n in &page {
                self.watermark = n.seq;
                self.emit_notification(n).await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    fn wants(&self, n: &Notification) -> bool {
        n.is_visible_to(&self.user_id)
            && !(n.is_broadcast()
                && !n.critical
                && is_muted(&n.category, self.mutes.as_deref().unwrap_or_default()))
            && (self.categories.is_empty() || self.categories.binary_search(&n.category).is_ok())
    }

    async fn emit_notification(&self, n: &Notification) -> Result<(), Stop> {
        self.emit(pb::subscribe_response::Event::Notification(
            convert::notification(n),
        ))
        .await
    }

    /// Waits for buffer space, but not past shutdown.
    async fn emit(&self, event: pb::subscribe_response::Event) -> Result<(), Stop> {
        let response = pb::SubscribeResponse { event: Some(event) };
        tokio::select! {
            sent = self.out.send(Ok(response)) => sent.map_err(|_| Stop::Gone),
            () = self.shutdown.cancelled() => Err(Stop::Gone),
        }
    }
}
