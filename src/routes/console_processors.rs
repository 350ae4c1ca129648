//! Console: the merchant's mode and its processor accounts. Admins and operators only; every
//! change is audited; credentials are entered once and never shown again.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::connectors::registry::Unusable;
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{self, AccountRow, Choice, Chrome};
use crate::db::merchants::MerchantRow;
use crate::domain::processor::{AccountStatus, Processor};
use crate::domain::{Method, Mode};
use crate::flows::processors::{self, AccountInput, ProcessorError};
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::{admin_form, merchant_of};
use crate::state::AppState;
use crate::util::format_jst;

/// What staff read for a refused change: in Japanese, and never an internal error's text.
fn message_ja(e: &ProcessorError) -> String {
    match e {
        ProcessorError::UnknownMerchant(_) => "加盟店が見つかりません。".into(),
        ProcessorError::UnknownAccount(_) => "有効なアカウントが見つかりません。".into(),
        ProcessorError::NoMethods => "決済手段を1つ以上選んでください。".into(),
        ProcessorError::MethodNotOffered { processor, method } => {
            let name = Method::parse(method).map(Method::name_ja).unwrap_or(method);
            format!("{processor} は {name} に対応していません。")
        }
        ProcessorError::MissingSecret => "シークレットキーを入力してください。".into(),
        ProcessorError::MissingPublishableKey => {
            "Stripe のカード決済には公開可能キー（pk_…）が必要です。".into()
        }
        ProcessorError::StripeKeyMode(m) => format!(
            "Stripe の{}アカウントには sk_{m}_… / rk_{m}_… と pk_{m}_… のキーを指定してください。",
            if *m == "live" { "本番" } else { "テスト" }
        ),
        ProcessorError::Seal(crate::secrets::SealError::NoMasterKey) => {
            "マスターキー（KAKEHASHI_MASTER_KEY）が設定されていないため、認証情報を保存できません。".into()
        }
        ProcessorError::Seal(_) => "認証情報を暗号化できませんでした。運用者に連絡してください。".into(),
        ProcessorError::NoLiveMethod(_) => {
            "本番モードで利用できる決済手段がないため、切り替えられません。本番用の決済代行アカウントを追加してください。".into()
        }
        ProcessorError::LastLiveAccount => {
            "本番モードで最後のアカウントは停止できません。先にテストモードに戻してください。".into()
        }
        ProcessorError::Db(_) => "保存できませんでした。しばらくしてからもう一度お試しください。".into(),
    }
}

/// Refusals become the page again with the message; database failures stay internal errors.
fn refused(e: ProcessorError) -> Result<String, ConsoleError> {
    match e {
        ProcessorError::Db(e) => Err(ConsoleError::Db(e)),
        e => Ok(message_ja(&e)),
    }
}

fn why_ja(p: Processor, w: &Unusable) -> String {
    match w {
        Unusable::NoDriver => format!("このサーバーは {} にまだ接続できません", p.name()),
        Unusable::Sealed(_) => "認証情報を復号できません（マスターキーを確認）".into(),
    }
}

fn names(ms: &[Method]) -> Vec<&'static str> {
    ms.iter().map(|m| m.name_ja()).collect()
}

async fn page(
    state: &AppState,
    staff: &Staff,
    m: &MerchantRow,
    error: Option<String>,
    notice: Option<String>,
) -> ConsoleResult<views::Processors> {
    let reg = &state.connectors;
    let list = processors::list(&state.db, reg, &m.id)
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let offered = processors::payable_methods(&state.db, reg, m, m.mode())
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let live = processors::payable_methods(&state.db, reg, m, Mode::Live)
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    Ok(views::Processors {
        c: Chrome::staff(state, staff),
        merchant_id: m.id.clone(),
        merchant_name: m.name.clone(),
        live: m.mode() == Mode::Live,
        offered: names(&offered),
        live_methods: names(&live),
        accounts: list
            .into_iter()
            .map(|v| AccountRow {
                id: v.account.id.clone(),
                processor: v.account.processor.name(),
                mode: match v.account.mode {
                    Mode::Live => "本番",
                    Mode::Test => "テスト",
                },
                active: v.account.status == AccountStatus::Active,
                fingerprint: v.account.fingerprint.clone(),
                created: format_jst(v.account.created_at),
                methods: v
                    .methods
                    .iter()
                    .map(|(x, w)| {
                        (
                            x.name_ja(),
                            w.as_ref().map(|w| why_ja(v.account.processor, w)),
                        )
                    })
                    .collect(),
            })
            .collect(),
        processors: Processor::ALL
            .iter()
            .map(|p| Choice {
                code: p.code().into(),
                label: p.name().into(),
                selected: false,
            })
            .collect(),
        methods: Method::ALL
            .iter()
            .map(|x| Choice {
                code: x.code().into(),
                label: x.name_ja().into(),
                selected: false,
            })
            .collect(),
        master_key: reg.keys().has_current(),
        error,
        notice,
    })
}

