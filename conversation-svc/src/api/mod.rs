//! The tonic service: identify and record the caller, validate, call the store, encode.

/// Protobuf <-> domain conversion at the edge (public for the fuzz target).
pub mod convert;

use std::sync::Arc;

use switchboard::{
    Caller, Error,
    proto::conversation::v1::{self as pb, conversation_service_server::ConversationService},
    time::now_micros,
    trace::CallTrace,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{TraceContext, User},
    outbox,
    store::ConversationStore,
    users::Directory,
};

#[derive(Clone)]
pub struct ConversationApi {
    store: Arc<dyn ConversationStore>,
    users: Arc<Directory>,
    /// Woken after each stored message to deliver its notification from the outbox.
    outbox: outbox::Delivery,
}

impl ConversationApi {
    pub fn new(store: Arc<dyn ConversationStore>, outbox: outbox::Delivery) -> Self {
        Self {
            users: Arc::new(Directory::new(store.clone())),
            store,
            outbox,
        }
    }

    /// Every authenticated call records its caller.
    async fn caller<T>(&self, request: &Request<T>) -> Result<(Caller, User), Error> {
        let caller = Caller::from_metadata(request.metadata())?;
        let user = self.users.record(&caller).await?;
        Ok((caller, user))
    }
}

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let username = convert::create(request.get_ref())?;
        let other = self
            .store
            .find_user_by_username(&username)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))?;
        if other.id == caller.user_id {
            return Err(
                Error::invalid("username", "cannot start a conversation with yourself").into(),
            );
        }
        let (conversation, created) = self
            .store
            .create_conversation(&caller.user_id, &other.id, now_micros())
            .await?;
        Ok(Response::new(pb::CreateResponse {
            conversation: Some(convert::conversation(&conversation, &caller.user_id)),
            created,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let paging = convert::list(&caller, request.get_ref())?;
        let rows = self
            .store
            .conversations(&caller.user_id, paging.after.as_ref(), paging.fetch_limit())
            .await?;
        let (conversations, next_page_token) = paging.cut(rows, convert::list_position);
        Ok(Response::new(pb::ListResponse {
            conversations: conversations
                .iter()
                .map(|c| convert::conversation(c, &caller.user_id))
                .collect(),
            next_page_token,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let id = convert::get(request.get_ref())?;
        let conversation = self
            .store
            .conversation(&caller.user_id, &id)
            .await?
            .ok_or_else(|| Error::NotFound("conversation not found".into()))?;
        Ok(Response::new(pb::GetResponse {
            conversation: Some(convert::conversation(&conversation, &caller.user_id)),
        }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let (caller, author) = self.caller(&request).await?;
        let trace = request
            .extensions()
            .get::<CallTrace>()
            .map(|trace| TraceContext {
                traceparent: Some(trace.traceparent()),
                tracestate: trace.tracestate(),
            });
        let mut new = convert::send_message(&author, request.into_inner())?;
        new.trace = trace.unwrap_or_default();
        let sent = self.store.send_message(&new, now_micros()).await?;
        if sent.created {
            // The notification is in the outbox, committed with the message.
            self.outbox.poke();
        }
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(convert::message(&sent.message, &caller.user_id)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let list = convert::list_messages(&caller, request.get_ref())?;
        let rows = self
            .store
            .messages(
                &caller.user_id,
                &list.conversation_id,
                list.paging.after.as_deref(),
                list.paging.fetch_limit(),
            )
            .await?
            .ok_or_else(|| Error::NotFound("conversation not found".into()))?;
        let (messages, next_page_token) = list.paging.cut(rows, |last| last.id.clone());
        Ok(Response::new(pb::ListMessagesResponse {
            messages: messages
                .iter()
                .map(|m| convert::message(m, &caller.user_id))
                .collect(),
            next_page_token,
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let id = convert::mark_read(request.get_ref())?;
        if !self.store.mark_read(&caller.user_id, &id).await? {
            return Err(Error::NotFound("conversation not found".into()).into());
        }
        Ok(Response::new(pb::MarkReadResponse {}))
    }
}
