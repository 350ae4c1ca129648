//! A payment's status as one typed value over every method family, decoded from the stored
//! `(method, status)` pair: code, labels, and the rules that hold across methods (which statuses
//! still hold the checkout, which mean the shopper has paid).

use std::fmt;

use crate::domain::bank::BankStatus;
use crate::domain::card::CardStatus;
use crate::domain::carrier::CarrierStatus;
use crate::domain::konbini::NumberStatus;
use crate::domain::lifecycle::Status;
use crate::domain::processor::Family;
use crate::domain::wallet::WalletStatus;
use crate::domain::Method;

/// The status of a payment of any method: the method family's own status machine's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Card(CardStatus),
    Number(NumberStatus),
    Bank(BankStatus),
    Carrier(CarrierStatus),
    Wallet(WalletStatus),
}

impl PaymentStatus {
    /// Decodes a stored status code for a payment of `method`; `None` if the code is not one of
    /// that method's statuses.
    pub fn decode(method: Method, code: &str) -> Option<PaymentStatus> {
        Some(match Family::of(method) {
            Family::Card => PaymentStatus::Card(CardStatus::parse(code)?),
            Family::Number => PaymentStatus::Number(NumberStatus::parse(code)?),
            Family::Bank => PaymentStatus::Bank(BankStatus::parse(code)?),
            Family::Carrier => PaymentStatus::Carrier(CarrierStatus::parse(code)?),
            Family::Wallet => PaymentStatus::Wallet(WalletStatus::parse(code)?),
        })
    }

    /// Every status a payment of `method` can have, in display order.
    pub fn all_for(method: Method) -> Vec<PaymentStatus> {
        match Family::of(method) {
            Family::Card => CardStatus::ALL.iter().map(|s| (*s).into()).collect(),
            Family::Number => NumberStatus::ALL.iter().map(|s| (*s).into()).collect(),
            Family::Bank => BankStatus::ALL.iter().map(|s| (*s).into()).collect(),
            Family::Carrier => CarrierStatus::ALL.iter().map(|s| (*s).into()).collect(),
            Family::Wallet => WalletStatus::ALL.iter().map(|s| (*s).into()).collect(),
        }
    }

