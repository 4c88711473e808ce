//! In-process fan-out of live events to Subscribe streams.
//!
//! Events are routed per user: a direct notification touches only its recipient's
//! subscribers, a broadcast every subscriber. Publishing never waits: each subscriber has a
//! bounded queue, and when it is full the event is not queued but its id is remembered
//! ([`Subscriber::take_lag`]) so the stream catches up from the database. A slow subscriber
//! therefore neither blocks senders nor loses notifications.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::Notification;

/// Events queued per subscriber before it counts as lagging. Large enough to absorb bursts
/// (a broadcast storm, a thousand-recipient Send) without a database catch-up, small enough
/// that an idle subscriber costs little (the queue allocates lazily in blocks).
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Something a subscriber should hear about.
#[derive(Debug, Clone)]
pub enum Event {
    Notification(Arc<Notification>),
    Read(Arc<ReadEvent>),
}

/// Notifications a user marked read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEvent {
    pub ids: Vec<String>,
    pub all: bool,
    pub category: Option<String>,
}

/// One open Subscribe stream, as the hub sees it.
#[derive(Debug)]
pub struct Subscriber {
    key: u64,
    user_id: String,
    queue: mpsc::Sender<Event>,
    /// Smallest notification id that could not be queued since the last catch-up.
    lagged_from: Mutex<Option<Uuid>>,
}

impl Subscriber {
    /// The smallest notification id dropped since the last call, if any: the stream must
    /// re-read from the database everything from there on.
    pub fn take_lag(&self) -> Option<Uuid> {
        lock(&self.lagged_from).take()
    }

    fn offer(&self, event: &Event) {
        match self.queue.try_send(event.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Event::Notification(n))) => {
                // Ids are UUIDs by construction; an unparsable one cannot happen, and
                // skipping it is safer than a catch-up from the wrong place.
                if let Ok(id) = Uuid::parse_str(&n.id) {
                    let mut lag = lock(&self.lagged_from);
                    *lag = Some(lag.map_or(id, |current| current.min(id)));
                }
            }
            Err(mpsc::error::TrySendError::Full(Event::Read(_))) => {
                // Read events are not stored, so they cannot be caught up: a client that
                // fell this far behind re-reads its unread state from List.
                tracing::debug!(user_id = %self.user_id, "read event dropped for a lagging subscriber");
            }
            // The stream is going away; the guard removes it from the hub.
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

#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    by_user: HashMap<String, Vec<Arc<Subscriber>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map half-updated (every critical
    // section is a single insert/remove/iteration), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Registers a subscriber for `user_id`. Register before reading any backlog from the
    /// database, so nothing committed in between is missed.
    pub fn subscribe(self: &Arc<Self>, user_id: &str) -> Subscription {
        let (queue, events) = mpsc::channel(SUBSCRIBER_QUEUE);
        let mut inner = lock(&self.inner);
        inner.next_key += 1;
        let subscriber = Arc::new(Subscriber {
            key: inner.next_key,
            user_id: user_id.to_owned(),
            queue,
            lagged_from: Mutex::new(None),
        });
        inner
            .by_user
            .entry(user_id.to_owned())
            .or_default()
            .push(subscriber.clone());
        Subscription {
            subscriber,
            events,
            hub: self.clone(),
        }
    }

    fn remove(&self, subscriber: &Subscriber) {
        let mut inner = lock(&self.inner);
        if let Some(list) = inner.by_user.get_mut(&subscriber.user_id) {
            list.retain(|s| s.key != subscriber.key);
            if list.is_empty() {
                inner.by_user.remove(&subscriber.user_id);
            }
        }
    }

    /// Delivers a stored notification to its recipient's (or, for a broadcast, everyone's)
    /// subscribers. Call after the transaction committed.
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

    /// Tells every stream of `user_id` that notifications were marked read.
    pub fn publish_read(&self, user_id: &str, read: ReadEvent) {
        let event = Event::Read(Arc::new(read));
        let inner = lock(&self.inner);
        for subscriber in inner.by_user.get(user_id).into_iter().flatten() {
            subscriber.offer(&event);
        }
    }

    /// Open subscriptions, for tests and metrics.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.inner).by_user.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(recipient: Option<&str>) -> Notification {
        Notification {
            id: Uuid::now_v7().to_string(),
            category: "c".into(),
            content: "x".into(),
            link: String::new(),
            sender_id: String::new(),
            recipient_id: recipient.map(str::to_owned),
            created_at: 0,
            read_at: None,
        }
    }

    #[tokio::test]
    async fn routes_direct_to_the_recipient_and_broadcasts_to_all() {
        let hub = Arc::new(Hub::default());
        let mut alice = hub.subscribe("alice");
        let mut bob = hub.subscribe("bob");
        hub.publish_notification(notification(Some("alice")));
        hub.publish_notification(notification(None));
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
    async fn a_full_queue_records_the_smallest_dropped_id_and_unsubscribes_on_drop() {
        let hub = Arc::new(Hub::default());
        let sub = hub.subscribe("alice");
        for _ in 0..SUBSCRIBER_QUEUE {
            hub.publish_notification(notification(Some("alice")));
        }
        assert_eq!(sub.subscriber.take_lag(), None);
        let first_dropped = notification(Some("alice"));
        let first_id = Uuid::parse_str(&first_dropped.id).unwrap();
        hub.publish_notification(first_dropped);
        hub.publish_notification(notification(Some("alice")));
        assert_eq!(sub.subscriber.take_lag(), Some(first_id));
        assert_eq!(sub.subscriber.take_lag(), None);
        assert_eq!(hub.subscriber_count(), 1);
        drop(sub);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
