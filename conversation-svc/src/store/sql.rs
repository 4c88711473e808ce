//! SQL shared by both backends and the one implementation of the store, stamped out per
//! backend by [`impl_conversation_store!`] (see notification-svc's store for why a macro).
//! The macro reaches the backend only through [`switchboard::db::Backend`] and
//! `ConversationBackend` (`dialect.rs`), so each backend's part is checked by the compiler.

use crate::domain::{Conversation, Message, PendingNotification, TraceContext, User};

/// A conversation as the participant bound to the first placeholder sees it.
pub const SELECT_CONVERSATION: &str = "SELECT c.id, c.created_at, p.unread_count, \
     p.last_activity_at, o.id AS other_id, o.username AS other_username, \
     o.avatar_url AS other_avatar_url, m.id AS message_id, m.sender_id AS message_sender_id, \
     m.content AS message_content, m.created_at AS message_created_at \
     FROM participants p \
     JOIN conversations c ON c.id = p.conversation_id \
     JOIN users o ON o.id = p.other_user_id \
     LEFT JOIN messages m ON m.id = c.last_message_id \
     WHERE p.user_id = ";

pub const SELECT_MESSAGE: &str =
    "SELECT id, conversation_id, sender_id, content, created_at FROM messages";

/// Frees a username held by another id: the newest claim wins.
pub const RELEASE_USERNAME: &str =
    "UPDATE users SET username_key = NULL WHERE username_key = $1 AND id <> $2";

pub const UPSERT_USER: &str = "INSERT INTO users (id, username, username_key, avatar_url, updated_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO UPDATE SET username = excluded.username, \
     username_key = excluded.username_key, avatar_url = excluded.avatar_url, \
     updated_at = excluded.updated_at";

pub const FIND_USER: &str = "SELECT id, username, avatar_url FROM users WHERE username_key = $1";

pub const INSERT_CONVERSATION: &str = "INSERT INTO conversations \
     (id, user_low, user_high, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (user_low, user_high) DO NOTHING";

pub const INSERT_PARTICIPANTS: &str = "INSERT INTO participants \
     (conversation_id, user_id, other_user_id, unread_count, last_activity_at) \
     VALUES ($1, $2, $3, 0, $4), ($1, $3, $2, 0, $4)";

pub const CONVERSATION_OF_PAIR: &str =
    "SELECT id FROM conversations WHERE user_low = $1 AND user_high = $2";

pub const OTHER_PARTICIPANT: &str =
    "SELECT other_user_id FROM participants WHERE conversation_id = $1 AND user_id = $2";

pub const MESSAGE_BY_KEY: &str = "SELECT id, conversation_id, sender_id, content, created_at \
     FROM messages WHERE sender_id = $1 AND idempotency_key = $2";

pub const INSERT_MESSAGE: &str = "INSERT INTO messages \
     (id, conversation_id, sender_id, content, created_at, idempotency_key) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// Concurrent senders may commit out of id order; the newest id stays the last message.
pub const SET_LAST_MESSAGE: &str = "UPDATE conversations SET last_message_id = $1 \
     WHERE id = $2 AND (last_message_id IS NULL OR last_message_id < $1)";

pub const BUMP_PARTICIPANTS: &str = "UPDATE participants SET \
     last_activity_at = CASE WHEN last_activity_at < $1 THEN $1 ELSE last_activity_at END, \
     unread_count = unread_count + CASE WHEN user_id = $2 THEN 1 ELSE 0 END \
     WHERE conversation_id = $3";

pub const INSERT_OUTBOX: &str = "INSERT INTO outbox \
     (message_id, recipient_id, sender_id, content, link, created_at, attempts, next_attempt_at, \
      traceparent, tracestate) \
     VALUES ($1, $2, $3, $4, $5, $6, 0, $6, $7, $8)";

pub const DUE_OUTBOX: &str = "SELECT message_id, recipient_id, sender_id, content, link, attempts, \
     created_at, traceparent, tracestate FROM outbox WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, message_id";

/// How many entries wait and since when the oldest does (NULL when none).
pub const OUTBOX_BACKLOG: &str = "SELECT COUNT(*), MIN(created_at) FROM outbox";

pub const DELETE_OUTBOX: &str = "DELETE FROM outbox WHERE message_id = $1";

pub const RETRY_OUTBOX: &str =
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2 WHERE message_id = $1";

pub const MARK_READ: &str =
    "UPDATE participants SET unread_count = 0 WHERE conversation_id = $1 AND user_id = $2";

