//! SQLite's one writer connection: the FIFO lock in front of it, the write transactions that
//! hold it (their statements batched into as few calls to the connection's thread as
//! possible), and group commit (transactions that end while others wait share one COMMIT).
//!
//! Group commit. A transaction that ends while another task waits for the writer does not
//! COMMIT: it releases its part and lets the writer go, and the connection's transaction stays
//! open for the next holder, which joins it under a savepoint. The first holder to end with
//! nobody waiting (or the [`MAX_GROUP`]th member) commits for all, and every member's
//! `commit()` returns only then: a caller never sees "committed" before its rows are committed
//! and visible to the readers. A member that fails is rolled back to its savepoint alone; a
//! COMMIT that fails fails every member. Each COMMIT writes its pages to the WAL: members of
//! one group that touch the same pages (a table's last leaf, an index's, the event log's)
//! write them once instead of once each.
//!
//! Commit levels ([`Commit`]). The connection's `synchronous` setting decides whether a COMMIT
//! waits for the WAL to reach the disk, and SQLite lets it change only outside a transaction:
//! so a group has the level its leader set before its BEGIN. A relaxed transaction may join a
//! durable group (it is then durable too); a durable one never joins a relaxed group: it commits
//! that group first, then begins its own at FULL, whose flush covers the relaxed commits before it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::{Arg, Commit};

/// Most transactions one COMMIT closes. A member waits for the members after it, so this
/// bounds what a group adds to a request's time (a few milliseconds at most).
pub const MAX_GROUP: usize = 16;

/// The savepoint a member's part runs under. One member holds the writer at a time, so one
/// name serves all.
const SAVEPOINT: &str = "SAVEPOINT member";
const RELEASE: &str = "RELEASE member";
const ROLLBACK_TO: &str = "ROLLBACK TO member";

/// What a group's COMMIT came to, as its members learn it (`None` until then).
type Outcome = Option<Result<(), String>>;

/// SQLite's one writer connection, held behind a fair (FIFO) lock instead of a one-connection
/// sqlx pool. The pool pinged a connection every time it came back: on the single writer that
/// was one more hop to the connection's thread per write, while every other writer waited
/// (the card payment's writes queue there). Nothing here needs what the ping is for: a SQLite
/// file does not drop connections, and what a cancelled request left open is undone by the
/// next holder, or by a task started for it when nobody is waiting ([`WriterGuard`]).
#[derive(Clone)]
pub struct SqliteWriter(Arc<Shared>);

/// See [`SqliteWriter::downgrade`].
pub struct WeakWriter(std::sync::Weak<Shared>);

impl WeakWriter {
    /// True once every [`SqliteWriter`] is gone.
    pub fn is_dropped(&self) -> bool {
        self.0.strong_count() == 0
    }
}

struct Shared {
    conn: Arc<Mutex<WriterConn>>,
    /// Tasks waiting for the writer. Members waiting for their group's COMMIT are not counted:
    /// a holder ending its transaction defers the COMMIT only to someone who will take the
    /// writer after it.
    waiting: AtomicUsize,
    transactions: AtomicU64,
    commits: AtomicU64,
    relaxed_commits: AtomicU64,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

/// The writer connection and the state of the transaction open on it.
pub struct WriterConn {
    /// `None` once [`SqliteWriter::close`]d.
    conn: Option<SqliteConnection>,
    /// A transaction is open on the connection (or may be: its BEGIN was sent).
    in_tx: bool,
    /// The part of the open transaction whose holder went away before ending it (dropped, or
    /// cancelled in the middle of a call): undone by the next holder.
    left: Option<Part>,
    /// The members that ended their part of the open transaction and wait for its COMMIT.
    group: Option<Group>,
    /// The connection's `synchronous` setting, as far as is known: `None` while a call that
    /// changes it is out, or after one that failed or was cancelled (the next leader sets it
    /// again). Inside a transaction it is the open transaction's level.
    level: Option<Commit>,
}

struct Group {
    members: usize,
    done: watch::Sender<Outcome>,
}

/// How a transaction takes part in the connection's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// It began it (`BEGIN IMMEDIATE`), so nobody else is in it yet: undone by `ROLLBACK`.
    Leader,
    /// It joined one others ended their part in: undone by rolling back to its savepoint.
    Member,
}

