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

use std::{sync::Arc, time::Duration};

use switchboard::replicas::Replicas;
use switchboard::{
    Caller,
    identity::{ForwardIdentity, scope},
    proto::notification::v1::{
        SendRequest, notification_service_client::NotificationServiceClient,
    },
    time::now_micros,
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
        tokio::spawn(async move {
            loop {
                if let Err(err) = deliver_due(&*store, &client).await {
                    tracing::warn!(error = %err, "outbox unreadable; retrying");
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

async fn deliver_due(
    store: &dyn ConversationStore,
    client: &Client,
) -> Result<(), switchboard::Error> {
    loop {
        let due = store.due_notifications(now_micros(), BATCH).await?;
        let full = due.len() == BATCH;
        for entry in due {
            match send(client, &entry).await {
                Ok(()) => store.notification_delivered(&entry.message_id).await?,
                Err(status) => {
                    let backoff = backoff(entry.attempts);
                    tracing::warn!(
                        message_id = %entry.message_id,
                        attempts = entry.attempts + 1,
                        code = ?status.code(),
                        error = %status.message(),
                        retry_in = ?backoff,
                        "could not notify the other participant; will retry"
                    );
                    let retry_at = now_micros() + backoff.as_micros() as i64;
                    store
                        .notification_failed(&entry.message_id, retry_at)
                        .await?;
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// 250 ms, doubling per failed attempt, at most [`MAX_BACKOFF`].
fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 10) as u32;
    (Duration::from_millis(250) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

async fn send(client: &Client, entry: &PendingNotification) -> Result<(), tonic::Status> {
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
