//! One way to start the service for a test (`spawn_app`), clients that act as a given user,
//! and assertions on gRPC errors.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use notification_svc::{
    CommitStats, Config, Internals, api::StreamStats, serve_with_internals, waker::WakeUp,
};
use switchboard::{
    Caller,
    identity::scope,
    proto::notification::v1::{self as pb, notification_service_client::NotificationServiceClient},
    telemetry,
    testing::{TestDatabase, wait_until_serving},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

pub const INTERNAL_TOKEN: &str = "test-internal-token";
pub use switchboard::testing::{Backend, assert_invalid};

pub const ALL_SCOPES: &[&str] = &[
    scope::SEND,
    scope::BROADCAST,
    scope::SEND_AS,
    scope::CRITICAL,
];

pub struct TestApp {
    pub addr: SocketAddr,
    /// The database this app serves from (replicas share it).
    pub database_url: String,
    /// The Send committer's counters (Sends, transactions).
    pub commits: Arc<CommitStats>,
    /// The state-change committer's counters.
    pub marks: Arc<CommitStats>,
    /// Tells the service's snooze waker to look for due notifications.
    pub wake_up: WakeUp,
    /// What the service's Subscribe streams did (counts reads).
    pub streams: Arc<StreamStats>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _database: Option<TestDatabase>,
}

/// The service's defaults, on `database_url`, with a shorter shutdown grace so a test that
/// stops it does not wait long.
pub fn test_config(database_url: &str) -> Config {
    Config {
        shutdown_grace: Duration::from_secs(5),
        ..Config::new(database_url, INTERNAL_TOKEN)
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the service through the same `serve` as the binary, on its own port and database.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
    telemetry::init_for_tests();
    let (database, database_url) = TestDatabase::create(backend, "notifications.db").await;
    start(database_url, Some(database), configure).await
}

/// The service on a database the test manages itself.
pub async fn spawn_on(database_url: &str) -> TestApp {
    telemetry::init_for_tests();
    start(database_url.to_owned(), None, |_| {}).await
}

/// Another replica serving the same database as `app` (PostgreSQL).
pub async fn spawn_replica(app: &TestApp) -> TestApp {
    start(app.database_url.clone(), None, |_| {}).await
}

async fn start(
    database_url: String,
    database: Option<TestDatabase>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = test_config(&database_url);
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown, signal) = oneshot::channel::<()>();
    // The real `serve`, with the hub and commit counters kept to be watched.
    let internals = Internals::new(&config);
    let (commits, marks) = (internals.commits.clone(), internals.marks.clone());
    let (wake_up, streams) = (internals.wake_up.clone(), internals.streams.clone());
    let server = tokio::spawn(serve_with_internals(
        config,
        listener,
        async {
            let _ = signal.await;
        },
        internals,
    ));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let app = TestApp {
        addr,
        database_url,
        commits,
        marks,
        wake_up,
        streams,
        channel,
        shutdown: Some(shutdown),
        server: Some(server),
        _database: database,
    };
    wait_until_serving(addr, "").await;
    app
}

pub type Client = NotificationServiceClient<InterceptedService<Channel, AsCaller>>;

/// Adds identity metadata (and the internal token) to every call, as the gateway does.
#[derive(Clone)]
pub struct AsCaller {
    caller: Option<Caller>,
    token: Option<String>,
}

impl Interceptor for AsCaller {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match (&self.caller, &self.token) {
            (Some(caller), Some(token)) => caller.write_metadata(request.metadata_mut(), token),
            (None, Some(token)) => {
                request.metadata_mut().insert(
                    switchboard::identity::INTERNAL_TOKEN,
                    token.parse().expect("token"),
                );
            }
            (Some(caller), None) => {
                caller.write_metadata(request.metadata_mut(), "");
                request
                    .metadata_mut()
                    .remove(switchboard::identity::INTERNAL_TOKEN);
            }
            (None, None) => {}
        }
        Ok(request)
    }
}

