//! Payment actions from the console: card capture (売上確定), cancel (取消) and refund (返金)
//! (wallets too, [`crate::flows::wallet::refund`]);
//! carrier billing 取消 (a whole refund) and cancel of an unpaid konbini / Pay-easy number.
//!
//! The console calls the same flows as the CLI and the API ([`crate::flows::card`],
//! [`crate::flows::carrier_sync::refund`], [`crate::flows::number_cancel::cancel`]); this file
//! only scopes the payment to the signed-in user's merchant and turns refusals into Japanese
//! messages for staff. SMS payment requests ([`crate::flows::payment_requests`]) and
//! continuous-billing contracts (継続課金) are cancelled here too
//! ([`crate::flows::carrier::cancel_subscription_as`]).

use crate::db::payments::{self, PaymentRow};
use crate::domain::scope::Scope;
use crate::domain::RequestStatus;
use crate::flows::error::FlowError;
use crate::flows::{card, carrier_sync, number_cancel, payment_requests};
use crate::state::AppState;

/// Why an action was not done. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no such payment")]
    NotFound,
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

fn refused_ja(code: &str) -> String {
    match code {
        "invalid_transition" => "現在の決済ステータスではこの操作はできません。".into(),
        "amount_exceeds_authorized" => "金額がオーソリ金額を超えています。".into(),
        "amount_exceeds_captured" => "金額が返金可能な金額を超えています。".into(),
        "invalid_amount" => "金額が正しくありません。".into(),
        "payment_not_found" => "この決済ではこの操作はできません。".into(),
        "invalid_phone" => {
            "電話番号は携帯電話の番号（070・080・090で始まる11桁）で入力してください。".into()
        }
        "sms_too_long" => "SMSの本文が長すぎます。商品名を短くしてください。".into(),
        "sms_provider_not_configured" => {
            "本番モードのSMS送信サービスがこのサーバーに設定されていません。".into()
        }
        "payment_request_not_found" => "このSMS決済は見つかりません。".into(),
        "payment_request_not_open" => {
            "受付中ではないため、このSMS決済は再送・取消できません。".into()
        }
        "checkout_not_open" => "この取引IDの決済はすでに受付済みです。".into(),
        "subscription_not_found" => "この継続課金契約は見つかりません。".into(),
        "partial_refund_unsupported" => "キャリア決済は全額でのみ取消できます。".into(),
        "refund_request_not_allowed" => {
            "この決済は返金依頼の対象ではありません（支払済みのコンビニ・ペイジー・銀行振込・ネットバンキング決済のみ）。".into()
        }
        "amount_exceeds_paid" => "返金依頼の合計が決済金額を超えます。".into(),
        "invalid_email" => "メールアドレスが正しくありません。".into(),
        "recipient_required" => "携帯電話番号かメールアドレスを入力してください。".into(),
        "refund_request_closed" => "この返金依頼は手続きが終わっています。".into(),
        "order_conflict" => {
            "この取引IDはすでに別の内容（金額・商品名など）で使われています。".into()
        }
        "amount_over_limit" => "金額が決済方法の上限を超えています。".into(),
        "no_method_available" | "methods_unavailable" => {
            "指定した決済方法はこの加盟店では使えません。設定を確認してください。".into()
        }
        "no_signing_key" => "有効な署名鍵がありません。設定で署名鍵を発行してください。".into(),
        "return_url_not_allowed" => "戻り先のオリジンが登録されていません。".into(),
        crate::connectors::konbini::ALREADY_PAID => {
            "支払機関によると、この番号はすでに支払われています。入金の通知をお待ちください。"
                .into()
        }
        "concurrent_change" => "他の操作と同時に更新されました。画面を更新してください。".into(),
        "operation_in_progress" => {
            "この決済には処理中の操作があります。しばらくしてから画面を更新してください。".into()
        }
        "connector_error" => "決済機関が処理できませんでした。".into(),
        "no_connector" => "この決済を処理した決済機関は、現在のモードでは使えません。".into(),
        // A documented code without a sentence yet: the code is stable and safe to show.
        other => format!("操作できません（{other}）。"),
    }
}

