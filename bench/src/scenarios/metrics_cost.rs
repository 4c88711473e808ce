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

/// Each operation twice, the two stacks in turn, first with the stack without metrics
/// first, then the other way round. `list`'s rps differs between two stacks even when
/// neither keeps metrics (see bench/README.md), so the servers' CPU per call is reported too.
async fn measure(
    settings: &Settings,
    backend: Backend,
    secrets: &Secrets,
    [off, on]: [&Stack; 2],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let n = settings.load.connections;
    let sender = secrets.direct().metadata("bench-seeder", SENDER_SCOPES)?;
    let mut gateways: Vec<Clients> = Vec::new();
    for stack in [off, on] {
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
    for addr in &on.metrics {
        tokio::spawn(scrape_every_second(*addr, scraping.clone()));
    }
    let path = secrets.gateway();
    let history = LIST_USERS * settings.rows_per_user + BROADCASTS_IN_HISTORY;
    // (stack index, path name) in the order the turns take them.
    let orders = [
        [(0, "metrics-off"), (1, "metrics-on")],
        [(1, "metrics-on"), (0, "metrics-off")],
    ];
    let stacks = [off, on];
    for (pass, order) in orders.into_iter().enumerate() {
        let servers: Vec<Vec<&Server>> = order
            .iter()
            .map(|(i, _)| vec![&stacks[*i].gateway, &stacks[*i].notification])
            .collect();
        let servers: Vec<&[&Server]> = servers.iter().map(Vec::as_slice).collect();
        let first = order[0].1;
        let targets = order
            .iter()
            .map(|(i, _)| Ok((gateways[*i].clone(), path.users("l", LIST_USERS, "")?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let measured = unary::list_interleaved(settings.load, targets, &servers, true).await;
        push_pass(
            rows,
            backend,
            "list",
            order.map(|(_, name)| name),
            measured,
            &format!(
                "through the gateway, {history} rows; pass {}, {first} first",
                pass + 1
            ),
        );

        let senders = Arc::new(order.map(|(i, _)| gateways[i].clone()));
        let metadata = path.metadata("bench-sender-metrics", SENDER_SCOPES)?;
        let measured = harness::measure_interleaved(settings.load, &servers, move |turn, stack| {
            let clients = &senders[stack];
            let mut client = clients[turn.worker % clients.len()].clone();
            let call = request(unary::send_call(turn.n as usize % RECIPIENTS), &metadata);
            async move { client.send(call).await.map(drop) }
        })
        .await;
        push_pass(
            rows,
            backend,
            "send",
            order.map(|(_, name)| name),
            measured,
            &format!(
                "through the gateway, 1 recipient, 120 B; pass {}, {first} first",
                pass + 1
            ),
        );
    }
    Ok(())
}

/// One pass's rows, named `names` in measuring order; `metrics-on` as a share of
/// `metrics-off`.
fn push_pass(
    rows: &mut Vec<Row>,
    backend: Backend,
    scenario: &str,
    names: [&str; 2],
    measured: Vec<harness::Measurement>,
    note: &str,
) {
    let mut pass: Vec<Row> = names
        .iter()
        .zip(measured)
        .map(|(name, measured)| row(backend, scenario, name, measured, note))
        .collect();
    let off = pass
        .iter()
        .find(|r| r.path == "metrics-off")
        .map(|r| r.rps)
        .unwrap_or(0.0);
    for row in pass
        .iter_mut()
        .filter(|r| r.path == "metrics-on" && off > 0.0)
    {
        row.compared_to = Some("metrics-off".into());
        row.ratio = Some(row.rps / off);
    }
    rows.extend(pass);
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
