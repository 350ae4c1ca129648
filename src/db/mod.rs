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
pub mod pg;
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
mod writer;

pub use writer::{SqliteTx, SqliteWriter, WriteStats, MAX_GROUP};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The error of every database call. Layers above `db` name this alias, never `sqlx`, so the
/// driver stays an implementation detail of this module.
pub type Error = sqlx::Error;

/// A connection pool. SQLite keeps a separate single writer connection: SQLite allows one
/// writer at a time, and queueing writers in the app avoids `SQLITE_BUSY` upgrade deadlocks.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite {
        read: SqliteReaders,
        write: SqliteWriter,
    },
    Postgres(pg::PgConns),
}

/// SQLite's read-only connections (8): each request's read takes a free one, or waits for one.
/// Not a sqlx pool for the same reason as [`SqliteWriter`]: the pool pinged a connection every
/// time it came back, a hop to its thread and back per read (a re-open is one read).
#[derive(Clone)]
pub struct SqliteReaders {
    conns: Arc<[Arc<Mutex<Option<SqliteConnection>>>]>,
    /// One permit per connection: waiters queue here in order, and a permit always finds a
    /// connection free.
    permits: Arc<tokio::sync::Semaphore>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for SqliteReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteReaders")
    }
}

/// One of the [`SqliteReaders`], held until dropped. The connection is let go before the
/// permit (fields drop in order), so whoever gets the permit next finds it free.
pub struct ReaderConn {
    conn: OwnedMutexGuard<Option<SqliteConnection>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ReaderConn {
    /// The connection; `PoolClosed` once the readers are closed.
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }
}

impl SqliteReaders {
    /// A free connection, waiting in line (FIFO) when all are busy.
    pub async fn acquire(&self) -> ReaderConn {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the readers' semaphore is never closed");
        // With a permit, at least as many connections are unlocked as there are permit
        // holders still looking: the scan finds one, at worst after another holder's pick.
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        for i in start.. {
            if let Ok(conn) = Arc::clone(&self.conns[i % n]).try_lock_owned() {
                return ReaderConn {
                    conn,
                    _permit: permit,
                };
            }
            if (i - start) % n == n - 1 {
                tokio::task::yield_now().await;
            }
        }
        unreachable!("the scan above only ends by returning")
    }

    /// Closes every connection: reads after this fail with `PoolClosed`.
    pub async fn close(&self) {
        for c in self.conns.iter() {
            if let Some(conn) = c.lock().await.take() {
                if let Err(e) = sqlx::Connection::close(conn).await {
                    tracing::debug!(error = %e, "closing a reader connection");
                }
            }
        }
    }
}

/// PostgreSQL connections per instance (size `max_connections` for all instances together).
const PG_CONNECTIONS: usize = 16;

/// SQLite's read-only connections, each with its thread.
const READERS: usize = 8;

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Runs SQLite's WAL checkpoints beside the writer, on a connection of its own, until the
/// database is dropped. `PASSIVE` never waits for readers or the writer: frames a reader still
/// needs are copied by a later round.
fn spawn_checkpointer(opts: SqliteConnectOptions, writer: writer::WeakWriter) {
    tokio::spawn(async move {
        let mut conn = match opts.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpointer: no connection; the writer checkpoints");
                return;
            }
        };
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if writer.is_dropped() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut conn)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint");
            }
        }
    });
}

/// What a write transaction's COMMIT waits for.
///
/// A later durable COMMIT makes every earlier relaxed one durable too: on both stores the
/// log is one sequence, flushed up to the durable commit's end (SQLite's WAL file, PostgreSQL's
/// WAL). So a power cut can only take back relaxed commits made after the last durable one,
/// never something a durable transaction read or built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// The commit is on disk before the caller hears of it: every write that money, a
    /// processor or a merchant depends on, and the default.
    Durable,
    /// The commit is visible at once, and on disk with the next durable commit (or SQLite's next
    /// checkpoint) instead of before the caller hears of it. Only for rows whose loss a shopper
    /// repairs by opening the link again, and that nothing outside this server has seen: a
    /// checkout's creation, its chosen method, its language. On SQLite it skips the one
    /// `fdatasync` per group that every writer behind it waits for (bench/README.md, change 38);
    /// on PostgreSQL it is a durable commit (see `Db::relaxed_fetch`).
    Relaxed,
}

