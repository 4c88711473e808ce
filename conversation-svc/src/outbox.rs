//! Delivers the outbox: each message's notification to the other participant, through
//! NotificationService.Send, until notification-svc accepts it.
//!
//! SendMessage writes the notification into the outbox in the message's own transaction, so
//! a message is never stored without its notification and nothing is lost when
//! notification-svc (or this process) is down: delivery retries with backoff, and after a
//! restart picks up where it was. Delivery is at least once; the idempotency key
//! `conversation-message:<message id>` makes a repeat (a retry after a lost answer, two
//! replicas delivering the same entry) create nothing new.
//!
//! Calls go service to service with the internal token and the identity
//! `service:conversation` (scopes `notifications:send notifications:send_as`), naming the
//! message's author as sender.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use switchboard::metrics::{Counter, Gauge};
use tracing::Instrument;

use switchboard::replicas::Replicas;
use switchboard::{
    Caller,
    identity::{ForwardIdentity, scope},
    metrics::Registry,
    proto::notification::v1::{
        SendRequest, notification_service_client::NotificationServiceClient,
    },
    time::now_micros,
    trace::{self, CallTrace},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::ClientTlsConfig};

use crate::{
    domain::{NOTIFICATION_CATEGORY, PendingNotification},
    store::ConversationStore,
};

pub const SERVICE_USER_ID: &str = "service:conversation";

/// How long one notification call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Safety net when no poke arrives (entries written by another replica, retries coming due).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Entries sent per round.
const BATCH: usize = 100;

/// How often the backlog (pending entries, the oldest's age) is read for the metrics.
const BACKLOG_INTERVAL: Duration = Duration::from_millis(500);

/// Longest wait between two attempts at one entry.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type Client = NotificationServiceClient<InterceptedService<Replicas, ForwardIdentity>>;

/// The outbox's delivery loop, as the API holds it: poked after a message was stored.
#[derive(Clone, Default)]
pub struct Delivery {
    poke: Arc<Notify>,
}

