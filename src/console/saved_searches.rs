//! Saved searches (検索条件の保存): a user names the current payment search and finds it again in
//! the list. Only the search (filters, sort, the operator's merchant) is kept, never a cursor;
//! each user sees and deletes only their own.

use crate::console::auth::Staff;
use crate::console::search::Filter;
use crate::db::saved_searches::{self, SavedSearch};
use crate::db::Db;

/// Searches one user may keep.
pub const MAX_PER_USER: i64 = 50;

/// Longest name, in characters.
pub const MAX_NAME: usize = 40;

/// Why a search was not saved; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

/// The list URL's query of a search (`merchant=…&` first for the merchant an operator or owner staff chose).
pub fn query_of(staff: &Staff, f: &Filter) -> String {
    let mq = match (staff.scope().is_multi(), f.merchant_id.as_deref()) {
        (true, Some(m)) => format!(
            "merchant={}&",
            form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>()
        ),
        _ => String::new(),
    };
    format!("{mq}{}", f.query())
}

/// Checks the name: 1–40 characters after trimming, no control characters.
pub fn parse_name(name: &str) -> Result<String, SaveError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(SaveError::Refused("保存する名前を入力してください。"));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(SaveError::Refused(
            "名前は40文字以内で、改行などの制御文字を含めずに入力してください。",
        ));
    }
    Ok(name.to_owned())
}

/// Saves the search under `name` (a search of the same name is replaced). Returns its id.
pub async fn save(db: &Db, staff: &Staff, name: &str, f: &Filter) -> Result<String, SaveError> {
    let name = parse_name(name)?;
    let mine = saved_searches::list(db, &staff.user.id).await?;
    if !mine.iter().any(|s| s.name == name) && mine.len() as i64 >= MAX_PER_USER {
        return Err(SaveError::Refused(
            "保存できる検索条件は50件までです。不要なものを削除してください。",
        ));
    }
    Ok(saved_searches::save(db, &staff.user.id, &name, &query_of(staff, f), staff.now).await?)
}

/// The user's saved searches, by name.
pub async fn list(db: &Db, staff: &Staff) -> Result<Vec<SavedSearch>, crate::db::Error> {
    saved_searches::list(db, &staff.user.id).await
}

/// Deletes the user's saved search; `false` if the user has none with that id.
pub async fn delete(db: &Db, staff: &Staff, id: &str) -> Result<bool, crate::db::Error> {
    saved_searches::delete(db, &staff.user.id, id).await
}
