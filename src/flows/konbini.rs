//! Konbini (コンビニ決済), Pay-easy and bank-transfer (銀行振込) flows: issue a payment number (or 振込先), apply results (速報 / 確報 /
//! 速報取消) from the institution or the sandbox controls, expire overdue numbers, and the
//! sandbox auto-pay. Every state change goes through `payments::transition`, so the new status,
//! its event row and the merchant notification are written in one transaction.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::connectors::konbini::{
    CancelRequest, ConnectorError, IssueRequest, IssueTarget, IssuedNumber, TransferAccount,
};
use crate::context::Ctx;
use crate::db::payments::{self, Change, NewPayment, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::domain::konbini::{
    self, apply, event_type_for, Chain, LimitError, NumberAction, NumberMethod, NumberStatus,
    TransitionError,
};
use crate::domain::processor::ConnectorId;
use crate::domain::CheckoutStatus;
use crate::domain::Mode;
use crate::flows::checkout::Opened;

/// The payment-number fields stored in `payments.details` (and sent to merchants under
/// `data.konbini` / `data.payeasy`). Only the fields of the number's shape are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_url: Option<String>,
    /// A store payment on a reusable number (`flows::repeat`): the number's id and digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_no: Option<String>,
    /// Bank transfer: the 振込先.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<TransferAccount>,
}

impl NumberDetails {
    fn from_issued(n: &IssuedNumber) -> Self {
        NumberDetails {
            chain: match n.target {
                IssueTarget::Konbini(c) => Some(c.code().to_owned()),
                IssueTarget::Payeasy | IssueTarget::BankTransfer => None,
            },
            receipt_no: n.receipt_no.clone(),
            customer_no: n.customer_no.clone(),
            confirm_no: n.confirm_no.clone(),
            institution_no: n.institution_no.clone(),
            payment_url: n.payment_url.clone(),
            repeat_number_id: None,
            repeat_no: None,
            account: n.account.clone(),
        }
    }

    /// The details of a stored payment (empty if they cannot be read).
    pub fn of(p: &PaymentRow) -> NumberDetails {
        serde_json::from_str(&p.details).unwrap_or_default()
    }

    /// A field by its `NumberField::key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match key {
            "receipt_no" => self.receipt_no.as_deref(),
            "customer_no" => self.customer_no.as_deref(),
            "confirm_no" => self.confirm_no.as_deref(),
            "institution_no" => self.institution_no.as_deref(),
            _ => None,
        }
    }
}

/// The 振込先 as (key, label, value) lines, in the order a bank's transfer form asks for them.
pub fn account_lines(a: &TransferAccount, en: bool) -> Vec<(&'static str, &'static str, String)> {
    let t = |ja: &'static str, e: &'static str| if en { e } else { ja };
    vec![
        ("bank_name", t("銀行名", "Bank"), a.bank_name.clone()),
        ("branch_name", t("支店名", "Branch"), a.branch_name.clone()),
        (
            "account_type",
            t("預金種目", "Account type"),
            if en {
                a.account_type.code().to_owned()
            } else {
                a.account_type.label_ja().to_owned()
            },
        ),
        (
            "account_number",
            t("口座番号", "Account number"),
            a.account_number.clone(),
        ),
        (
            "account_holder",
            t("口座名義", "Account holder"),
            a.account_holder.clone(),
        ),
    ]
}

/// Where a stored payment is paid, if it is a konbini, Pay-easy or bank-transfer payment.
pub fn target_of(p: &PaymentRow) -> Option<IssueTarget> {
    match NumberMethod::of(p.method)? {
        NumberMethod::Konbini => Chain::parse(p.institution.as_deref()?).map(IssueTarget::Konbini),
        NumberMethod::Payeasy => Some(IssueTarget::Payeasy),
        NumberMethod::BankTransfer => Some(IssueTarget::BankTransfer),
    }
}

/// Deadline days for a checkout: the link's `konbini_days`, else the merchant's default.
pub fn days_for(o: &Opened) -> i64 {
    o.checkout.konbini_days.unwrap_or(o.merchant.konbini_days)
}

/// Chains the merchant enabled that the konbini connector serves (Stripe serves four), in
/// the standard order.
pub fn enabled_chains(o: &Opened) -> Vec<Chain> {
    let codes = o.merchant.chains();
    let conn = o.connectors.number(crate::domain::Method::Konbini);
    Chain::all()
        .iter()
        .copied()
        .filter(|c| codes.iter().any(|s| s == c.code()))
        .filter(|c| {
            conn.as_ref()
                .is_none_or(|r| r.connector.serves(IssueTarget::Konbini(*c)))
        })
        .collect()
}

