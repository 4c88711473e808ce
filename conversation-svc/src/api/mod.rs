//! The tonic service: identify and record the caller, validate, call the store, encode.

mod convert;

use std::sync::Arc;

use switchboard::{
    Caller, Error, Violations, page_token,
    proto::conversation::v1::{self as pb, conversation_service_server::ConversationService},
    time::now_micros,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, ConversationCursor, NewMessage, User},
    notifier::Relay,
    store::ConversationStore,
    users::Directory,
};

#[derive(Clone)]
pub struct ConversationApi {
    store: Arc<dyn ConversationStore>,
    users: Arc<Directory>,
    /// Woken after each stored message to deliver its notification from the outbox.
    relay: Relay,
}

impl ConversationApi {
    pub fn new(store: Arc<dyn ConversationStore>, relay: Relay) -> Self {
        Self {
            users: Arc::new(Directory::new(store.clone())),
            store,
            relay,
        }
    }

    /// Every authenticated call records its caller.
    async fn caller<T>(&self, request: &Request<T>) -> Result<(Caller, User), Error> {
        let caller = Caller::from_metadata(request.metadata())?;
        let user = self.users.record(&caller).await?;
        Ok((caller, user))
    }
}

fn conversation_id(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    v.check(field, domain::conversation_id(value))
}

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let (caller, _) = self.caller(&request).await?;
        let username = domain::username(&request.get_ref().username)
            .map_err(|description| Error::invalid("username", description))?;
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
        let req = request.into_inner();
        let scope = format!("conversations|{}", caller.user_id);
        let mut v = Violations::default();
        let page_size = v
            .check("page_size", page_token::page_size(req.page_size))
            .unwrap_or(page_token::DEFAULT_PAGE_SIZE);
        let after = match page_token::decode("page_token", &req.page_token, &scope) {
            Ok(None) => None,
            Ok(Some(position)) => {
                let cursor = ConversationCursor::decode(&position);
                if cursor.is_none() {
                    v.add("page_token", "invalid page token");
                }
                cursor
            }
            Err(Error::InvalidArgument(violations)) => {
                for violation in violations {
                    v.add(violation.field, violation.description);
                }
                None
            }
            Err(other) => return Err(other.into()),
        };
        v.into_result()?;
        let mut conversations = self
            .store
            .conversations(&caller.user_id, after.as_ref(), page_size + 1)
            .await?;
        let more = conversations.len() > page_size;
        conversations.truncate(page_size);
        let next_page_token = match conversations.last() {
            Some(last) if more => page_token::encode(
                &scope,
                &ConversationCursor {
                    last_activity_at: last.last_activity_at,
                    id: last.id.clone(),
                }
                .encode(),
            ),
            _ => String::new(),
        };
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
        let mut v = Violations::default();
        let id = conversation_id(&mut v, "id", &request.get_ref().id);
        v.into_result()?;
        let id = id.unwrap_or_default();
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
        let req = request.into_inner();
        let mut v = Violations::default();
        let conversation_id = conversation_id(&mut v, "conversation_id", &req.conversation_id);
        let content = v.check("content", domain::content(&req.content));
        let idempotency_key = v.check(
            "idempotency_key",
            domain::idempotency_key(&req.idempotency_key),
        );
        v.into_result()?;
        let author_name = if author.username.is_empty() {
            author.id.clone()
        } else {
            author.username.clone()
        };
        let new = NewMessage {
            conversation_id: conversation_id.unwrap_or_default(),
            sender_id: caller.user_id.clone(),
            content: content.unwrap_or_default(),
            idempotency_key: idempotency_key.flatten(),
            author_name,
        };
        let sent = self.store.send_message(&new, now_micros()).await?;
        if sent.created {
            // The notification is in the outbox, committed with the message.
            self.relay.poke();
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
        let req = request.into_inner();
        let mut v = Violations::default();
        let id = conversation_id(&mut v, "conversation_id", &req.conversation_id);
        let page_size = v
            .check("page_size", page_token::page_size(req.page_size))
            .unwrap_or(page_token::DEFAULT_PAGE_SIZE);
        let id = id.unwrap_or_default();
        let scope = format!("messages|{}|{id}", caller.user_id);
        let before = match page_token::decode("page_token", &req.page_token, &scope) {
            Ok(position) => position,
            Err(Error::InvalidArgument(violations)) => {
                for violation in violations {
                    v.add(violation.field, violation.description);
                }
                None
            }
            Err(other) => return Err(other.into()),
        };
        if let Some(position) = &before
            && domain::conversation_id(position).is_err()
        {
            v.add("page_token", "invalid page token");
        }
        v.into_result()?;
        let mut messages = self
            .store
            .messages(&caller.user_id, &id, before.as_deref(), page_size + 1)
            .await?
            .ok_or_else(|| Error::NotFound("conversation not found".into()))?;
        let more = messages.len() > page_size;
        messages.truncate(page_size);
        let next_page_token = match messages.last() {
            Some(last) if more => page_token::encode(&scope, &last.id),
            _ => String::new(),
        };
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
        let mut v = Violations::default();
        let id = conversation_id(
            &mut v,
            "conversation_id",
            &request.get_ref().conversation_id,
        );
        v.into_result()?;
        let id = id.unwrap_or_default();
        if !self.store.mark_read(&caller.user_id, &id).await? {
            return Err(Error::NotFound("conversation not found".into()).into());
        }
        Ok(Response::new(pb::MarkReadResponse {}))
    }
}
