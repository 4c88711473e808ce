//! `idle-streams` and `fanout`: S idle Subscribe streams held open on notification-svc; the
//! server's RSS with and without them; broadcasts delivered to all of them; then a steady
//! rate of direct notifications to random subscribers.
//!
//! Latency is from just before the Send call to the receipt of each copy, read off one clock:
//! the send time travels in the notification's content.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use switchboard::{
    proto::notification::v1::{self as pb, subscribe_response::Event},
    testing::Backend,
};
use tokio::sync::mpsc;

use super::{
    harness::{Secrets, Settings, Stack},
    unary,
};
use crate::{
    identity::request,
    load::{Measured, Percentiles, histogram},
    report::Row,
    servers::Usage,
    stalls::StallProbe,
};

/// One copy received: by which subscriber, its category, its latency in microseconds.
type Receipt = (usize, String, u64);

pub async fn run(
    settings: &Settings,
    backend: Backend,
    stack: &Stack,
    secrets: &Secrets,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let server = &stack.notification;
    let subscribers = settings.subscribers;
    // Below the server's 4096 concurrent streams per connection.
    let connections = subscribers.div_ceil(1000).clamp(1, 64);
    let stream_clients = unary::notification_clients(&server.url(), connections).await?;
    let senders = unary::notification_clients(&server.url(), 2).await?;
    let sender = secrets
        .direct()
        .metadata("bench-fanout", "notifications:send notifications:broadcast")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = server.usage();

    let epoch = Instant::now();
    let users = secrets.direct().users("s", subscribers, "")?;
    let (receipts, mut received) = mpsc::unbounded_channel::<Receipt>();
    let mut tasks = Vec::with_capacity(subscribers);
    for (i, metadata) in users.iter().enumerate() {
        let mut client = stream_clients[i % stream_clients.len()].clone();
        let receipts = receipts.clone();
        let call = request(pb::SubscribeRequest::default(), metadata);
        tasks.push(tokio::spawn(async move {
            let Ok(response) = client.subscribe(call).await else {
                return;
            };
            let mut stream = response.into_inner();
            while let Some(Ok(event)) = stream.next().await {
                if let Some(Event::Notification(n)) = event.event {
                    let sent_at: u64 = n
                        .content
                        .strip_prefix("t=")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    let now = epoch.elapsed().as_micros() as u64;
                    let _ = receipts.send((i, n.category, now.saturating_sub(sent_at)));
                }
            }
        }));
    }
    drop(receipts);

    let stamp = move || format!("t={}", epoch.elapsed().as_micros());
    let broadcast = |category: &str| pb::SendRequest {
        broadcast: true,
        category: category.into(),
        content: stamp(),
        ..Default::default()
    };

    // A stream is registered once it has received a broadcast: one goes out each second
    // until every subscriber has had one.
    let mut client = senders[0].clone();
    let mut ready = std::collections::HashSet::new();
    let patience = Instant::now() + Duration::from_secs(120);
    while ready.len() < subscribers && Instant::now() < patience {
        client
            .send(request(broadcast("bench.ready"), &sender))
            .await?;
        let pause = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some((who, category, _))) =
            tokio::time::timeout_at(pause, received.recv()).await
        {
            if category == "bench.ready" {
                ready.insert(who);
            }
        }
    }
    let ready: Vec<u64> = vec![0; ready.len()];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_streams = server.usage();
    let per_stream_kib =
        (with_streams.rss_kib as f64 - baseline.rss_kib as f64) / subscribers.max(1) as f64;
    rows.push(Row {
        kib_per_stream: Some(per_stream_kib),
        note: format!(
            "{} of {subscribers} streams ready; RSS {:.1} → {:.1} MiB: {per_stream_kib:.1} KiB per stream",
            ready.len(),
            baseline.rss_kib as f64 / 1024.0,
            with_streams.rss_kib as f64 / 1024.0
        ),
        ..stream_row(backend, "idle-streams", &ready, subscribers, with_streams, baseline, Duration::ZERO)
    });

    // Broadcasts, one at a time, each to every subscriber.
    let before = server.usage();
    let started = Instant::now();
    let mut all = Vec::new();
    for _ in 0..settings.broadcasts {
        client
            .send(request(broadcast("bench.fanout"), &sender))
            .await?;
        all.extend(
            collect(
                &mut received,
                "bench.fanout",
                subscribers,
                Duration::from_secs(30),
            )
            .await,
        );
    }
    let expected = subscribers * settings.broadcasts;
    rows.push(Row {
        note: format!(
            "{} broadcasts × {subscribers} subscribers: {} of {expected} copies; latency send → each receipt",
            settings.broadcasts,
            all.len()
        ),
        ..stream_row(backend, "fanout-broadcast", &all, expected, server.usage(), before, started.elapsed())
    });

    // Direct notifications at a steady rate to random subscribers.
    let probe = StallProbe::start();
    let before = server.usage();
    let started = Instant::now();
    let total = settings.direct_rate as u64 * settings.direct_seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(settings.direct_rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let sender = Arc::new(sender);
    for _ in 0..total {
        ticker.tick().await;
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let target = (seed >> 33) as usize % subscribers.max(1);
        let call = pb::SendRequest {
            recipient_ids: vec![format!("s{target}")],
            category: "bench.direct".into(),
            content: stamp(),
            ..Default::default()
        };
        let mut client = senders[target % senders.len()].clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let _ = client.send(request(call, &sender)).await;
        });
    }
    let direct = collect(
        &mut received,
        "bench.direct",
        total as usize,
        Duration::from_secs(10),
    )
    .await;
    let stalls = probe.finish();
    rows.push(Row {
        note: format!(
            "{} /s for {} s to random subscribers: {} of {total} delivered; meanwhile {}",
            settings.direct_rate,
            settings.direct_seconds,
            direct.len(),
            stalls.describe()
        ),
        host_stalls: Some(stalls),
        ..stream_row(
            backend,
            "fanout-direct",
            &direct,
            total as usize,
            server.usage(),
            before,
            started.elapsed(),
        )
    });

    for task in tasks {
        task.abort();
    }
    Ok(())
}

/// Latencies of `category` until `expected` arrived or `patience` ran out.
async fn collect(
    received: &mut mpsc::UnboundedReceiver<Receipt>,
    category: &str,
    expected: usize,
    patience: Duration,
) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut latencies = Vec::with_capacity(expected);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some((_, c, latency))) if c == category => latencies.push(latency),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    latencies
}

fn stream_row(
    backend: Backend,
    scenario: &str,
    latencies: &[u64],
    expected: usize,
    after: Usage,
    before: Usage,
    elapsed: Duration,
) -> Row {
    let mut measured = Measured {
        ok: latencies.len() as u64,
        errors: expected.saturating_sub(latencies.len()) as u64,
        elapsed,
        latency: histogram(),
        first_error: None,
    };
    for &latency in latencies {
        let _ = measured.latency.record(latency.clamp(1, 100_000_000));
    }
    Row {
        backend: backend.name().into(),
        scenario: scenario.into(),
        path: "direct".into(),
        rps: if elapsed.is_zero() {
            0.0
        } else {
            measured.ok as f64 / elapsed.as_secs_f64()
        },
        latency: Percentiles::of(&measured.latency),
        ok: measured.ok,
        errors: measured.errors,
        server_cpu_s: after.cpu_seconds - before.cpu_seconds,
        server_rss_mib: after.rss_kib as f64 / 1024.0,
        server_anon_mib: after.anon_kib as f64 / 1024.0,
        compared_to: None,
        ratio: None,
        kib_per_stream: None,
        host_stalls: None,
        note: String::new(),
    }
}
