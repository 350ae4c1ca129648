//! Reusable payment numbers (リピート / スタンダードカード・ジョイントカード): register one through
//! the merchant's number connector (only the sandbox offers them today, so live merchants are
//! refused), read, list, retire, and take each store payment as a new konbini payment with its
//! own id, events and notifications, linked to the number.

use serde_json::json;

use crate::connectors::konbini::{ConnectorError, RepeatRequest, REPEAT_UNSUPPORTED};
use crate::context::Ctx;
use crate::db::merchants::MerchantRow;
use crate::db::payments::{self, NewPayment, PaymentError, PaymentRow};
use crate::db::repeat_numbers::{self as store, NewRepeat};
use crate::db::{checkouts, Db};
use crate::domain::konbini::{self, Chain, NumberAction, NumberStatus};
use crate::domain::processor::ConnectorId;
use crate::domain::repeat::{self, AmountRule, RepeatError, RepeatState};
use crate::domain::{Method, Mode};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::konbini::{apply_action_in, ActionError};

pub use crate::db::repeat_numbers::RepeatRow;

/// How many store payments the API and the console show for one number (newest first).
pub const PAYMENTS_SHOWN: i64 = 100;

impl RepeatRow {
    pub fn rule(&self) -> AmountRule {
        AmountRule::from_column(self.amount)
    }

    pub fn state(&self, now: i64) -> RepeatState {
        RepeatState::of(self.status, self.valid_until, now)
    }
}

/// What a merchant registers.
pub struct NewNumber {
    pub reference: String,
    pub name: String,
    pub customer_name: Option<String>,
    pub amount: AmountRule,
    /// Whole days, counted like a konbini deadline (default [`repeat::DEFAULT_VALID_DAYS`]).
    pub valid_days: Option<i64>,
}

fn refusal(e: RepeatError) -> FlowError {
    let kind = match e {
        RepeatError::Retired | RepeatError::Expired => Refused::Conflict,
        _ => Refused::Invalid,
    };
    FlowError::refused(kind, e.code(), e.to_string())
}

fn not_found(id: &str) -> FlowError {
    FlowError::refused(
        Refused::NotFound,
        "repeat_number_not_found",
        format!("no repeat number {id}"),
    )
}

fn unavailable() -> FlowError {
    FlowError::conflict(
        "repeat_numbers_unavailable",
        "reusable payment numbers need konbini enabled and a connector that offers them: \
         today only the sandbox (test mode) does",
    )
}

/// Registers a reusable number. The connector registers it first, outside any transaction
/// (nothing is stored if it refuses); a live merchant reaches only its processor accounts,
/// none of which offers reusable numbers, and is refused with `repeat_numbers_unavailable`.
pub async fn create(ctx: &Ctx, m: &MerchantRow, new: NewNumber) -> FlowResult<RepeatRow> {
    let reference =
        repeat::clean_text(&new.reference, repeat::MAX_REFERENCE_CHARS).map_err(refusal)?;
    let name = repeat::clean_text(&new.name, repeat::MAX_NAME_CHARS).map_err(refusal)?;
    let customer_name = match new.customer_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(repeat::clean_text(c, repeat::MAX_NAME_CHARS).map_err(refusal)?),
    };
    repeat::validate_rule(new.amount).map_err(refusal)?;
    let now = ctx.now_ms();
    let valid_until =
        repeat::valid_until(now, new.valid_days.unwrap_or(repeat::DEFAULT_VALID_DAYS))
            .map_err(refusal)?;
    if !m.methods().contains(&Method::Konbini) {
        return Err(unavailable());
    }
    let connectors = crate::flows::merchant_connectors(ctx, m).await?;
    let resolved = connectors.number(Method::Konbini).ok_or_else(unavailable)?;
    let id = crate::util::random_id("rpn", 20);
    let req = RepeatRequest {
        repeat_id: id.clone(),
        mode: connectors.mode(),
        amount: new.amount.column(),
        valid_until_ms: valid_until,
    };
    let number = match resolved.connector.register_repeat(&req).await {
        Ok(n) => n,
        Err(ConnectorError::InvalidRequest(REPEAT_UNSUPPORTED)) => return Err(unavailable()),
        Err(e) => {
            tracing::warn!(error = %e, "repeat number registration failed");
            return Err(FlowError::refused(
                Refused::Upstream,
                "institution_unavailable",
                "the institution could not register the number; try again",
            ));
        }
    };
    let row = store::insert(
        &ctx.db,
        &NewRepeat {
            id: &id,
            merchant_id: &m.id,
            reference: &reference,
            name: &name,
            customer_name: customer_name.as_deref(),
            amount: new.amount.column(),
            number: &number.number,
            connector: resolved.id.as_str(),
            connector_ref: &number.connector_ref,
            valid_until,
        },
        now,
    )
    .await?;
    tracing::info!(repeat = %row.id, merchant = %m.id, "repeat number registered");
    Ok(row)
}

