//! Merchant console handlers that change things (card actions, redelivery, settings) and the
//! summary and audit pages. Every change: admin role, CSRF token, confirmation, audit record.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::actions::{self, ActionError};
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{self, Choice, Chrome, SummaryLine, ThemeChoice};
use crate::console::{audit, settings, summary};
use crate::db::{merchants, theme_uploads};
use crate::domain::konbini::Chain;
use crate::domain::wallet::Wallet;
use crate::domain::CaptureMode;
use crate::domain::Method;
use crate::form;
use crate::routes::console::{fields, html, visible_payment};
use crate::state::AppState;
use crate::util::{format_jst, format_yen};

pub(crate) fn map_action(e: ActionError) -> ConsoleError {
    match e {
        ActionError::NotFound => ConsoleError::NotFound,
        ActionError::Refused(m) => ConsoleError::Conflict(m),
        ActionError::Db(e) => ConsoleError::Db(e),
    }
}

pub(crate) fn op_label(op: &str) -> Option<&'static str> {
    match op {
        "capture" => Some("売上確定"),
        "cancel" => Some("取消"),
        "refund" => Some("返金"),
        "carrier_cancel" => Some("キャリア決済の取消（全額返金）"),
        "number_cancel" => Some("支払番号の取消"),
        _ => None,
    }
}

/// Checks role and CSRF of a posted form and returns its fields.
pub(crate) fn admin_form(
    state: &AppState,
    staff: &Staff,
    headers: &HeaderMap,
    body: &Bytes,
) -> ConsoleResult<Vec<(String, String)>> {
    staff.require_admin()?;
    let f = fields(headers, body);
    staff.check_csrf(&state.secret, form::get(&f, "csrf"))?;
    Ok(f)
}

fn parse_amount(s: &str) -> ConsoleResult<i64> {
    s.trim()
        .replace(',', "")
        .parse::<i64>()
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| ConsoleError::Bad("金額は1以上の整数（円）で入力してください。".into()))
}

/// The audit line of a payment action: outcome, status before → after (the refusal's sentence
/// when refused) and the amount asked for.
fn audit_detail(
    before: &crate::db::payments::PaymentRow,
    r: &Result<crate::db::payments::PaymentRow, ActionError>,
    amount: Option<i64>,
) -> String {
    let amount = amount.map(|a| format!(" amount={a}")).unwrap_or_default();
    match r {
        Ok(after) => format!("ok {} -> {}{amount}", before.status, after.status),
        Err(e) => format!("refused {}{amount}: {e}", before.status),
    }
}

/// `POST /console/payments/{id}/action`: without `confirm=yes` shows the confirmation page.
pub async fn action(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let p = visible_payment(&state, &staff, &id).await?;
    let op = form::get(&f, "op");
    let label = op_label(op).ok_or_else(|| ConsoleError::Bad("操作が正しくありません。".into()))?;
    let amount = if op == "refund" {
        Some(parse_amount(form::get(&f, "amount"))?)
    } else {
        None
    };
    if form::get(&f, "confirm") != "yes" {
        let mut lines = vec![
            format!("取引ID: {}", p.order_id),
            format!("決済ID: {}", p.id),
            format!("決済金額: {}円", format_yen(p.amount)),
        ];
        let mut hidden = vec![("op".to_owned(), op.to_owned())];
        if let Some(a) = amount {
            lines.push(format!("返金額: {}円", format_yen(a)));
            hidden.push(("amount".into(), a.to_string()));
        }
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: format!("{label}の確認"),
            lines,
            action: format!("/console/payments/{id}/action"),
            fields: hidden,
            back: format!("/console/payments/{id}"),
        };
        return html(StatusCode::OK, &page);
    }
    let actor = staff.actor();
    let scope = staff.scope();
    let r = match op {
        "capture" => actions::capture(&state, scope, &id, None, &actor).await,
        "cancel" => actions::cancel(&state, scope, &id, &actor).await,
        "carrier_cancel" => actions::carrier_cancel(&state, scope, &id, &actor).await,
        "number_cancel" => actions::number_cancel(&state, scope, &id, &actor).await,
        _ => actions::refund(&state, scope, &id, amount.unwrap_or(0), &actor).await,
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&p.merchant_id),
        &format!("payment.{op}"),
        &id,
        &audit_detail(&p, &r, amount),
    )
    .await?;
    r.map_err(map_action)?;
    Ok(Redirect::to(&format!("/console/payments/{id}?done={op}")).into_response())
}

pub async fn redeliver(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let p = visible_payment(&state, &staff, &id).await?;
    let event_id = form::get(&f, "event_id");
    let n =
        crate::db::outbox::redeliver(&state.db, &p.merchant_id, Some(event_id), staff.now).await?;
    if n == 0 {
        return Err(ConsoleError::NotFound);
    }
    state.wake_notifier();
    audit::staff(
        &state.db,
        &staff,
        Some(&p.merchant_id),
        "notification.redeliver",
        event_id,
        &id,
    )
    .await?;
    Ok(Redirect::to(&format!("/console/payments/{id}?done=redeliver")).into_response())
}

