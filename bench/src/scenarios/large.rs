//! `list` over a large history: `large_users` users with `rows_per_user` notifications each
//! (10,000 × 100 = 1,000,000 by default), read like the 1,000-row history of `unary::list`.
//! The history is written through `Send` itself (1,000 recipients a call), so whatever a Send
//! maintains (unread counters) is maintained here too.

use std::time::Instant;

use super::{
    harness::{self, Secrets, Settings, database, row, start_notification},
    unary,
};
use switchboard::testing::Backend;

use crate::report::Row;

pub async fn run(
    settings: &Settings,
    backend: Backend,
    secrets: &Secrets,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (database, url) = database(settings, backend, "large").await?;
    let server = start_notification(settings, &url, &secrets.internal_token).await?;
    let outcome = async {
        let clients = unary::notification_clients(&server.url(), settings.load.connections).await?;
        let sender = secrets
            .direct()
            .metadata("bench-seeder", "notifications:send notifications:broadcast")?;
        let seeding = Instant::now();
        unary::seed(
            &clients,
            &sender,
            "u",
            settings.large_users,
            settings.rows_per_user,
            1000,
        )
        .await?;
        let seeded_in = seeding.elapsed();
        harness::settle(backend, &url).await?;
        let history = settings.large_users * settings.rows_per_user + unary::BROADCASTS_IN_HISTORY;
        let measured = unary::list(
            settings,
            &secrets.direct(),
            &clients,
            &[&server],
            settings.large_users,
            "u",
        )
        .await?;
        rows.push(row(
            backend,
            "list-large",
            "direct",
            measured,
            format!(
                "{history} rows, {} users, page 50 + unread counts (seeded in {:.0} s)",
                settings.large_users,
                seeded_in.as_secs_f64()
            ),
        ));
        anyhow::Ok(())
    }
    .await;
    server.stop().await;
    drop(database);
    outcome
}