/// Loads the payment if it is inside the user's scope (the scope is part of the query).
async fn scoped(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
) -> Result<PaymentRow, ActionError> {
    payments::get_in(&state.db, scope, payment_id)
        .await?
        .ok_or(ActionError::NotFound)
}

/// The console's one mapping of a flow error: a sentence per refusal code; a bug or store failure
/// is logged in full and shown to staff only as a generic sentence.
fn map<T>(r: Result<T, FlowError>) -> Result<T, ActionError> {
    r.map_err(|e| match e {
        FlowError::Refused {
            kind: crate::flows::error::Refused::NotFound,
            code:
                "payment_request_not_found" | "subscription_not_found" | "refund_request_not_found",
            ..
        } => ActionError::NotFound,
        FlowError::Refused { code, .. } => ActionError::Refused(refused_ja(code)),
        FlowError::Shopper { reason, .. } => ActionError::Refused(refused_ja(reason.code())),
        FlowError::Db(e) => ActionError::Db(e),
        FlowError::Internal(e) => {
            tracing::error!(error = %e, "console action failed");
            ActionError::Refused(
                "システムエラーのため操作できませんでした。時間をおいて再度お試しください。".into(),
            )
        }
    })
}

/// 売上確定: the whole authorized amount when `amount` is `None`.
pub async fn capture(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    amount: Option<i64>,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    scoped(state, scope, payment_id).await?;
    map(card::capture(state, payment_id, amount, actor).await)
}

/// 取消 of an authorization or an unrefunded capture.
pub async fn cancel(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    scoped(state, scope, payment_id).await?;
    map(card::cancel(state, payment_id, actor).await)
}

/// 返金 of part or all of a capture.
pub async fn refund(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    amount: i64,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    let p = scoped(state, scope, payment_id).await?;
    // Wallets are refunded through the connector that served them, in part or whole.
    if p.method == crate::flows::wallet::METHOD {
        return map(crate::flows::wallet::refund(state, payment_id, amount, actor).await);
    }
    map(card::refund(state, payment_id, amount, actor).await)
}

/// 取消 of a completed carrier billing charge: the whole amount goes back to the shopper through
/// the connector that served the payment (the sandbox for a test-mode merchant's sandbox payment).
pub async fn carrier_cancel(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    scoped(state, scope, payment_id).await?;
    map(carrier_sync::refund(state, payment_id, None, actor).await)
}

/// 取消 of an unpaid konbini / Pay-easy number: the institution stops it, the payment expires.
pub async fn number_cancel(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    scoped(state, scope, payment_id).await?;
    map(number_cancel::cancel(state, payment_id, actor).await)
}

/// 解約 of an active continuous-billing contract: the carrier stops it, no more monthly charges.
pub async fn subscription_cancel(
    state: &AppState,
    scope: &Scope,
    id: &str,
    actor: &str,
) -> Result<crate::db::subscriptions::SubscriptionRow, ActionError> {
    crate::db::subscriptions::get_in(&state.db, scope, id)
        .await?
        .ok_or(ActionError::NotFound)?;
    let r = crate::flows::carrier::cancel_subscription_as(
        &state.db,
        &state.connectors,
        id,
        actor,
        state.now_ms(),
    )
    .await;
    match r {
        // The machine's only refusal: the contract has already ended.
        Err(FlowError::Refused {
            code: "invalid_transition",
            ..
        }) => Err(ActionError::Refused(
            "この継続課金契約はすでに解約されています。".into(),
        )),
        r => map(r),
    }
}

/// 決済新規登録: signs and opens a checkout link for the merchant's order, the same flow as
/// `POST /api/v1/checkouts` (the same order again gives the same link). Returns the checkout
/// and the link.
pub async fn checkout_create(
    state: &AppState,
    m: &crate::db::merchants::MerchantRow,
    order_fields: &[(String, String)],
    expires_at_s: i64,
) -> Result<(crate::flows::checkout::Opened, String), ActionError> {
    let r = crate::flows::checkout::sign_and_open(state, &m.id, order_fields, expires_at_s).await;
    match r {
        // A field the link rules refuse: say which one, in the form's words.
        Err(FlowError::Shopper {
            field: Some(field),
            reason,
        }) => Err(ActionError::Refused(format!(
            "{}を確認してください（{}）。",
            field_ja(field),
            reason.message_ja()
        ))),
        r => map(r),
    }
}

