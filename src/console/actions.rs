//! Card actions from the console: capture (売上確定), cancel (取消), refund (返金).
//!
//! The one boundary between the console and card processing: when the shared card flow
//! functions (`flows::card::{capture, cancel, refund}`) land, only this file changes. Until
//! then each action checks the state machine ([`crate::domain::card::apply`]), calls the sandbox
//! acquirer, and records the change with [`payments::transition`] (event + outbox in one tx).

use std::sync::OnceLock;

use crate::connectors::card::{CardConnector, SandboxCardConnector};
use crate::domain::card::{apply, CardAction, CardPayment, CardStatus};
use crate::payments::{self, Change, PaymentError, PaymentRow};
use crate::state::AppState;

/// Why an action was not done. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no such payment")]
    NotFound,
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The acquirer. Only the sandbox exists so far: tokens carry what it needs, so one instance
/// serves the whole process (and other instances) consistently.
fn connector() -> &'static SandboxCardConnector {
    static C: OnceLock<SandboxCardConnector> = OnceLock::new();
    C.get_or_init(SandboxCardConnector::new)
}

/// Loads a card payment the user may act on (`scope` = merchant, `None` for operators).
async fn load(
    state: &AppState,
    scope: Option<&str>,
    payment_id: &str,
) -> Result<(PaymentRow, CardPayment), ActionError> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| scope.is_none_or(|m| m == p.merchant_id))
        .ok_or(ActionError::NotFound)?;
    if p.method != "card" {
        return Err(ActionError::Refused(
            "カード決済以外は操作できません。".into(),
        ));
    }
    let status = CardStatus::parse(&p.status)
        .ok_or_else(|| ActionError::Refused(format!("不明な状態です: {}", p.status)))?;
    let authorized = p.details_json()["authorized_amount"]
        .as_i64()
        .unwrap_or(p.amount);
    let card = CardPayment {
        status,
        amount: p.amount,
        authorized_amount: authorized,
        captured_amount: p.captured_amount,
        refunded_amount: p.refunded_amount,
    };
    Ok((p, card))
}

fn refused_ja(code: &str) -> String {
    match code {
        "invalid_transition" => "現在の決済ステータスではこの操作はできません。".into(),
        "amount_exceeds_authorized" => "金額がオーソリ金額を超えています。".into(),
        "amount_exceeds_captured" => "金額が返金可能な金額を超えています。".into(),
        "invalid_amount" => "金額が正しくありません。".into(),
        other => format!("操作できません（{other}）。"),
    }
}

async fn run(
    state: &AppState,
    scope: Option<&str>,
    payment_id: &str,
    actor: &str,
    make: impl FnOnce(&CardPayment) -> CardAction,
) -> Result<PaymentRow, ActionError> {
    let (p, card) = load(state, scope, payment_id).await?;
    let action = make(&card);
    let next = apply(&card, &action).map_err(|e| ActionError::Refused(refused_ja(e.code())))?;
    let token = p
        .connector_ref
        .clone()
        .ok_or_else(|| ActionError::Refused("決済機関の取引番号がありません。".into()))?;
    let c = connector();
    let (event, amount) = match action {
        CardAction::Capture { amount } => c
            .capture(&token, amount)
            .await
            .map(|_| ("payment.captured", amount)),
        CardAction::Cancel => c
            .cancel(&token)
            .await
            .map(|_| ("payment.cancelled", p.amount)),
        CardAction::Refund { amount } => c
            .refund(&token, amount)
            .await
            .map(|_| ("payment.refunded", amount)),
        _ => return Err(ActionError::Refused("未対応の操作です。".into())),
    }
    .map_err(|e| {
        ActionError::Refused(format!("決済機関が処理できませんでした（{}）。", e.code()))
    })?;
    let mut change = Change::new(next.status.as_str(), event, actor);
    change.amount = Some(amount);
    change.captured_amount = Some(next.captured_amount);
    change.refunded_amount = Some(next.refunded_amount);
    let mut tx = state.db.begin().await?;
    let row = match payments::transition(&mut tx, &p, &change).await {
        Ok(r) => r,
        Err(PaymentError::Db(e)) => return Err(e.into()),
        Err(_) => {
            return Err(ActionError::Refused(
                "他の操作と同時に更新されました。画面を更新してください。".into(),
            ))
        }
    };
    tx.commit().await?;
    state.wake_notifier();
    Ok(row)
}

/// 売上確定: the whole authorized amount when `amount` is `None`.
pub async fn capture(
    state: &AppState,
    scope: Option<&str>,
    payment_id: &str,
    amount: Option<i64>,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    run(state, scope, payment_id, actor, |c| CardAction::Capture {
        amount: amount.unwrap_or(c.authorized_amount),
    })
    .await
}

/// 取消 of an authorization or an unrefunded capture.
pub async fn cancel(
    state: &AppState,
    scope: Option<&str>,
    payment_id: &str,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    run(state, scope, payment_id, actor, |_| CardAction::Cancel).await
}

/// 返金 of part or all of a capture.
pub async fn refund(
    state: &AppState,
    scope: Option<&str>,
    payment_id: &str,
    amount: i64,
    actor: &str,
) -> Result<PaymentRow, ActionError> {
    run(state, scope, payment_id, actor, |_| CardAction::Refund {
        amount,
    })
    .await
}