/// Transactions that ended on the writer, and the COMMITs that committed them (the ratio
/// is the group commit's average group), those of them that did not wait for the disk
/// ([`Commit::Relaxed`]), and the tasks waiting for the writer now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub transactions: u64,
    pub commits: u64,
    pub relaxed_commits: u64,
    pub waiting: u64,
}

/// The statement that sets the connection to a level; run only outside a transaction.
fn set_level(level: Commit) -> &'static str {
    match level {
        Commit::Durable => "PRAGMA synchronous = FULL",
        Commit::Relaxed => "PRAGMA synchronous = NORMAL",
    }
}

impl WriterConn {
    /// The connection, for one statement outside a transaction (`Db::execute_write`);
    /// `PoolClosed` once the writer is closed.
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }
}

/// The writer, held until dropped. Dropped with a transaction open and nobody waiting (a
/// cancelled request; a member that deferred its COMMIT to a waiter that then gave up), it
/// starts a task that takes the writer and settles it, so members never wait on a COMMIT
/// nobody will run, and the file's write lock is not held for nothing.
pub struct WriterGuard {
    w: Option<OwnedMutexGuard<WriterConn>>,
    shared: Arc<Shared>,
}

impl std::ops::Deref for WriterGuard {
    type Target = WriterConn;
    fn deref(&self) -> &WriterConn {
        self.w.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for WriterGuard {
    fn deref_mut(&mut self) -> &mut WriterConn {
        self.w.as_mut().expect("held until dropped")
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let Some(w) = self.w.take() else { return };
        let stranded = w.in_tx && self.shared.waiting.load(Ordering::SeqCst) == 0;
        drop(w);
        if stranded {
            settle_later(&self.shared);
        }
    }
}

/// Takes the writer in a task of its own and settles it ([`SqliteWriter::lock`]).
fn settle_later(shared: &Arc<Shared>) {
    // No runtime: the process is ending, and the connection with it.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let writer = SqliteWriter(Arc::clone(shared));
        rt.spawn(async move { drop(writer.lock().await) });
    }
}

/// A task's place in the writer's line: counted in `waiting` until it has the writer. Given
/// up before that (the request was cancelled), it may have been the one a COMMIT was deferred
/// to, so the writer is settled for it.
struct InLine {
    shared: Arc<Shared>,
    served: bool,
}

impl Drop for InLine {
    fn drop(&mut self) {
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        if !self.served {
            settle_later(&self.shared);
        }
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}

impl WriterGuard {
    /// Undoes the part its holder left unfinished. Errors are expected and ignored: the call
    /// that was cancelled may not have reached BEGIN or SAVEPOINT.
    async fn undo_left(&mut self) {
        let Some(part) = self.left.take() else { return };
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match part {
            Part::Leader => {
                if let Err(e) = exec(conn, "ROLLBACK").await {
                    tracing::debug!(error = %e, "rollback of an abandoned write transaction");
                }
                self.in_tx = false;
            }
            Part::Member => {
                for sql in [ROLLBACK_TO, RELEASE] {
                    if let Err(e) = exec(conn, sql).await {
                        tracing::debug!(error = %e, sql, "undo of an abandoned group member");
                    }
                }
            }
        }
    }

    /// Commits the open transaction for the members waiting on it (rolls it back if the
    /// COMMIT fails), and tells them how it went.
    async fn close_tx(&mut self) -> Result<(), sqlx::Error> {
        let r = match self.conn.as_mut() {
            Some(conn) => {
                let r = exec(conn, "COMMIT").await;
                if r.is_err() {
                    // Whatever the COMMIT left: the next transaction begins clean.
                    let _ = exec(conn, "ROLLBACK").await;
                }
                r
            }
            None => Err(sqlx::Error::PoolClosed),
        };
        self.in_tx = false;
        self.committed(&r);
        r
    }