/// The console form's name of a link field.
fn field_ja(field: &str) -> &str {
    match field {
        "order_id" => "取引ID",
        "amount" => "金額",
        "item_name" => "商品名",
        "methods" => "決済方法",
        "shopper_email" => "メールアドレス",
        "expires_at" => "有効期間",
        other => other,
    }
}

/// 返金依頼: a refund of a paid konbini / Pay-easy / bank payment, paid into the shopper's account.
pub async fn refund_request_create(
    state: &AppState,
    scope: &Scope,
    payment_id: &str,
    amount: i64,
    email: Option<&str>,
    actor: &str,
) -> Result<(crate::flows::refund_requests::RefundRequest, Option<String>), ActionError> {
    let p = scoped(state, scope, payment_id).await?;
    map(crate::flows::refund_requests::create(state, &p, amount, email, actor).await)
}

/// A refund request the user may act on (inside their scope).
pub async fn refund_request_get(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<crate::flows::refund_requests::RefundRequest, ActionError> {
    // The scoped read decides visibility; the flow then opens the sealed account.
    crate::db::refund_requests::get_in(&state.db, scope, id)
        .await?
        .ok_or(ActionError::NotFound)?;
    map(crate::flows::refund_requests::get(state, id).await)
}

/// 振込済 (`paid`) or 取消 (`cancel`) of a refund request.
pub async fn refund_request_step(
    state: &AppState,
    r: &crate::flows::refund_requests::RefundRequest,
    paid: bool,
    actor: &str,
) -> Result<crate::flows::refund_requests::RefundRequest, ActionError> {
    let out = if paid {
        crate::flows::refund_requests::mark_paid(state, r, actor).await
    } else {
        crate::flows::refund_requests::cancel(state, r, actor).await
    };
    match out {
        Err(FlowError::Refused {
            code: "invalid_transition",
            ..
        }) if paid => Err(ActionError::Refused(
            "お客様の口座が登録された返金依頼だけを振込済にできます。".into(),
        )),
        Err(FlowError::Refused {
            code: "invalid_transition",
            ..
        }) => Err(ActionError::Refused(refused_ja("refund_request_closed"))),
        out => map(out),
    }
}

/// Sends a new payment request (SMS and/or e-mail) for the merchant `m`.
pub async fn request_send(
    state: &AppState,
    m: &crate::db::merchants::MerchantRow,
    new: payment_requests::NewRequest,
) -> Result<payment_requests::RequestRow, ActionError> {
    map_send(payment_requests::create(state, m, new).await).map(|(r, _)| r)
}

/// Sends an open request again (same short URL), by SMS and/or e-mail as first sent.
pub async fn request_resend(
    state: &AppState,
    m: &crate::db::merchants::MerchantRow,
    id: &str,
) -> Result<payment_requests::RequestRow, ActionError> {
    map_send(payment_requests::resend(state, m, id).await).map(|(r, _)| r)
}

/// Cancels an open request (its link stops working and its checkout closes). Only an open one:
/// a request whose payment has started or ended is handled on the payment itself.
pub async fn request_cancel(
    state: &AppState,
    m: &crate::db::merchants::MerchantRow,
    id: &str,
) -> Result<payment_requests::RequestRow, ActionError> {
    let r = map(payment_requests::get(&state.db, &m.id, id).await)?;
    if payment_requests::status_of(&state.db, &r, state.now_ms()).await? != RequestStatus::Open {
        return Err(ActionError::Refused(refused_ja("payment_request_not_open")));
    }
    map(payment_requests::cancel(state, m, id).await)
}

fn map_send<T>(r: Result<T, payment_requests::SendError>) -> Result<T, ActionError> {
    match r {
        Ok(v) => Ok(v),
        Err(payment_requests::SendError::RateLimited { retry_after_s }) => {
            Err(ActionError::Refused(format!(
                "SMSの送信数が1分あたりの上限に達しました。{retry_after_s}秒後にもう一度お試しください。"
            )))
        }
        Err(payment_requests::SendError::Flow(e)) => map(Err(e)),
    }
}
