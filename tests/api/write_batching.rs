//! The database layer's write transactions (`db::Tx`): statements queued with `Tx::write`
//! travel with the next statement that returns something or with the COMMIT (on SQLite), in
//! the order written; a transaction dropped uncommitted keeps nothing, whether or not anything
//! of it reached the database; an error in a queued statement fails the whole transaction.
//! On PostgreSQL the same calls run one by one, and must behave the same.

use std::future::Future;
use std::task::Poll;

use kakehashi::args;
use kakehashi::db::{Commit, Db, Tx};

use crate::helpers::{both, TestApp};

const INSERT: &str = "INSERT INTO server_settings (name, value) VALUES ($1, $2)";

async fn value(db: &Db, name: &str) -> Option<String> {
    kakehashi::on_db!(db, c => sqlx::query_scalar("SELECT value FROM server_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(c)
        .await)
    .unwrap()
}

async fn count_in(tx: &mut Tx, prefix: &str) -> i64 {
    let (n,): (i64,) = tx
        .fetch_optional(
            "SELECT COUNT(*) FROM server_settings WHERE name LIKE $1",
            args![format!("{prefix}%")],
        )
        .await
        .unwrap()
        .unwrap();
    n
}

async fn queued_writes_commit_in_order_and_are_seen_by_later_reads(app: TestApp) {
    let db = &app.db;
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["wb.a", "1"]).await.unwrap();
    tx.write(INSERT, args!["wb.b", "2"]).await.unwrap();
    // The read in the same transaction sees the queued rows: they ran before it.
    assert_eq!(count_in(&mut tx, "wb.").await, 2);
    // Order is kept: the update runs after the insert it changes.
    tx.write(INSERT, args!["wb.c", "3"]).await.unwrap();
    tx.write(
        "UPDATE server_settings SET value = $1 WHERE name = $2",
        args!["33", "wb.c"],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(value(db, "wb.a").await.as_deref(), Some("1"));
    assert_eq!(value(db, "wb.b").await.as_deref(), Some("2"));
    assert_eq!(value(db, "wb.c").await.as_deref(), Some("33"));
}
both!(queued_writes_commit_in_order_and_are_seen_by_later_reads);

async fn a_dropped_transaction_keeps_nothing_and_frees_the_writer(app: TestApp) {
    let db = &app.db;
    // Dropped with its writes still queued.
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["wd.queued", "x"]).await.unwrap();
    drop(tx);
    // Dropped after its writes reached the database (the read sent them).
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["wd.sent", "x"]).await.unwrap();
    assert_eq!(count_in(&mut tx, "wd.").await, 1);
    drop(tx);
    // The next transaction starts clean and commits.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(count_in(&mut tx, "wd.").await, 0);
    tx.write(INSERT, args!["wd.after", "y"]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(value(db, "wd.queued").await, None);
    assert_eq!(value(db, "wd.sent").await, None);
    assert_eq!(value(db, "wd.after").await.as_deref(), Some("y"));
    // A single statement outside any transaction also finds the writer free.
    db.execute_write("INSERT INTO server_settings (name, value) VALUES ('wd.single', 'z')")
        .await
        .unwrap();
    assert_eq!(value(db, "wd.single").await.as_deref(), Some("z"));
}
both!(a_dropped_transaction_keeps_nothing_and_frees_the_writer);

async fn an_error_in_a_queued_write_fails_the_whole_transaction(app: TestApp) {
    let db = &app.db;
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["we.dup", "first"]).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["we.other", "kept?"]).await.unwrap();
    // The duplicate key fails here on PostgreSQL, at the commit on SQLite: either way the
    // transaction is over and nothing of it stays.
    let failed = match tx.write(INSERT, args!["we.dup", "second"]).await {
        Err(e) => kakehashi::db::is_unique_violation(&e),
        Ok(()) => match tx.commit().await {
            Err(e) => kakehashi::db::is_unique_violation(&e),
            Ok(()) => false,
        },
    };
    assert!(failed, "the duplicate key must fail the transaction");
    assert_eq!(value(db, "we.other").await, None);
    assert_eq!(value(db, "we.dup").await.as_deref(), Some("first"));
    // And the writer goes on.
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["we.next", "ok"]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(value(db, "we.next").await.as_deref(), Some("ok"));
}
both!(an_error_in_a_queued_write_fails_the_whole_transaction);

