//! The result page of a redirect payment (bank net, carrier billing): what it shows, from the
//! payment as stored, and its rendering for the shopper's device.

use axum::response::Response;

use crate::db::payments::PaymentRow;
use crate::device::Device;
use crate::domain::CheckoutStatus;
use crate::error::AppResult;
use crate::flows::checkout::Opened;
use crate::flows::redirect::return_link;
use crate::pages::{Chrome, OrderView, PayResult, PayResultPage};
use crate::state::AppState;

/// Renders the result page of a redirect payment for the shopper's device.
pub fn render_result(
    state: &AppState,
    device: Device,
    o: &Opened,
    r: PayResult,
) -> AppResult<Response> {
    let c = Chrome::new(
        state,
        device,
        &o.merchant.name,
        &o.merchant.theme,
        &o.checkout.lang,
    )
    .test_mode(o.merchant.mode() == crate::domain::Mode::Test);
    let order = OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    );
    PayResultPage { c, order, r }.render(device, axum::http::StatusCode::OK)
}

/// What the result page of a bank/carrier payment shows, from the payment as stored: reloading
/// the page (or reaching it twice) always tells the truth and changes nothing.
pub async fn result_view(
    state: &AppState,
    o: &Opened,
    token: &str,
    p: &PaymentRow,
    method_name: &'static str,
) -> AppResult<PayResult> {
    use crate::domain::bank::BankStatus;
    use crate::domain::carrier::CarrierStatus;
    use crate::domain::payment::PaymentStatus as P;
    use crate::domain::wallet::WalletStatus;
    let ok = p.status.is_paid();
    let waiting = p.status.is_awaiting_redirect();
    let details = p.details_json();
    let message = match (p.status, details["failure_reason"].as_str()) {
        (_, Some("carrier_monthly_limit_exceeded")) => {
            let remaining = details["limit_remaining"].as_i64().unwrap_or(0);
            crate::domain::carrier::Carrier::of(p.method)
                .map(|c| crate::flows::carrier::limit_message(c, remaining))
        }
        (P::Bank(BankStatus::Declined), _) => {
            Some("銀行でお支払いが承認されませんでした。".to_owned())
        }
        (P::Bank(BankStatus::TimedOut), _) => Some(if o.checkout.lang == "en" {
            "The bank did not finish in time, so the payment was cancelled. Nothing was charged; you can pay another way."
                .to_owned()
        } else {
            "銀行での手続きが時間内に完了しなかったため、お支払いを取り消しました。お支払いはされていません。別の方法でお支払いいただけます。"
                .to_owned()
        }),
        (P::Carrier(CarrierStatus::Failed), _) => {
            Some("携帯電話会社でお支払いが承認されませんでした。".to_owned())
        }
        (P::Carrier(CarrierStatus::Cancelled), _) => {
            Some("お支払いをキャンセルしました。".to_owned())
        }
        (P::Bank(BankStatus::AwaitingBank), _) => Some(abandon_note(
            p.created_at + crate::domain::bank::PENDING_TIMEOUT_MS,
            o.checkout.lang == "en",
        )),
        (P::Wallet(WalletStatus::Failed), _) => Some(if o.checkout.lang == "en" {
            "The wallet did not accept the payment. Nothing was charged; you can pay another way."
                .to_owned()
        } else {
            "ウォレットでお支払いが承認されませんでした。お支払いはされていません。別の方法でお支払いいただけます。"
                .to_owned()
        }),
        (P::Wallet(WalletStatus::TimedOut), _) => Some(if o.checkout.lang == "en" {
            "The wallet did not finish in time, so the payment was cancelled. Nothing was charged; you can pay another way."
                .to_owned()
        } else {
            "ウォレットでの手続きが時間内に完了しなかったため、お支払いを取り消しました。お支払いはされていません。別の方法でお支払いいただけます。"
                .to_owned()
        }),
        (P::Wallet(WalletStatus::AwaitingWallet), _) => Some(wallet_note(
            p.created_at + crate::domain::wallet::PENDING_TIMEOUT_MS,
            o.checkout.lang == "en",
        )),
        _ => None,
    };
    let (return_link, retry_url) = if ok {
        (Some(return_link(state, &o.checkout, p).await?), None)
    } else if waiting {
        (None, None)
    } else {
        // Failed: pay another way, or leave for the shop's cancel page if it gave one.
        let retry = (o.checkout.status == CheckoutStatus::Open).then(|| format!("/pay/{token}"));
        (o.checkout.cancel_url.clone(), retry)
    };
    Ok(PayResult {
        ok,
        waiting,
        method_name,
        payment_id: p.id.clone(),
        status_label: p.status.shopper_label(o.checkout.lang == "en"),
        message,
        return_link,
        retry_url,
    })
}

/// `HH:MM` in JST.
fn jst_hm(at_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(crate::domain::jst::OFFSET);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The wallet's counterpart of [`abandon_note`].
pub fn wallet_note(cancel_at_ms: i64, en: bool) -> String {
    let hm = jst_hm(cancel_at_ms);
    if en {
        format!(
            "We have not heard from the wallet yet. If you completed the payment in the wallet, please wait: this page shows the result when it arrives (reload it). If you closed the wallet or stopped there, nothing has been charged: the payment is cancelled automatically at {hm} (JST), and you can then pay another way."
        )
    } else {
        format!(
            "ウォレットでの手続きの結果をまだ受け取っていません。ウォレットでお支払いを済ませた場合は、結果が届くまでお待ちください（このページを再読み込みすると最新の状態を表示します）。ウォレットの画面を閉じた・途中でやめた場合、お支払いはされていません。{hm}に自動で取り消され、その後は別の方法でお支払いいただけます。"
        )
    }
}

/// What a shopper who left the bank's page without finishing needs to know: whether money
/// moved, until when the payment waits, and what happens then.
pub fn abandon_note(cancel_at_ms: i64, en: bool) -> String {
    let hm = jst_hm(cancel_at_ms);
    if en {
        format!(
            "We have not heard from the bank yet. If you completed the payment at the bank, please wait: this page shows the result when it arrives (reload it). If you closed the bank's page or stopped there, nothing has been charged: the payment is cancelled automatically at {hm} (JST), and you can then pay another way."
        )
    } else {
        format!(
            "銀行での手続きの結果をまだ受け取っていません。銀行の画面でお支払いを済ませた場合は、結果が届くまでお待ちください（このページを再読み込みすると最新の状態を表示します）。銀行の画面を閉じた・途中でやめた場合、お支払いはされていません。{hm}に自動で取り消され、その後は別の方法でお支払いいただけます。"
        )
    }
}