impl Delivery {
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Starts delivering to `addresses` (comma-separated `http://host:port`, or `https://`
    /// reached over `tls`; balanced) until `stop`. Connects lazily: conversation-svc serves
    /// while notification-svc is down.
    pub fn start(
        store: Arc<dyn ConversationStore>,
        addresses: &str,
        tls: Option<&ClientTlsConfig>,
        internal_token: &str,
        registry: &Registry,
        stop: CancellationToken,
    ) -> anyhow::Result<Delivery> {
        let channel = Replicas::connect_with_tls(
            addresses,
            switchboard::proto::notification::v1::notification_service_server::SERVICE_NAME,
            tls,
        )?;
        let identity = Caller {
            user_id: SERVICE_USER_ID.to_owned(),
            username: String::new(),
            avatar_url: String::new(),
            scopes: [scope::SEND, scope::SEND_AS].map(String::from).into(),
        };
        let client = NotificationServiceClient::with_interceptor(
            channel,
            ForwardIdentity::new(identity, internal_token),
        );
        let delivery = Delivery::default();
        let poke = delivery.poke.clone();
        let metrics = OutboxMetrics::new(registry);
        // The backlog is read for the metrics only: no query when nobody scrapes.
        let read_backlog = registry.is_enabled();
        tokio::spawn(async move {
            let mut backlog_read: Option<Instant> = None;
            loop {
                if let Err(err) = deliver_due(&*store, &client, &metrics).await {
                    tracing::warn!(error = %err, "outbox unreadable; retrying");
                }
                if read_backlog && backlog_read.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                    backlog_read = Some(Instant::now());
                    match store.outbox_backlog().await {
                        Ok(backlog) => metrics.backlog(backlog.pending, backlog.oldest_created_at),
                        Err(err) => tracing::warn!(error = %err, "outbox backlog unreadable"),
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = poke.notified() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        });
        Ok(delivery)
    }
}

/// The outbox's series; the backlog's are read from the database every
/// [`BACKLOG_INTERVAL`], the oldest entry's age computed at each scrape.
struct OutboxMetrics {
    delivered: Counter,
    failures: Counter,
    pending: Gauge,
    /// Queue time (µs) of the oldest waiting entry; 0 when none waits.
    oldest_created_at: Arc<AtomicI64>,
}

impl OutboxMetrics {
    fn new(registry: &Registry) -> Self {
        let oldest_created_at = Arc::new(AtomicI64::new(0));
        let age = registry.gauge(
            "switchboard_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox entry (0 when the outbox is empty).",
            Vec::new(),
        );
        registry.on_scrape({
            let oldest = oldest_created_at.clone();
            move |_| {
                let oldest = oldest.load(Ordering::Relaxed);
                let seconds = if oldest == 0 {
                    0.0
                } else {
                    (now_micros() - oldest).max(0) as f64 / 1e6
                };
                age.set(seconds);
            }
        });
        OutboxMetrics {
            delivered: registry.counter(
                "switchboard_outbox_delivered_total",
                "Outbox entries notification-svc accepted.",
                Vec::new(),
            ),
            failures: registry.counter(
                "switchboard_outbox_failures_total",
                "Failed attempts to deliver an outbox entry (each is retried).",
                Vec::new(),
            ),
            pending: registry.gauge(
                "switchboard_outbox_pending",
                "Outbox entries waiting for delivery.",
                Vec::new(),
            ),
            oldest_created_at,
        }
    }

    fn backlog(&self, pending: u64, oldest_created_at: Option<i64>) {
        self.pending.set(pending as f64);
        self.oldest_created_at
            .store(oldest_created_at.unwrap_or(0), Ordering::Relaxed);
    }
}

async fn deliver_due(
    store: &dyn ConversationStore,
    client: &Client,
    metrics: &OutboxMetrics,
) -> Result<(), switchboard::Error> {
    loop {
        let due = store.due_notifications(now_micros(), BATCH).await?;
        let full = due.len() == BATCH;
        for entry in due {
            // The delivery continues the trace of the SendMessage that queued the entry.
            let span = tracing::info_span!(
                "outbox.deliver",
                otel.name = "outbox deliver",
                otel.kind = "client",
                message_id = %entry.message_id,
                trace_id = tracing::field::Empty,
            );
            let parent = trace::parent_from(
                entry.trace.traceparent.as_deref(),
                entry.trace.tracestate.as_deref(),
            );
            let call_trace = CallTrace::continuing(&span, &parent);
            deliver(store, client, metrics, &entry, &call_trace)
                .instrument(span)
                .await?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// One attempt at `entry`: removed when accepted, rescheduled with backoff when not.
async fn deliver(
    store: &dyn ConversationStore,
    client: &Client,
    metrics: &OutboxMetrics,
    entry: &PendingNotification,
    trace: &CallTrace,
) -> Result<(), switchboard::Error> {
    match send(client, entry, trace).await {
        Ok(()) => {
            metrics.delivered.increment(1);
            store.notification_delivered(&entry.message_id).await
        }
        Err(status) => {
            metrics.failures.increment(1);
            let backoff = backoff(entry.attempts);
            tracing::warn!(
                message_id = %entry.message_id,
                attempts = entry.attempts + 1,
                code = ?status.code(),
                error = %status.message(),
                retry_in = ?backoff,
                trace_id = %trace.trace_id(),
                "could not notify the other participant; will retry"
            );
            let retry_at = now_micros() + backoff.as_micros() as i64;
            store.notification_failed(&entry.message_id, retry_at).await
        }
    }
}

/// 250 ms, doubling per failed attempt, at most [`MAX_BACKOFF`].
fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 10) as u32;
    (Duration::from_millis(250) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

async fn send(
    client: &Client,
    entry: &PendingNotification,
    trace: &CallTrace,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(SendRequest {
        recipient_ids: vec![entry.recipient_id.clone()],
        broadcast: false,
        category: NOTIFICATION_CATEGORY.to_owned(),
        content: entry.content.clone(),
        link: entry.link.clone(),
        sender_id: entry.sender_id.clone(),
        idempotency_key: format!("conversation-message:{}", entry.message_id),
        ..SendRequest::default()
    });
    request.set_timeout(CALL_TIMEOUT);
    trace.inject_metadata(request.metadata_mut());
    let mut client = client.clone();
    match tokio::time::timeout(CALL_TIMEOUT, client.send(request)).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "notification-svc did not answer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