async fn concurrent_transactions_each_commit_whole(app: TestApp) {
    let db = app.db.clone();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            tx.write(INSERT, args![format!("wc.{i}.a"), "1"])
                .await
                .unwrap();
            let n = count_in(&mut tx, &format!("wc.{i}.")).await;
            tx.write(INSERT, args![format!("wc.{i}.b"), n.to_string()])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..16 {
        assert_eq!(value(&db, &format!("wc.{i}.a")).await.as_deref(), Some("1"));
        assert_eq!(value(&db, &format!("wc.{i}.b")).await.as_deref(), Some("1"));
    }
}
both!(concurrent_transactions_each_commit_whole);

/// A setting of SQLite's writer connection, read in a write transaction (which runs there).
async fn writer_pragma(db: &Db, pragma: &str) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let (value,): (i64,) = tx.fetch_optional(pragma, args![]).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    value
}

/// SQLite's writer keeps statement journals in memory (`temp_store = MEMORY`): a multi-row
/// UPDATE inside a transaction otherwise creates, unlinks and closes a temporary file on the
/// one writer every time (bench/README.md, change 18). The readers keep the default, so a big
/// console sort still spills to disk instead of growing the server's memory.
#[tokio::test]
async fn sqlite_writer_keeps_statement_journals_in_memory() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    let writer = writer_pragma(&app.db, "PRAGMA temp_store").await;
    // 2 is MEMORY, 0 the default (the compile-time choice, a file here).
    assert_eq!(writer, 2);
    let reader: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(c)
        .await)
    .unwrap();
    assert_eq!(reader, 0);
}

/// SQLite's writer flushes the WAL at every COMMIT (`synchronous = FULL`), as PostgreSQL does:
/// a payment written as pending before its processor call must survive a power cut
/// (bench/README.md, change 23).
#[tokio::test]
async fn sqlite_writer_commits_durably() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    // 2 is FULL (1 NORMAL).
    assert_eq!(writer_pragma(&app.db, "PRAGMA synchronous").await, 2);
}

/// A relaxed transaction ([`Commit::Relaxed`]: a checkout's creation, its chosen method) runs at
/// `synchronous = NORMAL`, its COMMIT counted as relaxed; the next durable one is back at FULL.
#[tokio::test]
async fn sqlite_a_relaxed_commit_does_not_wait_for_the_disk() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = &app.db;
    let before = stats(db);
    let mut tx = db.begin_as(Commit::Relaxed).await.unwrap();
    tx.write(INSERT, args!["rx.a", "1"]).await.unwrap();
    let (level,): (i64,) = tx
        .fetch_optional("PRAGMA synchronous", args![])
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(level, 1, "NORMAL");
    assert_eq!(value(db, "rx.a").await.as_deref(), Some("1"));
    assert!(stats(db).relaxed_commits > before.relaxed_commits);
    // The single-statement form, as the first open uses it.
    let n = db.relaxed_exec(INSERT, args!["rx.b", "2"]).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        writer_pragma(db, "PRAGMA synchronous").await,
        2,
        "FULL again"
    );
    // A statement outside any transaction runs at FULL; the writer's record of its level
    // follows, so the next relaxed transaction sets NORMAL again.
    db.relaxed_exec(INSERT, args!["rx.c", "3"]).await.unwrap();
    db.execute_write("INSERT INTO server_settings (name, value) VALUES ('rx.d', '4')")
        .await
        .unwrap();
    let mut tx = db.begin_as(Commit::Relaxed).await.unwrap();
    let (level,): (i64,) = tx
        .fetch_optional("PRAGMA synchronous", args![])
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(level, 1);
}

/// A durable transaction that finds a relaxed group open (its members wait for a COMMIT that
/// will not flush) does not join it: that group commits first, and the durable one leads a
/// group of its own at FULL. Joined, its COMMIT would have skipped the flush.
#[tokio::test]
async fn sqlite_a_durable_transaction_never_joins_a_relaxed_group() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = app.db.clone();
    let mut relaxed = db.begin_as(Commit::Relaxed).await.unwrap();
    relaxed.write(INSERT, args!["rg.a", "1"]).await.unwrap();
    assert_eq!(count_in(&mut relaxed, "rg.a").await, 1);
    let durable = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            tx.write(INSERT, args!["rg.b", "2"]).await.unwrap();
            let (level,): (i64,) = tx
                .fetch_optional("PRAGMA synchronous", args![])
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
            level
        }
    });
    until_someone_waits(&db).await;
    let before = stats(&db);
    // Ends with the durable one in line: defers its COMMIT, which that one then runs.
    relaxed.commit().await.unwrap();
    let level = durable.await.unwrap();
    assert_eq!(level, 2, "the durable transaction ran at FULL");
    let after = stats(&db);
    assert!(after.commits - before.commits >= 2, "one COMMIT each");
    assert!(after.relaxed_commits > before.relaxed_commits);
    assert_eq!(value(&db, "rg.a").await.as_deref(), Some("1"));
    assert_eq!(value(&db, "rg.b").await.as_deref(), Some("2"));
}