/// An open write transaction on either backend.
pub enum Tx {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// A transaction on one of PostgreSQL's connections, which it holds until committed or dropped.
/// Dropped uncommitted, it is rolled back by the connection's next user.
pub struct PgTx(pg::PgConn);

impl PgTx {
    async fn begin(conns: &pg::PgConns) -> Result<PgTx, sqlx::Error> {
        let mut c = conns.acquire().await?;
        // Before the BEGIN goes out: cancelled while it is on its way, this connection is in a
        // transaction on the server, and the flag gets it rolled back (`pg::PgConn`). Without
        // it the slot's next users ran their single statements inside that transaction,
        // uncommitted, holding their rows' locks until some later COMMIT on the connection
        // (the stalls of PostgreSQL's delivery after the card payment scenario, bench/README.md).
        c.set_in_tx(true);
        let r = sqlx::query("BEGIN").execute(c.conn()).await;
        c.note(&r);
        r?;
        Ok(PgTx(c))
    }

    /// The connection, for a statement of the transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.0.conn()
    }

    /// See [`pg::PgConn::note`].
    pub fn note<T>(&mut self, r: &Result<T, sqlx::Error>) {
        self.0.note(r);
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let r = sqlx::query("COMMIT").execute(self.0.conn()).await;
        self.0.note(&r);
        r?;
        self.0.set_in_tx(false);
        Ok(())
    }
}

/// A value bound to a statement given to [`Tx::write`].
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

/// `args![a, b, …]`: the arguments of a [`Tx::write`], each converted into an [`Arg`].
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::db::Arg::from($a)),*]
    };
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

/// [`on_db!`] on PostgreSQL (and the single-statement writes, [`Db::write_fetch`]…): one of its
/// connections for `$body`, dropped if `$body`'s error says the connection is gone.
#[doc(hidden)]
#[macro_export]
macro_rules! on_pg {
    ($pool:expr, $c:ident => $body:expr) => {
        match $pool.acquire().await {
            Ok(mut pg) => {
                let r = {
                    let $c = pg.conn();
                    $body
                };
                pg.note(&r);
                r
            }
            Err(e) => Err(e.into()),
        }
    };
}

/// Runs `$body` with `$c` bound to the readers of whichever backend `$db` is: one of PostgreSQL's
/// connections, or one of SQLite's read-only connections. `$body` is a `Result` whose error converts from
/// `sqlx::Error` (a closed database fails there). The same holds for [`on_tx!`].
#[macro_export]
macro_rules! on_db {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read, .. } => {
                let mut reader = read.acquire().await;
                match reader.conn() {
                    Ok($c) => $body,
                    Err(e) => Err(e.into()),
                }
            }
            $crate::db::Db::Postgres(pool) => $crate::on_pg!(pool, $c => $body),
        }
    };
}