/// Why a number was not issued. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("chain {0:?} is not enabled for this merchant")]
    ChainNotEnabled(String),
    #[error("{target:?}: {err}")]
    Limit {
        target: IssueTarget,
        days: i64,
        err: LimitError,
    },
    /// The checkout is already being paid with another method.
    #[error("the checkout already has a payment of another method")]
    OtherPayment,
    #[error("no institution is configured for live konbini / Pay-easy payments")]
    NoConnector,
    #[error("connector: {0}")]
    Connector(ConnectorError),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

impl IssueError {
    /// Stable code shown on the page (and in logs).
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::ChainNotEnabled(_) => "chain_not_available",
            IssueError::Limit {
                target: IssueTarget::Konbini(Chain::FamilyMart),
                days: 0,
                ..
            } => "konbini_deadline_too_short",
            IssueError::Limit { err, .. } => err.code(),
            IssueError::OtherPayment => "checkout_closed",
            IssueError::NoConnector => "method_unavailable",
            // A request the institution refuses as made (e.g. KOMOJU needs the shopper's email).
            IssueError::Connector(ConnectorError::InvalidRequest(c)) => c,
            IssueError::Connector(_) => "institution_unavailable",
            IssueError::Db(_) => "internal_error",
        }
    }

    pub fn message_ja(&self) -> String {
        match self {
            IssueError::ChainNotEnabled(_) => {
                "選択されたコンビニはこのショップではご利用いただけません。他のコンビニをお選びください。".into()
            }
            IssueError::Limit {
                target: IssueTarget::Konbini(Chain::FamilyMart),
                days: 0,
                ..
            } => "ファミリーマートは当日期限（0日）のお支払いに対応していないため、ご利用いただけません。他のコンビニをお選びください。".into(),
            IssueError::Limit {
                err: LimitError::DaysOutOfRange { days, min, max },
                ..
            } => format!(
                "お支払期限の設定（{days}日）がこのお支払い方法の範囲（{min}〜{max}日）外のため、ご利用いただけません。"
            ),
            IssueError::Limit { .. } => {
                "この金額はこのお支払い方法の上限を超えているため、ご利用いただけません。".into()
            }
            IssueError::OtherPayment => "このお支払いはすでに手続き済みです。".into(),
            IssueError::Connector(ConnectorError::InvalidRequest(c)) if c.ends_with("_required") => {
                "このお支払い方法には、お客様のメールアドレス・電話番号・お名前（漢字とカナ）が必要です。ショップにお問い合わせください。".into()
            }
            IssueError::NoConnector | IssueError::Connector(_) | IssueError::Db(_) => {
                "ただいまお支払番号を発行できません。しばらくしてからもう一度お試しください。"
                    .into()
            }
        }
    }

    pub fn message_en(&self) -> String {
        match self {
            IssueError::ChainNotEnabled(_) => {
                "This shop does not accept payments at the chosen store. Please choose another."
                    .into()
            }
            IssueError::Limit {
                target: IssueTarget::Konbini(Chain::FamilyMart),
                days: 0,
                ..
            } => "FamilyMart cannot take a same-day (0-day) payment deadline. Please choose another store.".into(),
            IssueError::Limit {
                err: LimitError::DaysOutOfRange { days, min, max },
                ..
            } => format!(
                "The payment deadline ({days} days) is outside this method's range ({min}-{max} days)."
            ),
            IssueError::Limit { .. } => "The amount exceeds this method's limit.".into(),
            IssueError::OtherPayment => "This order is already being paid.".into(),
            IssueError::Connector(ConnectorError::InvalidRequest(c)) if c.ends_with("_required") => {
                "This payment method needs your email address, phone number and name (kanji and kana). Please contact the shop.".into()
            }
            IssueError::NoConnector | IssueError::Connector(_) | IssueError::Db(_) => {
                "A payment number cannot be issued right now. Please try again shortly.".into()
            }
        }
    }
}

/// Checks that `target` may be issued for this checkout (chain enabled, deadline days and
/// amount within the method's limits); returns the deadline days.
pub fn check(o: &Opened, target: IssueTarget) -> Result<u32, IssueError> {
    let days = days_for(o);
    let limit = |err| IssueError::Limit { target, days, err };
    match target {
        IssueTarget::Konbini(chain) => {
            if !enabled_chains(o).contains(&chain) {
                return Err(IssueError::ChainNotEnabled(chain.code().to_owned()));
            }
            konbini::validate_amount(o.checkout.amount).map_err(limit)?;
            konbini::validate_days(chain, days).map_err(limit)
        }
        IssueTarget::Payeasy => {
            konbini::validate_payeasy_amount(o.checkout.amount).map_err(limit)?;
            konbini::validate_payeasy_days(days).map_err(limit)
        }
        IssueTarget::BankTransfer => {
            konbini::validate_bank_transfer_amount(o.checkout.amount).map_err(limit)?;
            konbini::validate_bank_transfer_days(days).map_err(limit)
        }
    }
}