/// A relaxed transaction may join a durable group: it is then committed durably.
#[tokio::test]
async fn sqlite_a_relaxed_transaction_joins_a_durable_group() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = app.db.clone();
    let durable = holding_the_writer(&db, "dg.a").await;
    let relaxed = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin_as(Commit::Relaxed).await.unwrap();
            tx.write(INSERT, args!["dg.b", "2"]).await.unwrap();
            let (level,): (i64,) = tx
                .fetch_optional("PRAGMA synchronous", args![])
                .await
                .unwrap()
                .unwrap();
            tx.commit().await.unwrap();
            level
        }
    });
    until_someone_waits(&db).await;
    let before = stats(&db);
    durable.commit().await.unwrap();
    assert_eq!(relaxed.await.unwrap(), 2, "joined the durable group");
    let after = stats(&db);
    assert_eq!(after.relaxed_commits, before.relaxed_commits);
    assert_eq!(value(&db, "dg.b").await.as_deref(), Some("2"));
}

const VALUE: &str = "SELECT value FROM server_settings WHERE name = $1";

/// `Tx::read_ahead`: on SQLite the announced read travels with the transaction's next call and
/// the later `fetch_optional` of the same statement is answered from the row it brought back
/// (without a call); on PostgreSQL the later read runs then. The value is changed in between,
/// which callers must not do, only to show where each backend's answer comes from.
async fn a_read_ahead_answers_the_later_read(app: TestApp) {
    let db = &app.db;
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["ra.a", "1"]).await.unwrap();
    tx.read_ahead(VALUE, args!["ra.a"]);
    tx.read_ahead(VALUE, args!["ra.none"]);
    tx.write(INSERT, args!["ra.b", "2"]).await.unwrap();
    // The next read runs with everything queued, in order, and answers its own row (none
    // here), not a row of a read ahead.
    let missing: Option<(String,)> = tx.fetch_optional(VALUE, args!["ra.missing"]).await.unwrap();
    assert_eq!(missing, None);
    assert_eq!(count_in(&mut tx, "ra.").await, 2);
    tx.write(
        "UPDATE server_settings SET value = $1 WHERE name = $2",
        args!["9", "ra.a"],
    )
    .await
    .unwrap();
    let (a,): (String,) = tx
        .fetch_optional(VALUE, args!["ra.a"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, if db.is_postgres() { "9" } else { "1" });
    // A read ahead that found nothing answers nothing.
    let none: Option<(String,)> = tx.fetch_optional(VALUE, args!["ra.none"]).await.unwrap();
    assert_eq!(none, None);
    tx.commit().await.unwrap();
    assert_eq!(value(db, "ra.a").await.as_deref(), Some("9"));
    assert_eq!(value(db, "ra.b").await.as_deref(), Some("2"));
}
both!(a_read_ahead_answers_the_later_read);

