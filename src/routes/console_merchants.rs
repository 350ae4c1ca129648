//! Merchant administration in the console: operators list, create and edit merchants (same flow
//! as `kakehashi merchant add|set`); admins and operators manage a merchant's API keys, retire
//! signing keys and send a test notification. Every change: role, CSRF, audit with before/after.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{Chrome, SecretShown};
use crate::console::views_admin::{self as v, AttemptLine, MerchantLine};
use crate::db::merchants::{self, MerchantRow};
use crate::flows::merchant_admin as flow;
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::{admin_form, merchant_of};
use crate::state::AppState;
use crate::util::format_jst;

/// Operators only: merchants are created and their basics changed by whoever runs the server.
fn require_operator(staff: &Staff) -> ConsoleResult<()> {
    if staff.role() == crate::console::Role::Operator {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden)
    }
}

fn query(q: Option<String>) -> Vec<(String, String)> {
    form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8)
}

async fn list_page(
    state: &AppState,
    staff: &Staff,
    status: StatusCode,
    error: Option<String>,
    name: &str,
    id: &str,
) -> ConsoleResult<Response> {
    let merchants = merchants::list(&state.db)
        .await?
        .into_iter()
        .map(|m| MerchantLine {
            mode: if m.mode() == crate::domain::Mode::Live {
                "本番"
            } else {
                "テスト"
            },
            status: if m.status == crate::domain::MerchantStatus::Active {
                "有効"
            } else {
                "停止"
            },
            created: format_jst(m.created_at),
            id: m.id,
            name: m.name,
        })
        .collect();
    let page = v::Merchants {
        c: Chrome::staff(state, staff),
        merchants,
        error,
        name: name.to_owned(),
        id: id.to_owned(),
    };
    html(status, &page)
}

/// `GET /console/merchants` (operators).
pub async fn list(State(state): State<AppState>, staff: Staff) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    list_page(&state, &staff, StatusCode::OK, None, "", "").await
}

/// `POST /console/merchants` (operators): creates a test-mode merchant; secrets shown once.
pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let f = admin_form(&state, &staff, &headers, &body)?;
    let name = form::get(&f, "name").trim().to_owned();
    let id = form::get(&f, "id").trim().to_owned();
    let r = flow::create(
        &state.db,
        &state.keys,
        &state.config,
        name.clone(),
        Some(id.clone()).filter(|i| !i.is_empty()),
        flow::Settings::default(),
        staff.now,
    )
    .await;
    let (target, detail) = match &r {
        Ok(c) => (c.id.clone(), format!("ok name={name} key={}", c.key_id)),
        Err(e) => (id.clone(), format!("refused name={name}: {e}")),
    };
    audit::staff(
        &state.db,
        &staff,
        r.as_ref().ok().map(|c| c.id.as_str()),
        "merchant.create",
        &target,
        &detail,
    )
    .await?;
    match r {
        Ok(c) => html(
            StatusCode::OK,
            &v::MerchantCreated {
                c: Chrome::staff(&state, &staff),
                id: c.id,
                key_id: c.key_id,
                secret: c.secret,
                webhook_secret: c.webhook_secret,
                famima_note: c.famima_note,
            },
        ),
        Err(e) => {
            list_page(
                &state,
                &staff,
                StatusCode::BAD_REQUEST,
                Some(format!("加盟店を作成できません: {e}")),
                &name,
                &id,
            )
            .await
        }
    }
}

