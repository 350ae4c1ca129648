//! Fee arithmetic (手数料, 印紙代, 消費税): what a collected payment costs the merchant, in
//! integer yen. Pure; the schedule comes from `fee_schedules`, the result is stored per payment
//! (`ledger_entries`) and summed into settlements.
//!
//! Rounding: every fraction of a yen is rounded down (切り捨て), for percentage fees and for
//! consumption tax alike, so the merchant is never charged a yen more than the rate says.

use crate::domain::konbini::Chain;

/// Consumption tax (消費税) rate on fees, in percent.
pub const CONSUMPTION_TAX_PERCENT: i64 = 10;
/// Stamp duty (印紙代) per qualifying konbini payment.
pub const STAMP_DUTY: i64 = 200;
/// Payments from this amount carry stamp duty (compared tax-excluded for taxable goods at the
/// chains that allow it; see [`stamp_duty`]).
pub const STAMP_DUTY_THRESHOLD: i64 = 50_000;
/// Basis points in 100 %: a percentage fee is stored in basis points (1 bp = 0.01 %).
pub const BP_PER_WHOLE: i64 = 10_000;

/// A merchant's fees for one method, tax excluded (税別).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Per collected payment (e.g. Smart Pit プラン120: 120 yen). Nothing when not collected.
    pub fixed_fee: i64,
    /// Percentage of the collected amount in basis points (e.g. 325 = 3.25 % for cards).
    pub rate_bp: i64,
}

/// What one collected payment costs, tax excluded, with its tax and stamp duty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub fixed_fee: i64,
    pub rate_fee: i64,
    /// 消費税 on `fixed_fee + rate_fee`.
    pub fee_tax: i64,
    /// 印紙代 (not taxed).
    pub stamp_duty: i64,
}

impl Breakdown {
    /// Fees before tax (税別).
    pub fn fees(&self) -> i64 {
        self.fixed_fee + self.rate_fee
    }

    /// Everything deducted for the payment.
    pub fn total(&self) -> i64 {
        self.fees() + self.fee_tax + self.stamp_duty
    }
}

/// The percentage fee on `amount`: `amount × rate_bp / 10,000`, rounded down.
pub fn rate_fee(amount: i64, rate_bp: i64) -> i64 {
    if amount <= 0 || rate_bp <= 0 {
        return 0;
    }
    // i128: no overflow for any amount a payment can hold.
    (i128::from(amount) * i128::from(rate_bp) / i128::from(BP_PER_WHOLE)) as i64
}

/// A percentage with up to two decimals (`"3.25"`, `"3"`, `"0.5"`) in basis points; `None` for
/// anything else or above 100 %.
pub fn parse_percent_bp(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('%');
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    let bp = whole.checked_mul(100)?.checked_add(frac)?;
    (bp <= BP_PER_WHOLE).then_some(bp)
}

/// Consumption tax on a tax-excluded fee, rounded down.
pub fn consumption_tax(fee_excluded: i64) -> i64 {
    if fee_excluded <= 0 {
        return 0;
    }
    fee_excluded * CONSUMPTION_TAX_PERCENT / 100
}

/// The tax-excluded price inside a tax-included `amount` (本体価格), rounded down:
/// 55,000 → 50,000; 54,999 → 49,999.
pub fn tax_excluded(amount: i64) -> i64 {
    amount * 100 / (100 + CONSUMPTION_TAX_PERCENT)
}

/// Chains whose own system puts a stamp on every receipt from 50,000 yen, tax included or not
/// (seed 001): セブン-イレブン, ファミリーマート, デイリーヤマザキ.
pub fn stamps_on_gross(chain: Chain) -> bool {
    matches!(
        chain,
        Chain::SevenEleven | Chain::FamilyMart | Chain::DailyYamazaki
    )
}

/// Stamp duty for a konbini payment of `amount` (tax included) paid at `chain`.
///
/// Goods or services subject to consumption tax (`goods_taxable`) compare the tax-excluded
/// price with 50,000 yen, except at the chains of [`stamps_on_gross`]; tax-exempt goods compare
/// the amount itself. An unknown chain (`None`) takes the stricter, gross rule.
pub fn stamp_duty(amount: i64, chain: Option<Chain>, goods_taxable: bool) -> i64 {
    let compared = match chain {
        Some(c) if goods_taxable && !stamps_on_gross(c) => tax_excluded(amount),
        _ => amount,
    };
    if compared >= STAMP_DUTY_THRESHOLD {
        STAMP_DUTY
    } else {
        0
    }
}

/// The fees of a payment collected for `amount` under `schedule`. `stamp` is `Some(chain)` for
/// a konbini payment (the only method whose receipt carries stamp duty), with the chain if known.
pub fn compute(
    amount: i64,
    schedule: Schedule,
    stamp: Option<Option<Chain>>,
    goods_taxable: bool,
) -> Breakdown {
    let fixed_fee = schedule.fixed_fee.max(0);
    let rate_fee = rate_fee(amount, schedule.rate_bp);
    Breakdown {
        fixed_fee,
        rate_fee,
        fee_tax: consumption_tax(fixed_fee + rate_fee),
        stamp_duty: stamp.map_or(0, |chain| stamp_duty(amount, chain, goods_taxable)),
    }
}

/// A settlement's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub gross: i64,
    pub refunds: i64,
    pub fees: i64,
    pub settlement_fee: i64,
    pub fee_tax: i64,
    pub stamp_duty: i64,
    pub net: i64,
}