/// An announced `UPDATE … RETURNING` (`db::operations::finish_ahead`) runs once, also when its
/// `fetch_optional` comes before any call took it (a caller refused before writing anything):
/// that call takes it, rather than sending the statement a second time.
async fn an_announced_write_asked_for_at_once_runs_once(app: TestApp) {
    let db = &app.db;
    const BUMP: &str =
        "UPDATE server_settings SET value = value || 'x' WHERE name = $1 RETURNING value";
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args!["aw.a", "1"]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.read_ahead(BUMP, args!["aw.a"]);
    let (v,): (String,) = tx
        .fetch_optional(BUMP, args!["aw.a"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, "1x");
    tx.commit().await.unwrap();
    assert_eq!(value(db, "aw.a").await.as_deref(), Some("1x"));
}
both!(an_announced_write_asked_for_at_once_runs_once);

/// SQLite's writer, with nobody else in line: a test that orchestrates group commit.
async fn sqlite_app() -> Option<TestApp> {
    crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await
}

fn stats(db: &Db) -> kakehashi::db::WriteStats {
    db.write_stats().expect("SQLite")
}

/// Yields until a task waits for the writer (the test runtime runs one task at a time).
async fn until_someone_waits(db: &Db) {
    for _ in 0..10_000 {
        if stats(db).waiting > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("nobody came to wait for the writer");
}

/// A transaction that began on the writer (its BEGIN sent) and wrote `name`.
async fn holding_the_writer(db: &Db, name: &str) -> Tx {
    let mut tx = db.begin().await.unwrap();
    tx.write(INSERT, args![name, "1"]).await.unwrap();
    assert_eq!(count_in(&mut tx, name).await, 1);
    tx
}

/// Group commit: transactions that end while others wait for SQLite's writer share a COMMIT,
/// and each one's `commit()` returns only once its rows are committed (the readers, on
/// connections of their own, see them then).
#[tokio::test]
async fn sqlite_transactions_ending_while_others_wait_share_a_commit() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let before = stats(&app.db);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let db = app.db.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            tx.write(INSERT, args![format!("gc.{i}"), "1"])
                .await
                .unwrap();
            assert_eq!(count_in(&mut tx, &format!("gc.{i}")).await, 1);
            tx.commit().await.unwrap();
            assert_eq!(value(&db, &format!("gc.{i}")).await.as_deref(), Some("1"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // (The server's own workers may end a transaction meanwhile too.)
    let after = stats(&app.db);
    let (ended, commits) = (
        after.transactions - before.transactions,
        after.commits - before.commits,
    );
    assert!(ended >= 32);
    assert!(
        commits < ended && commits >= ended / kakehashi::db::MAX_GROUP as u64,
        "{ended} transactions in line took {commits} COMMITs"
    );
}

/// A member of a group whose part fails is undone alone: the member before it, waiting on the
/// shared COMMIT, commits.
#[tokio::test]
async fn sqlite_a_failing_group_member_is_undone_alone() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = app.db.clone();
    db.write_exec(INSERT, args!["gf.dup", "first"])
        .await
        .unwrap();
    let a = holding_the_writer(&db, "gf.a").await;
    let b = tokio::spawn({
        let db = db.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            b.write(INSERT, args!["gf.b", "2"]).await.unwrap();
            b.write(INSERT, args!["gf.dup", "second"]).await.unwrap();
            b.commit().await
        }
    });
    until_someone_waits(&db).await;
    // `a` ends with `b` in line: it defers its COMMIT to it, and returns only once `b`'s end
    // (a failure) committed it.
    a.commit().await.unwrap();
    assert!(b.is_finished(), "`a` committed alone");
    let e = b.await.unwrap().unwrap_err();
    assert!(kakehashi::db::is_unique_violation(&e), "{e}");
    assert_eq!(value(&db, "gf.a").await.as_deref(), Some("1"));
    assert_eq!(value(&db, "gf.b").await, None);
    assert_eq!(value(&db, "gf.dup").await.as_deref(), Some("first"));
    // The writer goes on, in autocommit.
    db.write_exec(INSERT, args!["gf.next", "3"]).await.unwrap();
    assert_eq!(value(&db, "gf.next").await.as_deref(), Some("3"));
}

/// A member dropped half way (its request was cancelled) with nobody else in line: its part is
/// rolled back and the group it joined is committed without waiting for another writer.
#[tokio::test]
async fn sqlite_a_dropped_group_member_is_undone_and_its_group_committed() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = app.db.clone();
    let a = holding_the_writer(&db, "gd.a").await;
    let b = tokio::spawn({
        let db = db.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            b.write(INSERT, args!["gd.b", "2"]).await.unwrap();
            // Sent: the row is in the connection's open transaction.
            assert_eq!(count_in(&mut b, "gd.").await, 2);
            drop(b);
        }
    });
    until_someone_waits(&db).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), a.commit())
        .await
        .expect("the group was left open")
        .unwrap();
    b.await.unwrap();
    assert_eq!(value(&db, "gd.a").await.as_deref(), Some("1"));
    assert_eq!(value(&db, "gd.b").await, None);
}

