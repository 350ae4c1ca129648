//! Saved payment searches of console users (`console_saved_searches`): named query strings,
//! always read and changed through the owner's user id.

use crate::db::Db;
use crate::{exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SavedSearch {
    pub id: String,
    pub name: String,
    pub query: String,
}

/// The user's saved searches, by name.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<SavedSearch>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, name, query FROM console_saved_searches WHERE user_id = $1 ORDER BY name, id",
    )
    .bind(user_id)
    .fetch_all(c)
    .await)
}

/// Saves `query` under `name` for the user, replacing a search of the same name. Returns the
/// id of the saved row.
pub async fn save(
    db: &Db,
    user_id: &str,
    name: &str,
    query: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = crate::util::random_id("ss", 16);
    let mut tx = db.begin().await?;
    let (saved,): (String,) = crate::on_tx!(&mut tx, c => sqlx::query_as(
        "INSERT INTO console_saved_searches (id, user_id, name, query, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, name) DO UPDATE SET query = excluded.query \
         RETURNING id",
    )
    .bind(&id)
    .bind(user_id)
    .bind(name)
    .bind(query)
    .bind(now)
    .fetch_one(c)
    .await)?;
    tx.commit().await?;
    Ok(saved)
}

/// Deletes the user's search `id`; `false` if the user has no such search.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM console_saved_searches WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}
