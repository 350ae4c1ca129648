//! The only database API the app calls: one enum over SQLite (default) and PostgreSQL.
//!
//! Not `sqlx::Any`: it cannot set SQLite pragmas per connection and decodes slower. Instead most
//! SQL text is shared (`$1` placeholders and `RETURNING` work on both) and the [`on_db!`] /
//! [`on_tx!`] macros type-check each query once per backend.

pub mod api_keys;
pub mod audit;
pub mod card_attempts;
pub mod checkouts;
pub mod console_invites;
pub mod console_login_locks;
pub mod console_sessions;
pub mod console_users;
pub mod idempotency;
pub mod merchants;
pub mod messages;
pub mod operations;
pub mod outbox;
pub mod owners;
pub mod payment_requests;
pub mod payment_row;
pub mod payments;
pub mod pending_cards;
pub mod processor_events;
pub mod processors;
pub mod reconcile;
pub mod refund_requests;
pub mod repeat_numbers;
pub mod saved_cards;
pub mod saved_searches;
pub mod scope;
pub mod sealed;
pub mod search;
pub mod settlements;
pub mod sms;
pub mod stats;
pub mod subscriptions;
pub mod theme_uploads;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// The error of every database call. Layers above `db` name this alias, never `sqlx`, so the
/// driver stays an implementation detail of this module.
pub type Error = sqlx::Error;

/// A connection pool. SQLite keeps a separate single-connection writer pool: SQLite allows one
/// writer at a time, and queueing writers in the app avoids `SQLITE_BUSY` upgrade deadlocks.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// An open write transaction on either backend.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the read pool of whichever backend `$db` is.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read: $c, .. } => $body,
            $crate::db::Db::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the writer of whichever backend `$db` is, outside any
/// transaction: for a write that is one statement, which is atomic on its own. An explicit
/// BEGIN/COMMIT around it costs PostgreSQL two more round trips for nothing.
#[macro_export]
macro_rules! on_write {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { write: $c, .. } => $body,
            $crate::db::Db::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the connection of the transaction `$tx`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Like [`on_tx!`] for `execute`: yields the number of affected rows on either backend.
#[macro_export]
macro_rules! exec_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        $crate::on_tx!($tx, $c => $body.map(|r| r.rows_affected()))
    };
}

impl Db {
    /// Connects and applies migrations. `sqlite://` URLs create the file (and its folder).
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            Self::connect_pg(opts).await
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // No ping before each acquire (see `connect_pg`): a SQLite connection is a file
            // handle on a thread of ours, and the ping was a round trip to that thread on every
            // query, on the single writer too.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(opts.clone())
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&write).await?;
            let read = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(opts.read_only(true))
                .await?;
            Ok(Db::Sqlite { read, write })
        }
    }

    /// Connects to PostgreSQL with explicit options (tests pass a per-test `search_path`).
    pub async fn connect_pg(opts: PgConnectOptions) -> anyhow::Result<Db> {
        // sqlx pings a connection when it goes back to the pool, and by default once more
        // before handing it out: with that, every query cost PostgreSQL three round trips. The
        // ping on release stays (it flushes a dropped transaction's rollback and finds a broken
        // connection); the one on acquire is off. A connection broken in between (the database
        // restarted) fails the one query that finds it, and the pool then drops it.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Db::Postgres(pool))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin().await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Runs a statement outside a transaction on the writer.
    pub async fn execute_write(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite { write, .. } => sqlx::query(sql).execute(write).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

/// True when `e` is a unique-constraint violation (on either backend).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The server-wide secret (session tokens, CSRF, sandbox return signatures). Stored in the
/// database so several instances sharing one PostgreSQL agree on it; created on first start,
/// sealed under the master key when one is configured.
pub async fn server_secret(db: &Db, keys: &crate::secrets::Keyring) -> anyhow::Result<Vec<u8>> {
    let candidate = keys.seal_or_clear(
        &crate::util::random_secret("srv_"),
        sealed::SERVER_SECRET_CONTEXT,
    )?;
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO server_settings (name, value) VALUES ('secret', $1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&candidate)
    .execute(c)
    .await)?;
    let value: String = on_tx!(&mut tx, c => sqlx::query_scalar(
        "SELECT value FROM server_settings WHERE name = 'secret'",
    )
    .fetch_one(c)
    .await)?;
    tx.commit().await?;
    let secret = keys.reveal(&value, sealed::SERVER_SECRET_CONTEXT)?;
    Ok(secret.as_bytes().to_vec())
}
