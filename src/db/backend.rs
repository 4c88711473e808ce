//! A database backend as the services' stores use it, implemented once per database.

use std::future::Future;

use sqlx::{PgPool, Pool, Postgres, Sqlite, SqlitePool, Transaction};

use super::sqlite_pools::SqlitePools;

/// What a store needs from a database: where reads and one-statement writes run, how its
/// transactions start, and what a write's result says about the storage.
///
/// The services' SQL is shared between SQLite and PostgreSQL; what differs is how a
/// transaction is opened (SQLite's one write connection and `BEGIN IMMEDIATE`, PostgreSQL's
/// snapshot for reads) and who watches the storage. Stores reach a backend only through this
/// trait (and their own dialect trait on top of it), so a backend that misses a piece of the
/// contract does not compile.
pub trait Backend: Send + Sync + 'static {
    /// The sqlx database, for queries and transactions.
    type Db: sqlx::Database;

    /// Reads outside a transaction.
    fn read_pool(&self) -> &Pool<Self::Db>;

    /// Writes of one statement (autocommit), outside [`Backend::begin_write`].
    fn write_pool(&self) -> &Pool<Self::Db>;

    /// A write transaction; it may read first without failing to upgrade later.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// A read-only transaction on one snapshot, so a page and the totals read beside it
    /// agree.
    fn begin_read(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// Passes a write's result through, noting what it says about the storage (health
    /// follows it where the storage is this process's).
    fn wrote<T>(&self, result: Result<T, crate::Error>) -> Result<T, crate::Error>;
}

/// SQLite: reads on the read pool, every write on the one write connection.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pools: SqlitePools,
}

impl SqliteBackend {
    pub fn new(pools: SqlitePools) -> Self {
        SqliteBackend { pools }
    }
}

impl Backend for SqliteBackend {
    type Db = Sqlite;

    fn read_pool(&self) -> &SqlitePool {
        &self.pools.read
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.pools.write
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        sqlite_begin_write(&self.pools.write)
    }

    /// SQLite's deferred `BEGIN` reads one snapshot in WAL mode.
    fn begin_read(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        self.pools.read.begin()
    }

    /// A full disk turns health NOT_SERVING (see [`super::WriteHealth`]).
    fn wrote<T>(&self, result: Result<T, crate::Error>) -> Result<T, crate::Error> {
        self.pools.writes.record(result)
    }
}

/// PostgreSQL: one pool for everything.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    pub fn new(pool: PgPool) -> Self {
        PostgresBackend { pool }
    }
}

impl Backend for PostgresBackend {
    type Db = Postgres;

    fn read_pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    /// READ COMMITTED: the stores settle their races with unique keys, row locks and
    /// conditional statements, not with isolation.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        self.pool.begin()
    }

    fn begin_read(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }

    /// The storage is the server's: health follows whether it answers, not writes.
    fn wrote<T>(&self, result: Result<T, crate::Error>) -> Result<T, crate::Error> {
        result
    }
}

/// Starts a SQLite write transaction. Write transactions that read first must take the write
/// lock up front: a deferred transaction upgrading from read to write fails with SQLITE_BUSY
/// at once, whatever the busy timeout.
pub(super) async fn sqlite_begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}
