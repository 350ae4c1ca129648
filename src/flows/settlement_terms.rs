//! A merchant's payout terms and fee schedules (支払条件・手数料), read and changed through one
//! place shared by `kakehashi settlement terms|fee` and the console's 手数料・支払条件 page, so
//! the two accept and refuse exactly the same values. Every value is checked before anything is
//! written; a refused change writes nothing. Stored fees never change: a new schedule applies to
//! payments collected from then on (docs/settlements.md).

use crate::db::settlements::{self, Terms};
use crate::db::{merchants, Db};
use crate::domain::fees::{self, Schedule};
use crate::domain::payout::{Cycle, DEFAULT_PAYOUT_DELAY_DAYS};
use crate::domain::Method;

/// Longest payout delay, in days after a period's last day.
pub const MAX_PAYOUT_DELAY_DAYS: i64 = 60;
/// Largest fixed fee or settlement fee, in yen: far above any real fee, low enough that sums
/// over a period cannot overflow.
pub const MAX_FEE_YEN: i64 = 1_000_000;

/// Why a value was refused. Each refusal names its field and reads in English (the CLI) and
/// Japanese (the console).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    Cycle(String),
    PayoutDelayDays(String),
    SettlementFee(String),
    Method(String),
    FixedFee(String),
    Rate(String),
}

impl Invalid {
    /// The form field (and CLI flag, with dashes) the refusal is about.
    pub fn field(&self) -> &'static str {
        match self {
            Invalid::Cycle(_) => "cycle",
            Invalid::PayoutDelayDays(_) => "payout_delay_days",
            Invalid::SettlementFee(_) => "settlement_fee",
            Invalid::Method(_) => "method",
            Invalid::FixedFee(_) => "fixed",
            Invalid::Rate(_) => "rate",
        }
    }

    pub fn message_en(&self) -> String {
        match self {
            Invalid::Cycle(v) => format!(
                "cycle must be one of {}, got {v:?}",
                Cycle::ALL
                    .iter()
                    .map(|c| c.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Invalid::PayoutDelayDays(v) => {
                format!("payout-delay-days must be 0 to {MAX_PAYOUT_DELAY_DAYS}, got {v:?}")
            }
            Invalid::SettlementFee(v) => {
                format!("settlement-fee must be 0 to {MAX_FEE_YEN} yen, got {v:?}")
            }
            Invalid::Method(v) => format!("unknown method {v:?}"),
            Invalid::FixedFee(v) => {
                format!("fixed must be 0 to {MAX_FEE_YEN} yen (not negative), got {v:?}")
            }
            Invalid::Rate(v) => {
                format!("rate must be a percentage 0 to 100 with up to two decimals, got {v:?}")
            }
        }
    }

    pub fn message_ja(&self) -> String {
        match self {
            Invalid::Cycle(_) => "精算周期を一覧から選んでください。".into(),
            Invalid::PayoutDelayDays(_) => {
                format!("支払までの日数は0〜{MAX_PAYOUT_DELAY_DAYS}の整数で入力してください。")
            }
            Invalid::SettlementFee(_) => {
                "精算入金手数料は0円以上の整数（円）で入力してください。".into()
            }
            Invalid::Method(_) => "決済種別を一覧から選んでください。".into(),
            Invalid::FixedFee(_) => {
                "固定手数料は0円以上の整数（円）で入力してください（マイナスは不可）。".into()
            }
            Invalid::Rate(_) => {
                "料率は0〜100%、小数点以下2桁まで（例: 3.25）で入力してください。".into()
            }
        }
    }
}

/// What a change can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TermsError {
    #[error("{}", .0.message_en())]
    Invalid(Invalid),
    #[error("no merchant {0}")]
    UnknownMerchant(String),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

/// Payout terms as given (CLI flags or form fields), before checking.
#[derive(Clone, Debug)]
pub struct TermsInput<'a> {
    pub cycle: &'a str,
    /// Days; empty means the default (15).
    pub payout_delay_days: &'a str,
    /// Yen, tax excluded; empty means 0.
    pub settlement_fee: &'a str,
    pub goods_taxable: bool,
}

