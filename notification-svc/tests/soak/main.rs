//! Soak: thousands of open streams plus steady send load against the real binary, bounded
//! in time (SOAK_SECONDS, default 30) and on loopback only. No error, no lost notification,
//! memory flat; RSS is printed at start, after the streams opened and at the end.
//!
//! Its own test binary, so it runs alone rather than starving the other tests of CPU.

#[path = "../api/binary.rs"]
mod binary;

mod helpers {
    pub use switchboard::identity::scope;

    pub const INTERNAL_TOKEN: &str = "test-internal-token";
    pub const ALL_SCOPES: &[&str] = &[scope::SEND, scope::BROADCAST, scope::SEND_AS];

    pub fn caller(user_id: &str, scopes: &[&str]) -> switchboard::Caller {
        switchboard::Caller {
            user_id: user_id.to_owned(),
            username: user_id.to_owned(),
            avatar_url: String::new(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }
}

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use switchboard::{
    identity::ForwardIdentity,
    proto::notification::v1::{
        self as pb, notification_service_client::NotificationServiceClient,
        subscribe_response::Event,
    },
    testing::{Backend, TestDatabase},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use crate::{binary::start_binary, helpers::*};

fn ids(notifications: &[pb::Notification]) -> Vec<String> {
    notifications.iter().map(|n| n.id.clone()).collect()
}

fn send_to(recipient: &str, content: &str) -> pb::SendRequest {
    pb::SendRequest {
        recipient_ids: vec![recipient.to_owned()],
        category: "soak".into(),
        content: content.into(),
        ..Default::default()
    }
}

fn broadcast(content: &str) -> pb::SendRequest {
    pb::SendRequest {
        broadcast: true,
        category: "soak".into(),
        content: content.into(),
        ..Default::default()
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn as_user(
    channel: &Channel,
    user: &str,
) -> NotificationServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, ForwardIdentity>,
> {
    NotificationServiceClient::with_interceptor(
        channel.clone(),
        ForwardIdentity::new(caller(user, ALL_SCOPES), INTERNAL_TOKEN),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_under_steady_load_lose_nothing_and_stay_flat() {
    let subscribers = env_or("SOAK_SUBSCRIBERS", 2000) as usize;
    let seconds = env_or("SOAK_SECONDS", 30);
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "soak.db").await;
    let mut server = start_binary(&url, None);
    let pid = server.child.id();
    let rss_start = rss_kib(pid);

    // Streams spread over a few connections, as many clients would be.
    let channels: Vec<Channel> = (0..4)
        .map(|_| {
            Endpoint::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .connect_lazy()
        })
        .collect();
    let received: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let stop = CancellationToken::new();
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let user = format!("user-{i}");
        let mut stream = as_user(&channels[i % channels.len()], &user)
            .subscribe(pb::SubscribeRequest::default())
            .await
            .expect("subscribe")
            .into_inner();
        let received = received.clone();
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    message = stream.message() => match message {
                        Ok(Some(pb::SubscribeResponse { event: Some(Event::Notification(n)) })) => {
                            received.lock().unwrap().entry(user.clone()).or_default().insert(n.id);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(tonic::Status::unknown("stream ended")),
                        Err(status) => return Err(status),
                    },
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_warm = rss_kib(pid);

    // Steady load: a direct notification every 10 ms to a rotating user, a broadcast a second.
    let mut sender = as_user(&channels[0], "service");
    let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
    let mut broadcasts = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut n = 0usize;
    while tokio::time::Instant::now() < until {
        tick.tick().await;
        n += 1;
        if n.is_multiple_of(100) {
            let sent = sender
                .send(broadcast(&format!("b{n}")))
                .await
                .expect("send");
            broadcasts.extend(ids(&sent.into_inner().notifications));
        } else {
            let user = format!("user-{}", (n * 7919) % subscribers);
            let sent = sender
                .send(send_to(&user, &format!("n{n}")))
                .await
                .expect("send");
            expected
                .entry(user)
                .or_default()
                .extend(ids(&sent.into_inner().notifications));
        }
    }

    // Every stream gets its own notifications and every broadcast.
    let nothing = HashSet::new();
    let complete = |received: &HashMap<String, HashSet<String>>| {
        (0..subscribers).all(|i| {
            let user = format!("user-{i}");
            let got = received.get(&user).unwrap_or(&nothing);
            expected.get(&user).is_none_or(|own| own.is_subset(got)) && broadcasts.is_subset(got)
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !complete(&received.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications missing after the load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_end = rss_kib(pid);
    stop.cancel();
    for reader in readers {
        reader.await.unwrap().expect("no stream error");
    }
    let total: usize = received.lock().unwrap().values().map(HashSet::len).sum();
    println!(
        "soak: {subscribers} streams, {seconds} s, {n} sends ({} broadcasts), {total} deliveries; \
         RSS start {rss_start} KiB, with streams {rss_warm} KiB, end {rss_end} KiB",
        broadcasts.len()
    );
    assert!(
        rss_end <= rss_warm * 3 / 2 + 32 * 1024,
        "memory grew under steady load: {rss_warm} KiB -> {rss_end} KiB"
    );
    let exit = server.signal_and_wait("-TERM");
    assert!(exit.success(), "clean exit after the soak: {exit:?}");
}
