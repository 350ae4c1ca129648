//! Owners and tenants in the console (テナントオプション): owner staff pick a tenant
//! (`/console/tenants`); operators create owners and put merchants under them
//! (`/console/owners`, same flow as `kakehashi owner …`). Changes: role, CSRF, audit.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::owners::{OwnerLine, Owners, TenantLine, Tenants};
use crate::console::views::Chrome;
use crate::db::{merchants, owners};
use crate::domain::scope::Scope;
use crate::domain::Mode;
use crate::flows::owners as flow;
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::admin_form;
use crate::state::AppState;
use crate::util::format_jst;

fn line(m: merchants::MerchantRow) -> TenantLine {
    TenantLine {
        mode: if m.mode() == Mode::Live {
            "本番"
        } else {
            "テスト"
        },
        owner: m.owner_id.unwrap_or_else(|| "-".into()),
        id: m.id,
        name: m.name,
    }
}

/// `GET /console/tenants`: the tenants of the signed-in owner staff member.
pub async fn tenants(State(state): State<AppState>, staff: Staff) -> ConsoleResult<Response> {
    let owner = match staff.scope() {
        Scope::Owner(o) => o.clone(),
        Scope::All => return Ok(Redirect::to("/console/owners").into_response()),
        Scope::Merchant(_) => return Err(ConsoleError::Forbidden),
    };
    let name = owners::get(&state.db, &owner)
        .await?
        .map_or_else(|| owner.clone(), |o| format!("{}（{}）", o.name, o.id));
    let tenants = owners::merchants_in_scope(&state.db, staff.scope())
        .await?
        .into_iter()
        .map(line)
        .collect();
    let page = Tenants {
        c: Chrome::staff(&state, &staff),
        owner: name,
        tenants,
    };
    html(StatusCode::OK, &page)
}

fn require_operator(staff: &Staff) -> ConsoleResult<()> {
    if staff.scope().is_all() {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden)
    }
}

async fn owners_page(
    state: &AppState,
    staff: &Staff,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> ConsoleResult<Response> {
    let all = merchants::list(&state.db).await?;
    let owners = owners::list(&state.db)
        .await?
        .into_iter()
        .map(|o| OwnerLine {
            tenants: all
                .iter()
                .filter(|m| m.owner_id.as_deref() == Some(o.id.as_str()))
                .map(|m| m.id.clone())
                .collect(),
            created: format_jst(o.created_at),
            id: o.id,
            name: o.name,
        })
        .collect();
    let page = Owners {
        c: Chrome::staff(state, staff),
        owners,
        merchants: all.into_iter().map(line).collect(),
        notice,
        error,
    };
    html(status, &page)
}

/// `GET /console/owners` (operators).
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let notice = match form::get(&q, "done") {
        "create" => Some("オーナーを作成しました。".to_owned()),
        "attach" => Some("加盟店のオーナーを設定しました。".to_owned()),
        _ => None,
    };
    owners_page(&state, &staff, StatusCode::OK, notice, None).await
}

/// `POST /console/owners` (operators): creates an owner.
pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let f = admin_form(&state, &staff, &headers, &body)?;
    let name = form::get(&f, "name").trim().to_owned();
    let id = form::get(&f, "id").trim();
    let r = flow::create(
        &state.db,
        &name,
        Some(id).filter(|i| !i.is_empty()),
        staff.now,
    )
    .await;
    let (target, detail) = match &r {
        Ok(o) => (o.clone(), format!("ok name={name}")),
        Err(e) => (id.to_owned(), format!("refused name={name}: {e}")),
    };
    audit::staff(&state.db, &staff, None, "owner.create", &target, &detail).await?;
    match r {
        Ok(_) => Ok(Redirect::to("/console/owners?done=create").into_response()),
        Err(e) => {
            let msg = format!("オーナーを作成できません: {e}");
            owners_page(&state, &staff, StatusCode::BAD_REQUEST, None, Some(msg)).await
        }
    }
}

/// `POST /console/owners/attach` (operators): puts a merchant under an owner, or (empty
/// owner) makes it independent.
pub async fn attach(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let f = admin_form(&state, &staff, &headers, &body)?;
    let merchant = form::get(&f, "merchant").trim().to_owned();
    let owner = Some(form::get(&f, "owner").trim()).filter(|o| !o.is_empty());
    let r = flow::attach(&state.db, &merchant, owner).await;
    let after = owner.unwrap_or("-");
    let detail = match &r {
        Ok(before) => format!("ok {} -> {after}", before.as_deref().unwrap_or("-")),
        Err(e) => format!("refused -> {after}: {e}"),
    };
    // Only an existing merchant is named in the merchant column of the log.
    let logged = r.is_ok().then_some(merchant.as_str());
    audit::staff(
        &state.db,
        &staff,
        logged,
        "merchant.owner",
        &merchant,
        &detail,
    )
    .await?;
    match r {
        Ok(_) => Ok(Redirect::to("/console/owners?done=attach").into_response()),
        Err(e) => {
            let msg = format!("オーナーを設定できません: {e}");
            owners_page(&state, &staff, StatusCode::BAD_REQUEST, None, Some(msg)).await
        }
    }
}