pub(crate) async fn merchant_of(
    state: &AppState,
    staff: &Staff,
    q: &[(String, String)],
) -> ConsoleResult<merchants::MerchantRow> {
    let id = staff
        .merchant_for(&state.db, form::get(q, "merchant").trim())
        .await?;
    merchants::get(&state.db, &id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// The signing key ids and API keys the settings page lists.
pub(crate) async fn keys_of(
    state: &AppState,
    m: &merchants::MerchantRow,
) -> ConsoleResult<(Vec<String>, Vec<(String, String, bool)>)> {
    let keys = merchants::active_key_ids(&state.db, &m.id).await?;
    let api = crate::db::api_keys::list(&state.db, &m.id)
        .await?
        .into_iter()
        .map(|k| {
            let active = k.status == crate::domain::ApiKeyStatus::Active;
            (k.id, format_jst(k.created_at), active)
        })
        .collect();
    Ok((keys, api))
}

pub(crate) fn settings_page(
    state: &AppState,
    staff: &Staff,
    m: &merchants::MerchantRow,
    (keys, api_keys): (Vec<String>, Vec<(String, String, bool)>),
    uploaded: &[String],
    error: Option<String>,
    notice: Option<&'static str>,
) -> views::Settings {
    let methods = m.methods();
    let chains = m.chains();
    let mut themes: Vec<ThemeChoice> = state
        .themes
        .names()
        .into_iter()
        .chain(uploaded.iter().map(String::as_str))
        .map(|t| ThemeChoice {
            code: t.to_owned(),
            label: state.themes.resolve(t).display_name.clone(),
            selected: m.theme == t,
            pc: format!(
                "/console/settings/preview?merchant={}&theme={t}&device=pc",
                m.id
            ),
            sp: format!(
                "/console/settings/preview?merchant={}&theme={t}&device=sp",
                m.id
            ),
            fp: format!(
                "/console/settings/preview?merchant={}&theme={t}&device=fp",
                m.id
            ),
        })
        .collect();
    themes.sort_by(|a, b| a.code.cmp(&b.code));
    views::Settings {
        c: Chrome::staff(state, staff),
        merchant_id: m.id.clone(),
        merchant_name: m.name.clone(),
        callback_url: m.callback_url.clone().unwrap_or_default(),
        return_origins: m.return_origins.clone(),
        methods: Method::ALL
            .iter()
            .map(|x| Choice {
                code: x.code().into(),
                label: x.name_ja().into(),
                selected: methods.contains(x),
            })
            .collect(),
        chains: Chain::all()
            .iter()
            .map(|c| Choice {
                code: c.code().into(),
                label: c.name_ja().into(),
                selected: chains.iter().any(|x| x == c.code()),
            })
            .collect(),
        wallets: Wallet::ALL
            .into_iter()
            .map(|w| Choice {
                code: w.code().into(),
                label: w.name_ja().into(),
                selected: m.wallet_brands.offers(w),
            })
            .collect(),
        konbini_days: m.konbini_days,
        manual: m.capture_mode == CaptureMode::Manual,
        saved_card_cvc: m.saved_card_cvc(),
        themes,
        key_ids: keys,
        api_keys,
        webhook_secrets: m
            .webhook_secrets(&state.keys)
            .map(|s| s.len())
            .unwrap_or_else(|e| {
                tracing::error!(merchant = %m.id, error = %e, "webhook secrets cannot be opened");
                0
            }),
        upload_max_kb: crate::console::theme_upload::MAX_LOGO_BYTES / 1024,
        error,
        notice,
    }
}

pub async fn settings_get(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let keys = keys_of(&state, &m).await?;
    let uploaded = theme_uploads::names(&state.db, &m.id).await?;
    let notice = if form::get(&q, "saved") == "1" {
        Some("保存しました。")
    } else if form::get(&q, "uploaded") == "1" {
        Some("テーマをアップロードしました。プレビューで確認し、テーマとして選んで保存すると使われます。")
    } else {
        None
    };
    html(
        StatusCode::OK,
        &settings_page(&state, &staff, &m, keys, &uploaded, None, notice),
    )
}

pub async fn settings_post(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    // Only this merchant's uploads may be chosen: another merchant's theme name is refused.
    let uploaded = theme_uploads::names(&state.db, &m.id).await?;
    match settings::parse(&f, &m, &state.config, &state.themes, &uploaded) {
        Ok(u) => {
            settings::store(&state.db, &m.id, &u).await?;
            audit::staff(
                &state.db,
                &staff,
                Some(&m.id),
                "settings.update",
                &m.id,
                &format!("theme {} -> {}; {u:?}", m.theme, u.theme),
            )
            .await?;
            Ok(
                Redirect::to(&format!("/console/settings?merchant={}&saved=1", m.id))
                    .into_response(),
            )
        }
        Err(e) => {
            let keys = keys_of(&state, &m).await?;
            html(
                StatusCode::BAD_REQUEST,
                &settings_page(&state, &staff, &m, keys, &uploaded, Some(e), None),
            )
        }
    }
}

pub async fn rotate_key(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let key = merchants::rotate_key(&state.db, &state.keys, &m.id, staff.now).await?;
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "settings.rotate_key",
        &key.key_id,
        "",
    )
    .await?;
    let page = views::SecretShown {
        c: Chrome::staff(&state, &staff),
        title: "新しい署名鍵".into(),
        label: format!("鍵ID {} のシークレット", key.key_id),
        secret: key.secret,
        note: "このシークレットは今だけ表示されます。カートのサーバー側設定に保存してください。"
            .into(),
    };
    html(StatusCode::OK, &page)
}

pub async fn rotate_webhook(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let secret = settings::rotate_webhook_secret(&state.db, &state.keys, &m)
        .await
        .map_err(|e| match e.downcast::<crate::db::Error>() {
            Ok(crate::db::Error::RowNotFound) => {
                ConsoleError::Conflict("同時に更新されました。もう一度お試しください。".into())
            }
            Ok(e) => ConsoleError::Db(e),
            Err(e) => ConsoleError::Internal(e),
        })?;
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "settings.rotate_webhook_secret",
        &m.id,
        "",
    )
    .await?;
    let page = views::SecretShown { c: Chrome::staff(&state, &staff), title: "新しいWebhookシークレット".into(), label: "シークレット".into(), secret, note: "このシークレットは今だけ表示されます。受信側の検証に設定してください。直前のシークレットも引き続き署名に使われます。".into() };
    html(StatusCode::OK, &page)
}

