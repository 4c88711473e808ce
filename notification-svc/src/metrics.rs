//! notification-svc's own series; the per-call gRPC ones come from `switchboard::observe`.

use std::sync::Arc;

use switchboard::metrics::{Counter, Histogram, Registry};

use crate::{domain::Notification, hub::Hub};

/// What the API, the streams and the committers record.
pub struct ServiceMetrics {
    stored_direct: Counter,
    stored_broadcast: Counter,
    catchups: Counter,
    delivery_lag: Histogram,
}

impl Default for ServiceMetrics {
    /// Records nothing.
    fn default() -> Self {
        Self::new(&Registry::disabled())
    }
}

impl ServiceMetrics {
    pub fn new(registry: &Registry) -> Self {
        const STORED: &str = "switchboard_notifications_stored_total";
        const STORED_HELP: &str =
            "Notifications stored by Send: one per recipient (direct) or one per broadcast.";
        ServiceMetrics {
            stored_direct: registry.counter(STORED, STORED_HELP, vec![("kind", "direct".into())]),
            stored_broadcast: registry.counter(
                STORED,
                STORED_HELP,
                vec![("kind", "broadcast".into())],
            ),
            catchups: registry.counter(
                "switchboard_stream_catchups_total",
                "Times a Subscribe stream fell behind the live feed and caught up from the database.",
                Vec::new(),
            ),
            delivery_lag: registry.histogram(
                "switchboard_delivery_lag_seconds",
                "Time from a Send's commit to its notification being written to a Subscribe stream.",
                Vec::new(),
            ),
        }
    }

    /// The gauge of open Subscribe streams, read from `hub` at each scrape.
    pub fn watch_streams(registry: &Registry, hub: Arc<Hub>) {
        let streams = registry.gauge(
            "switchboard_subscribe_streams",
            "Subscribe streams open.",
            Vec::new(),
        );
        registry.on_scrape(move |_| streams.set(hub.subscriber_count() as f64));
    }

    /// A Send stored these (not a repeat of an idempotency key).
    pub fn stored(&self, notifications: &[Notification]) {
        let broadcasts = notifications.iter().filter(|n| n.is_broadcast()).count() as u64;
        self.stored_broadcast.increment(broadcasts);
        self.stored_direct
            .increment(notifications.len() as u64 - broadcasts);
    }

    pub fn caught_up(&self) {
        self.catchups.increment(1);
    }

    /// A live notification stored at `created_at` (µs) went out on a stream now.
    pub fn delivered(&self, created_at: i64) {
        let lag = (switchboard::time::now_micros() - created_at).max(0);
        self.delivery_lag.record(lag as f64 / 1e6);
    }
}
