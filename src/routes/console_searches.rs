//! Console handlers for saved searches: save the current search under a name, delete one. Every
//! role may keep its own searches (they change no payment); CSRF and an audit record each.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::saved_searches::{self, SaveError};
use crate::form;
use crate::routes::console::{fields, filter_of};
use crate::state::AppState;

fn form_of(
    state: &AppState,
    staff: &Staff,
    headers: &HeaderMap,
    body: &Bytes,
) -> ConsoleResult<Vec<(String, String)>> {
    let f = fields(headers, body);
    staff.check_csrf(&state.secret, form::get(&f, "csrf"))?;
    Ok(f)
}

/// `POST /console/searches`: saves the posted search (the list's filter fields) as `name`.
pub async fn save(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = form_of(&state, &staff, &headers, &body)?;
    let filter = filter_of(&staff, &f).map_err(ConsoleError::Bad)?;
    let name = form::get(&f, "name");
    let r = saved_searches::save(&state.db, &staff, name, &filter).await;
    let detail = match &r {
        Ok(_) => format!("ok name={} {}", name.trim(), filter.query()),
        Err(e) => format!("refused: {e}"),
    };
    let target = r.as_ref().map(String::as_str).unwrap_or("");
    audit::staff(
        &state.db,
        &staff,
        filter.merchant_id.as_deref(),
        "search.save",
        target,
        &detail,
    )
    .await?;
    match r {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/payments?{}&saved=1",
            saved_searches::query_of(&staff, &filter)
        ))
        .into_response()),
        Err(SaveError::Refused(m)) => Err(ConsoleError::Bad(m.into())),
        Err(SaveError::Db(e)) => Err(ConsoleError::Db(e)),
    }
}

/// `POST /console/searches/{id}/delete`: only the user's own search (else 404).
pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    form_of(&state, &staff, &headers, &body)?;
    let gone = saved_searches::delete(&state.db, &staff, &id).await?;
    audit::staff(
        &state.db,
        &staff,
        staff.scope().merchant(),
        "search.delete",
        &id,
        if gone { "ok" } else { "refused: not found" },
    )
    .await?;
    if !gone {
        return Err(ConsoleError::NotFound);
    }
    Ok(Redirect::to("/console/payments").into_response())
}