    /// The open transaction is over: counts its COMMIT and tells its waiting members.
    fn committed(&mut self, r: &Result<(), sqlx::Error>) {
        if r.is_ok() {
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
            if self.level != Some(Commit::Durable) {
                self.shared.relaxed_commits.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(g) = self.group.take() {
            g.done
                .send_replace(Some(r.as_ref().map(|_| ()).map_err(|e| e.to_string())));
        }
    }
}

impl SqliteWriter {
    pub fn new(conn: SqliteConnection) -> SqliteWriter {
        SqliteWriter(Arc::new(Shared {
            conn: Arc::new(Mutex::new(WriterConn {
                conn: Some(conn),
                in_tx: false,
                left: None,
                group: None,
                // `Db::connect` opens it with `synchronous = FULL`.
                level: Some(Commit::Durable),
            })),
            waiting: AtomicUsize::new(0),
            transactions: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            relaxed_commits: AtomicU64::new(0),
        }))
    }

    /// A handle that does not keep the writer alive (the checkpointer's).
    pub fn downgrade(&self) -> WeakWriter {
        WeakWriter(Arc::downgrade(&self.0))
    }

    /// Waits for the writer (in FIFO order), undoing what a previous holder left unfinished.
    /// A transaction other members ended in may still be open: [`SqliteTx::begin`] joins it.
    async fn acquire(&self) -> WriterGuard {
        self.0.waiting.fetch_add(1, Ordering::SeqCst);
        let mut line = InLine {
            shared: Arc::clone(&self.0),
            served: false,
        };
        let w = Arc::clone(&self.0.conn).lock_owned().await;
        line.served = true;
        drop(line);
        let mut w = WriterGuard {
            w: Some(w),
            shared: Arc::clone(&self.0),
        };
        w.undo_left().await;
        w
    }

    /// Waits for the writer, for statements outside any transaction: a transaction members
    /// wait on is committed first, so the connection is back in autocommit, and set durable
    /// (each such statement commits on its own, at the connection's level).
    pub async fn lock(&self) -> WriterGuard {
        let mut w = self.acquire().await;
        if w.in_tx {
            // Its error went to the members; the connection is clean either way.
            let _ = w.close_tx().await;
        }
        if w.level != Some(Commit::Durable) {
            w.level = None;
            if let Some(conn) = w.conn.as_mut() {
                if exec(conn, set_level(Commit::Durable)).await.is_ok() {
                    w.level = Some(Commit::Durable);
                }
            }
        }
        w
    }

    /// Closes the writer connection: every write after this fails with `PoolClosed`, like a
    /// closed pool's.
    pub async fn close(&self) {
        let conn = self.lock().await.conn.take();
        if let Some(conn) = conn {
            if let Err(e) = sqlx::Connection::close(conn).await {
                tracing::debug!(error = %e, "closing the writer connection");
            }
        }
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            transactions: self.0.transactions.load(Ordering::Relaxed),
            commits: self.0.commits.load(Ordering::Relaxed),
            relaxed_commits: self.0.relaxed_commits.load(Ordering::Relaxed),
            waiting: self.0.waiting.load(Ordering::Relaxed) as u64,
        }
    }
}

/// A write transaction on SQLite's writer, which it holds until committed or dropped. Dropped
/// uncommitted, it is rolled back (to its savepoint, when it joined a group).
///
/// Statements whose result nobody reads ([`super::Tx::write`]: the event log, the outbox, the
/// ledger…) and the BEGIN itself are not sent one by one: they wait in `pending` and go to the
/// connection's thread together, as one multi-statement call, with the transaction's next
/// statement that returns something or with its end. Every statement still runs in the
/// order the code issued it; only the hops to the connection's thread (one per statement,
/// each a pair of thread wake-ups, while every other writer waits) are fewer.
pub struct SqliteTx {
    w: WriterGuard,
    part: Part,
    pub(super) pending: Batch,
    /// Reads queued by [`super::Tx::read_ahead`] that have not run yet: their place in `pending`.
    pub(super) reads: Vec<(usize, ReadKey)>,
    /// Rows of reads that ran ahead, kept for the [`super::Tx::fetch_optional`] asking for them.
    pub(super) ahead: Vec<(ReadKey, Option<SqliteRow>)>,
    /// The level this leader's first call sets before its BEGIN, until that call has run.
    sets_level: Option<Commit>,
}

/// A statement and its arguments: what a read ahead is found again by.
pub(super) type ReadKey = (&'static str, Vec<Arg>);

/// Statements queued on a SQLite transaction, with their placeholders renumbered so they bind
/// from one argument list.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) sql: String,
    pub(super) args: Vec<Arg>,
    /// Statements in `sql`.
    pub(super) count: usize,
}

impl Batch {
    pub(super) fn push(&mut self, sql: &str, args: Vec<Arg>) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        renumber_into(&mut self.sql, sql, self.args.len());
        self.args.extend(args);
        self.count += 1;
    }
}

/// Appends `sql` to `out` with each `$N` placeholder shifted by `offset`. The statements queued
/// are the crate's own constant SQL, which never holds a `$` inside a literal.
pub(super) fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

impl SqliteTx {
    pub(super) async fn begin(
        writer: &SqliteWriter,
        commit: Commit,
    ) -> Result<SqliteTx, sqlx::Error> {
        let mut w = writer.acquire().await;
        w.conn()?;
        if w.in_tx && commit == Commit::Durable && w.level != Some(Commit::Durable) {
            // Joining would commit this transaction without a flush: the relaxed group commits
            // now, and this one leads the next. Its error went to that group's members.
            let _ = w.close_tx().await;
        }
        let mut pending = Batch::default();
        let mut sets_level = None;
        let part = if w.in_tx {
            pending.push(SAVEPOINT, Vec::new());
            Part::Member
        } else {
            if w.level != Some(commit) {
                pending.push(set_level(commit), Vec::new());
                sets_level = Some(commit);
            }
            // IMMEDIATE: the write lock is taken at BEGIN, so another process on the same file
            // (a CLI command) makes this wait for busy_timeout there, never fail mid-transaction.
            pending.push("BEGIN IMMEDIATE", Vec::new());
            Part::Leader
        };
        Ok(SqliteTx {
            w,
            part,
            pending,
            reads: Vec::new(),
            ahead: Vec::new(),
            sets_level,
        })
    }