/// One method's fees as given, before checking.
#[derive(Clone, Debug)]
pub struct FeeInput<'a> {
    pub method: &'a str,
    /// Yen per collected payment; empty means 0.
    pub fixed: &'a str,
    /// Percent with up to two decimals; empty means 0.
    pub rate: &'a str,
}

/// A whole number of yen or days: digits with optional thousands commas; empty is `default`.
/// A sign (so any negative number) is refused.
fn whole(s: &str, default: i64, max: i64) -> Option<i64> {
    let s = s.trim().replace(',', "");
    if s.is_empty() {
        return Some(default);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 12 {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| *v <= max)
}

/// Checks payout terms for `merchant_id` (pure).
pub fn check_terms(merchant_id: &str, t: &TermsInput<'_>) -> Result<Terms, Invalid> {
    let cycle = Cycle::parse(t.cycle.trim()).ok_or_else(|| Invalid::Cycle(t.cycle.to_owned()))?;
    let payout_delay_days = whole(
        t.payout_delay_days,
        DEFAULT_PAYOUT_DELAY_DAYS,
        MAX_PAYOUT_DELAY_DAYS,
    )
    .ok_or_else(|| Invalid::PayoutDelayDays(t.payout_delay_days.to_owned()))?;
    let settlement_fee = whole(t.settlement_fee, 0, MAX_FEE_YEN)
        .ok_or_else(|| Invalid::SettlementFee(t.settlement_fee.to_owned()))?;
    Ok(Terms {
        merchant_id: merchant_id.to_owned(),
        cycle,
        payout_delay_days,
        settlement_fee,
        goods_taxable: t.goods_taxable,
    })
}

/// Checks one method's fees (pure).
pub fn check_fee(f: &FeeInput<'_>) -> Result<(Method, Schedule), Invalid> {
    let method = Method::parse(f.method.trim()).ok_or_else(|| Invalid::Method(f.method.into()))?;
    let fixed_fee =
        whole(f.fixed, 0, MAX_FEE_YEN).ok_or_else(|| Invalid::FixedFee(f.fixed.to_owned()))?;
    let rate = if f.rate.trim().is_empty() {
        "0"
    } else {
        f.rate
    };
    let rate_bp = fees::parse_percent_bp(rate).ok_or_else(|| Invalid::Rate(f.rate.to_owned()))?;
    Ok((method, Schedule { fixed_fee, rate_bp }))
}

async fn existing(db: &Db, merchant_id: &str) -> Result<(), TermsError> {
    match merchants::get(db, merchant_id).await? {
        Some(_) => Ok(()),
        None => Err(TermsError::UnknownMerchant(merchant_id.to_owned())),
    }
}

/// Sets a merchant's payout terms at `now`; returns them as stored, with the terms before.
pub async fn set_terms(
    db: &Db,
    merchant_id: &str,
    input: &TermsInput<'_>,
    now: i64,
) -> Result<(Option<Terms>, Terms), TermsError> {
    let terms = check_terms(merchant_id, input).map_err(TermsError::Invalid)?;
    existing(db, merchant_id).await?;
    let before = settlements::terms(db, merchant_id).await?;
    settlements::set_terms(db, &terms, now).await?;
    Ok((before, terms))
}

/// Sets a merchant's fees for one method at `now`; returns the method, the schedule before (a
/// method without one has no fees) and the new one.
pub async fn set_fee(
    db: &Db,
    merchant_id: &str,
    input: &FeeInput<'_>,
    now: i64,
) -> Result<(Method, Option<Schedule>, Schedule), TermsError> {
    let (method, schedule) = check_fee(input).map_err(TermsError::Invalid)?;
    existing(db, merchant_id).await?;
    let before = settlements::schedules(db, merchant_id)
        .await?
        .into_iter()
        .find(|(m, _)| *m == method)
        .map(|(_, s)| s);
    settlements::set_schedule(db, merchant_id, method, schedule, now).await?;
    Ok((method, before, schedule))
}

/// A merchant's terms (none: never settled) and fee schedules by method.
#[derive(Clone, Debug)]
pub struct Current {
    pub terms: Option<Terms>,
    pub fees: Vec<(Method, Schedule)>,
}

pub async fn current(db: &Db, merchant_id: &str) -> Result<Current, crate::db::Error> {
    Ok(Current {
        terms: settlements::terms(db, merchant_id).await?,
        fees: settlements::schedules(db, merchant_id).await?,
    })
}

/// A rate in basis points as the percentage it was entered as: 325 → "3.25", 300 → "3".
pub fn percent(rate_bp: i64) -> String {
    let (whole, frac) = (rate_bp / 100, rate_bp % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// The audit line of terms: `month_end 15d fee=1500 taxable`.
pub fn terms_line(t: Option<&Terms>) -> String {
    match t {
        None => "-".into(),
        Some(t) => format!(
            "{} {}d fee={} {}",
            t.cycle.code(),
            t.payout_delay_days,
            t.settlement_fee,
            if t.goods_taxable {
                "taxable"
            } else {
                "tax-exempt"
            }
        ),
    }
}

/// The audit line of a schedule: `120+3.25%`.
pub fn schedule_line(s: Option<&Schedule>) -> String {
    match s {
        None => "-".into(),
        Some(s) => format!("{}+{}%", s.fixed_fee, percent(s.rate_bp)),
    }
}

/// The audit detail of a terms change: `ok <before> -> <after>` (CLI and console alike).
pub fn terms_change(before: Option<&Terms>, after: &Terms) -> String {
    format!("ok {} -> {}", terms_line(before), terms_line(Some(after)))
}

/// The audit detail of a fee change: `ok <method>: <before> -> <after>`.
pub fn fee_change(method: Method, before: Option<&Schedule>, after: &Schedule) -> String {
    format!(
        "ok {}: {} -> {}",
        method.code(),
        schedule_line(before),
        schedule_line(Some(after))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(cycle: &str, delay: &str, fee: &str) -> Result<Terms, Invalid> {
        check_terms(
            "m_1",
            &TermsInput {
                cycle,
                payout_delay_days: delay,
                settlement_fee: fee,
                goods_taxable: false,
            },
        )
    }

    fn fee(method: &str, fixed: &str, rate: &str) -> Result<(Method, Schedule), Invalid> {
        check_fee(&FeeInput {
            method,
            fixed,
            rate,
        })
    }

    #[test]
    fn terms_are_checked() {
        let t = terms("half_month", "", "1,500").unwrap();
        assert_eq!(t.cycle, Cycle::HalfMonth);
        assert_eq!(t.payout_delay_days, DEFAULT_PAYOUT_DELAY_DAYS);
        assert_eq!(t.settlement_fee, 1_500);
        assert_eq!(
            terms("weekly", "15", "0"),
            Err(Invalid::Cycle("weekly".into()))
        );
        assert!(matches!(
            terms("month_end", "61", "0"),
            Err(Invalid::PayoutDelayDays(_))
        ));
        assert!(matches!(
            terms("month_end", "15", "-1"),
            Err(Invalid::SettlementFee(_))
        ));
        assert!(matches!(
            terms("month_end", "1.5", "0"),
            Err(Invalid::PayoutDelayDays(_))
        ));
    }

    #[test]
    fn fees_are_checked() {
        assert_eq!(
            fee("card", "", "3.25").unwrap(),
            (
                Method::Card,
                Schedule {
                    fixed_fee: 0,
                    rate_bp: 325
                }
            )
        );
        assert_eq!(fee("konbini", "120", "").unwrap().1.fixed_fee, 120);
        assert_eq!(
            fee("konbini", "-120", "0"),
            Err(Invalid::FixedFee("-120".into()))
        );
        assert_eq!(
            fee("card", "0", "3.255"),
            Err(Invalid::Rate("3.255".into()))
        );
        assert_eq!(fee("card", "0", "101"), Err(Invalid::Rate("101".into())));
        assert_eq!(fee("cash", "0", "1"), Err(Invalid::Method("cash".into())));
    }

    #[test]
    fn percent_reads_back_as_entered() {
        assert_eq!(percent(325), "3.25");
        assert_eq!(percent(300), "3");
        assert_eq!(percent(50), "0.5");
        assert_eq!(percent(5), "0.05");
        assert_eq!(percent(0), "0");
        for bp in [0, 1, 9, 10, 99, 100, 325, 10_000] {
            assert_eq!(fees::parse_percent_bp(&percent(bp)), Some(bp));
        }
    }
}