#[derive(sqlx::FromRow)]
pub struct OutboxRow {
    pub message_id: String,
    pub recipient_id: String,
    pub sender_id: String,
    pub content: String,
    pub link: String,
    pub attempts: i32,
    pub created_at: i64,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl From<OutboxRow> for PendingNotification {
    fn from(row: OutboxRow) -> Self {
        PendingNotification {
            message_id: row.message_id,
            recipient_id: row.recipient_id,
            sender_id: row.sender_id,
            content: row.content,
            link: row.link,
            attempts: row.attempts,
            created_at: row.created_at,
            trace: TraceContext {
                traceparent: row.traceparent,
                tracestate: row.tracestate,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub avatar_url: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: row.username,
            avatar_url: row.avatar_url,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub content: String,
    pub created_at: i64,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            id: row.id,
            conversation_id: row.conversation_id,
            sender_id: row.sender_id,
            content: row.content,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub created_at: i64,
    pub unread_count: i64,
    pub last_activity_at: i64,
    pub other_id: String,
    pub other_username: String,
    pub other_avatar_url: String,
    pub message_id: Option<String>,
    pub message_sender_id: Option<String>,
    pub message_content: Option<String>,
    pub message_created_at: Option<i64>,
}

impl From<ConversationRow> for Conversation {
    fn from(row: ConversationRow) -> Self {
        let last_message = match (
            row.message_id,
            row.message_sender_id,
            row.message_content,
            row.message_created_at,
        ) {
            (Some(id), Some(sender_id), Some(content), Some(created_at)) => Some(Message {
                id,
                conversation_id: row.id.clone(),
                sender_id,
                content,
                created_at,
            }),
            _ => None,
        };
        Conversation {
            id: row.id,
            other: User {
                id: row.other_id,
                username: row.other_username,
                avatar_url: row.other_avatar_url,
            },
            last_message,
            unread_count: row.unread_count,
            created_at: row.created_at,
            last_activity_at: row.last_activity_at,
        }
    }
}

macro_rules! impl_conversation_store {
    ($backend:ty) => {
        // A block of its own, so the macro's names do not clash with the calling module's.
        const _: () = {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;
            use switchboard::{Error, db::Backend};
            use uuid::Uuid;

            use $crate::domain::{
                Conversation, ConversationCursor, Message, NewMessage, OutboxBacklog,
                PendingNotification, StoredMessage, User, notification_text, ordered_pair,
                username_key,
            };
            use $crate::store::{
                ConversationStore, SqlStore,
                dialect::ConversationBackend,
                sql::{self, ConversationRow, MessageRow, OutboxRow, UserRow},
            };

            /// The sqlx database of this backend.
            type Db = <$backend as Backend>::Db;

            async fn conversation_of(
                conn: &mut <Db as sqlx::Database>::Connection,
                user_id: &str,
                id: &str,
            ) -> Result<Option<Conversation>, Error> {
                let mut qb = QueryBuilder::<Db>::new(sql::SELECT_CONVERSATION);
                qb.push_bind(user_id.to_owned());
                qb.push(" AND c.id = ");
                qb.push_bind(id.to_owned());
                let row: Option<ConversationRow> =
                    qb.build_query_as().fetch_optional(&mut *conn).await?;
                Ok(row.map(Into::into))
            }

            async fn record_user_once(
                store: &SqlStore<$backend>,
                user: &User,
                key: Option<&str>,
                now: i64,
            ) -> Result<(), sqlx::Error> {
                let mut tx = store.backend.begin_write().await?;
                if let Some(key) = key {
                    <$backend as ConversationBackend>::lock_username(&mut tx, key).await?;
                    sqlx::query(sql::RELEASE_USERNAME)
                        .bind(key)
                        .bind(&user.id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(sql::UPSERT_USER)
                    .bind(&user.id)
                    .bind(&user.username)
                    .bind(key)
                    .bind(&user.avatar_url)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }

            // The writes, apart from the trait methods, which tell the store what each result
            // says about the storage (`wrote`: on SQLite, health follows it).
            impl SqlStore<$backend> {
                async fn record_user_tx(&self, user: &User, now: i64) -> Result<(), Error> {
                    let key = (!user.username.is_empty()).then(|| username_key(&user.username));
                    // Two ids claiming one username at the same moment: the loser of the unique
                    // index retries, releasing the name from the winner (newest claim wins).
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match record_user_once(self, user, key.as_deref(), now).await {
                            Err(sqlx::Error::Database(err))
                                if err.is_unique_violation() && attempts < 3 => {}
                            result => return result.map_err(Into::into),
                        }
                    }
                }

                async fn create_conversation_tx(
                    &self,
                    caller_id: &str,
                    other_id: &str,
                    now: i64,
                ) -> Result<(Conversation, bool), Error> {
                    let (low, high) = ordered_pair(caller_id, other_id);
                    let mut tx = self.backend.begin_write().await?;
                    let id = Uuid::now_v7().to_string();
                    let created = sqlx::query(sql::INSERT_CONVERSATION)
                        .bind(&id)
                        .bind(low)
                        .bind(high)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    let id = if created {
                        sqlx::query(sql::INSERT_PARTICIPANTS)
                            .bind(&id)
                            .bind(low)
                            .bind(high)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        id
                    } else {
                        sqlx::query_scalar(sql::CONVERSATION_OF_PAIR)
                            .bind(low)
                            .bind(high)
                            .fetch_one(&mut *tx)
                            .await?
                    };
                    let conversation = conversation_of(&mut *tx, caller_id, &id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("conversation {id} vanished"))?;
                    tx.commit().await?;
                    Ok((conversation, created))
                }

                async fn send_message_tx(
                    &self,
                    new: &NewMessage,
                    now: i64,
                ) -> Result<StoredMessage, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    let recipient_id: Option<String> = sqlx::query_scalar(sql::OTHER_PARTICIPANT)
                        .bind(&new.conversation_id)
                        .bind(&new.sender_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(recipient_id) = recipient_id else {
                        return Err(Error::NotFound("conversation not found".into()));
                    };
                    let message = Message {
                        id: Uuid::now_v7().to_string(),
                        conversation_id: new.conversation_id.clone(),
                        sender_id: new.sender_id.clone(),
                        content: new.content.clone(),
                        created_at: now,
                    };
                    let inserted = sqlx::query(sql::INSERT_MESSAGE)
                        .bind(&message.id)
                        .bind(&message.conversation_id)
                        .bind(&message.sender_id)
                        .bind(&message.content)
                        .bind(message.created_at)
                        .bind(&new.idempotency_key)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if !inserted {
                        // Only the idempotency key can conflict: return the original message.
                        let original: MessageRow = sqlx::query_as(sql::MESSAGE_BY_KEY)
                            .bind(&new.sender_id)
                            .bind(&new.idempotency_key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let original: Message = original.into();
                        let recipient_id: Option<String> =
                            sqlx::query_scalar(sql::OTHER_PARTICIPANT)
                                .bind(&original.conversation_id)
                                .bind(&new.sender_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                        tx.rollback().await?;
                        return Ok(StoredMessage {
                            message: original,
                            recipient_id: recipient_id.unwrap_or_default(),
                            created: false,
                        });
                    }
                    sqlx::query(sql::SET_LAST_MESSAGE)
                        .bind(&message.id)
                        .bind(&message.conversation_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::BUMP_PARTICIPANTS)
                        .bind(now)
                        .bind(&recipient_id)
                        .bind(&message.conversation_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::INSERT_OUTBOX)
                        .bind(&message.id)
                        .bind(&recipient_id)
                        .bind(&message.sender_id)
                        .bind(notification_text(&new.author_name, &message.content))
                        .bind(format!("/conversations/{}", message.conversation_id))
                        .bind(now)
                        .bind(&new.trace.traceparent)
                        .bind(&new.trace.tracestate)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(StoredMessage {
                        message,
                        recipient_id,
                        created: true,
                    })
                }

                async fn notification_delivered_tx(&self, message_id: &str) -> Result<(), Error> {
                    sqlx::query(sql::DELETE_OUTBOX)
                        .bind(message_id)
                        .execute(self.backend.write_pool())
                        .await?;
                    Ok(())
                }

                async fn notification_failed_tx(
                    &self,
                    message_id: &str,
                    retry_at: i64,
                ) -> Result<(), Error> {
                    sqlx::query(sql::RETRY_OUTBOX)
                        .bind(message_id)
                        .bind(retry_at)
                        .execute(self.backend.write_pool())
                        .await?;
                    Ok(())
                }

                async fn mark_read_tx(
                    &self,
                    user_id: &str,
                    conversation_id: &str,
                ) -> Result<bool, Error> {
                    let marked = sqlx::query(sql::MARK_READ)
                        .bind(conversation_id)
                        .bind(user_id)
                        .execute(self.backend.write_pool())
                        .await?
                        .rows_affected();
                    Ok(marked == 1)
                }
            }

            #[async_trait]
            impl ConversationStore for SqlStore<$backend> {
                async fn record_user(&self, user: &User, now: i64) -> Result<(), Error> {
                    self.backend.wrote(self.record_user_tx(user, now).await)
                }

                async fn find_user_by_username(
                    &self,
                    username: &str,
                ) -> Result<Option<User>, Error> {
                    let row: Option<UserRow> = sqlx::query_as(sql::FIND_USER)
                        .bind(username_key(username))
                        .fetch_optional(self.backend.read_pool())
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn create_conversation(
                    &self,
                    caller_id: &str,
                    other_id: &str,
                    now: i64,
                ) -> Result<(Conversation, bool), Error> {
                    self.backend
                        .wrote(self.create_conversation_tx(caller_id, other_id, now).await)
                }

                async fn conversation(
                    &self,
                    user_id: &str,
                    id: &str,
                ) -> Result<Option<Conversation>, Error> {
                    let mut conn = self.backend.read_pool().acquire().await?;
                    conversation_of(&mut *conn, user_id, id).await
                }

                async fn conversations(
                    &self,
                    user_id: &str,
                    after: Option<&ConversationCursor>,
                    limit: usize,
                ) -> Result<Vec<Conversation>, Error> {
                    let mut qb = QueryBuilder::<Db>::new(sql::SELECT_CONVERSATION);
                    qb.push_bind(user_id.to_owned());
                    if let Some(after) = after {
                        qb.push(" AND (p.last_activity_at < ");
                        qb.push_bind(after.last_activity_at);
                        qb.push(" OR (p.last_activity_at = ");
                        qb.push_bind(after.last_activity_at);
                        qb.push(" AND p.conversation_id < ");
                        qb.push_bind(after.id.clone());
                        qb.push("))");
                    }
                    qb.push(" ORDER BY p.last_activity_at DESC, p.conversation_id DESC");
                    qb.push(switchboard::db::limit(limit));
                    let rows: Vec<ConversationRow> = qb
                        .build_query_as()
                        .fetch_all(self.backend.read_pool())
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn send_message(
                    &self,
                    new: &NewMessage,
                    now: i64,
                ) -> Result<StoredMessage, Error> {
                    self.backend.wrote(self.send_message_tx(new, now).await)
                }

                async fn messages(
                    &self,
                    user_id: &str,
                    conversation_id: &str,
                    before_id: Option<&str>,
                    limit: usize,
                ) -> Result<Option<Vec<Message>>, Error> {
                    let mut conn = self.backend.read_pool().acquire().await?;
                    let member: Option<String> = sqlx::query_scalar(sql::OTHER_PARTICIPANT)
                        .bind(conversation_id)
                        .bind(user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if member.is_none() {
                        return Ok(None);
                    }
                    let mut qb = QueryBuilder::<Db>::new(sql::SELECT_MESSAGE);
                    qb.push(" WHERE conversation_id = ");
                    qb.push_bind(conversation_id.to_owned());
                    if let Some(before) = before_id {
                        qb.push(" AND id < ");
                        qb.push_bind(before.to_owned());
                    }
                    qb.push(" ORDER BY id DESC");
                    qb.push(switchboard::db::limit(limit));
                    let rows: Vec<MessageRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
                    Ok(Some(rows.into_iter().map(Into::into).collect()))
                }

                async fn due_notifications(
                    &self,
                    now: i64,
                    limit: usize,
                ) -> Result<Vec<PendingNotification>, Error> {
                    let rows: Vec<OutboxRow> =
                        sqlx::query_as(switchboard::db::limited(sql::DUE_OUTBOX, limit))
                            .bind(now)
                            .fetch_all(self.backend.read_pool())
                            .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn outbox_backlog(&self) -> Result<OutboxBacklog, Error> {
                    let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(sql::OUTBOX_BACKLOG)
                        .fetch_one(self.backend.read_pool())
                        .await?;
                    Ok(OutboxBacklog {
                        pending: u64::try_from(pending).unwrap_or(0),
                        oldest_created_at: oldest,
                    })
                }

                async fn notification_delivered(&self, message_id: &str) -> Result<(), Error> {
                    self.backend
                        .wrote(self.notification_delivered_tx(message_id).await)
                }

                async fn notification_failed(
                    &self,
                    message_id: &str,
                    retry_at: i64,
                ) -> Result<(), Error> {
                    self.backend
                        .wrote(self.notification_failed_tx(message_id, retry_at).await)
                }

                async fn mark_read(
                    &self,
                    user_id: &str,
                    conversation_id: &str,
                ) -> Result<bool, Error> {
                    self.backend
                        .wrote(self.mark_read_tx(user_id, conversation_id).await)
                }
            }
        };
    };
}

pub(crate) use impl_conversation_store;
