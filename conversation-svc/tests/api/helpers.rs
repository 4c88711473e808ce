//! One way to start the service for a test (`spawn_app`, optionally with a real
//! notification-svc beside it), clients acting as users, assertions on errors.

use std::{net::SocketAddr, time::Duration};

use switchboard::{
    Caller,
    identity::ForwardIdentity,
    proto::{
        conversation::v1::{self as pb, conversation_service_client::ConversationServiceClient},
        notification::v1::notification_service_client::NotificationServiceClient,
    },
    telemetry,
    testing::{TestDatabase, wait_until_serving},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{
    Code, Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

pub use switchboard::testing::{Backend, assert_invalid};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub type Client = ConversationServiceClient<InterceptedService<Channel, ForwardIdentity>>;
pub type NotificationClient =
    NotificationServiceClient<InterceptedService<Channel, ForwardIdentity>>;

/// A running server; stopped when dropped.
struct Running {
    addr: SocketAddr,
    database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    /// None when the test manages the database itself.
    _database: Option<TestDatabase>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub struct TestApp {
    conversations: Running,
    notifications: Option<Running>,
}

/// conversation-svc alone; its notification-svc address points at a closed port, so every
/// notification fails (which must not fail a message).
pub async fn spawn_app(backend: Backend) -> TestApp {
    telemetry::init_for_tests();
    let conversations = start_conversations(backend, "http://127.0.0.1:1".to_owned()).await;
    TestApp {
        conversations,
        notifications: None,
    }
}

/// conversation-svc and a real notification-svc, each on its own port and database.
pub async fn spawn_app_with_notifications(backend: Backend) -> TestApp {
    telemetry::init_for_tests();
    let notifications = start_notifications(backend).await;
    let conversations =
        start_conversations(backend, format!("http://{}", notifications.addr)).await;
    TestApp {
        conversations,
        notifications: Some(notifications),
    }
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// conversation-svc on a database the test manages itself (`url`), and a real
/// notification-svc on a fresh SQLite database.
pub async fn spawn_app_with_notifications_on(url: &str) -> TestApp {
    telemetry::init_for_tests();
    let notifications = start_notifications(Backend::Sqlite).await;
    let conversations =
        start_conversations_on(url.to_owned(), format!("http://{}", notifications.addr)).await;
    TestApp {
        conversations,
        notifications: Some(notifications),
    }
}

async fn start_conversations(backend: Backend, notification_addr: String) -> Running {
    let (database, database_url) = TestDatabase::create(backend, "conversations.db").await;
    let mut running = start_conversations_on(database_url, notification_addr).await;
    running._database = Some(database);
    running
}

async fn start_conversations_on(database_url: String, notification_addr: String) -> Running {
    let config = conversation_svc::Config {
        notification_addr,
        shutdown_grace: Duration::from_secs(5),
        ..conversation_svc::Config::new(&database_url, INTERNAL_TOKEN)
    };
    let (listener, addr) = bind().await;
    let (shutdown, signal) = oneshot::channel::<()>();
    tokio::spawn(conversation_svc::serve(config, listener, async {
        let _ = signal.await;
    }));
    wait_until_serving(addr, "").await;
    Running {
        addr,
        database_url,
        shutdown: Some(shutdown),
        _database: None,
    }
}

async fn start_notifications(backend: Backend) -> Running {
    let (database, database_url) = TestDatabase::create(backend, "notifications.db").await;
    let config = notification_svc::Config {
        shutdown_grace: Duration::from_secs(5),
        ..notification_svc::Config::new(&database_url, INTERNAL_TOKEN)
    };
    let (listener, addr) = bind().await;
    let (shutdown, signal) = oneshot::channel::<()>();
    tokio::spawn(notification_svc::serve(config, listener, async {
        let _ = signal.await;
    }));
    wait_until_serving(addr, "").await;
    Running {
        addr,
        database_url,
        shutdown: Some(shutdown),
        _database: Some(database),
    }
}

fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy()
}

/// The identity the gateway would forward for `username` (user id `id-<username>`).
pub fn person(username: &str) -> Caller {
    Caller {
        user_id: format!("id-{username}"),
        username: username.to_owned(),
        avatar_url: format!("https://avatars.example/{username}.png"),
        scopes: Default::default(),
    }
}

impl TestApp {
    pub fn addr(&self) -> SocketAddr {
        self.conversations.addr
    }

    /// The health of conversation-svc's service, as a balancer sees it.
    pub async fn health(&self) -> tonic_health::pb::health_check_response::ServingStatus {
        let mut client =
            tonic_health::pb::health_client::HealthClient::new(channel(self.conversations.addr));
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: "switchboard.conversation.v1.ConversationService".into(),
            })
            .await
            .map(|r| r.into_inner().status())
            .unwrap_or(tonic_health::pb::health_check_response::ServingStatus::Unknown)
    }

    /// When the store last wrote `user_id`'s profile: read straight from the database, to
    /// check what the service does not show.
    pub async fn user_updated_at(&self, user_id: &str) -> i64 {
        let url = &self.conversations.database_url;
        let query = "SELECT updated_at FROM users WHERE id = $1";
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
            sqlx::query_scalar(query)
                .bind(user_id)
                .fetch_one(&pool)
                .await
                .expect("user row")
        } else {
            let pool = sqlx::PgPool::connect(url)
                .await
                .expect("connect PostgreSQL");
            sqlx::query_scalar(query)
                .bind(user_id)
                .fetch_one(&pool)
                .await
                .expect("user row")
        }
    }

    /// A client acting as `person(username)`.
    pub fn user(&self, username: &str) -> Client {
        self.as_caller(person(username))
    }

    pub fn as_caller(&self, caller: Caller) -> Client {
        ConversationServiceClient::with_interceptor(
            channel(self.conversations.addr),
            ForwardIdentity::new(caller, INTERNAL_TOKEN),
        )
    }

    /// Makes the service know `username`s, as their first call through the gateway would.
    pub async fn sign_in(&self, usernames: &[&str]) {
        for username in usernames {
            self.user(username)
                .list(pb::ListRequest::default())
                .await
                .expect("sign in");
        }
    }

    /// A notification-svc client acting as `person(username)`; needs
    /// `spawn_app_with_notifications`.
    pub fn notifications_of(&self, username: &str) -> NotificationClient {
        let running = self
            .notifications
            .as_ref()
            .expect("notification-svc running");
        NotificationServiceClient::with_interceptor(
            channel(running.addr),
            ForwardIdentity::new(person(username), INTERNAL_TOKEN),
        )
    }
}

