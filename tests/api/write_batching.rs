//! The database layer's write transactions (`db::Tx`): statements queued with `Tx::write`
//! travel with the next statement that returns something or with the COMMIT (on SQLite), in
//! the order written; a transaction dropped uncommitted keeps nothing, whether or not anything
//! of it reached the database; an error in a queued statement fails the whole transaction.
//! On PostgreSQL the same calls run one by one, and must behave the same.

use kakehashi::args;
use kakehashi::db::{Db, Tx};

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

/// SQLite's writer keeps statement journals in memory (`temp_store = MEMORY`): a multi-row
/// UPDATE inside a transaction otherwise creates, unlinks and closes a temporary file on the
/// one writer every time (bench/README.md, change 18). The readers keep the default, so a big
/// console sort still spills to disk instead of growing the server's memory.
#[tokio::test]
async fn sqlite_writer_keeps_statement_journals_in_memory() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    let mut tx = app.db.begin().await.unwrap();
    let (writer,): (i64,) = tx
        .fetch_optional("PRAGMA temp_store", args![])
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // 2 is MEMORY, 0 the default (the compile-time choice, a file here).
    assert_eq!(writer, 2);
    let reader: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(c)
        .await)
    .unwrap();
    assert_eq!(reader, 0);
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