    /// Marks the transaction as begun on the connection before a call goes out: if the call is
    /// cancelled, the next holder undoes this part. A call that changes the level leaves it
    /// unknown until it has run ([`SqliteTx::sent`]).
    pub(super) fn sending(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.w.in_tx = true;
        self.w.left = Some(self.part);
        if self.sets_level.is_some() {
            self.w.level = None;
        }
        self.w.conn()
    }

    /// A call has run whole: the level it set (if it set one) is the connection's now.
    pub(super) fn sent(&mut self) {
        if let Some(level) = self.sets_level.take() {
            self.w.level = Some(level);
        }
    }

    /// The connection, once everything queued has run: for a statement whose result is read.
    pub async fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.flush().await?;
        self.w.conn()
    }

    async fn flush(&mut self) -> Result<(), sqlx::Error> {
        if self.pending.sql.is_empty() {
            return Ok(());
        }
        if !self.reads.is_empty() {
            // Reads ahead are in the batch: their rows are kept for later.
            self.run(None).await?;
            return Ok(());
        }
        let Batch { sql, args, .. } = std::mem::take(&mut self.pending);
        super::bind_args!(sqlx::query(&sql), args)
            .execute(self.sending()?)
            .await?;
        self.sent();
        Ok(())
    }

    /// Runs everything queued in one call, keeping the first row (or none) of each read ahead,
    /// and returns the rows of statement `target` and the rows it changed. Rows are told apart
    /// by the statement they belong to: the driver reports each statement's end as it goes.
    pub(super) async fn run(
        &mut self,
        target: Option<usize>,
    ) -> Result<(Vec<SqliteRow>, u64), sqlx::Error> {
        use futures_util::TryStreamExt;
        use sqlx::Executor;
        let Batch { sql, args, .. } = std::mem::take(&mut self.pending);
        let mut reads: Vec<(usize, ReadKey, Option<SqliteRow>)> = self
            .reads
            .drain(..)
            .map(|(at, key)| (at, key, None))
            .collect();
        let (mut statement, mut rows, mut changed) = (0, Vec::new(), 0);
        {
            let q = super::bind_args!(sqlx::query(&sql), args);
            let mut items = self.sending()?.fetch_many(q);
            while let Some(item) = items.try_next().await? {
                match item {
                    sqlx::Either::Left(done) => {
                        if Some(statement) == target {
                            changed = done.rows_affected();
                        }
                        statement += 1;
                    }
                    sqlx::Either::Right(r) => {
                        if Some(statement) == target {
                            rows.push(r);
                        } else if let Some(read) = reads.iter_mut().find(|x| x.0 == statement) {
                            read.2.get_or_insert(r);
                        }
                    }
                }
            }
        }
        self.sent();
        self.ahead
            .extend(reads.into_iter().map(|(_, key, row)| (key, row)));
        Ok((rows, changed))
    }