/// Creates (or finds) the conversation of `caller` with `username`.
pub async fn create(client: &mut Client, username: &str) -> pb::CreateResponse {
    client
        .create(pb::CreateRequest {
            username: username.to_owned(),
        })
        .await
        .expect("create")
        .into_inner()
}

pub async fn conversation_with(client: &mut Client, username: &str) -> pb::Conversation {
    create(client, username)
        .await
        .conversation
        .expect("conversation")
}

pub async fn send_message(
    client: &mut Client,
    conversation_id: &str,
    content: &str,
) -> pb::Message {
    client
        .send_message(pb::SendMessageRequest {
            conversation_id: conversation_id.to_owned(),
            content: content.to_owned(),
            idempotency_key: String::new(),
        })
        .await
        .expect("send message")
        .into_inner()
        .message
        .expect("message")
}

pub async fn get(client: &mut Client, id: &str) -> pb::Conversation {
    client
        .get(pb::GetRequest { id: id.to_owned() })
        .await
        .expect("get")
        .into_inner()
        .conversation
        .expect("conversation")
}

pub async fn list(client: &mut Client) -> Vec<pb::Conversation> {
    client
        .list(pb::ListRequest::default())
        .await
        .expect("list")
        .into_inner()
        .conversations
}

pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.expect_err("expected NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}