/// The task a COMMIT was deferred to is cancelled (its request went away), waiting in line or
/// holding the writer: the waiting member's COMMIT still runs.
#[tokio::test]
async fn sqlite_a_cancelled_waiter_does_not_strand_its_group() {
    let Some(app) = sqlite_app().await else {
        return;
    };
    let db = app.db.clone();
    let a = holding_the_writer(&db, "gx.a").await;
    let b = tokio::spawn({
        let db = db.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            b.write(INSERT, args!["gx.b", "2"]).await.unwrap();
            std::future::pending::<()>().await;
            drop(b);
        }
    });
    until_someone_waits(&db).await;
    let before = stats(&db);
    let a = tokio::spawn(async move { a.commit().await });
    // `a` ends and defers to `b`.
    while stats(&db).transactions == before.transactions {
        tokio::task::yield_now().await;
    }
    b.abort();
    tokio::time::timeout(std::time::Duration::from_secs(10), a)
        .await
        .expect("the group was left open")
        .unwrap()
        .unwrap();
    assert_eq!(value(&db, "gx.a").await.as_deref(), Some("1"));
    assert_eq!(value(&db, "gx.b").await, None);
}

/// A transaction dropped half way (a request cancelled mid-payment) lets go of the rows it
/// locked at once: the next writer of the same row does not wait for anybody to reuse the
/// connection it was left on. On SQLite the writer's next holder or a task undoes it; on
/// PostgreSQL a task its connection's drop starts rolls it back.
/// On PostgreSQL, connections of a second instance on the test's schema: the server's
/// background workers reuse its connections all the time (and with them undo what a dropped
/// transaction left), so only connections nobody else uses show what a drop itself does.
async fn quiet(app: &TestApp) -> Db {
    if !app.db.is_postgres() {
        return app.db.clone();
    }
    let schema: String = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT current_schema()::text")
        .fetch_one(c)
        .await)
    .unwrap();
    let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(
        &crate::helpers::pg_url(),
    )
    .unwrap()
    .options([("search_path", schema.as_str())]);
    Db::connect_pg(opts).await.unwrap()
}

async fn a_dropped_transaction_frees_its_rows_at_once(app: TestApp) {
    let db = &quiet(&app).await;
    db.execute_write("INSERT INTO server_settings (name, value) VALUES ('wl.row', 'a')")
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.write(
        "UPDATE server_settings SET value = 'b' WHERE name = $1",
        args!["wl.row"],
    )
    .await
    .unwrap();
    // The read sends the queued UPDATE on SQLite; on PostgreSQL it already ran.
    assert_eq!(count_in(&mut tx, "wl.").await, 1);
    drop(tx);
    let next = db.write_exec(
        "UPDATE server_settings SET value = 'c' WHERE name = $1",
        args!["wl.row"],
    );
    let changed = tokio::time::timeout(std::time::Duration::from_secs(5), next)
        .await
        .expect("the dropped transaction's row lock must be released at once")
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(value(db, "wl.row").await.as_deref(), Some("c"));
}
both!(a_dropped_transaction_frees_its_rows_at_once);

/// PostgreSQL: a transaction whose caller gave up while its BEGIN was on the wire is rolled
/// back, not left open for the connection's next users, whose single statements would then
/// run inside it uncommitted (invisible to everyone else, their rows locked).
#[tokio::test]
async fn postgres_a_begin_cancelled_on_the_wire_leaves_no_transaction_open() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let db = &quiet(&app).await;
    // Every connection opened and its BEGIN prepared, so that one poll of the next BEGIN sends
    // it for execution (instead of stopping at connecting or preparing).
    for _ in 0..16 {
        db.begin().await.unwrap().commit().await.unwrap();
    }
    // Polled once: the BEGIN is written to the socket, then the caller is gone. The server may
    // answer before that one poll reads, so try until a poll finds no answer yet.
    let mut cancelled = false;
    for _ in 0..100 {
        let mut begin = Box::pin(db.begin());
        let first = std::future::poll_fn(|cx| Poll::Ready(Future::poll(begin.as_mut(), cx))).await;
        match first {
            Poll::Pending => {
                drop(begin);
                cancelled = true;
                break;
            }
            Poll::Ready(tx) => tx.unwrap().commit().await.unwrap(),
        }
    }
    assert!(
        cancelled,
        "a BEGIN was answered within its first poll every time"
    );
    // One single write per connection of the instance (16), so one lands on that connection.
    for i in 0..16 {
        db.write_exec(INSERT, args![format!("wx.{i}"), "v"])
            .await
            .unwrap();
    }
    // Every connection sees all of them committed.
    for _ in 0..16 {
        let n: i64 = kakehashi::on_db!(db, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM server_settings WHERE name LIKE 'wx.%'")
            .fetch_one(c)
            .await)
        .unwrap();
        assert_eq!(n, 16);
    }
}