/// The checkout's konbini / Pay-easy payment, if one was issued.
pub async fn issued_for_checkout(
    db: &Db,
    checkout_id: &str,
) -> Result<Option<PaymentRow>, crate::db::Error> {
    Ok(payments::live_for_checkout(db, checkout_id)
        .await?
        .filter(|p| target_of(p).is_some()))
}

/// Issues a payment number (or 振込先) for the checkout, or returns the one already issued:
/// reopening or re-posting never issues a second number (the one-live-payment index guards
/// races too).
///
/// Write before the call: the payment is first committed as `issuing` (its `payment.created`
/// event, the checkout `pending`), then the institution is called outside any transaction
/// with the payment id as idempotency key, then its answer is recorded in one transaction:
/// the number (`konbini.issued` / `payeasy.issued` / `bank_transfer.issued` event +
/// notification), or, when the institution refused, `issue_failed` (`payment.failed`) and the
/// checkout open again. When the institution could not be reached (or answered something we
/// cannot read) the payment stays `issuing`: asking again ([`issue`] on the same checkout, or
/// the shopper's "try again") repeats the call under the same key, so a number the
/// institution issued without us hearing back is the one shown, never a second one.
pub async fn issue(
    db: &Db,
    o: &Opened,
    target: IssueTarget,
    now: i64,
) -> Result<PaymentRow, IssueError> {
    if let Some(p) = payments::live_for_checkout(db, &o.checkout.id).await? {
        return match p.status.number() {
            _ if target_of(&p).is_none() => Err(IssueError::OtherPayment),
            // An issue whose answer never came: ask again, for the target it was started with.
            Some(NumberStatus::Issuing) => complete_issue(db, o, &p, "shopper", now).await,
            _ => Ok(p),
        };
    }
    let days = check(o, target)?;
    let method = target.method();
    let resolved = o
        .connectors
        .number(method.method())
        .ok_or(IssueError::NoConnector)?;
    let fee = match target {
        // 印紙代: deducted from the merchant's payout, recorded with the payment.
        IssueTarget::Konbini(_) => konbini::stamp_duty(o.checkout.amount),
        IssueTarget::Payeasy | IssueTarget::BankTransfer => 0,
    };
    let deadline = konbini::deadline_ms(now, days);
    let id = payments::new_id();
    // A request the institution would refuse as made (shopper details missing) stores nothing.
    resolved
        .connector
        .precheck(&issue_request(o, &id, target, o.checkout.amount, deadline))
        .map_err(IssueError::Connector)?;
    let new = NewPayment {
        merchant_id: &o.merchant.id,
        checkout_id: &o.checkout.id,
        order_id: &o.checkout.order_id,
        method: method.method(),
        institution: Some(target.code()),
        status: NumberStatus::Issuing.into(),
        amount: o.checkout.amount,
        fee,
        // Ours; a processor that sets its own replaces it when the number is recorded.
        deadline_at: Some(deadline),
        details: json!({}),
        connector: &resolved.id,
    };
    let mut tx = db.begin().await?;
    let p = match payments::create_with_id(&mut tx, &id, &new, "shopper", now).await {
        Ok(p) => p,
        Err(PaymentError::AlreadyLive) => {
            // A concurrent request started first: show (or complete) its number.
            return match payments::live_after_conflict(db, tx, &o.checkout.id).await? {
                Some(p) if target_of(&p).is_some() => Ok(p),
                _ => Err(IssueError::OtherPayment),
            };
        }
        Err(PaymentError::Conflict) => return Err(IssueError::OtherPayment),
        Err(PaymentError::Db(e)) => return Err(e.into()),
    };
    payments::set_checkout_status(&mut tx, &o.checkout.id, CheckoutStatus::Pending, now).await?;
    tx.commit().await?;
    complete_issue(db, o, &p, "shopper", now).await
}

