//! Unary scenarios: `list`, `send`, `mark-read`, `mark-seen`, `archive` and `conversation`,
//! each straight to the service and through the gateway, and the ceiling they are compared
//! with.

use std::sync::{Arc, Mutex};

use switchboard::{
    proto::{
        conversation::v1::{self as conv, conversation_service_client::ConversationServiceClient},
        notification::v1::{self as pb, notification_service_client::NotificationServiceClient},
    },
    testing::Backend,
};
use tonic::{Status, metadata::MetadataMap, transport::Channel};

use super::harness::{self, Secrets, Settings, Stack, measure, row};
use crate::{
    identity::{Path, request},
    report::Row,
    servers::{Server, connections},
};

/// Users whose lists are read in `list` (each gets `rows_per_user` notifications).
pub const LIST_USERS: usize = 10;
/// Recipients of `send`, whose notifications the state changes ([`Change`]) then act on.
pub(super) const RECIPIENTS: usize = 1000;
/// Users holding conversations in `conversation`, in pairs.
const CONVERSATION_USERS: usize = 200;
/// Broadcasts in every history, so unread counts always include some.
pub const BROADCASTS_IN_HISTORY: usize = 10;
pub(super) const SENDER_SCOPES: &str = "notifications:send notifications:broadcast";

pub type Clients = Arc<Vec<NotificationServiceClient<Channel>>>;

pub async fn notification_clients(url: &str, n: usize) -> anyhow::Result<Clients> {
    Ok(Arc::new(
        connections(url, n)
            .await?
            .into_iter()
            .map(NotificationServiceClient::new)
            .collect(),
    ))
}

/// `List` on the empty service: the ceiling.
pub async fn ceiling(
    load: crate::load::LoadSpec,
    path: &Path,
    servers: &[&Server],
) -> anyhow::Result<harness::Measurement> {
    let url = servers.first().map(|s| s.url()).unwrap_or_default();
    let clients = notification_clients(&url, load.connections).await?;
    let users = Arc::new(path.users("l", LIST_USERS, "")?);
    Ok(measure(load, servers, move |turn| {
        let mut client = clients[turn.worker % clients.len()].clone();
        let metadata = users[turn.n as usize % users.len()].clone();
        async move {
            client
                .list(request(pb::ListRequest::default(), &metadata))
                .await
                .map(drop)
        }
    })
    .await)
}

/// `List` with one call per turn on each of `targets` (clients and the users to list as),
/// every path measured on its own ([`harness::measure_interleaved`]). `require_rows` fails a
/// call that returns an empty page (a missing history); the empty service returns nothing.
pub async fn list_interleaved(
    load: crate::load::LoadSpec,
    targets: Vec<(Clients, Vec<MetadataMap>)>,
    servers: &[&[&Server]],
    require_rows: bool,
) -> Vec<harness::Measurement> {
    let targets = Arc::new(targets);
    harness::measure_interleaved(load, servers, move |turn, path| {
        let (clients, users) = &targets[path];
        let mut client = clients[turn.worker % clients.len()].clone();
        let metadata = users[turn.n as usize % users.len()].clone();
        async move {
            let page = client
                .list(request(pb::ListRequest::default(), &metadata))
                .await?
                .into_inner();
            if require_rows && page.notifications.is_empty() {
                return Err(Status::internal("empty page: the history is missing"));
            }
            Ok(())
        }
    })
    .await
}

