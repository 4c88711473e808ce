//! Tells the other participant about a new message, through NotificationService.Send.
//!
//! Called service to service with the internal token and the identity
//! `service:conversation` (scopes `notifications:send notifications:send_as`), so the
//! notification names the message's author as its sender. The Send carries the message id as
//! its idempotency key: retrying a message never notifies twice.

use std::time::Duration;

use switchboard::{
    Caller,
    identity::{ForwardIdentity, scope},
    proto::notification::v1::{
        SendRequest, notification_service_client::NotificationServiceClient,
    },
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::domain::{Message, NOTIFICATION_CATEGORY, notification_text};

pub const SERVICE_USER_ID: &str = "service:conversation";

/// How long one notification call may take before it is given up (and logged).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Notifier {
    client: NotificationServiceClient<InterceptedService<Channel, ForwardIdentity>>,
}

impl Notifier {
    /// A notifier for `addresses`: a comma-separated list of `http://host:port`, balanced.
    /// Connects lazily, so conversation-svc starts (and serves) while notification-svc is down.
    pub fn new(addresses: &str, internal_token: &str) -> anyhow::Result<Self> {
        let channel = switchboard::grpc::balanced_channel(addresses)?;
        let identity = Caller {
            user_id: SERVICE_USER_ID.to_owned(),
            username: String::new(),
            avatar_url: String::new(),
            scopes: [scope::SEND, scope::SEND_AS].map(String::from).into(),
        };
        Ok(Self {
            client: NotificationServiceClient::with_interceptor(
                channel,
                ForwardIdentity::new(identity, internal_token),
            ),
        })
    }

    /// Notifies `recipient_id` of `message` by `author`. Failures are logged, not returned:
    /// the message is stored either way.
    pub async fn message_sent(&self, message: &Message, author: &str, recipient_id: &str) {
        let request = SendRequest {
            recipient_ids: vec![recipient_id.to_owned()],
            broadcast: false,
            category: NOTIFICATION_CATEGORY.to_owned(),
            content: notification_text(author, &message.content),
            link: format!("/conversations/{}", message.conversation_id),
            sender_id: message.sender_id.clone(),
            idempotency_key: format!("conversation-message:{}", message.id),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(CALL_TIMEOUT);
        let mut client = self.client.clone();
        let call = tokio::time::timeout(CALL_TIMEOUT, client.send(request));
        match call
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("timed out")))
        {
            Ok(_) => tracing::debug!(message_id = %message.id, "participant notified"),
            Err(status) => tracing::warn!(
                message_id = %message.id,
                conversation_id = %message.conversation_id,
                code = ?status.code(),
                error = %status.message(),
                "could not notify the other participant"
            ),
        }
    }
}
