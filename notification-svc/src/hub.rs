//! In-process fan-out of the feed to Subscribe streams.
//!
//! The feed (`feed.rs`) publishes every committed notification and read event here, in
//! commit order. Events are routed per user: a direct notification touches only its
//! recipient's subscribers, a broadcast every subscriber. Publishing never waits: each
//! subscriber has a bounded queue, and when it is full the event is dropped for that
//! subscriber and the subscriber is marked lagging ([`Subscriber::take_lag`]); its stream then
//! re-reads from the database after the last position it delivered. A slow subscriber
//! therefore neither blocks anyone nor loses notifications.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;

use switchboard::Error;

use crate::domain::{Notification, StateEvent};

/// Events queued per subscriber before it counts as lagging. Large enough to absorb bursts
/// (a broadcast storm, a thousand-recipient Send) without a database catch-up, small enough
/// that an idle subscriber costs little (the queue allocates lazily in blocks).
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Something a subscriber should hear about.
#[derive(Debug, Clone)]
pub enum Event {
    /// Just stored by a Send.
    Notification(Arc<Notification>),
    /// Woke from a snooze.
    Woke(Arc<Notification>),
    /// A state change (read, seen, archived, ...) of one of the user's sessions.
    State(Arc<StateEvent>),
}

/// One open Subscribe stream, as the hub sees it.
#[derive(Debug)]
pub struct Subscriber {
    key: u64,
    user_id: String,
    queue: mpsc::Sender<Event>,
    lagging: AtomicBool,
}

impl Subscriber {
    /// Whether events were dropped since the last call: the stream must re-read from the
    /// database after the last position it delivered.
    pub fn take_lag(&self) -> bool {
        self.lagging.swap(false, Ordering::AcqRel)
    }

    fn offer(&self, event: &Event) {
        match self.queue.try_send(event.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Event::Notification(_) | Event::Woke(_))) => {
                self.lagging.store(true, Ordering::Release);
            }
            Err(mpsc::error::TrySendError::Full(Event::State(_))) => {
                // State events are not replayed: a client this far behind re-reads its state
                // from List. Marking it lagging sends it fresh counts after its catch-up.
                self.lagging.store(true, Ordering::Release);
                tracing::debug!(user_id = %self.user_id, "state event dropped for a lagging subscriber");
            }
            // The stream is going away; its guard removes it from the hub.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Registration of one subscriber; unregisters on drop.
pub struct Subscription {
    pub subscriber: Arc<Subscriber>,
    pub events: mpsc::Receiver<Event>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.subscriber);
    }
}

/// Caps on open streams: each holds a task, two queues and an HTTP/2 stream, so an
/// unbounded number would let one client (or a reconnect storm) exhaust memory. The
/// defaults are the flags' (`Config::stream_limits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_user: usize,
    pub total: usize,
}