async fn operator_merchant(state: &AppState, id: &str) -> ConsoleResult<MerchantRow> {
    merchants::get(&state.db, id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// The basics as the edit form shows them (and as the audit compares them).
struct Basics {
    name: String,
    status: String,
    notify_format: String,
    card_options: String,
    continuous: bool,
    autopay: String,
    sms_template: String,
}

async fn basics(state: &AppState, m: &MerchantRow) -> ConsoleResult<Basics> {
    Ok(Basics {
        name: m.name.clone(),
        status: m.status.code().to_owned(),
        notify_format: m.notify_format.code().to_owned(),
        card_options: m.card_options.clone(),
        continuous: merchants::continuous_enabled(&state.db, &m.id).await?,
        autopay: merchants::autopay_seconds(&state.db, &m.id)
            .await?
            .map_or_else(|| "off".to_owned(), |s| s.to_string()),
        sms_template: merchants::sms_template(&state.db, &m.id)
            .await?
            .unwrap_or_default(),
    })
}

fn edit_page(
    state: &AppState,
    staff: &Staff,
    id: &str,
    b: &Basics,
    status: StatusCode,
    error: Option<String>,
    saved: bool,
) -> ConsoleResult<Response> {
    let page = v::MerchantEdit {
        c: Chrome::staff(state, staff),
        id: id.to_owned(),
        name: b.name.clone(),
        active: b.status == "active",
        compat: b.notify_format == "compat",
        card_options: b.card_options.clone(),
        continuous: b.continuous,
        autopay: b.autopay.clone(),
        sms_template: b.sms_template.clone(),
        error,
        saved,
    };
    html(status, &page)
}

/// `GET /console/merchants/{id}` (operators): the basics form.
pub async fn edit_get(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let m = operator_merchant(&state, &id).await?;
    let b = basics(&state, &m).await?;
    let saved = form::get(&query(q), "saved") == "1";
    edit_page(&state, &staff, &m.id, &b, StatusCode::OK, None, saved)
}

/// `POST /console/merchants/{id}` (operators): changes what differs from the stored values,
/// through the same flow as `kakehashi merchant set`.
pub async fn edit_post(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    require_operator(&staff)?;
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = operator_merchant(&state, &id).await?;
    let before = basics(&state, &m).await?;
    let after = Basics {
        name: form::get(&f, "name").trim().to_owned(),
        status: form::get(&f, "status").to_owned(),
        notify_format: form::get(&f, "notify_format").to_owned(),
        card_options: form::get(&f, "card_options").trim().to_owned(),
        continuous: form::get(&f, "carrier_continuous") == "yes",
        autopay: form::get(&f, "sandbox_autopay").trim().to_owned(),
        sms_template: form::get(&f, "sms_template").trim().to_owned(),
    };
    let changed = |a: &str, b: &str| (a != b).then(|| b.to_owned());
    let ch = flow::Changes {
        name: changed(&before.name, &after.name),
        status: changed(&before.status, &after.status),
        carrier_continuous: (before.continuous != after.continuous).then_some(after.continuous),
        saved_card_cvc: None,
        settings: flow::Settings {
            notify_format: changed(&before.notify_format, &after.notify_format),
            card_options: changed(&before.card_options, &after.card_options),
            sandbox_autopay_seconds: changed(&before.autopay, &after.autopay),
            // An empty template keeps the stored one (the default applies when none is set).
            sms_template: changed(&before.sms_template, &after.sms_template)
                .filter(|t| !t.is_empty()),
            ..flow::Settings::default()
        },
    };
    let mut diff = Vec::new();
    for (k, a, b) in [
        ("name", &before.name, &after.name),
        ("status", &before.status, &after.status),
        ("notify_format", &before.notify_format, &after.notify_format),
        ("card_options", &before.card_options, &after.card_options),
        ("sandbox_autopay", &before.autopay, &after.autopay),
        ("sms_template", &before.sms_template, &after.sms_template),
    ] {
        if a != b && !(k == "sms_template" && b.is_empty()) {
            diff.push(format!("{k}: {a} -> {b}"));
        }
    }
    if before.continuous != after.continuous {
        diff.push(format!(
            "carrier_continuous: {} -> {}",
            before.continuous, after.continuous
        ));
    }
    if diff.is_empty() {
        return edit_page(
            &state,
            &staff,
            &m.id,
            &after,
            StatusCode::BAD_REQUEST,
            Some("変更はありません。".into()),
            false,
        );
    }
    let r = flow::update(&state.db, &state.connectors, &state.config, &m.id, ch).await;
    let detail = match &r {
        Ok(_) => format!("ok {}", diff.join("; ")),
        Err(e) => format!("refused {}: {e}", diff.join("; ")),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "merchant.update",
        &m.id,
        &detail,
    )
    .await?;
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/console/merchants/{}?saved=1", m.id)).into_response()),
        Err(e) => edit_page(
            &state,
            &staff,
            &m.id,
            &after,
            StatusCode::BAD_REQUEST,
            Some(format!("保存できません: {e}")),
            false,
        ),
    }
}

/// `POST /console/settings/api-keys?merchant=`: a new API key, shown once.
pub async fn api_key_create(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let (key_id, secret) = crate::api::keys::create(&state.db, &m.id, staff.now).await?;
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "settings.api_key_create",
        &key_id,
        "ok none -> active",
    )
    .await?;
    let page = SecretShown {
        c: Chrome::staff(&state, &staff),
        title: "新しいAPIキー".into(),
        label: format!("APIキー {key_id}"),
        secret,
        note:
            "このキーは今だけ表示されます。`Authorization: Bearer <キー>` として送信してください。"
                .into(),
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/settings/api-keys/{key_id}/retire?merchant=`.
pub async fn api_key_retire(
    State(state): State<AppState>,
    staff: Staff,
    Path(key_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let ok = crate::db::api_keys::retire(&state.db, &m.id, &key_id).await?;
    let detail = if ok {
        "ok active -> retired"
    } else {
        "refused: no such active key"
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "settings.api_key_retire",
        &key_id,
        detail,
    )
    .await?;
    if !ok {
        return Err(ConsoleError::NotFound);
    }
    Ok(Redirect::to(&format!("/console/settings?merchant={}&saved=1", m.id)).into_response())
}

/// `POST /console/settings/keys/{key_id}/retire?merchant=`: retires a signing key (never the
/// only active one).
pub async fn signing_key_retire(
    State(state): State<AppState>,
    staff: Staff,
    Path(key_id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let active = merchants::active_key_ids(&state.db, &m.id).await?;
    let r = if !active.contains(&key_id) {
        Err(ConsoleError::NotFound)
    } else if active.len() <= 1 {
        Err(ConsoleError::Conflict(
            "有効な署名鍵が1つだけのため停止できません。先に新しい鍵を発行してください。".into(),
        ))
    } else {
        merchants::retire_key(&state.db, &m.id, &key_id)
            .await
            .map_err(|e| ConsoleError::Conflict(format!("停止できません: {e}")))
    };
    let detail = match &r {
        Ok(()) => "ok active -> retired".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "settings.retire_key",
        &key_id,
        &detail,
    )
    .await?;
    r?;
    Ok(Redirect::to(&format!("/console/settings?merchant={}&saved=1", m.id)).into_response())
}

/// `POST /console/settings/test-notification?merchant=`: queues a `ping` to the callback URL
/// (signed like every notification) and shows its delivery.
pub async fn test_notification(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    if m.callback_url.as_deref().unwrap_or("").is_empty() {
        return Err(ConsoleError::Bad(
            "結果通知URLが登録されていません。先に設定してください。".into(),
        ));
    }
    let event_id = crate::db::outbox::ping(&state.db, &m.id, staff.now).await?;
    state.wake_notifier();
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "notification.test",
        &event_id,
        m.callback_url.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/console/settings/test-notification/{event_id}?merchant={}",
        m.id
    ))
    .into_response())
}

fn state_ja(status: &str) -> &'static str {
    match status {
        "pending" => "送信待ち（再試行中を含む）",
        "delivered" => "配信済（受信側が応答しました）",
        "failed" => "配信失敗（再試行の上限）",
        "disabled" => "停止（受信側が 410 を返しました）",
        "no_endpoint" => "送信先なし",
        _ => "不明",
    }
}

/// `GET /console/settings/test-notification/{event_id}?merchant=`: the ping's delivery.
pub async fn test_notification_get(
    State(state): State<AppState>,
    staff: Staff,
    Path(event_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let e = crate::db::outbox::event(&state.db, &m.id, &event_id)
        .await?
        .filter(|e| e.kind == "ping")
        .ok_or(ConsoleError::NotFound)?;
    let attempts = crate::db::outbox::attempts(&state.db, &e.id)
        .await?
        .into_iter()
        .map(|a| AttemptLine {
            at: format_jst(a.attempted_at),
            status: a
                .status_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            latency_ms: a.latency_ms,
            outcome: a.outcome,
            response: a.response_snippet,
        })
        .collect();
    let page = v::TestNotification {
        c: Chrome::staff(&state, &staff),
        merchant_id: m.id.clone(),
        callback_url: m.callback_url.clone().unwrap_or_default(),
        state: state_ja(&e.status).to_owned(),
        delivered: e.status == "delivered",
        refresh: format!(
            "/console/settings/test-notification/{}?merchant={}",
            e.id, m.id
        ),
        event_id: e.id,
        attempts,
    };
    html(StatusCode::OK, &page)
}