    /// Ends the transaction, with `last` (when given) as its final statement in the same call:
    /// its rows and the rows it changed are returned. Commits, or defers the COMMIT to the
    /// group when someone waits for the writer (see the module's comment); returns once the
    /// transaction is committed either way.
    pub(super) async fn finish(
        mut self,
        last: Option<(&str, Vec<Arg>)>,
    ) -> Result<(Vec<SqliteRow>, u64), sqlx::Error> {
        let target = last.map(|(sql, args)| {
            self.pending.push(sql, args);
            self.pending.count - 1
        });
        if self.part == Part::Member {
            self.pending.push(RELEASE, Vec::new());
        }
        let members = self.w.group.as_ref().map_or(0, |g| g.members);
        let defer = members + 1 < MAX_GROUP && self.w.shared.waiting.load(Ordering::SeqCst) > 0;
        if !defer {
            self.pending.push("COMMIT", Vec::new());
        }
        self.w.shared.transactions.fetch_add(1, Ordering::Relaxed);
        let r = if target.is_none() && self.reads.is_empty() {
            self.flush().await.map(|()| (Vec::new(), 0))
        } else {
            self.run(target).await
        };
        let out = match r {
            Ok(out) => out,
            Err(e) => {
                // This part failed: undo it, and end the transaction for the members waiting
                // on it (their parts are whole).
                self.w.undo_left().await;
                if self.w.in_tx {
                    let _ = self.w.close_tx().await;
                }
                return Err(e);
            }
        };
        self.w.left = None;
        if !defer {
            self.w.in_tx = false;
            self.w.committed(&Ok(()));
            return Ok(out);
        }
        let mut done = match &mut self.w.group {
            Some(g) => {
                g.members += 1;
                g.done.subscribe()
            }
            None => {
                let (tx, rx) = watch::channel(None);
                self.w.group = Some(Group {
                    members: 1,
                    done: tx,
                });
                rx
            }
        };
        // Lets the writer go to whoever waits: it joins this transaction or commits it.
        drop(self);
        let outcome = match done.wait_for(Option::is_some).await {
            Ok(o) => o.clone(),
            // The writer was dropped with the group open: the transaction never committed.
            Err(_) => return Err(sqlx::Error::PoolClosed),
        };
        match outcome {
            Some(Ok(())) => Ok(out),
            Some(Err(e)) => Err(sqlx::Error::Protocol(format!(
                "the group's COMMIT failed: {e}"
            ))),
            None => unreachable!("waited for Some"),
        }
    }
}