#[derive(Debug)]
pub struct Hub {
    inner: Mutex<Inner>,
    limits: Limits,
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    total: usize,
    by_user: HashMap<String, Vec<Arc<Subscriber>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map half-updated (every critical
    // section is a single insert/remove/iteration), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When a client refused for the server's stream cap may try again: soon, since streams come
/// and go all the time and a balancer may send the retry to another replica.
const SERVER_FULL_RETRY: Duration = Duration::from_secs(1);

/// When a client refused for its user's stream cap may try again: one of that user's own
/// streams (a closed tab, a dead laptop found by keepalive) has to end first, which takes a
/// while; retrying sooner only adds load.
const USER_FULL_RETRY: Duration = Duration::from_secs(10);

impl Hub {
    pub fn with_limits(limits: Limits) -> Self {
        Hub {
            inner: Mutex::default(),
            limits,
        }
    }

    /// Registers a subscriber for `user_id`, unless the user or the process is at its cap.
    pub fn subscribe(self: &Arc<Self>, user_id: &str) -> Result<Subscription, Error> {
        let mut inner = lock(&self.inner);
        if inner.total >= self.limits.total {
            return Err(Error::ResourceExhausted {
                message: "too many open Subscribe streams on this server; retry later".into(),
                retry_after: SERVER_FULL_RETRY,
            });
        }
        let open = inner.by_user.get(user_id).map_or(0, Vec::len);
        if open >= self.limits.per_user {
            return Err(Error::ResourceExhausted {
                message: format!(
                    "at most {} open Subscribe streams per user",
                    self.limits.per_user
                ),
                retry_after: USER_FULL_RETRY,
            });
        }
        let (queue, events) = mpsc::channel(SUBSCRIBER_QUEUE);
        inner.total += 1;
        inner.next_key += 1;
        let subscriber = Arc::new(Subscriber {
            key: inner.next_key,
            user_id: user_id.to_owned(),
            queue,
            lagging: AtomicBool::new(false),
        });
        inner
            .by_user
            .entry(user_id.to_owned())
            .or_default()
            .push(subscriber.clone());
        Ok(Subscription {
            subscriber,
            events,
            hub: self.clone(),
        })
    }

    fn remove(&self, subscriber: &Subscriber) {
        let mut inner = lock(&self.inner);
        let Some(list) = inner.by_user.get_mut(&subscriber.user_id) else {
            return;
        };
        let before = list.len();
        list.retain(|s| s.key != subscriber.key);
        let removed = before - list.len();
        if list.is_empty() {
            inner.by_user.remove(&subscriber.user_id);
        }
        inner.total -= removed;
    }

    /// Delivers a committed notification to its recipient's (or, for a broadcast,
    /// everyone's) subscribers. Called by the feed, in commit order.
    pub fn publish_notification(&self, notification: Notification) {
        let recipient = notification.recipient_id.clone();
        let event = Event::Notification(Arc::new(notification));
        let inner = lock(&self.inner);
        match &recipient {
            Some(user_id) => {
                for subscriber in inner.by_user.get(user_id).into_iter().flatten() {
                    subscriber.offer(&event);
                }
            }
            None => {
                for subscriber in inner.by_user.values().flatten() {
                    subscriber.offer(&event);
                }
            }
        }
    }

    /// Delivers a notification that woke for `user_id` to that user's subscribers only (for a
    /// broadcast too: it woke for the one who snoozed it). Called by the feed, in commit order.
    pub fn publish_wake(&self, user_id: &str, notification: Notification) {
        let event = Event::Woke(Arc::new(notification));
        let inner = lock(&self.inner);
        for subscriber in inner.by_user.get(user_id).into_iter().flatten() {
            subscriber.offer(&event);
        }
    }

    /// Tells every stream of the event's user that notifications changed state.
    pub fn publish_state(&self, change: StateEvent) {
        let user_id = change.user_id.clone();
        let event = Event::State(Arc::new(change));
        let inner = lock(&self.inner);
        for subscriber in inner.by_user.get(&user_id).into_iter().flatten() {
            subscriber.offer(&event);
        }
    }

    /// Open subscriptions, for tests and metrics.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.inner).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(recipient: Option<&str>, seq: i64) -> Notification {
        Notification {
            id: uuid::Uuid::now_v7().to_string(),
            category: "c".into(),
            content: "x".into(),
            link: String::new(),
            sender_id: String::new(),
            recipient_id: recipient.map(str::to_owned),
            created_at: 0,
            read_at: None,
            seen_at: None,
            archived_at: None,
            snoozed_until: None,
            seq,
            data: None,
            critical: false,
        }
    }

    #[tokio::test]
    async fn routes_direct_to_the_recipient_and_broadcasts_to_all() {
        let hub = Arc::new(Hub::with_limits(Limits {
            per_user: 16,
            total: 100,
        }));
        let mut alice = hub.subscribe("alice").unwrap();
        let mut bob = hub.subscribe("bob").unwrap();
        hub.publish_notification(notification(Some("alice"), 1));
        hub.publish_notification(notification(None, 2));
        assert!(
            matches!(alice.events.recv().await, Some(Event::Notification(n)) if n.recipient_id.as_deref() == Some("alice"))
        );
        assert!(
            matches!(alice.events.recv().await, Some(Event::Notification(n)) if n.is_broadcast())
        );
        assert!(
            matches!(bob.events.recv().await, Some(Event::Notification(n)) if n.is_broadcast())
        );
        assert!(bob.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_marks_the_subscriber_lagging_and_drop_unsubscribes() {
        let hub = Arc::new(Hub::with_limits(Limits {
            per_user: 16,
            total: 100,
        }));
        let sub = hub.subscribe("alice").unwrap();
        for seq in 0..SUBSCRIBER_QUEUE as i64 {
            hub.publish_notification(notification(Some("alice"), 8 + seq));
        }
        assert!(!sub.subscriber.take_lag());
        hub.publish_notification(notification(Some("alice"), 9000));
        assert!(sub.subscriber.take_lag());
        assert!(!sub.subscriber.take_lag());
        assert_eq!(hub.subscriber_count(), 1);
        drop(sub);
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[test]
    fn streams_are_capped_per_user_and_in_total() {
        let hub = Arc::new(Hub::with_limits(Limits {
            per_user: 2,
            total: 3,
        }));
        let a1 = hub.subscribe("alice").unwrap();
        let _a2 = hub.subscribe("alice").unwrap();
        assert!(matches!(
            hub.subscribe("alice"),
            Err(Error::ResourceExhausted { .. })
        ));
        let _b1 = hub.subscribe("bob").unwrap();
        assert!(matches!(
            hub.subscribe("carol"),
            Err(Error::ResourceExhausted { .. })
        ));
        drop(a1);
        hub.subscribe("carol")
            .expect("room again after a stream closed");
    }
}
