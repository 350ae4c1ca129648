//! The payment detail page: method details (masked card data only), event timeline,
//! notifications with their delivery attempts, and which actions are possible (card capture /
//! cancel / refund, carrier 取消, number cancel), as the method's status machine allows, and the
//! payment's refund requests (返金依頼) with the shopper's link and account.

use crate::console::auth::Staff;
use crate::console::error::ConsoleResult;
use crate::console::views::{
    AttemptView, Chrome, Detail, EventView, NotificationView, RefundRequestView, RowView,
};
use crate::db::outbox;
use crate::db::payments::{self, PaymentRow};
use crate::domain::card::allowed_actions;
use crate::domain::carrier::{self, CarrierAction};
use crate::domain::konbini::{self, NumberAction};
use crate::state::AppState;
use crate::util::{format_jst, format_yen};

/// Detail keys never shown even if a connector stored them by mistake.
const HIDDEN: [&str; 4] = ["number", "card_number", "cvc", "security_code"];

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if HIDDEN.contains(&k.as_str()) {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        serde_json::Value::Null => {}
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// The payment's notifications, oldest first (outbox rows carry the payment id).
async fn notifications(
    state: &AppState,
    p: &PaymentRow,
) -> Result<Vec<NotificationView>, crate::db::Error> {
    let rows = outbox::of_payment(&state.db, &p.id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let attempts = outbox::attempts(&state.db, &r.id)
            .await?
            .into_iter()
            .map(|a| AttemptView {
                at: format_jst(a.attempted_at),
                status_code: a
                    .status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                outcome: a.outcome,
            })
            .collect();
        out.push(NotificationView {
            id: r.id,
            kind: r.kind,
            status: r.status,
            attempts,
        });
    }
    Ok(out)
}

/// A store failure while reading refund requests (nothing here refuses).
fn flow_err(e: crate::flows::error::FlowError) -> crate::console::error::ConsoleError {
    match e {
        crate::flows::error::FlowError::Db(e) => e.into(),
        e => crate::console::error::ConsoleError::Internal(anyhow::anyhow!("{e}")),
    }
}

pub async fn build(
    state: &AppState,
    staff: &Staff,
    p: &PaymentRow,
    query: Vec<(String, String)>,
) -> ConsoleResult<Detail> {
    let mut details = Vec::new();
    flatten("", &p.details_json(), &mut details);
    let events = payments::events(&state.db, &p.id)
        .await?
        .into_iter()
        .map(|e| EventView {
            at: format_jst(e.created_at),
            kind: e.kind,
            from: e.from_status.unwrap_or_default(),
            to: e.to_status,
            amount: e.amount.map(format_yen).unwrap_or_default(),
            actor: e.actor,
        })
        .collect();
    let allowed: &[&str] = match p.status.card() {
        Some(s) => allowed_actions(s),
        _ => &[],
    };
    let can_cancel = allowed.contains(&"cancel") && p.refunded_amount == 0;
    // A carrier takes a completed charge back whole: the machine's `Refund` is the 取消.
    let can_carrier_cancel = p
        .status
        .carrier()
        .is_some_and(|s| carrier::apply(s, CarrierAction::Refund).is_ok());
    // Only a number nobody has paid yet can be stopped (the machine's `Cancel`).
    let can_number_cancel = p.status.number().is_some_and(|s| {
        konbini::apply(s, NumberAction::Cancel, p.deadline_at.unwrap_or(0)).is_ok()
    });
    let message = match crate::form::get(&query, "done") {
        "capture" => Some("売上確定しました。".to_owned()),
        "cancel" => Some("取消しました。".to_owned()),
        "refund" => Some("返金しました。".to_owned()),
        "carrier_cancel" => Some("キャリア決済を取消しました（全額返金）。".to_owned()),
        "number_cancel" => Some("支払番号を取消しました。".to_owned()),
        "redeliver" => Some("結果通知を再送キューに入れました。".to_owned()),
        "resend" => Some("お客様へのメッセージを再送キューに入れました。".to_owned()),
        _ => None,
    };
    let mut refund_requests = Vec::new();
    let mut promised = 0;
    for r in crate::flows::refund_requests::of_payment(state, &p.id)
        .await
        .map_err(flow_err)?
    {
        if r.status.counts() {
            promised += r.row.amount;
        }
        let account = crate::flows::refund_requests::account_of(state, &r.row).map_err(flow_err)?;
        refund_requests.push(RefundRequestView {
            link: r
                .status
                .accepts_account()
                .then(|| crate::flows::refund_requests::shopper_url(state, &r.row.id)),
            account: account.map(|a| a.summary_ja()),
            amount: format_yen(r.row.amount),
            status: r.status.code(),
            status_ja: r.status.label_ja(),
            created: format_jst(r.row.created_at),
            can_mark_paid: r.status.can_mark_paid(),
            can_cancel: r.status.can_cancel(),
            id: r.row.id,
        });
    }
    let message = message.or_else(|| match crate::form::get(&query, "done") {
        "refund_request" => Some(
            "返金依頼を作成しました。メールアドレスがないため、お客様に口座登録のURLをお知らせください。"
                .to_owned(),
        ),
        "refund_request_mailed" => Some(
            "返金依頼を作成し、口座登録のご案内メールを送信します（送信状況は「お客様へのメッセージ」に表示されます）。"
                .to_owned(),
        ),
        "refund_paid" => Some("返金依頼を振込済にしました。".to_owned()),
        "refund_cancel" => Some("返金依頼を取消しました。".to_owned()),
        _ => None,
    });
    Ok(Detail {
        can_request_refund: crate::domain::refund_request::qualifies(p.method, p.status),
        requestable: p.amount - promised,
        refund_requests,
        c: Chrome::staff(state, staff),
        p: RowView::new(p),
        details: crate::console::labels::details(&details),
        events,
        notifications: notifications(state, p).await?,
        messages: crate::console::messages::list(state, p).await?,
        can_capture: allowed.contains(&"capture"),
        can_cancel,
        can_refund: allowed.contains(&"refund")
            || p.status == crate::domain::wallet::WalletStatus::Paid,
        can_carrier_cancel,
        can_number_cancel,
        refundable: p.captured_amount - p.refunded_amount,
        message,
        fees: crate::db::settlements::entries_of_payment(&state.db, &p.id)
            .await?
            .iter()
            .map(crate::console::settlements::ledger_view)
            .collect(),
    })
}