fn query(q: Option<String>) -> Vec<(String, String)> {
    form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8)
}

fn back(m: &MerchantRow, notice: &str) -> Response {
    Redirect::to(&format!(
        "/console/processors?merchant={}&done={notice}",
        m.id
    ))
    .into_response()
}

/// `GET /console/processors?merchant=`
pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let q = query(q);
    let m = merchant_of(&state, &staff, &q).await?;
    let notice = match form::get(&q, "done") {
        "added" => Some("アカウントを追加しました。".to_owned()),
        "retired" => Some("アカウントを停止しました。".to_owned()),
        "live" => Some("本番モードに切り替えました。".to_owned()),
        "test" => Some("テストモードに戻しました。".to_owned()),
        _ => None,
    };
    html(
        StatusCode::OK,
        &page(&state, &staff, &m, None, notice).await?,
    )
}

/// `POST /console/processors/add?merchant=`
pub async fn add(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let bad = |msg: &str| ConsoleError::Bad(msg.to_owned());
    let processor = Processor::parse(form::get(&f, "processor"))
        .ok_or_else(|| bad("決済代行を選んでください。"))?;
    let mode = Mode::parse(form::get(&f, "mode")).ok_or_else(|| bad("モードを選んでください。"))?;
    let methods: Vec<Method> = f
        .iter()
        .filter(|(k, _)| k == "methods")
        .map(|(_, v)| Method::parse(v).ok_or_else(|| bad("決済手段が正しくありません。")))
        .collect::<Result<_, _>>()?;
    let opt = |k: &str| Some(form::get(&f, k).to_owned()).filter(|v| !v.trim().is_empty());
    let input = AccountInput {
        processor,
        mode,
        methods,
        secret_key: form::get(&f, "secret_key").to_owned(),
        publishable_key: opt("publishable_key"),
        webhook_secret: opt("webhook_secret"),
    };
    match processors::add(&state.db, &state.connectors, &m.id, input, staff.now).await {
        Ok(a) => {
            let detail = format!(
                "processor={} mode={} methods={} key={}",
                a.processor.code(),
                a.mode.as_str(),
                Method::join(&a.methods),
                a.fingerprint
            );
            audit::staff(
                &state.db,
                &staff,
                Some(&m.id),
                "processor.add",
                &a.id,
                &detail,
            )
            .await?;
            Ok(back(&m, "added"))
        }
        Err(e) => {
            let msg = refused(e)?;
            html(
                StatusCode::BAD_REQUEST,
                &page(&state, &staff, &m, Some(msg), None).await?,
            )
        }
    }
}

/// `POST /console/processors/{id}/retire?merchant=`
pub async fn retire(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    match processors::retire(&state.db, &state.connectors, &m.id, &id, staff.now).await {
        Ok(()) => {
            audit::staff(&state.db, &staff, Some(&m.id), "processor.retire", &id, "").await?;
            Ok(back(&m, "retired"))
        }
        Err(e) => {
            let msg = refused(e)?;
            html(
                StatusCode::CONFLICT,
                &page(&state, &staff, &m, Some(msg), None).await?,
            )
        }
    }
}

/// `POST /console/processors/mode?merchant=`: `mode=live|test`, `confirm=yes`.
pub async fn set_mode(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant_of(&state, &staff, &query(q)).await?;
    let mode = Mode::parse(form::get(&f, "mode"))
        .ok_or_else(|| ConsoleError::Bad("モードが正しくありません。".into()))?;
    if form::get(&f, "confirm") != "yes" {
        let msg = "確認のチェックを入れてください。".to_owned();
        return html(
            StatusCode::BAD_REQUEST,
            &page(&state, &staff, &m, Some(msg), None).await?,
        );
    }
    let from = m.mode();
    match processors::set_mode(&state.db, &state.connectors, &m.id, mode).await {
        Ok(offered) => {
            let detail = format!(
                "{} -> {}; methods={}",
                from.as_str(),
                mode.as_str(),
                Method::join(&offered)
            );
            audit::staff(
                &state.db,
                &staff,
                Some(&m.id),
                "merchant.mode",
                &m.id,
                &detail,
            )
            .await?;
            Ok(back(&m, mode.as_str()))
        }
        Err(e) => {
            let msg = refused(e)?;
            html(
                StatusCode::CONFLICT,
                &page(&state, &staff, &m, Some(msg), None).await?,
            )
        }
    }
}