/// Runs `$body` with `$c` bound to the connection of the transaction `$tx`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            // The statements the transaction queued run first (see `SqliteTx`).
            $crate::db::Tx::Sqlite(t) => match t.conn().await {
                Ok($c) => $body,
                Err(e) => Err(e.into()),
            },
            $crate::db::Tx::Postgres(t) => {
                let r = {
                    let $c = t.conn();
                    $body
                };
                t.note(&r);
                r
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

/// A row type both backends decode (what the single-statement writes return).
pub trait Decoded:
    Send
    + Unpin
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
{
}

impl<T> Decoded for T where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
{
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
                // Every COMMIT waits for the WAL to reach the disk, as PostgreSQL's do. With
                // NORMAL, a power cut or kernel crash could take back the last commits: a
                // payment written as pending before its processor call, then charged there,
                // would be gone here. Group commit makes this one fsync per group of writers,
                // not one per transaction (bench/README.md, change 23).
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // No ping before each acquire (see `connect_pg`): a SQLite connection is a file
            // handle on a thread of ours, and the ping was a round trip to that thread on every
            // query, on the single writer too.
            // The writer runs every transaction's batches, each a statement of its own to
            // SQLite's cache: more shapes than the readers' single statements (a part that
            // begins, joins, defers or commits a group gives four of each).
            let mut conn = opts.clone().statement_cache_capacity(512).connect().await?;
            sqlx::migrate!("migrations/sqlite").run(&mut conn).await?;
            // The writer checkpoints the WAL itself only past ~40 MB, a safety net: the
            // checkpointer task does it every half second on its own connection, so the
            // checkpoint's fsyncs no longer stall the one writer every ~4 MB of WAL (they were
            // the first open's p99: 45 ms with them, 20 ms without, bench/README.md).
            sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                .execute(&mut conn)
                .await?;
            // Statement journals in memory, not in a temporary file: each UPDATE that may touch
            // several rows inside a transaction opened, unlinked and closed a file under
            // /var/tmp (three syscalls and an inode), on the one writer. Only the writer needs
            // them, and they are small; the readers keep spilling big sorts to disk.
            sqlx::query("PRAGMA temp_store = MEMORY")
                .execute(&mut conn)
                .await?;
            let write = SqliteWriter::new(conn);
            spawn_checkpointer(opts.clone(), write.downgrade());
            let mut conns = Vec::new();
            for _ in 0..READERS {
                let c = opts.clone().read_only(true).connect().await?;
                conns.push(Arc::new(Mutex::new(Some(c))));
            }
            let read = SqliteReaders {
                conns: conns.into(),
                permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
                next: Arc::default(),
            };
            Ok(Db::Sqlite { read, write })
        }
    }

    /// Connects to PostgreSQL with explicit options (tests pass a per-test `search_path`).
    pub async fn connect_pg(opts: PgConnectOptions) -> anyhow::Result<Db> {
        // Our own connections, not a sqlx pool (see `pg`): the pool pinged each connection
        // when it came back, a round trip per statement outside a transaction.
        let conns = pg::PgConns::connect(opts, PG_CONNECTIONS).await?;
        {
            let mut c = conns.acquire().await?;
            sqlx::migrate!("migrations/postgres").run(c.conn()).await?;
        }
        Ok(Db::Postgres(conns))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Begins a write transaction, committed durably.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_as(Commit::Durable).await
    }

    /// Begins a write transaction whose COMMIT waits for what `commit` says.
    pub async fn begin_as(&self, commit: Commit) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(SqliteTx::begin(write, commit).await?),
            Db::Postgres(p) => Tx::Postgres(PgTx::begin(p).await?),
        })
    }

    /// Runs a statement outside a transaction on the writer.
    pub async fn execute_write(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite { write, .. } => sqlx::query(sql)
                .execute(write.lock().await.conn()?)
                .await
                .map(|_| ()),
            Db::Postgres(p) => {
                let mut c = p.acquire().await?;
                let r = sqlx::query(sql).execute(c.conn()).await.map(|_| ());
                c.note(&r);
                r
            }
        }
    }
}