fn issue_request(
    o: &Opened,
    payment_id: &str,
    target: IssueTarget,
    amount: i64,
    deadline_ms: i64,
) -> IssueRequest {
    IssueRequest {
        payment_id: payment_id.to_owned(),
        mode: o.connectors.mode(),
        target,
        amount,
        deadline_ms,
        shopper_name_kana: o.checkout.shopper_kana.clone(),
        shopper_phone: o.checkout.shopper_phone.clone(),
        shopper_name: o.checkout.shopper_name.clone(),
        shopper_email: o.checkout.shopper_email.clone(),
    }
}

/// Calls the institution for an `issuing` payment (its id the idempotency key) and records
/// the answer. See [`issue`].
async fn complete_issue(
    db: &Db,
    o: &Opened,
    p: &PaymentRow,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, IssueError> {
    let target = target_of(p).ok_or(IssueError::OtherPayment)?;
    let conn = o
        .connectors
        .number_for(&p.connector_id())
        .ok_or(IssueError::NoConnector)?;
    let request = issue_request(o, &p.id, target, p.amount, p.deadline_at.unwrap_or(now));
    let answer = conn.issue(&request).await;
    let mut tx = db.begin().await?;
    let p = payments::get_tx(&mut tx, &p.id)
        .await?
        .ok_or(IssueError::OtherPayment)?;
    if p.status.number() != Some(NumberStatus::Issuing) {
        // A concurrent request recorded the answer first (or the shopper gave up meanwhile).
        drop(tx);
        return if p.status.holds_checkout() {
            Ok(p)
        } else {
            Err(IssueError::OtherPayment)
        };
    }
    let number = match answer {
        Ok(number) => number,
        Err(e) if e.retryable() => {
            // Maybe issued, maybe not (a timeout may have been applied there): keep
            // `issuing`; a retry asks again under the same key.
            drop(tx);
            tracing::warn!(payment = %p.id, error = %e, "number issue unanswered; retryable");
            return Err(IssueError::Connector(e));
        }
        Err(e) => {
            // Refused as made: nothing was issued. The checkout takes another payment.
            fail_issue_in(&mut tx, &p, target, e.code(), actor, now).await?;
            tx.commit().await?;
            tracing::info!(payment = %p.id, code = e.code(), "number issue refused");
            return Err(IssueError::Connector(e));
        }
    };
    let details = NumberDetails::from_issued(&number);
    let event = event_type_for(target.method(), NumberStatus::AwaitingPayment);
    let mut change = Change::new(NumberStatus::AwaitingPayment, event, actor);
    change.connector_ref = Some(&number.connector_ref);
    change.details = Some(serde_json::to_value(&details).unwrap_or_else(|_| json!({})));
    change.amount = Some(p.amount);
    change.data = json!({ "action": NumberAction::Issued.code() });
    let mut row = match payments::transition(&mut tx, &p, &change, now).await {
        Ok(row) => row,
        Err(PaymentError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(IssueError::OtherPayment),
    };
    if number.deadline_ms > 0 && Some(number.deadline_ms) != row.deadline_at {
        payments::set_deadline(&mut tx, &row.id, number.deadline_ms).await?;
        row.deadline_at = Some(number.deadline_ms);
    }
    tx.commit().await?;
    tracing::info!(payment = %row.id, method = target.method().code(), institution = target.code(), "payment number issued");
    Ok(row)
}

/// `issuing` → `issue_failed` (`payment.failed`, with `code` saying why) and the checkout open
/// again, in the caller's transaction.
async fn fail_issue_in(
    tx: &mut Tx,
    p: &PaymentRow,
    target: IssueTarget,
    code: &str,
    actor: &str,
    now: i64,
) -> Result<(), IssueError> {
    let mut change = Change::new(
        NumberStatus::IssueFailed,
        event_type_for(target.method(), NumberStatus::IssueFailed),
        actor,
    );
    change.data = json!({ "action": NumberAction::IssueFail.code(), "code": code });
    match payments::transition(tx, p, &change, now).await {
        Ok(_) => {}
        Err(PaymentError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(IssueError::OtherPayment),
    }
    payments::set_checkout_status(tx, &p.checkout_id, CheckoutStatus::Open, now).await?;
    Ok(())
}

/// An `issuing` payment unchanged for this long is asked about again by the sweep: a shopper
/// still on the page retries by themselves sooner, and one who left never would.
pub const ISSUE_RETRY_AFTER_MS: i64 = 2 * 60 * 1000;
/// An issue the institution has still not answered this long after it started is given up:
/// `issue_failed` with the code `issue_timeout`, the checkout open again. A number the
/// institution issued without ever answering was shown to nobody and lapses there.
pub const ISSUE_GIVE_UP_MS: i64 = 60 * 60 * 1000;
/// How many `issuing` payments one sweep looks at.
const ISSUE_BATCH: i64 = 100;

/// The sweep for numbers stuck `issuing` (the institution never answered and the shopper did
/// not retry): asks the institution again under the payment's id as idempotency key, so a
/// number it issued without answering is the one recorded (its `*.issued` event and
/// notification, the number shown when the link is reopened), a refusal is recorded as
/// `issue_failed`, and after [`ISSUE_GIVE_UP_MS`] without an answer the issue is given up.
/// Every change is conditional on the payment still being `issuing`, so instances and the
/// shopper's own retry share the work safely. Returns how many payments changed.
pub async fn resume_issuing(
    db: &Db,
    registry: &Arc<crate::connectors::registry::Registry>,
    now: i64,
) -> anyhow::Result<usize> {
    let due = crate::db::reconcile::stuck_issuing(
        db,
        &[
            NumberMethod::Konbini.method().code(),
            NumberMethod::Payeasy.method().code(),
            NumberMethod::BankTransfer.method().code(),
        ],
        NumberStatus::Issuing.code(),
        now - ISSUE_RETRY_AFTER_MS,
        ISSUE_BATCH,
    )
    .await?;
    let mut changed = 0;
    for p in due {
        match resume_one(db, registry, &p, now).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(payment = %p.id, error = %e, "issuing sweep"),
        }
    }
    Ok(changed)
}

async fn resume_one(
    db: &Db,
    registry: &Arc<crate::connectors::registry::Registry>,
    p: &PaymentRow,
    now: i64,
) -> anyhow::Result<bool> {
    let target = target_of(p).ok_or_else(|| anyhow::anyhow!("not a number payment"))?;
    let merchant = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment without merchant"))?;
    let checkout = crate::db::checkouts::get(db, &p.checkout_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment without checkout"))?;
    let connectors = crate::flows::connectors_for(registry, db, &merchant).await?;
    let o = Opened {
        merchant,
        checkout,
        connectors,
    };
    let unanswered = match complete_issue(db, &o, p, "system:sweep", now).await {
        Ok(_) => return Ok(true),
        // Refused as made: recorded as `issue_failed` by `complete_issue`.
        Err(IssueError::Connector(e)) if !e.retryable() => return Ok(true),
        // Someone else recorded it first.
        Err(IssueError::OtherPayment) => return Ok(false),
        Err(IssueError::Connector(e)) => e.code().to_owned(),
        // The processor account was retired meanwhile: nobody can be asked any more.
        Err(IssueError::NoConnector) => "no_connector".to_owned(),
        Err(e) => return Err(e.into()),
    };
    if now - p.created_at < ISSUE_GIVE_UP_MS {
        tracing::info!(payment = %p.id, error = %unanswered, "number issue still unanswered");
        return Ok(false);
    }
    let mut tx = db.begin().await?;
    let Some(current) = payments::get_tx(&mut tx, &p.id).await? else {
        return Ok(false);
    };
    if current.status.number() != Some(NumberStatus::Issuing) {
        return Ok(false);
    }
    fail_issue_in(
        &mut tx,
        &current,
        target,
        "issue_timeout",
        "system:sweep",
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(payment = %p.id, last_error = %unanswered, "number issue given up");
    Ok(true)
}

/// Why an issued number was not withdrawn. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    /// Paid, expired or already withdrawn here, or paid meanwhile at the institution.
    #[error("the number is no longer unpaid")]
    NotUnpaid,
    #[error("the number's connector is not available")]
    NoConnector,
    #[error("connector: {0}")]
    Connector(ConnectorError),
    /// Another change (a payment, the expiry sweep) won the race: read the payment again.
    #[error("payment changed concurrently")]
    Conflict,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Withdraws the checkout's unpaid number so the shopper can choose another store or method.
///
/// The institution cancels the number first, outside any transaction: nothing is written
/// before it answers, because the number must stay shown and payable here until the
/// institution has really withdrawn it (a number paid meanwhile is refused and kept). The
/// call is idempotent (a number already cancelled there is `Ok`), so if our write is lost the
/// shopper, still shown the number, can ask again. Then the `cancelled` status, its
/// `payment.cancelled` event + notification and the checkout reopened are one transaction.
pub async fn withdraw(ctx: &Ctx, o: &Opened, p: &PaymentRow) -> Result<PaymentRow, WithdrawError> {
    let from = p.status.number().ok_or(WithdrawError::NotUnpaid)?;
    if target_of(p).is_none() || p.checkout_id != o.checkout.id {
        return Err(WithdrawError::NotUnpaid);
    }
    if from == NumberStatus::Issuing {
        // The shopper gives up on an issue that never completed. Nothing was shown, so there
        // is nothing to cancel at the institution we know of (a number it may have issued
        // without answering was never seen by anyone and expires there).
        return record_withdrawal(ctx, &p.id, NumberAction::IssueFail).await;
    }
    konbini::apply(
        from,
        NumberAction::Cancel,
        p.deadline_at.unwrap_or(i64::MAX),
    )
    .map_err(|_| WithdrawError::NotUnpaid)?;
    let conn = o
        .connectors
        .number_for(&p.connector_id())
        .ok_or(WithdrawError::NoConnector)?;
    let req = CancelRequest {
        payment_id: p.id.clone(),
        mode: o.connectors.mode(),
        connector_ref: p.connector_ref.clone().unwrap_or_default(),
    };
    match conn.cancel(&req).await {
        Ok(()) => {}
        Err(ConnectorError::NotCancellable) => return Err(WithdrawError::NotUnpaid),
        Err(e) => return Err(WithdrawError::Connector(e)),
    }
    record_withdrawal(ctx, &p.id, NumberAction::Cancel).await
}

/// The shopper's withdrawal (`IssueFail` or `Cancel`) applied in one transaction with its
/// event and notification; a payment that moved meanwhile is a conflict or no longer unpaid.
async fn record_withdrawal(
    ctx: &Ctx,
    payment_id: &str,
    action: NumberAction,
) -> Result<PaymentRow, WithdrawError> {
    let mut tx = ctx.db.begin().await?;
    let row = match apply_action_in(&mut tx, payment_id, action, "shopper", ctx.now_ms()).await {
        Ok(row) => row,
        Err(ActionError::Db(e)) => return Err(e.into()),
        Err(ActionError::Conflict) => return Err(WithdrawError::Conflict),
        Err(_) => return Err(WithdrawError::NotUnpaid),
    };
    tx.commit().await?;
    ctx.wake_notifier();
    Ok(row)
}

/// Why a result could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no such payment")]
    NotFound,
    #[error("not a konbini or Pay-easy payment")]
    NotNumberPayment,
    #[error("sandbox controls are for test-mode merchants only")]
    LiveMode,
    #[error("{0}")]
    Transition(TransitionError),
    /// Another change won the race; the caller may retry with fresh state.
    #[error("payment changed concurrently")]
    Conflict,
    #[error("stored status {0:?} is not a number status")]
    BadStatus(String),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

impl From<PaymentError> for ActionError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::Db(e) => ActionError::Db(e),
            PaymentError::AlreadyLive | PaymentError::Conflict => ActionError::Conflict,
        }
    }
}

/// The checkout status that goes with a number status: paid once money arrived (on time or
/// late: the merchant decides about late ones), pending while the number can still be paid.
fn checkout_status_for(s: NumberStatus) -> Option<CheckoutStatus> {
    match s {
        NumberStatus::Paid | NumberStatus::LatePaid | NumberStatus::Confirmed => {
            Some(CheckoutStatus::Paid)
        }
        NumberStatus::Reversed | NumberStatus::Issuing => Some(CheckoutStatus::Pending),
        // The shopper withdrew the number to pay another way (or no number came of the
        // payment): the checkout takes a new payment.
        NumberStatus::Cancelled | NumberStatus::IssueFailed => Some(CheckoutStatus::Open),
        // An expired number keeps the checkout pending: a late 速報 may still arrive for it.
        NumberStatus::AwaitingPayment | NumberStatus::Expired => None,
    }
}

/// Applies one result to a konbini / Pay-easy payment through the pure state machine
/// (`domain::konbini::apply`); the new status, the event row, the notification and the
/// checkout status are written in one transaction.
pub async fn apply_action(
    db: &Db,
    payment_id: &str,
    action: NumberAction,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, ActionError> {
    let mut tx = db.begin().await?;
    let updated = apply_action_in(&mut tx, payment_id, action, actor, now).await?;
    tx.commit().await?;
    Ok(updated)
}

/// [`apply_action`] inside the caller's transaction (a processor webhook records its event id
/// in the same transaction, so an event is applied exactly once).
pub async fn apply_action_in(
    tx: &mut Tx,
    payment_id: &str,
    action: NumberAction,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, ActionError> {
    let p = payments::get_tx(tx, payment_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    let method = NumberMethod::of(p.method).ok_or(ActionError::NotNumberPayment)?;
    let from = p
        .status
        .number()
        .ok_or_else(|| ActionError::BadStatus(p.status.code().to_owned()))?;
    // Numbers are always issued with a deadline; a missing one must not make a payment late.
    let deadline = p.deadline_at.unwrap_or(i64::MAX);
    let to = apply(from, action, deadline).map_err(ActionError::Transition)?;
    let mut change = Change::new(to, event_type_for(method, to), actor);
    let mut data = json!({ "action": action.code() });
    if let NumberAction::Paid { at_ms } = action {
        change.paid_at = Some(at_ms);
        data["paid_at"] = json!(crate::util::rfc3339_jst(at_ms));
    }
    if !matches!(to, NumberStatus::Expired | NumberStatus::Cancelled) {
        change.amount = Some(p.amount);
    }
    change.data = data;
    let updated = payments::transition(tx, &p, &change, now).await?;
    if let Some(cs) = checkout_status_for(to) {
        payments::set_checkout_status(tx, &p.checkout_id, cs, now).await?;
    }
    tracing::info!(payment = %p.id, from = from.code(), to = to.code(), actor, "number payment changed");
    Ok(updated)
}

/// A sandbox control: what a merchant's integration test asks the fake institution to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxAction {
    /// 速報, paid at the given time (unix ms) or now.
    Paid { at_ms: Option<i64> },
    /// 確報.
    Confirm,
    /// 速報取消.
    Reverse,
    /// Expire now, as if the deadline had passed.
    Expire,
}

impl SandboxAction {
    /// Parses the endpoint's path segment (`paid|confirm|reverse|expire`; `pay` too, as the CLI says).
    pub fn parse(s: &str, paid_at_ms: Option<i64>) -> Option<SandboxAction> {
        match s {
            "paid" | "pay" => Some(SandboxAction::Paid { at_ms: paid_at_ms }),
            "confirm" => Some(SandboxAction::Confirm),
            "reverse" => Some(SandboxAction::Reverse),
            "expire" => Some(SandboxAction::Expire),
            _ => None,
        }
    }
}

/// Applies a sandbox control to a test-mode merchant's konbini / Pay-easy payment. With
/// `merchant_id`, a payment of another merchant is reported as not found (no probing of ids).
pub async fn sandbox_apply(
    db: &Db,
    payment_id: &str,
    merchant_id: Option<&str>,
    action: SandboxAction,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, ActionError> {
    let p = payments::get(db, payment_id)
        .await?
        .filter(|p| merchant_id.is_none_or(|m| m == p.merchant_id))
        .ok_or(ActionError::NotFound)?;
    let m = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or(ActionError::NotFound)?;
    // The sandbox drives only its own payments, and only while the merchant is in test mode.
    if m.mode() != Mode::Test || p.connector_id() != ConnectorId::Sandbox {
        return Err(ActionError::LiveMode);
    }
    if target_of(&p).is_none() {
        return Err(ActionError::NotNumberPayment);
    }
    let action = match action {
        SandboxAction::Paid { at_ms } => NumberAction::Paid {
            at_ms: at_ms.unwrap_or(now),
        },
        SandboxAction::Confirm => NumberAction::Confirm,
        SandboxAction::Reverse => NumberAction::Reverse,
        // Simulates the deadline passing without moving the stored deadline, so a later
        // `paid` without a paid-at time still counts as on time (as the rules say it should).
        SandboxAction::Expire => NumberAction::Expire {
            now_ms: now.max(p.deadline_at.unwrap_or(now).saturating_add(1)),
        },
    };
    apply_action(db, payment_id, action, actor, now).await
}

/// How many overdue payments one query loads; the sweep repeats until none are left.
const SWEEP_BATCH: i64 = 200;

/// Expires every konbini / Pay-easy payment still awaiting payment after its deadline
/// (`期限切れ`, `payment.expired` notification). Safe to run in several instances at once: the
/// conditional update lets one win and the others skip. Returns how many it expired.
pub async fn expire_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    run_batches(
        db,
        payments::NumberSweep::Overdue,
        now_ms,
        |_| NumberAction::Expire { now_ms },
        "expiry_job",
    )
    .await
}

/// Sandbox auto-pay for demos: marks awaiting konbini / Pay-easy payments of test-mode
/// merchants with `sandbox_autopay_seconds` set as paid (速報) once they are that old.
pub async fn autopay_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    run_batches(
        db,
        payments::NumberSweep::SandboxAutopay,
        now_ms,
        |_| NumberAction::Paid { at_ms: now_ms },
        "sandbox_autopay",
    )
    .await
}

async fn run_batches(
    db: &Db,
    sweep: payments::NumberSweep,
    now_ms: i64,
    action: impl Fn(&str) -> NumberAction,
    actor: &str,
) -> anyhow::Result<usize> {
    let mut done = 0;
    loop {
        let ids = payments::number_sweep_ids(db, sweep, now_ms, SWEEP_BATCH).await?;
        let mut progressed = 0;
        for id in &ids {
            match apply_action(db, id, action(id), actor, now_ms).await {
                Ok(_) => progressed += 1,
                // Another instance or a result got there first: nothing to do.
                Err(ActionError::Conflict | ActionError::Transition(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        done += progressed;
        if (ids.len() as i64) < SWEEP_BATCH || progressed == 0 {
            return Ok(done);
        }
    }
}

/// The background sweep: every `interval`, expire overdue numbers, then run the sandbox
/// auto-pay; wakes the notification worker when something changed. Runs in every instance
/// until `stop` is cancelled.
pub async fn run_sweeper(
    db: Db,
    wake: Arc<tokio::sync::Notify>,
    clock: Arc<dyn crate::context::Clock>,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Stops between sweeps, never inside one.
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        let mut changed = 0;
        match expire_due(&db, now).await {
            Ok(n) => changed += n,
            Err(e) => tracing::warn!(error = %e, "konbini expiry sweep"),
        }
        match autopay_due(&db, now).await {
            Ok(n) => changed += n,
            Err(e) => tracing::warn!(error = %e, "sandbox auto-pay sweep"),
        }
        if changed > 0 {
            tracing::info!(changed, "konbini / Pay-easy sweep");
            wake.notify_one();
        }
    }
}

pub use crate::db::merchants::{autopay_seconds, set_autopay_seconds};

/// A payment as the sandbox API returns it (`{"payment": ...}`).
pub fn payment_json(p: &PaymentRow) -> Value {
    let status_label = p.status.label_ja();
    json!({
        "id": p.id,
        "merchant_id": p.merchant_id,
        "order_id": p.order_id,
        "method": p.method,
        "institution": p.institution,
        "status": p.status,
        "status_label_ja": status_label,
        "amount": p.amount,
        "fee": p.fee,
        "deadline_at": p.deadline_at.map(crate::util::rfc3339_jst),
        "paid_at": p.paid_at.map(crate::util::rfc3339_jst),
        "number": serde_json::to_value(NumberDetails::of(p)).unwrap_or_else(|_| json!({})),
        "created_at": crate::util::rfc3339_jst(p.created_at),
        "updated_at": crate::util::rfc3339_jst(p.updated_at),
    })
}

/// A deadline as shoppers read it: `2026/12/03 23:59:59` (JST).
pub fn format_deadline(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(crate::domain::jst::OFFSET);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_text_ends_at_235959() {
        // 2026-11-30 12:00 JST, 3 days.
        let now = 1_796_007_600_000;
        assert_eq!(
            format_deadline(konbini::deadline_ms(now, 3)),
            "2026/12/03 23:59:59"
        );
    }

    #[test]
    fn sandbox_action_codes() {
        assert_eq!(
            SandboxAction::parse("paid", None),
            Some(SandboxAction::Paid { at_ms: None })
        );
        assert_eq!(
            SandboxAction::parse("pay", Some(5)),
            Some(SandboxAction::Paid { at_ms: Some(5) })
        );
        assert_eq!(
            SandboxAction::parse("expire", None),
            Some(SandboxAction::Expire)
        );
        assert_eq!(SandboxAction::parse("refund", None), None);
    }

    #[test]
    fn checkout_follows_number_status() {
        assert_eq!(
            checkout_status_for(NumberStatus::Paid),
            Some(CheckoutStatus::Paid)
        );
        assert_eq!(
            checkout_status_for(NumberStatus::LatePaid),
            Some(CheckoutStatus::Paid)
        );
        assert_eq!(
            checkout_status_for(NumberStatus::Reversed),
            Some(CheckoutStatus::Pending)
        );
        assert_eq!(checkout_status_for(NumberStatus::Expired), None);
    }

    #[test]
    fn details_round_trip_only_shape_fields() {
        let d = NumberDetails {
            chain: Some("lawson".into()),
            customer_no: Some("12345678903".into()),
            confirm_no: Some("1234".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({"chain": "lawson", "customer_no": "12345678903", "confirm_no": "1234"})
        );
        assert_eq!(serde_json::from_value::<NumberDetails>(v).unwrap(), d);
        assert_eq!(d.get("confirm_no"), Some("1234"));
        assert_eq!(d.get("receipt_no"), None);
    }
}
