//! Fresh, throw-away databases for one benchmark run.

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database that exists for one scenario: a SQLite file in a temporary directory, or a
/// PostgreSQL database `sb_bench_<uuid>` dropped by [`BenchDatabase::drop_now`].
pub struct BenchDatabase {
    pub url: String,
    kind: Kind,
}

enum Kind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl BenchDatabase {
    /// `server_url` is the PostgreSQL server (`postgres://user@host:port`), ignored for SQLite.
    pub async fn create(backend: Backend, server_url: &str, label: &str) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new().prefix("sb-bench-").tempdir()?;
                let url = format!(
                    "sqlite:{}",
                    dir.path().join(format!("{label}.db")).display()
                );
                Ok(Self {
                    url,
                    kind: Kind::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let server = server_url.trim_end_matches('/');
                let admin_url = format!("{server}/postgres");
                let name = format!("sb_bench_{}_{}", label, uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .with_context(|| format!("connecting to {admin_url}"))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                Ok(Self {
                    url: format!("{server}/{name}"),
                    kind: Kind::Postgres { admin_url, name },
                })
            }
        }
    }

    /// Removes the database (SQLite: when the value is dropped).
    pub async fn drop_now(self) -> anyhow::Result<()> {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            let mut admin = PgConnection::connect(admin_url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}