pub fn caller(user_id: &str, scopes: &[&str]) -> Caller {
    Caller {
        user_id: user_id.to_owned(),
        username: user_id.to_owned(),
        avatar_url: String::new(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

impl TestApp {
    /// A client acting as `user_id` with every notification scope.
    pub fn user(&self, user_id: &str) -> Client {
        self.user_with_scopes(user_id, ALL_SCOPES)
    }

    pub fn user_with_scopes(&self, user_id: &str, scopes: &[&str]) -> Client {
        self.client(AsCaller {
            caller: Some(caller(user_id, scopes)),
            token: Some(INTERNAL_TOKEN.to_owned()),
        })
    }

    /// A client acting as `user_id` on its own connection with a 16 KiB HTTP/2 window.
    pub async fn user_on_small_window(&self, user_id: &str) -> Client {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .initial_stream_window_size(Some(16 * 1024))
            .initial_connection_window_size(Some(16 * 1024))
            .connect()
            .await
            .expect("connect");
        let interceptor = AsCaller {
            caller: Some(caller(user_id, ALL_SCOPES)),
            token: Some(INTERNAL_TOKEN.to_owned()),
        };
        NotificationServiceClient::with_interceptor(channel, interceptor)
    }

    /// A client whose metadata is exactly what the test says.
    pub fn client_as(&self, caller: Option<Caller>, token: Option<&str>) -> Client {
        self.client(AsCaller {
            caller,
            token: token.map(str::to_owned),
        })
    }

    fn client(&self, interceptor: AsCaller) -> Client {
        NotificationServiceClient::with_interceptor(self.channel.clone(), interceptor)
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A Send to `recipients` with `content`, in category `test`.
pub fn send_to(recipients: &[&str], content: &str) -> pb::SendRequest {
    pb::SendRequest {
        recipient_ids: recipients.iter().map(|s| s.to_string()).collect(),
        category: "test".into(),
        content: content.into(),
        ..Default::default()
    }
}

pub fn broadcast(content: &str) -> pb::SendRequest {
    pb::SendRequest {
        broadcast: true,
        category: "announcement".into(),
        content: content.into(),
        ..Default::default()
    }
}

/// Sends and returns the created notifications.
pub async fn send(client: &mut Client, request: pb::SendRequest) -> Vec<pb::Notification> {
    client
        .send(request)
        .await
        .expect("send")
        .into_inner()
        .notifications
}

pub async fn list(client: &mut Client, request: pb::ListRequest) -> pb::ListResponse {
    client.list(request).await.expect("list").into_inner()
}

pub async fn list_all(client: &mut Client) -> pb::ListResponse {
    list(client, pb::ListRequest::default()).await
}

pub fn ids(notifications: &[pb::Notification]) -> Vec<String> {
    notifications.iter().map(|n| n.id.clone()).collect()
}

/// Sends and returns the ids of the created notifications.
pub async fn sent_ids(client: &mut Client, request: pb::SendRequest) -> Vec<String> {
    ids(&send(client, request).await)
}

/// Replaces `user`'s mutes with `categories`, each until `until` (unset: until turned off).
pub async fn mute(
    app: &TestApp,
    user: &str,
    categories: &[&str],
    until: Option<prost_types::Timestamp>,
) {
    app.user(user)
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                categories: categories
                    .iter()
                    .map(|category| pb::CategoryPreference {
                        category: category.to_string(),
                        muted: true,
                        muted_until: until,
                    })
                    .collect(),
            }),
        })
        .await
        .expect("update preferences");
}

/// `count` Sends, `b<i>` broadcasts every `every`-th and `n<i>` to `recipients` otherwise:
/// the ids stored, in order.
pub async fn mixed_history(
    client: &mut Client,
    count: usize,
    every: usize,
    recipients: &[&str],
) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..count {
        let request = if i % every == 0 {
            broadcast(&format!("b{i}"))
        } else {
            send_to(recipients, &format!("n{i}"))
        };
        sent.extend(sent_ids(client, request).await);
    }
    sent
}

pub async fn subscribe(
    client: &mut Client,
    request: pb::SubscribeRequest,
) -> tonic::Streaming<pb::SubscribeResponse> {
    client
        .subscribe(request)
        .await
        .expect("subscribe")
        .into_inner()
}

/// A write transaction opened next to the service that holds what every write of one log
/// needs: on SQLite the database's write lock (`BEGIN IMMEDIATE`), on PostgreSQL the head
/// row of `log` (`notifications` for Sends, `read_events` for MarkReads that mark
/// something). A batch the committer is working on waits at it, and what arrives meanwhile
/// queues: the group-commit tests use it to make batches deterministic.
pub enum HeadLock {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl HeadLock {
    pub async fn take(database_url: &str, log: &str) -> HeadLock {
        if database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
            HeadLock::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.unwrap())
        } else {
            let pool = sqlx::PgPool::connect(database_url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT seq FROM feed_heads WHERE name = $1 FOR UPDATE")
                .bind(log)
                .execute(&mut *tx)
                .await
                .unwrap();
            HeadLock::Postgres(tx)
        }
    }

