//! `metrics`: what keeping metrics costs. Two stacks on the same backend, one with every
//! server keeping metrics and scraped every second (a demanding Prometheus), one without;
//! `list` and `send` through the gateway take the two in turn in one window each, so both
//! see the same host and the ratio is not drift between windows.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use switchboard::testing::Backend;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;

use super::{
    harness::{self, Secrets, Settings, Stack, row},
    unary::{self, BROADCASTS_IN_HISTORY, Clients, LIST_USERS, RECIPIENTS, SENDER_SCOPES},
};
use crate::{identity::request, report::Row, servers::Server};

/// How often the metrics stack is scraped.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(
    settings: &Settings,
    backend: Backend,
    secrets: &Secrets,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let off = Stack::start(settings, backend, secrets).await?;
    let on = Stack::start_with(settings, backend, secrets, true).await?;
    let outcome = measure(settings, backend, secrets, [&off, &on], rows).await;
    off.stop().await;
    on.stop().await;
    outcome
}

async fn measure(
    settings: &Settings,
    backend: Backend,
    secrets: &Secrets,
    stacks: [&Stack; 2],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = settings.load.connections;
    let sender = secrets.direct().metadata("bench-seeder", SENDER_SCOPES)?;
    let mut gateways: Vec<Clients> = Vec::new();
    for stack in stacks {
        let direct = unary::notification_clients(&stack.notification.url(), n).await?;
        unary::seed(
            &direct,
            &sender,
            "l",
            LIST_USERS,
            settings.rows_per_user,
            LIST_USERS,
        )
        .await?;
        harness::settle(backend, &stack.notifications_url).await?;
        gateways.push(unary::notification_clients(&stack.gateway.url(), n).await?);
    }
    let scraping = CancellationToken::new();
    let _stop_scraping = scraping.clone().drop_guard();
    for addr in &stacks[1].metrics {
        tokio::spawn(scrape_every_second(*addr, scraping.clone()));
    }
    let servers: Vec<Vec<&Server>> = stacks
        .iter()
        .map(|s| vec![&s.gateway, &s.notification])
        .collect();
    let servers: Vec<&[&Server]> = servers.iter().map(Vec::as_slice).collect();
    let path = secrets.gateway();
    let history = LIST_USERS * settings.rows_per_user + BROADCASTS_IN_HISTORY;

    {
        let targets = gateways
            .iter()
            .map(|clients| Ok((clients.clone(), path.users("l", LIST_USERS, "")?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let measured = unary::list_interleaved(settings.load, targets, &servers, true).await;
        push_pair(
            rows,
            backend,
            "list",
            measured,
            &format!("through the gateway, {history} rows; with and without metrics in turn"),
        );
    }

    let senders = Arc::new(gateways);
    let metadata = path.metadata("bench-sender-metrics", SENDER_SCOPES)?;
    let measured = harness::measure_interleaved(settings.load, &servers, move |turn, stack| {
        let clients = &senders[stack];
        let mut client = clients[turn.worker % clients.len()].clone();
        let call = request(unary::send_call(turn.n as usize % RECIPIENTS), &metadata);
        async move { client.send(call).await.map(drop) }
    })
    .await;
    push_pair(
        rows,
        backend,
        "send",
        measured,
        "through the gateway, 1 recipient, 120 B; with and without metrics in turn",
    );
    Ok(())
}

/// The rows `metrics-off` and `metrics-on`, the latter as a share of the former.
fn push_pair(
    rows: &mut Vec<Row>,
    backend: Backend,
    scenario: &str,
    measured: Vec<harness::Measurement>,
    note: &str,
) {
    let mut measured = measured.into_iter();
    let (Some(off), Some(on)) = (measured.next(), measured.next()) else {
        return;
    };
    let off = row(backend, scenario, "metrics-off", off, note);
    let mut on = row(backend, scenario, "metrics-on", on, note);
    if off.rps > 0.0 {
        on.compared_to = Some("metrics-off".into());
        on.ratio = Some(on.rps / off.rps);
    }
    rows.push(off);
    rows.push(on);
}

/// `GET /metrics` at `addr` every [`SCRAPE_INTERVAL`] until `stop`, as Prometheus would.
async fn scrape_every_second(addr: SocketAddr, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SCRAPE_INTERVAL) => {}
        }
        if let Err(err) = scrape(addr).await {
            eprintln!("bench: scraping {addr} failed: {err}");
        }
    }
}

async fn scrape(addr: SocketAddr) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await?;
    Ok(body.len())
}