/// The merchant's number (another merchant's is reported as not found).
pub async fn get(db: &Db, merchant_id: &str, id: &str) -> FlowResult<RepeatRow> {
    store::get(db, merchant_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// The number's store payments, newest first (at most [`PAYMENTS_SHOWN`]).
pub async fn payments_of(db: &Db, r: &RepeatRow) -> FlowResult<Vec<PaymentRow>> {
    let mut out = Vec::new();
    for id in store::payment_ids(db, &r.id, PAYMENTS_SHOWN).await? {
        if let Some(p) = payments::get(db, &id).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Retires the merchant's number: no store payment is taken on it any more. Payments taken
/// before keep their course (確報 still arrives). Retiring a retired number changes nothing.
pub async fn retire(ctx: &Ctx, merchant_id: &str, id: &str) -> FlowResult<RepeatRow> {
    let r = get(&ctx.db, merchant_id, id).await?;
    // The sandbox keeps no state of its own; an institution offering reusable numbers would be
    // told here, before the write, as a number withdrawal is.
    if store::retire(&ctx.db, &r.id, ctx.now_ms()).await? {
        tracing::info!(repeat = %r.id, "repeat number retired");
    }
    get(&ctx.db, merchant_id, id).await
}

/// The sandbox's "the customer paid this number at the store now": a new konbini payment of
/// the number (`amount` for per-payment numbers), paid (速報) at `chain` (default: the
/// merchant's first enabled chain). Its `payment.created` and `konbini.paid` events, the
/// notification, its checkout and the link to the number are one transaction, claimed against
/// the number's state so a concurrent retirement either comes after it or refuses it.
///
/// Only for a sandbox number of a test-mode merchant; with `merchant_id`, another merchant's
/// number is reported as not found.
pub async fn sandbox_pay(
    db: &Db,
    repeat_id: &str,
    merchant_id: Option<&str>,
    amount: Option<i64>,
    chain: Option<Chain>,
    actor: &str,
    now: i64,
) -> FlowResult<PaymentRow> {
    let r = match merchant_id {
        Some(m) => store::get(db, m, repeat_id).await?,
        None => store::get_any(db, repeat_id).await?,
    }
    .ok_or_else(|| not_found(repeat_id))?;
    let m = crate::db::merchants::get(db, &r.merchant_id)
        .await?
        .ok_or_else(|| not_found(repeat_id))?;
    // The sandbox drives only its own numbers, and only while the merchant is in test mode.
    if m.mode() != Mode::Test || ConnectorId::parse(&r.connector) != ConnectorId::Sandbox {
        return Err(not_found(repeat_id));
    }
    let chains = m.chains();
    let chain = match chain {
        Some(c) if chains.iter().any(|s| s == c.code()) => c,
        Some(c) => {
            return Err(FlowError::refused(
                Refused::Invalid,
                "chain_not_available",
                format!("chain {} is not enabled for this merchant", c.code()),
            ))
        }
        None => Chain::all()
            .iter()
            .copied()
            .find(|c| chains.iter().any(|s| s == c.code()))
            .ok_or_else(unavailable)?,
    };
    let amount = repeat::payment_amount(r.state(now), r.rule(), amount).map_err(refusal)?;

    let mut tx = db.begin().await?;
    let Some(seq) = store::claim_payment(&mut tx, &r.id, now).await? else {
        drop(tx);
        // Retired or expired meanwhile: say which.
        let fresh = store::get_any(db, &r.id).await?.unwrap_or(r);
        let e = match fresh.state(now) {
            RepeatState::Retired => RepeatError::Retired,
            _ => RepeatError::Expired,
        };
        return Err(refusal(e));
    };
    let order_id = repeat::order_id(&r.reference, seq);
    let checkout_id = match checkouts::insert_repeat_payment(
        &mut tx,
        &m.id,
        &r.id,
        &order_id,
        amount,
        &r.name,
        r.customer_name.as_deref(),
        now,
    )
    .await
    {
        Ok(id) => id,
        Err(e) if crate::db::is_unique_violation(&e) => {
            return Err(FlowError::conflict(
                "order_conflict",
                format!("order id {order_id} is already used by another payment of this merchant"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let sandbox = ConnectorId::Sandbox;
    let new = NewPayment {
        merchant_id: &m.id,
        checkout_id: &checkout_id,
        order_id: &order_id,
        method: Method::Konbini,
        institution: Some(chain.code()),
        status: NumberStatus::AwaitingPayment.into(),
        amount,
        // 印紙代, as for any konbini payment.
        fee: konbini::stamp_duty(amount),
        // Paid within the number's validity, so the payment is on time.
        deadline_at: Some(r.valid_until),
        details: json!({
            "chain": chain.code(),
            "repeat_number_id": r.id,
            "repeat_no": r.number,
        }),
        connector: &sandbox,
    };
    let p = match payments::create(&mut tx, &new, actor, now).await {
        Ok(p) => p,
        Err(PaymentError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(FlowError::Internal(e.into())),
    };
    store::link_payment(&mut tx, &r.id, &p.id, seq, now).await?;
    let paid = match apply_action_in(
        &mut tx,
        &p.id,
        NumberAction::Paid { at_ms: now },
        actor,
        now,
    )
    .await
    {
        Ok(p) => p,
        Err(ActionError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(FlowError::Internal(e.into())),
    };
    tx.commit().await?;
    tracing::info!(repeat = %r.id, payment = %paid.id, seq, amount, "repeat number paid (sandbox)");
    Ok(paid)
}