/// Sends `rows_per_user` notifications to each of `users` (`{prefix}{i}`), `batch`
/// recipients per Send, plus the history's broadcasts.
pub async fn seed(
    clients: &Clients,
    sender: &MetadataMap,
    prefix: &str,
    users: usize,
    rows_per_user: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let ids: Vec<String> = (0..users).map(|i| format!("{prefix}{i}")).collect();
    let mut calls = Vec::new();
    for _ in 0..rows_per_user {
        for chunk in ids.chunks(batch) {
            calls.push(pb::SendRequest {
                recipient_ids: chunk.to_vec(),
                category: "bench.seed".into(),
                content: "seeded notification ".repeat(4),
                ..Default::default()
            });
        }
    }
    for i in 0..BROADCASTS_IN_HISTORY {
        calls.push(pb::SendRequest {
            broadcast: true,
            category: format!("bench.news{}", i % 3),
            content: "seeded broadcast".into(),
            ..Default::default()
        });
    }
    let calls = Arc::new(Mutex::new(calls));
    let mut workers = Vec::new();
    for w in 0..4 {
        let calls = calls.clone();
        let mut client = clients[w % clients.len()].clone();
        let sender = sender.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = calls.lock().map(|mut c| c.pop()).unwrap_or(None);
                let Some(call) = next else {
                    return Ok::<(), Status>(());
                };
                client.send(request(call, &sender)).await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// Every unary scenario on a running stack, in an order where each finds its data.
pub async fn all(
    settings: &Settings,
    backend: Backend,
    stack: &Stack,
    secrets: &Secrets,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = settings.load.connections;
    let direct = notification_clients(&stack.notification.url(), n).await?;
    let gateway = notification_clients(&stack.gateway.url(), n).await?;
    let sender = secrets.direct().metadata("bench-seeder", SENDER_SCOPES)?;
    seed(
        &direct,
        &sender,
        "l",
        LIST_USERS,
        settings.rows_per_user,
        LIST_USERS,
    )
    .await?;
    harness::settle(backend, &stack.notifications_url).await?;
    let history = LIST_USERS * settings.rows_per_user + BROADCASTS_IN_HISTORY;

    // Every notification scenario runs straight to the service, then through the gateway.
    let paths: [(Path, &Clients, Vec<&Server>); 2] = [
        (secrets.direct(), &direct, vec![&stack.notification]),
        (
            secrets.gateway(),
            &gateway,
            vec![&stack.gateway, &stack.notification],
        ),
    ];

    if settings.wants("list") {
        for (path, clients, servers) in &paths {
            let measured = list(settings, path, clients, servers, LIST_USERS, "l").await?;
            rows.push(row(
                backend,
                "list",
                path.name(),
                measured,
                format!("{history} rows, {LIST_USERS} users, page 50 + unread counts"),
            ));
        }
    }

    if settings.wants("list-unloaded") {
        // One call at a time, direct, through the gateway and through a byte relay in turn:
        // the latency a proxy adds, and the part of it any extra hop costs on this machine,
        // without queueing and without the drift between separate windows.
        let relay = harness::start_relay(settings, &stack.notification).await?;
        let relayed = notification_clients(&relay.url(), 1).await?;
        let mut targets = paths
            .iter()
            .map(|(path, clients, _)| Ok(((*clients).clone(), path.users("l", LIST_USERS, "")?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        targets.push((relayed, secrets.direct().users("l", LIST_USERS, "")?));
        let mut servers: Vec<&[&Server]> = paths.iter().map(|(_, _, s)| s.as_slice()).collect();
        let through_relay = [&relay, &stack.notification];
        servers.push(&through_relay);
        let measured =
            list_interleaved(harness::unloaded(settings.load), targets, &servers, true).await;
        let names = paths
            .iter()
            .map(|(path, _, _)| path.name())
            .chain(["relay"]);
        for (name, measured) in names.zip(measured) {
            rows.push(row(
                backend,
                "list-unloaded",
                name,
                measured,
                "1 call in flight; direct, gateway and byte relay in turn",
            ));
        }
        relay.stop().await;
    }

    // The state changes act on what send created, each on ids the ones before left alone.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let changes: Vec<Change> = Change::ALL
        .into_iter()
        .filter(|c| settings.wants(c.scenario()))
        .collect();
    if settings.wants("send") || !changes.is_empty() {
        for (path, clients, servers) in &paths {
            let measured = send(settings, path, clients, servers, sent.clone()).await?;
            rows.push(row(
                backend,
                "send",
                path.name(),
                measured,
                "1 recipient, 120 B",
            ));
        }
    }

    let sent: Arc<Vec<(usize, String)>> = Arc::new(
        sent.lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default(),
    );
    let mut offset = 0;
    for change in changes {
        for (path, clients, servers) in &paths {
            let (measured, used) = change_state(
                settings,
                change,
                path,
                clients,
                servers,
                sent.clone(),
                offset,
            )
            .await?;
            offset += used;
            let note = if offset > sent.len() {
                format!(
                    "1 id per call; pool of {} fresh ids ran out, rest no-ops",
                    sent.len()
                )
            } else {
                change.note().to_owned()
            };
            rows.push(row(backend, change.scenario(), path.name(), measured, note));
        }
    }

    if !settings.wants("conversation") {
        return Ok(());
    }
    for (path, url, servers) in [
        (
            secrets.direct(),
            stack.conversation.url(),
            vec![&stack.conversation, &stack.notification],
        ),
        (
            secrets.gateway(),
            stack.gateway.url(),
            vec![&stack.gateway, &stack.conversation, &stack.notification],
        ),
    ] {
        let measured = conversation(settings, &path, &url, &servers).await?;
        rows.push(row(
            backend,
            "conversation",
            path.name(),
            measured,
            "1 op = Create + SendMessage + List (+ the notification it triggers)",
        ));
    }
    Ok(())
}

pub async fn list(
    settings: &Settings,
    path: &Path,
    clients: &Clients,
    servers: &[&Server],
    users: usize,
    prefix: &str,
) -> anyhow::Result<harness::Measurement> {
    let users = Arc::new(path.users(prefix, users, "")?);
    let clients = clients.clone();
    Ok(measure(settings.load, servers, move |turn| {
        let mut client = clients[turn.worker % clients.len()].clone();
        let metadata = users[turn.n as usize % users.len()].clone();
        async move {
            let page = client
                .list(request(pb::ListRequest::default(), &metadata))
                .await?
                .into_inner();
            if page.notifications.is_empty() {
                return Err(Status::internal("empty page: the history is missing"));
            }
            Ok(())
        }
    })
    .await)
}

async fn send(
    settings: &Settings,
    path: &Path,
    clients: &Clients,
    servers: &[&Server],
    sent: Arc<Mutex<Vec<(usize, String)>>>,
) -> anyhow::Result<harness::Measurement> {
    let sender = path.metadata(&format!("bench-sender-{}", path.name()), SENDER_SCOPES)?;
    let clients = clients.clone();
    Ok(measure(settings.load, servers, move |turn| {
        let mut client = clients[turn.worker % clients.len()].clone();
        let recipient = turn.n as usize % RECIPIENTS;
        let request = request(send_call(recipient), &sender);
        let sent = sent.clone();
        async move {
            let response = client.send(request).await?.into_inner();
            if let (Some(n), Ok(mut sent)) = (response.notifications.first(), sent.lock()) {
                sent.push((recipient, n.id.clone()));
            }
            Ok::<(), Status>(())
        }
    })
    .await)
}

/// `send`'s call: 120 B to the recipient `r<recipient>`.
pub(super) fn send_call(recipient: usize) -> pb::SendRequest {
    pb::SendRequest {
        recipient_ids: vec![format!("r{recipient}")],
        category: "bench.send".into(),
        content: "a notification of a hundred and twenty bytes, about what a build or a \
                  review or a mention would say.."
            .into(),
        link: "https://example.com/x".into(),
        ..Default::default()
    }
}

/// A per-person state change measured on one id per call.
#[derive(Debug, Clone, Copy)]
enum Change {
    Read,
    Seen,
    Archive,
}

impl Change {
    const ALL: [Change; 3] = [Change::Read, Change::Seen, Change::Archive];

    fn scenario(self) -> &'static str {
        match self {
            Change::Read => "mark-read",
            Change::Seen => "mark-seen",
            Change::Archive => "archive",
        }
    }

    fn note(self) -> &'static str {
        match self {
            Change::Read => "1 id per call, each unread",
            Change::Seen => "1 id per call, each unseen",
            Change::Archive => "1 id per call, each in the inbox",
        }
    }
}

/// Applies `change` to one id per call, walking the pool from `offset`; returns how many it
/// used.
async fn change_state(
    settings: &Settings,
    change: Change,
    path: &Path,
    clients: &Clients,
    servers: &[&Server],
    pool: Arc<Vec<(usize, String)>>,
    offset: usize,
) -> anyhow::Result<(harness::Measurement, usize)> {
    if pool.is_empty() {
        anyhow::bail!(
            "{} needs the notifications `send` created",
            change.scenario()
        );
    }
    let users = Arc::new(path.users("r", RECIPIENTS, "")?);
    let clients = clients.clone();
    let used = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = used.clone();
    let measured = measure(settings.load, servers, move |turn| {
        let mut client = clients[turn.worker % clients.len()].clone();
        let k = offset + counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (recipient, id) = &pool[k % pool.len()];
        let ids = vec![id.clone()];
        let metadata = users[*recipient].clone();
        let selection = Some(pb::Selection {
            ids: ids.clone(),
            ..Default::default()
        });
        async move {
            match change {
                Change::Read => {
                    let call = pb::MarkReadRequest {
                        ids,
                        ..Default::default()
                    };
                    client.mark_read(request(call, &metadata)).await.map(drop)
                }
                Change::Seen => {
                    let call = pb::MarkSeenRequest { selection };
                    client.mark_seen(request(call, &metadata)).await.map(drop)
                }
                Change::Archive => {
                    let call = pb::ArchiveRequest { selection };
                    client.archive(request(call, &metadata)).await.map(drop)
                }
            }
        }
    })
    .await;
    Ok((measured, used.load(std::sync::atomic::Ordering::Relaxed)))
}

async fn conversation(
    settings: &Settings,
    path: &Path,
    url: &str,
    servers: &[&Server],
) -> anyhow::Result<harness::Measurement> {
    let clients: Arc<Vec<ConversationServiceClient<Channel>>> = Arc::new(
        connections(url, settings.load.connections)
            .await?
            .into_iter()
            .map(ConversationServiceClient::new)
            .collect(),
    );
    let users = Arc::new(path.users("c", CONVERSATION_USERS, "")?);
    // Every user calls once first, so each is known by username when the other creates.
    for (i, metadata) in users.iter().enumerate() {
        let mut client = clients[i % clients.len()].clone();
        client
            .list(request(conv::ListRequest::default(), metadata))
            .await?;
    }
    Ok(measure(settings.load, servers, move |turn| {
        let mut client = clients[turn.worker % clients.len()].clone();
        let me = turn.n as usize % CONVERSATION_USERS;
        let other = me ^ 1;
        let metadata = users[me].clone();
        async move {
            let created = client
                .create(request(
                    conv::CreateRequest {
                        username: format!("c{other}"),
                    },
                    &metadata,
                ))
                .await?
                .into_inner();
            let id = created
                .conversation
                .map(|c| c.id)
                .ok_or_else(|| Status::internal("Create returned no conversation"))?;
            client
                .send_message(request(
                    conv::SendMessageRequest {
                        conversation_id: id,
                        content: "hello from the benchmark".into(),
                        idempotency_key: String::new(),
                    },
                    &metadata,
                ))
                .await?;
            client
                .list(request(conv::ListRequest::default(), &metadata))
                .await?;
            Ok::<(), Status>(())
        }
    })
    .await)
}