/// Theme preview: the payment-method selector in a theme for PC, smartphone or feature phone.
pub async fn preview(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let theme = form::get(&q, "theme");
    if !state.themes.contains(theme)
        && !theme_uploads::names(&state.db, &m.id)
            .await?
            .iter()
            .any(|t| t == theme)
    {
        return Err(ConsoleError::NotFound);
    }
    let device = match form::get(&q, "device") {
        "sp" => crate::device::Device::Smartphone,
        "fp" => crate::device::Device::FeaturePhone,
        _ => crate::device::Device::Pc,
    };
    let r = crate::console::preview::render(&state, &m, theme, device)
        .map_err(|e| anyhow::anyhow!("preview: {e}"))?;
    Ok(r)
}

pub async fn summary_page(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let requested = form::get(&q, "merchant").trim();
    let scope = staff.narrowed(&state.db, requested).await?;
    let merchant = staff.scope().is_multi().then(|| requested.to_owned());
    let (from, to, from_ms, to_ms) =
        crate::console::summary::period(form::get(&q, "from"), form::get(&q, "to"), staff.now)
            .map_err(ConsoleError::Bad)?;
    let lines = summary::lines(&state.db, &scope, from_ms, to_ms).await?;
    let view = |method: String, count: i64, amount: i64, fee: i64| SummaryLine {
        method,
        count,
        amount: format_yen(amount),
        fee: format_yen(fee),
        net: format_yen(amount - fee),
    };
    let total = view(
        "合計".into(),
        lines.iter().map(|l| l.count).sum(),
        lines.iter().map(|l| l.amount).sum(),
        lines.iter().map(|l| l.fee).sum(),
    );
    let page = views::Summary {
        c: Chrome::staff(&state, &staff),
        merchant: merchant.clone().unwrap_or_default(),
        from,
        to,
        lines: lines
            .into_iter()
            .map(|l| {
                view(
                    crate::domain::Method::parse(&l.method)
                        .map_or(l.method.as_str(), |m| m.name_ja())
                        .to_owned(),
                    l.count,
                    l.amount,
                    l.fee,
                )
            })
            .collect(),
        total,
    };
    html(StatusCode::OK, &page)
}

pub async fn audit_page(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let before = form::get(&q, "before").parse::<i64>().ok();
    let rows = audit::list(&state.db, staff.scope(), before, 100).await?;
    let next = (rows.len() == 100)
        .then(|| {
            rows.last()
                .map(|r| format!("/console/audit?before={}", r.id))
        })
        .flatten();
    let rows = rows
        .into_iter()
        .map(|r| views::AuditView {
            at: format_jst(r.at),
            email: r.email,
            merchant: r.merchant_id.unwrap_or_default(),
            action: r.action,
            target: r.target,
            detail: r.detail,
            ip: r.ip,
        })
        .collect();
    html(
        StatusCode::OK,
        &views::Audit {
            c: Chrome::staff(&state, &staff),
            rows,
            next,
        },
    )
}