impl Db {
    /// One statement on the writer that is atomic on its own (an `UPDATE … RETURNING`, say):
    /// the rows it returns. On PostgreSQL it runs alone, with no BEGIN/COMMIT around it (two
    /// round trips fewer). On SQLite it runs in one call to the writer as a transaction that
    /// takes part in group commit ([`SqliteTx`]): with other writers waiting, its COMMIT is
    /// shared with theirs instead of writing the WAL on its own.
    pub async fn write_fetch_all<T>(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<T>, sqlx::Error>
    where
        T: Decoded,
    {
        self.single_fetch_all(Commit::Durable, sql, args).await
    }

    /// [`Db::write_fetch`] committed [`Commit::Relaxed`]: for a checkout's own rows only (see
    /// there). On PostgreSQL it is the same durable statement: turning `synchronous_commit`
    /// off for one statement would need a transaction around it (two more round trips) or
    /// connections of their own, and with it off for every statement the first open gained
    /// 3–11%, within what runs vary by (bench/README.md, change 38).
    pub async fn relaxed_fetch<T>(
        &self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: Decoded,
    {
        Ok(self
            .single_fetch_all(Commit::Relaxed, sql, args)
            .await?
            .into_iter()
            .next())
    }

    /// [`Db::write_exec`] committed [`Commit::Relaxed`] (see [`Db::relaxed_fetch`]).
    pub async fn relaxed_exec(&self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        self.single_exec(Commit::Relaxed, sql, args).await
    }

    async fn single_fetch_all<T>(
        &self,
        commit: Commit,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: Decoded,
    {
        match self {
            Db::Sqlite { write, .. } => SqliteTx::begin(write, commit)
                .await?
                .finish(Some((sql, args)))
                .await?
                .0
                .iter()
                .map(<T as sqlx::FromRow<'_, sqlx::sqlite::SqliteRow>>::from_row)
                .collect(),
            Db::Postgres(p) => on_pg!(p, c => bind_args!(sqlx::query_as::<_, T>(sql), args)
                .fetch_all(c)
                .await),
        }
    }

    /// [`Db::write_fetch_all`] for a statement PostgreSQL must plan at each run, with its
    /// arguments and the tables as they are then, instead of once per connection: a prepared
    /// statement's generic plan, made while a table was nearly empty, is kept until the table
    /// is next analyzed, however large it has grown (the delivery claim's UPDATE kept a scan
    /// of the whole outbox, bench/README.md, change 36). Planning costs a fraction of a
    /// millisecond a run. SQLite has no generic plans: there it is [`Db::write_fetch_all`].
    pub async fn write_fetch_all_replanned<T>(
        &self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: Decoded,
    {
        match self {
            Db::Sqlite { .. } => self.write_fetch_all(sql, args).await,
            Db::Postgres(p) => on_pg!(p, c => bind_args!(
                sqlx::query_as::<_, T>(sql).persistent(false), args)
                .fetch_all(c)
                .await),
        }
    }

    /// [`Db::write_fetch_all`] for a statement that returns at most one row (an
    /// `INSERT … RETURNING`).
    pub async fn write_fetch<T>(&self, sql: &str, args: Vec<Arg>) -> Result<Option<T>, sqlx::Error>
    where
        T: Decoded,
    {
        Ok(self.write_fetch_all(sql, args).await?.into_iter().next())
    }

    /// Like [`Db::write_fetch`] for a statement that returns no rows: the rows it changed.
    pub async fn write_exec(&self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        self.single_exec(Commit::Durable, sql, args).await
    }

    async fn single_exec(
        &self,
        commit: Commit,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<u64, sqlx::Error> {
        match self {
            Db::Sqlite { write, .. } => Ok(SqliteTx::begin(write, commit)
                .await?
                .finish(Some((sql, args)))
                .await?
                .1),
            Db::Postgres(p) => on_pg!(p, c => bind_args!(sqlx::query(sql), args)
                .execute(c)
                .await
                .map(|r| r.rows_affected())),
        }
    }

    /// SQLite's group commit so far (transactions ended, COMMITs run); `None` on PostgreSQL.
    pub fn write_stats(&self) -> Option<WriteStats> {
        match self {
            Db::Sqlite { write, .. } => Some(write.stats()),
            Db::Postgres(_) => None,
        }
    }
}

impl Tx {
    /// A statement whose result nobody reads (a row of the event log, the outbox, the
    /// ledger…). On PostgreSQL it runs now. On SQLite it is queued and sent with the
    /// transaction's next statement that returns something, or with its COMMIT, in one call to
    /// the writer's thread (see [`SqliteTx`]); its error then comes from that call, and fails
    /// the transaction as a whole either way. `sql` uses `$1`… placeholders like any query here.
    pub async fn write(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => {
                t.pending.push(sql, args);
                Ok(())
            }
            Tx::Postgres(t) => {
                let r = bind_args!(sqlx::query(sql), args)
                    .execute(t.conn())
                    .await
                    .map(|_| ());
                t.note(&r);
                r
            }
        }
    }

    /// Announces a read this transaction will make later with [`Tx::fetch_optional`] (the same
    /// statement and arguments), for rows that nothing the transaction writes in between can
    /// change (a merchant's settings, say). On SQLite the read then travels with the
    /// transaction's next call, and the later `fetch_optional` is answered from the row it
    /// brought back, with no call of its own; on PostgreSQL nothing happens now and the later
    /// read runs as usual.
    ///
    /// The same holds for a write whose returned row is read later (`UPDATE … RETURNING`),
    /// where running it with the next call (SQLite) or at the `fetch_optional` (PostgreSQL)
    /// gives the same outcome: `db::operations::finish_ahead`. Either way it runs once.
    pub fn read_ahead(&mut self, sql: &'static str, args: Vec<Arg>) {
        if let Tx::Sqlite(t) = self {
            t.reads.push((t.pending.count, (sql, args.clone())));
            t.pending.push(sql, args);
        }
    }

    /// A statement whose one row (or none) is read, given like [`Tx::write`]'s: on SQLite the
    /// statements the transaction queued (its BEGIN first) travel in the same call, so the
    /// statement costs no hop of its own to the writer's thread.
    pub async fn fetch_optional<T>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: Decoded,
    {
        match self {
            Tx::Sqlite(t) => {
                if t.reads.iter().any(|(_, k)| k.0 == sql && k.1 == args) {
                    // Announced, and no call has taken it yet: this one does, with whatever
                    // else is queued, rather than run the statement a second time.
                    t.run(None).await?;
                }
                if let Some(i) = t.ahead.iter().position(|(k, _)| k.0 == sql && k.1 == args) {
                    let (_, row) = t.ahead.swap_remove(i);
                    return row
                        .map(|r| <T as sqlx::FromRow<'_, sqlx::sqlite::SqliteRow>>::from_row(&r))
                        .transpose();
                }
                t.pending.push(sql, args);
                if !t.reads.is_empty() {
                    return t
                        .run(Some(t.pending.count - 1))
                        .await?
                        .0
                        .first()
                        .map(<T as sqlx::FromRow<'_, sqlx::sqlite::SqliteRow>>::from_row)
                        .transpose();
                }
                let writer::Batch { sql, args, .. } = std::mem::take(&mut t.pending);
                // Only the last statement returns rows: the queued ones are writes without
                // RETURNING, so the first row of the call is this statement's.
                let row = bind_args!(sqlx::query_as::<_, T>(&sql), args)
                    .fetch_optional(t.sending()?)
                    .await?;
                t.sent();
                Ok(row)
            }
            Tx::Postgres(t) => {
                let r = bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(t.conn())
                    .await;
                t.note(&r);
                r
            }
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.finish(None).await.map(|_| ()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_statements_are_renumbered_to_bind_from_one_list() {
        let mut b = writer::Batch::default();
        b.push("BEGIN IMMEDIATE", Vec::new());
        b.push("INSERT INTO t (a, b) VALUES ($1, $2)", args![1, "x"]);
        b.push("UPDATE t SET a = $1 WHERE b = $2 AND c = $1", args![2, "y"]);
        b.push("SELECT $10", args![Some(3)]);
        assert_eq!(
            b.sql,
            "BEGIN IMMEDIATE;\nINSERT INTO t (a, b) VALUES ($1, $2);\n\
             UPDATE t SET a = $3 WHERE b = $4 AND c = $3;\nSELECT $14"
        );
        assert_eq!(b.args.len(), 5);
        // A `$` not followed by digits is left as it is.
        let mut out = String::new();
        writer::renumber_into(&mut out, "SELECT '$' || $2", 3);
        assert_eq!(out, "SELECT '$' || $5");
    }
}