    /// Every distinct status code any method uses, in a stable order (e.g. the console's
    /// status filter, which spans methods).
    pub fn all_codes() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for m in Method::ALL {
            for s in PaymentStatus::all_for(m) {
                if !out.contains(&s.code()) {
                    out.push(s.code());
                }
            }
        }
        out
    }

    /// The console label for a bare status code (a filter that spans methods): the label of the
    /// first method family that uses the code.
    pub fn label_for_code(code: &str) -> Option<&'static str> {
        Method::ALL
            .into_iter()
            .find_map(|m| PaymentStatus::decode(m, code))
            .map(PaymentStatus::label_ja)
    }

    pub fn family(self) -> Family {
        match self {
            PaymentStatus::Card(_) => Family::Card,
            PaymentStatus::Number(_) => Family::Number,
            PaymentStatus::Bank(_) => Family::Bank,
            PaymentStatus::Carrier(_) => Family::Carrier,
            PaymentStatus::Wallet(_) => Family::Wallet,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            PaymentStatus::Card(s) => s.code(),
            PaymentStatus::Number(s) => s.code(),
            PaymentStatus::Bank(s) => s.code(),
            PaymentStatus::Carrier(s) => s.code(),
            PaymentStatus::Wallet(s) => s.code(),
        }
    }

    /// The console's label (決済ステータス).
    pub fn label_ja(self) -> &'static str {
        match self {
            PaymentStatus::Card(s) => s.label_ja(),
            PaymentStatus::Number(s) => s.label_ja(),
            PaymentStatus::Bank(s) => s.label_ja(),
            PaymentStatus::Carrier(s) => s.label_ja(),
            PaymentStatus::Wallet(s) => s.label_ja(),
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            PaymentStatus::Card(s) => s.label_en(),
            PaymentStatus::Number(s) => s.label_en(),
            PaymentStatus::Bank(s) => s.label_en(),
            PaymentStatus::Carrier(s) => s.label_en(),
            PaymentStatus::Wallet(s) => s.label_en(),
        }
    }

    pub fn is_final(self) -> bool {
        match self {
            PaymentStatus::Card(s) => s.is_final(),
            PaymentStatus::Number(s) => s.is_final(),
            PaymentStatus::Bank(s) => s.is_final(),
            PaymentStatus::Carrier(s) => s.is_final(),
            PaymentStatus::Wallet(s) => s.is_final(),
        }
    }

    /// Whether a payment in this status still holds its checkout, so no second payment may
    /// start. Failed attempts release it; so does a carrier attempt the shopper backed out of,
    /// and a konbini / Pay-easy number the shopper withdrew.
    /// This is the predicate of the `payments_one_live` unique index (migrations) and of
    /// `db::payments::live_for_checkout`; a test checks they agree.
    pub fn holds_checkout(self) -> bool {
        !matches!(
            self,
            PaymentStatus::Card(CardStatus::Failed)
                | PaymentStatus::Bank(BankStatus::Declined | BankStatus::TimedOut)
                | PaymentStatus::Carrier(CarrierStatus::Failed | CarrierStatus::Cancelled)
                | PaymentStatus::Number(NumberStatus::Cancelled | NumberStatus::IssueFailed)
                | PaymentStatus::Wallet(WalletStatus::Failed | WalletStatus::TimedOut)
        )
    }

    /// The shopper has paid (or the card was accepted): the result page says so.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            PaymentStatus::Card(CardStatus::Authorized | CardStatus::Captured)
                | PaymentStatus::Number(
                    NumberStatus::Paid | NumberStatus::Confirmed | NumberStatus::LatePaid
                )
                | PaymentStatus::Bank(BankStatus::Paid)
                | PaymentStatus::Carrier(CarrierStatus::Completed)
                | PaymentStatus::Wallet(WalletStatus::Paid)
        )
    }

    /// The money is the merchant's (売上済, 消込済, 確報, 入金完了, 決済完了), possibly refunded
    /// since: what a settlement counts, and when fees are charged (`domain::fees`). A card
    /// authorisation is not collected until it is captured. The statuses of
    /// `db::payments::COLLECTED`; a test keeps the two in step.
    pub fn is_collected(self) -> bool {
        matches!(
            self,
            PaymentStatus::Card(CardStatus::Captured | CardStatus::Refunded)
                | PaymentStatus::Number(
                    NumberStatus::Paid | NumberStatus::Confirmed | NumberStatus::LatePaid
                )
                | PaymentStatus::Bank(BankStatus::Paid)
                | PaymentStatus::Carrier(CarrierStatus::Completed | CarrierStatus::Refunded)
        )
    }

    /// Waiting for the shopper at a bank or carrier page (or for its answer).
    pub fn is_awaiting_redirect(self) -> bool {
        matches!(
            self,
            PaymentStatus::Bank(BankStatus::AwaitingBank)
                | PaymentStatus::Carrier(CarrierStatus::AwaitingAuth)
                | PaymentStatus::Wallet(WalletStatus::AwaitingWallet)
        )
    }

    pub fn card(self) -> Option<CardStatus> {
        match self {
            PaymentStatus::Card(s) => Some(s),
            _ => None,
        }
    }

    pub fn number(self) -> Option<NumberStatus> {
        match self {
            PaymentStatus::Number(s) => Some(s),
            _ => None,
        }
    }

    pub fn bank(self) -> Option<BankStatus> {
        match self {
            PaymentStatus::Bank(s) => Some(s),
            _ => None,
        }
    }

    pub fn carrier(self) -> Option<CarrierStatus> {
        match self {
            PaymentStatus::Carrier(s) => Some(s),
            _ => None,
        }
    }

    pub fn wallet(self) -> Option<WalletStatus> {
        match self {
            PaymentStatus::Wallet(s) => Some(s),
            _ => None,
        }
    }

    /// The label a shopper sees: plain words, never the console's terms (速報, 消込, 取消,
    /// オーソリ).
    pub fn shopper_label(self, en: bool) -> &'static str {
        use PaymentStatus as P;
        let (ja, en_s) = match self {
            P::Card(CardStatus::Awaiting3ds | CardStatus::Challenge) => {
                ("本人認証の途中です", "Verifying your identity")
            }
            P::Card(CardStatus::Authorized) => ("お支払いを受け付けました", "Payment accepted"),
            s if s.is_paid() => ("お支払い済み", "Paid"),
            P::Card(CardStatus::Cancelled)
            | P::Carrier(CarrierStatus::Cancelled)
            | P::Number(NumberStatus::Cancelled) => ("キャンセルされました", "Cancelled"),
            P::Card(CardStatus::Refunded)
            | P::Carrier(CarrierStatus::Refunded)
            | P::Wallet(WalletStatus::Refunded) => ("返金されました", "Refunded"),
            P::Card(CardStatus::Failed)
            | P::Bank(BankStatus::Declined)
            | P::Carrier(CarrierStatus::Failed)
            | P::Wallet(WalletStatus::Failed) => ("お支払いできませんでした", "Not completed"),
            P::Card(CardStatus::Expired) | P::Number(NumberStatus::Expired) => {
                ("お支払期限が過ぎました", "Deadline passed")
            }
            P::Number(NumberStatus::AwaitingPayment) => {
                ("お支払いをお待ちしています", "Awaiting your payment")
            }
            P::Number(NumberStatus::Reversed) => ("お支払いが取り消されました", "Payment reversed"),
            P::Bank(BankStatus::AwaitingBank)
            | P::Carrier(CarrierStatus::AwaitingAuth)
            | P::Wallet(WalletStatus::AwaitingWallet) => ("手続き中です", "In progress"),
            P::Bank(BankStatus::TimedOut) | P::Wallet(WalletStatus::TimedOut) => {
                ("時間切れになりました", "Timed out")
            }
            // Paid statuses are answered above; the compiler needs a last arm.
            _ => ("お支払い済み", "Paid"),
        };
        if en {
            en_s
        } else {
            ja
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for PaymentStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

macro_rules! family_status {
    ($var:ident, $ty:ty) => {
        impl From<$ty> for PaymentStatus {
            fn from(s: $ty) -> Self {
                PaymentStatus::$var(s)
            }
        }

        /// `payment.status == CardStatus::Challenge` reads as it says.
        impl PartialEq<$ty> for PaymentStatus {
            fn eq(&self, other: &$ty) -> bool {
                matches!(self, PaymentStatus::$var(s) if s == other)
            }
        }
    };
}
family_status!(Card, CardStatus);
family_status!(Number, NumberStatus);
family_status!(Bank, BankStatus);
family_status!(Carrier, CarrierStatus);
family_status!(Wallet, WalletStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_decodes_to_itself_for_its_methods() {
        for m in Method::ALL {
            let all = PaymentStatus::all_for(m);
            assert!(!all.is_empty());
            for s in all {
                assert_eq!(PaymentStatus::decode(m, s.code()), Some(s), "{m:?} {s}");
                assert_eq!(s.family(), Family::of(m));
            }
            assert_eq!(PaymentStatus::decode(m, "no_such_status"), None);
        }
        // A code of another family is not this method's status.
        assert_eq!(
            PaymentStatus::decode(Method::Card, "awaiting_payment"),
            None
        );
        assert_eq!(PaymentStatus::decode(Method::Konbini, "captured"), None);
    }

    /// The index predicate in the migrations, written as SQL over codes: keep in step.
    fn index_holds(method: Method, code: &str) -> bool {
        let carrier = matches!(
            method,
            Method::Docomo
                | Method::Au
                | Method::Softbank
                | Method::Konbini
                | Method::Payeasy
                | Method::BankTransfer
        );
        let released = ["failed", "declined", "timed_out", "issue_failed"].contains(&code);
        !(released || (code == "cancelled" && carrier))
    }

    #[test]
    fn holds_checkout_matches_the_unique_index() {
        for m in Method::ALL {
            for s in PaymentStatus::all_for(m) {
                assert_eq!(s.holds_checkout(), index_holds(m, s.code()), "{m:?} {s}");
            }
        }
    }

    #[test]
    fn shopper_labels_have_no_console_jargon() {
        for m in Method::ALL {
            for s in PaymentStatus::all_for(m) {
                for en in [false, true] {
                    let l = s.shopper_label(en);
                    for jargon in ["速報", "確報", "消込", "取消済", "オーソリ", "売上"]
                    {
                        assert!(!l.contains(jargon), "{s}: {l}");
                    }
                }
            }
        }
        assert_eq!(
            PaymentStatus::from(NumberStatus::Paid).shopper_label(false),
            "お支払い済み"
        );
    }
}