    pub async fn release(self) {
        match self {
            HeadLock::Sqlite(tx) => tx.rollback().await.unwrap(),
            HeadLock::Postgres(tx) => tx.rollback().await.unwrap(),
        }
    }
}

/// Waits until a committer has accepted `count` writes in all: they are queued (or being
/// committed), not still on the wire.
pub async fn until_submitted(stats: &CommitStats, count: u64) {
    // A bound so a broken committer fails the test instead of hanging it; not a measurement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.submitted() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} writes reached the committer",
            stats.submitted()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// While `log`'s head is held ([`HeadLock`]): starts the first call, waits until the
/// committer behind `stats` has it (its batch is now stuck at the lock), starts all the
/// others at once and waits until they are queued, then releases. The first batch holds the
/// first call (and at most whatever raced it into the queue), the next batch everything
/// else; no call is alone unless it is the first. Answers in the order of `calls`.
pub async fn burst_behind<T: Send + 'static>(
    app: &TestApp,
    stats: &CommitStats,
    log: &str,
    calls: Vec<futures::future::BoxFuture<'static, T>>,
) -> Vec<T> {
    let lock = HeadLock::take(&app.database_url, log).await;
    let start = stats.submitted();
    let mut started = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        started.push(tokio::spawn(call));
        if i == 0 {
            until_submitted(stats, start + 1).await;
        }
    }
    until_submitted(stats, start + started.len() as u64).await;
    lock.release().await;
    futures::future::join_all(started)
        .await
        .into_iter()
        .map(|joined| joined.expect("call task"))
        .collect()
}

/// `(key, seq)` of every entry of one commit-ordered log in log order, and the log's head:
/// `notifications` keyed by id (a wake entry by the id of the notification that woke),
/// `read_events` by user. Asserts what every log must be: positions 1..=head, no gap, no
/// repeat.
pub async fn gap_free_log(database_url: &str, log: &str) -> (Vec<(String, i64)>, i64) {
    let rows_query = sqlx::AssertSqlSafe(if log == "notifications" {
        "SELECT id, seq FROM notifications UNION ALL SELECT notification_id, seq FROM wakes \
         ORDER BY seq"
            .to_owned()
    } else {
        format!("SELECT user_id, seq FROM {log} ORDER BY seq")
    });
    let head_query = "SELECT seq FROM feed_heads WHERE name = $1";
    let (rows, head): (Vec<(String, i64)>, i64) = if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let rows = sqlx::query_as(rows_query).fetch_all(&pool).await.unwrap();
        let head = sqlx::query_scalar(head_query).bind(log).fetch_one(&pool);
        (rows, head.await.unwrap())
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let rows = sqlx::query_as(rows_query).fetch_all(&pool).await.unwrap();
        let head = sqlx::query_scalar(head_query).bind(log).fetch_one(&pool);
        (rows, head.await.unwrap())
    };
    let seqs: Vec<i64> = rows.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "{log}: positions are contiguous"
    );
    (rows, head)
}

/// A selection of listed ids.
pub fn select_ids(ids: &[String]) -> Option<pb::Selection> {
    Some(pb::Selection {
        ids: ids.to_vec(),
        ..Default::default()
    })
}

/// A selection of `all`, narrowed by `category` (empty: every category) and `state`.
pub fn select_all(category: &str, state: pb::ReadState) -> Option<pb::Selection> {
    Some(pb::Selection {
        all: true,
        category: category.into(),
        state: state.into(),
        ..Default::default()
    })
}

/// The state RPCs that take a selection (Snooze also an `until`: ten minutes ahead), so
/// tests can drive them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRpc {
    MarkSeen,
    MarkUnread,
    Archive,
    Unarchive,
    Snooze,
    Unsnooze,
}

impl StateRpc {
    pub const ALL: [StateRpc; 6] = [
        StateRpc::MarkSeen,
        StateRpc::MarkUnread,
        StateRpc::Archive,
        StateRpc::Unarchive,
        StateRpc::Snooze,
        StateRpc::Unsnooze,
    ];
}

/// Microseconds in a minute, the store's clock.
pub const MINUTE: i64 = 60_000_000;

/// `minutes` from now, as a timestamp.
pub fn minutes_ahead(minutes: i64) -> Option<prost_types::Timestamp> {
    Some(switchboard::time::to_timestamp(
        switchboard::time::now_micros() + minutes * MINUTE,
    ))
}

