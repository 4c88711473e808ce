//! One Subscribe stream: a spawned producer feeding a small channel that tonic drains.
//!
//! Order of work, which is what makes "no gap, no duplicate" hold:
//! 1. register with the hub (live events start queueing),
//! 2. replay from the database everything after `resume_after`, oldest first,
//! 3. forward live events, skipping ids already delivered from the database,
//! 4. whenever the hub reports that this subscriber's queue overflowed, re-read from the
//!    database from the smallest dropped id on (again skipping what was delivered).
//!
//! Notifications commit in roughly, not exactly, id order (concurrent senders), so
//! duplicates are recognised by id within a time window rather than by a high-water mark.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use switchboard::{proto::notification::v1 as pb, time::to_timestamp};
use tokio::{sync::mpsc, time::MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use super::{SubscribeStream, convert};
use crate::{
    domain::Notification,
    hub::{Event, Hub, Subscription},
    store::NotificationStore,
};

/// Responses buffered between the producer and the HTTP/2 stream. Small on purpose: a
/// client that stops reading must make the producer wait (and the hub queue overflow into a
/// database catch-up) rather than pile notifications up in memory.
const OUTBOUND_BUFFER: usize = 16;

/// Rows read per database round trip during replay and catch-up.
const REPLAY_PAGE: usize = 500;

/// How long a delivered id is remembered for de-duplication. A notification can only be
/// seen twice if it was delivered live and is then re-read by a catch-up that starts at a
/// smaller id; that needs it to have been minted less than this long before a notification
/// that was minted earlier but published later, i.e. a Send transaction lasting this long.
const DEDUP_WINDOW: Duration = Duration::from_secs(60);

pub fn start(
    store: Arc<dyn NotificationStore>,
    hub: &Arc<Hub>,
    user_id: String,
    params: convert::SubscribeParams,
    heartbeat_interval: Duration,
    shutdown: CancellationToken,
) -> SubscribeStream {
    let (out, out_rx) = mpsc::channel(OUTBOUND_BUFFER);
    // Register before the first database read, so nothing commits unseen in between.
    let subscription = hub.subscribe(&user_id);
    let producer = Producer {
        store,
        subscription,
        user_id,
        categories: params.categories,
        out,
        shutdown: shutdown.clone(),
        delivered: Delivered::default(),
    };
    tokio::spawn(producer.run(params.resume_after, heartbeat_interval));

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
    delivered: Delivered,
}

impl Producer {
    async fn run(mut self, resume_after: Option<String>, heartbeat_interval: Duration) {
        match self.stream(resume_after, heartbeat_interval).await {
            Stop::Gone => {}
            Stop::Failed(status) => {
                let _ = self.out.send(Err(status)).await;
            }
        }
        tracing::debug!(user_id = %self.user_id, "subscribe stream ended");
    }

    async fn stream(&mut self, resume_after: Option<String>, heartbeat_interval: Duration) -> Stop {
        if let Some(after) = resume_after
            && let Err(stop) = self.deliver_from_db(after).await
        {
            return stop;
        }
        let start = tokio::time::Instant::now() + heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(start, heartbeat_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                () = self.shutdown.cancelled() => Err(Stop::Gone),
                () = self.out.closed() => Err(Stop::Gone),
                event = self.subscription.events.recv() => match event {
                    Some(event) => self.deliver_live(event).await,
                    // The hub only goes away with the server.
                    None => Err(Stop::Gone),
                },
                _ = heartbeat.tick() => {
                    self.delivered.prune();
                    self.emit(pb::subscribe_response::Event::Heartbeat(pb::Heartbeat {
                        server_time: Some(to_timestamp(switchboard::time::now_micros())),
                    }))
                    .await
                }
            };
            if let Err(stop) = step {
                return stop;
            }
            if let Some(dropped_from) = self.subscription.subscriber.take_lag() {
                tracing::debug!(user_id = %self.user_id, "subscriber fell behind; catching up from the database");
                // Everything from the smallest dropped id on, inclusive.
                let before = Uuid::from_u128(dropped_from.as_u128().saturating_sub(1));
                if let Err(stop) = self.deliver_from_db(before.hyphenated().to_string()).await {
                    return stop;
                }
            }
        }
    }

    async fn deliver_live(&mut self, event: Event) -> Result<(), Stop> {
        match event {
            Event::Notification(n) => {
                if self.wants(&n) && self.delivered.insert(&n.id) {
                    self.emit_notification(&n).await?;
                }
                Ok(())
            }
            Event::Read(read) => {
                self.emit(pb::subscribe_response::Event::Read(convert::read_event(
                    &read,
                )))
                .await
            }
        }
    }

    /// Delivers every visible notification with an id greater than `after`, oldest first.
    async fn deliver_from_db(&mut self, mut after: String) -> Result<(), Stop> {
        loop {
            let page = self
                .store
                .after(&self.user_id, &after, &self.categories, REPLAY_PAGE)
                .await
                .map_err(|err| Stop::Failed(err.into()))?;
            let done = page.len() < REPLAY_PAGE;
            for n in &page {
                if self.delivered.insert(&n.id) {
                    self.emit_notification(n).await?;
                }
            }
            match page.last() {
                Some(last) if !done => after = last.id.clone(),
                _ => return Ok(()),
            }
        }
    }

    fn wants(&self, n: &Notification) -> bool {
        n.is_visible_to(&self.user_id)
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

/// Ids delivered recently, for de-duplication between replay/catch-up and live events.
#[derive(Default)]
struct Delivered {
    ids: HashSet<u128>,
    order: VecDeque<(Instant, u128)>,
}

impl Delivered {
    /// Remembers `id`; false if it was delivered already.
    fn insert(&mut self, id: &str) -> bool {
        let Ok(key) = Uuid::parse_str(id).map(|u| u.as_u128()) else {
            return true;
        };
        if !self.ids.insert(key) {
            return false;
        }
        self.order.push_back((Instant::now(), key));
        true
    }

    fn prune(&mut self) {
        let Some(horizon) = Instant::now().checked_sub(DEDUP_WINDOW) else {
            return;
        };
        while let Some(&(at, key)) = self.order.front() {
            if at >= horizon {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&key);
        }
        if self.ids.is_empty() {
            // Give the memory of a past burst back; idle streams should stay small.
            self.ids.shrink_to_fit();
            self.order.shrink_to_fit();
        }
    }
}