/// A settlement's totals from its entries: `gross` collected, `refunds` (refunds and reversals,
/// positive), per-payment `fees` (tax excluded; negative when reversals of earlier fees
/// outweigh), `stamp_duty`, and the `settlement_fee` per payout. Consumption tax is computed
/// once on the statement's taxable fees (`fees + settlement_fee`), rounded toward zero, as an
/// invoice (適格請求書) does; the per-payment tax is shown for reference only.
pub fn settle(gross: i64, refunds: i64, fees: i64, stamp_duty: i64, settlement_fee: i64) -> Totals {
    let taxable = fees + settlement_fee;
    let fee_tax = if taxable < 0 {
        -consumption_tax(-taxable)
    } else {
        consumption_tax(taxable)
    };
    Totals {
        gross,
        refunds,
        fees,
        settlement_fee,
        fee_tax,
        stamp_duty,
        net: gross - refunds - fees - settlement_fee - fee_tax - stamp_duty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_duty_boundary_on_the_amount() {
        // Tax-exempt goods, any chain: the amount itself.
        for chain in [Some(Chain::Lawson), Some(Chain::SevenEleven), None] {
            assert_eq!(stamp_duty(49_999, chain, false), 0);
            assert_eq!(stamp_duty(50_000, chain, false), 200);
        }
    }

    #[test]
    fn stamp_duty_for_taxable_goods_depends_on_the_chain() {
        // Lawson, Ministop, Seicomart: the tax-excluded price (50,000 from 55,000 included).
        for chain in [Chain::Lawson, Chain::Ministop, Chain::Seicomart] {
            assert_eq!(stamp_duty(50_000, Some(chain), true), 0);
            assert_eq!(stamp_duty(54_999, Some(chain), true), 0);
            assert_eq!(stamp_duty(55_000, Some(chain), true), 200);
        }
        // 7-Eleven, FamilyMart, Daily Yamazaki: every receipt from 50,000 yen.
        for chain in [Chain::SevenEleven, Chain::FamilyMart, Chain::DailyYamazaki] {
            assert_eq!(stamp_duty(49_999, Some(chain), true), 0);
            assert_eq!(stamp_duty(50_000, Some(chain), true), 200);
        }
        assert_eq!(stamp_duty(50_000, None, true), 200);
    }

    #[test]
    fn tax_excluded_rounds_down() {
        assert_eq!(tax_excluded(55_000), 50_000);
        assert_eq!(tax_excluded(54_999), 49_999);
        assert_eq!(tax_excluded(110), 100);
    }

    #[test]
    fn percentage_fee_rounds_down() {
        // 3.25 % of 49,999 = 1,624.9675 → 1,624; of 50,000 = 1,625 exactly.
        assert_eq!(rate_fee(49_999, 325), 1_624);
        assert_eq!(rate_fee(50_000, 325), 1_625);
        assert_eq!(rate_fee(1, 325), 0);
        assert_eq!(rate_fee(0, 325), 0);
        assert_eq!(rate_fee(300_000, 0), 0);
    }

    #[test]
    fn percentages_parse_to_basis_points() {
        assert_eq!(parse_percent_bp("3.25"), Some(325));
        assert_eq!(parse_percent_bp("3"), Some(300));
        assert_eq!(parse_percent_bp("0.5"), Some(50));
        assert_eq!(parse_percent_bp("100"), Some(10_000));
        assert_eq!(parse_percent_bp("3.255"), None);
        assert_eq!(parse_percent_bp("-1"), None);
        assert_eq!(parse_percent_bp("101"), None);
        assert_eq!(parse_percent_bp(""), None);
        assert_eq!(parse_percent_bp(".5"), None);
    }

    #[test]
    fn consumption_tax_rounds_down() {
        assert_eq!(consumption_tax(120), 12);
        assert_eq!(consumption_tax(1_624), 162);
        assert_eq!(consumption_tax(1_500), 150);
        assert_eq!(consumption_tax(9), 0);
    }

    #[test]
    fn smart_pit_plan_120_with_stamp_duty() {
        let plan = Schedule {
            fixed_fee: 120,
            rate_bp: 0,
        };
        let b = compute(50_000, plan, Some(Some(Chain::Lawson)), false);
        assert_eq!(
            b,
            Breakdown {
                fixed_fee: 120,
                rate_fee: 0,
                fee_tax: 12,
                stamp_duty: 200
            }
        );
        assert_eq!(b.total(), 332);
        let b = compute(49_999, plan, Some(Some(Chain::Lawson)), false);
        assert_eq!((b.stamp_duty, b.total()), (0, 132));
    }

    #[test]
    fn settlement_totals() {
        // 3 collected konbini payments of 50,000 / 49,999 / 10,000 under プラン120 (one
        // stamped), one 5,000 refund, settlement fee 1,500.
        let t = settle(109_999, 5_000, 360, 200, 1_500);
        assert_eq!(t.fee_tax, 186);
        assert_eq!(t.net, 109_999 - 5_000 - 360 - 1_500 - 186 - 200);
        // Reversed fees of an earlier period can outweigh: the tax is returned too.
        assert_eq!(settle(0, 0, -2_000, 0, 0).fee_tax, -200);
    }

    #[test]
    fn card_percentage_has_no_stamp_duty() {
        let card = Schedule {
            fixed_fee: 0,
            rate_bp: 325,
        };
        let b = compute(50_000, card, None, true);
        assert_eq!((b.rate_fee, b.fee_tax, b.stamp_duty), (1_625, 162, 0));
        assert_eq!(b.total(), 1_787);
    }
}