/// Calls `rpc` with `selection`: `(changed, counts)`.
pub async fn change_state(
    client: &mut Client,
    rpc: StateRpc,
    selection: Option<pb::Selection>,
) -> Result<(i64, pb::Counts), Status> {
    let (changed, counts) = match rpc {
        StateRpc::MarkSeen => {
            let r = client.mark_seen(pb::MarkSeenRequest { selection }).await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
        StateRpc::MarkUnread => {
            let r = client
                .mark_unread(pb::MarkUnreadRequest { selection })
                .await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
        StateRpc::Archive => {
            let r = client.archive(pb::ArchiveRequest { selection }).await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
        StateRpc::Unarchive => {
            let r = client.unarchive(pb::UnarchiveRequest { selection }).await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
        StateRpc::Snooze => {
            let until = minutes_ahead(10);
            let r = client
                .snooze(pb::SnoozeRequest { selection, until })
                .await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
        StateRpc::Unsnooze => {
            let r = client.unsnooze(pb::UnsnoozeRequest { selection }).await?;
            let r = r.into_inner();
            (r.changed, r.counts)
        }
    };
    Ok((
        changed,
        counts.expect("every state change answers its counts"),
    ))
}

/// [`change_state`] that must succeed.
pub async fn apply(
    client: &mut Client,
    rpc: StateRpc,
    selection: Option<pb::Selection>,
) -> (i64, pb::Counts) {
    change_state(client, rpc, selection)
        .await
        .unwrap_or_else(|status| panic!("{rpc:?}: {status:?}"))
}

/// Every notification the user can see, whatever its state (archived and snoozed included),
/// newest first, page by page.
pub async fn list_everything(client: &mut Client) -> Vec<pb::Notification> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            client,
            pb::ListRequest {
                page_size: 500,
                page_token: token,
                archive_state: pb::ArchiveState::Any.into(),
                include_snoozed: true,
                ..Default::default()
            },
        )
        .await;
        all.extend(page.notifications);
        token = page.next_page_token;
        if token.is_empty() {
            return all;
        }
    }
}

/// The counts of what `notifications` (everything a user can see) put in their inbox,
/// computed from scratch: not archived, not snoozed; unread and unseen by category.
pub fn inbox_counts_of(notifications: &[pb::Notification]) -> pb::Counts {
    let mut counts = pb::Counts::default();
    for n in notifications {
        if n.archived || n.snoozed_until.is_some() {
            continue;
        }
        if !n.read {
            counts.unread += 1;
            *counts
                .unread_by_category
                .entry(n.category.clone())
                .or_default() += 1;
        }
        if !n.seen {
            counts.unseen += 1;
            *counts
                .unseen_by_category
                .entry(n.category.clone())
                .or_default() += 1;
        }
    }
    counts
}

/// Runs `statement` straight against the app's database (tests that set state up by hand).
pub async fn execute(database_url: &str, statement: String) -> u64 {
    let statement = sqlx::AssertSqlSafe(statement);
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let done = sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let done = sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
        done.rows_affected()
    }
}

/// Time travel for snoozes: the snoozes of `ids` (direct ones, and every user's state of a
/// broadcast among them) come due, as if their time had passed, straight in the database.
/// The service's waker notices at its next look: poke it (`TestApp::wake_up`) or restart.
pub async fn make_due(database_url: &str, ids: &[String]) {
    let list = ids
        .iter()
        .map(|id| format!("'{}'", uuid::Uuid::parse_str(id).expect("an id")))
        .collect::<Vec<_>>()
        .join(", ");
    let direct = execute(
        database_url,
        format!(
            "UPDATE notifications SET snoozed_until = 1 \
             WHERE snoozed_until IS NOT NULL AND id IN ({list})"
        ),
    );
    let broadcasts = execute(
        database_url,
        format!(
            "UPDATE broadcast_states SET snoozed_until = 1 \
             WHERE snoozed_until IS NOT NULL AND notification_id IN ({list})"
        ),
    );
    assert!(
        direct.await + broadcasts.await > 0,
        "nothing of {ids:?} is snoozed"
    );
}

/// Waits until none of `ids` is snoozed for `client` any more (a generous bound, so a waker
/// that never wakes them fails the test instead of hanging it; not a measurement).
pub async fn until_woken(client: &mut Client, ids: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let everything = list_everything(client).await;
        let snoozed: Vec<&pb::Notification> = everything
            .iter()
            .filter(|n| ids.contains(&n.id) && n.snoozed_until.is_some())
            .collect();
        if snoozed.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still snoozed: {snoozed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
