//! The tonic service: decode, validate, call the store, publish live events, encode.

mod convert;
mod subscribe;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use switchboard::{
    Caller, page_token,
    proto::notification::v1::{self as pb, notification_service_server::NotificationService},
    time::now_micros,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    domain::MarkTarget,
    hub::{Hub, ReadEvent},
    store::NotificationStore,
};

/// Shared state of every call.
#[derive(Clone)]
pub struct NotificationApi {
    store: Arc<dyn NotificationStore>,
    hub: Arc<Hub>,
    heartbeat_interval: Duration,
    /// Cancelled at shutdown: every Subscribe stream then ends with UNAVAILABLE.
    shutdown: CancellationToken,
}

impl NotificationApi {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        hub: Arc<Hub>,
        heartbeat_interval: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            hub,
            heartbeat_interval,
            shutdown,
        }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let send = convert::send(&caller, request.into_inner())?;
        let sent = self.store.send(&send, now_micros()).await?;
        let notifications = sent
            .notifications
            .iter()
            .map(convert::notification)
            .collect();
        if sent.created {
            for notification in sent.notifications {
                self.hub.publish_notification(notification);
            }
        }
        Ok(Response::new(pb::SendResponse { notifications }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let req = request.into_inner();
        let query = convert::list(&caller, &req)?;
        let page = self.store.list(&caller.user_id, &query).await?;
        let next_page_token = page
            .next_after
            .map(|after| page_token::encode(&convert::list_scope(&caller, &req), &after))
            .unwrap_or_default();
        Ok(Response::new(pb::ListResponse {
            notifications: page
                .notifications
                .iter()
                .map(convert::notification)
                .collect(),
            next_page_token,
            total_unread: page.unread.total(),
            unread_by_category: page.unread.by_category.into_iter().collect(),
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let target = convert::mark_read(request.into_inner())?;
        let marked = self
            .store
            .mark_read(&caller.user_id, &target, now_micros())
            .await?;
        if marked.count > 0 {
            let event = match target {
                MarkTarget::Ids(_) => ReadEvent {
                    ids: marked.ids,
                    all: false,
                    category: None,
                },
                MarkTarget::All { category } => ReadEvent {
                    ids: Vec::new(),
                    all: true,
                    category,
                },
            };
            self.hub.publish_read(&caller.user_id, event);
        }
        Ok(Response::new(pb::MarkReadResponse {
            marked: marked.count,
            total_unread: marked.unread_left,
        }))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let params = convert::subscribe(request.into_inner())?;
        let stream = subscribe::start(
            self.store.clone(),
            &self.hub,
            caller.user_id,
            params,
            self.heartbeat_interval,
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }
}
