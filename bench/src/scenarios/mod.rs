//! The suite: per backend, the ceiling, the unary scenarios direct and through the gateway,
//! fan-out and idle streams, and List over a large history. Every server is a fresh process
//! on a fresh database.

mod fanout;
mod harness;
mod large;
mod metrics_cost;
mod unary;

use switchboard::testing::Backend;

pub use harness::Settings;
use harness::{Secrets, Stack, row, start_gateway, start_relay, unloaded};

use crate::{
    report::{Row, Target},
    servers::{Role, Server},
};

/// Runs every scenario on `backend`; rows and targets are appended.
pub async fn run_backend(
    settings: &Settings,
    backend: Backend,
    rows: &mut Vec<Row>,
    targets: &mut Vec<Target>,
) -> anyhow::Result<()> {
    let secrets = Secrets::generate();
    let first = rows.len();

    let ceiling = Server::start(&settings.exe, Role::Ceiling, &[]).await?;
    let measured = unary::ceiling(settings.load, &secrets.direct(), &[&ceiling]).await?;
    rows.push(row(
        backend,
        "list",
        "ceiling",
        measured,
        "empty tonic service",
    ));
    if settings.wants("list-unloaded") {
        // The round trip of an empty call, alone, with the gateway in front and with a byte
        // relay in front, in turn: what the proxy costs without a database behind it, and
        // how much of that any extra hop costs.
        let gateway = start_gateway(settings, &ceiling.url(), &ceiling.url(), &secrets).await?;
        let relay = start_relay(settings, &ceiling).await?;
        let (direct, through) = (secrets.direct(), secrets.gateway());
        let targets = vec![
            (
                unary::notification_clients(&ceiling.url(), 1).await?,
                direct.users("l", unary::LIST_USERS, "")?,
            ),
            (
                unary::notification_clients(&gateway.url(), 1).await?,
                through.users("l", unary::LIST_USERS, "")?,
            ),
            (
                unary::notification_clients(&relay.url(), 1).await?,
                direct.users("l", unary::LIST_USERS, "")?,
            ),
        ];
        let servers: [&[&Server]; 3] = [&[&ceiling], &[&gateway, &ceiling], &[&relay, &ceiling]];
        let mut measured =
            unary::list_interleaved(unloaded(settings.load), targets, &servers, false).await;
        let (Some(relayed), Some(through), Some(direct)) =
            (measured.pop(), measured.pop(), measured.pop())
        else {
            anyhow::bail!("the interleaved run returned no measurements");
        };
        rows.push(row(
            backend,
            "list-unloaded",
            "ceiling",
            direct,
            "1 call in flight, in turn with the gateway's and the relay's",
        ));
        rows.push(row(
            backend,
            "empty-unloaded",
            "gateway",
            through,
            "gateway in front of the empty service, 1 call in flight, in turn with the direct one",
        ));
        rows.push(row(
            backend,
            "empty-unloaded",
            "relay",
            relayed,
            "byte relay in front of the empty service, 1 call in flight, in turn with the others",
        ));
        gateway.stop().await;
        relay.stop().await;
    }
    ceiling.stop().await;

    let stack = Stack::start(settings, backend, &secrets).await?;
    let outcome = unary::all(settings, backend, &stack, &secrets, rows).await;
    let outcome = match outcome {
        Ok(()) if settings.wants("fanout") => {
            fanout::run(settings, backend, &stack, &secrets, rows).await
        }
        other => other,
    };
    stack.stop().await;
    outcome?;

    if settings.wants("metrics") {
        metrics_cost::run(settings, backend, &secrets, rows).await?;
    }

    if settings.wants("list-large") {
        large::run(settings, backend, &secrets, rows).await?;
    }

    let ours = &mut rows[first..];
    add_ratios(ours);
    targets.extend(crate::targets::check(backend, ours));
    Ok(())
}

/// Scenarios measured by the closed-loop generator, comparable with the ceiling.
const UNARY: [&str; 7] = [
    "list",
    "send",
    "mark-read",
    "mark-seen",
    "archive",
    "conversation",
    "list-large",
];

/// Fills `ratio`: ceiling scenarios to the ceiling, gateway and relay rows to their direct row.
fn add_ratios(rows: &mut [Row]) {
    let ceiling = rows
        .iter()
        .find(|r| r.path == "ceiling")
        .map(|r| r.rps)
        .unwrap_or(0.0);
    let direct: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.path == "direct")
        .map(|r| (r.scenario.clone(), r.rps))
        .collect();
    for row in rows.iter_mut() {
        match row.path.as_str() {
            "direct" if ceiling > 0.0 && UNARY.contains(&row.scenario.as_str()) => {
                row.compared_to = Some("ceiling".into());
                row.ratio = Some(row.rps / ceiling);
            }
            "gateway" | "relay" => {
                if let Some((_, rps)) = direct.iter().find(|(s, _)| *s == row.scenario) {
                    row.compared_to = Some("direct".into());
                    row.ratio = Some(row.rps / rps);
                }
            }
            _ => {}
        }
    }
}
