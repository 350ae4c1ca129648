//! Payment methods (決済手段): codes, names, amount limits and which devices can use them.

use crate::device::Device;

/// A payment method a shopper can choose. Carrier billing is one method per carrier because
/// merchants enable carriers individually and feature phones support only d払い.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Card,
    Konbini,
    Payeasy,
    Banknet,
    Docomo,
    Au,
    Softbank,
    /// A wallet (PayPay, au PAY, …): one method, the brand chosen on its page
    /// (`domain::wallet::Wallet`, stored as the payment's institution).
    Wallet,
    /// Bank transfer (銀行振込) to an account issued for the order: a number-family method
    /// (`domain::konbini::NumberMethod::BankTransfer`) whose "number" is the 振込先.
    BankTransfer,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// Largest wallet payment we start (yen).
pub const WALLET_MAX_AMOUNT: i64 = 300_000;

/// Largest amount an order link may carry (any method).
pub const MAX_LINK_AMOUNT: i64 = 9_999_999;

impl Method {
    pub const ALL: [Method; 9] = [
        Method::Card,
        Method::Konbini,
        Method::Payeasy,
        Method::Banknet,
        Method::Docomo,
        Method::Au,
        Method::Softbank,
        Method::Wallet,
        Method::BankTransfer,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Method::Card => "card",
            Method::Konbini => "konbini",
            Method::Payeasy => "payeasy",
            Method::Banknet => "banknet",
            Method::Docomo => "docomo",
            Method::Au => "au",
            Method::Softbank => "softbank",
            Method::Wallet => "wallet",
            Method::BankTransfer => "bank_transfer",
        }
    }

    pub fn parse(code: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Parses a comma-separated list; `None` if any code is unknown. Order follows [`Method::ALL`].
    pub fn parse_list(s: &str) -> Option<Vec<Method>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let m = Method::parse(part)?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out.sort_by_key(|m| Method::ALL.iter().position(|x| x == m));
        Some(out)
    }

    pub fn join(list: &[Method]) -> String {
        list.iter().map(|m| m.code()).collect::<Vec<_>>().join(",")
    }

    pub fn name_ja(self) -> &'static str {
        match self {
            Method::Card => "クレジットカード",
            Method::Konbini => "コンビニ決済",
            Method::Payeasy => "Pay-easy（ペイジー）",
            Method::Banknet => "ネットバンキング",
            Method::Docomo => "d払い",
            Method::Au => "auかんたん決済",
            Method::Softbank => "ソフトバンクまとめて支払い",
            Method::Wallet => "スマホ決済（PayPayなど）",
            Method::BankTransfer => "銀行振込",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Method::Card => "Credit card",
            Method::Konbini => "Convenience store",
            Method::Payeasy => "Pay-easy (ATM / online banking)",
            Method::Banknet => "Online banking",
            Method::Docomo => "d Barai (docomo)",
            Method::Au => "au Easy Payment",
            Method::Softbank => "SoftBank Matomete Shiharai",
            Method::Wallet => "Mobile wallet (PayPay and others)",
            Method::BankTransfer => "Bank transfer",
        }
    }

    /// Largest amount in yen this method accepts (DOMAIN.md).
    pub fn max_amount(self) -> i64 {
        match self {
            Method::Card | Method::Banknet => MAX_LINK_AMOUNT,
            Method::BankTransfer => crate::domain::konbini::BANK_TRANSFER_MAX_AMOUNT,
            // The smallest per-payment cap among the wallets we offer (au PAY: 300,000円); a
            // wallet account may allow less, and then the wallet declines.
            Method::Wallet => WALLET_MAX_AMOUNT,
            Method::Konbini => 300_000,
            Method::Payeasy => 999_999,
            Method::Docomo | Method::Au | Method::Softbank => 100_000,
        }
    }

    /// Whether the method works on this device: feature phones cannot be redirected to online
    /// banking or to a wallet app, and only d払い offers carrier billing on feature phones.
    pub fn works_on(self, device: Device) -> bool {
        match device {
            Device::FeaturePhone => !matches!(
                self,
                Method::Banknet | Method::Au | Method::Softbank | Method::Wallet
            ),
            // A ガラホ's browser is a smartphone's (redirects, carriers' own flows).
            Device::Pc | Device::Smartphone | Device::Garaho => true,
        }
    }

    /// Whether this server has a flow for the method. Methods without one are never offered.
    pub fn has_flow(self) -> bool {
        IMPLEMENTED.contains(&self)
    }
}

/// The methods whose payment flow is built; the selector shows nothing else.
const IMPLEMENTED: &[Method] = &Method::ALL;

/// The selector's rule: merchant-enabled ∩ link-allowed ∩ possible on this device ∩ allowed for
/// this amount ∩ implemented.
pub fn offered(merchant: &[Method], link: &[Method], device: Device, amount: i64) -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|m| merchant.contains(m) && link.contains(m))
        .filter(|m| m.works_on(device) && amount <= m.max_amount() && m.has_flow())
        .collect()
}

/// Why a method the merchant enabled (and the link asked for) is not offered for this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The order is above the method's limit (the limit, in yen).
    OverLimit(i64),
    /// The method does not work on this kind of device.
    Device,
}

/// The methods the merchant enabled and the link asked for that [`offered`] leaves out, with
/// the reason the shopper is told (the device first: it holds whatever the amount).
pub fn unavailable(
    merchant: &[Method],
    link: &[Method],
    device: Device,
    amount: i64,
) -> Vec<(Method, Unavailable)> {
    Method::ALL
        .into_iter()
        .filter(|m| merchant.contains(m) && link.contains(m) && m.has_flow())
        .filter_map(|m| {
            if !m.works_on(device) {
                Some((m, Unavailable::Device))
            } else if amount > m.max_amount() {
                Some((m, Unavailable::OverLimit(m.max_amount())))
            } else {
                None
            }
        })
        .collect()
}

/// Whether any method the merchant enabled (and the server implements) accepts this amount,
/// whatever the device: links above every limit are refused up front.
pub fn amount_fits_some(merchant: &[Method], amount: i64) -> bool {
    merchant
        .iter()
        .any(|m| m.has_flow() && amount <= m.max_amount())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_list_orders_and_dedups() {
        assert_eq!(
            Method::parse_list("konbini, card,card"),
            Some(vec![Method::Card, Method::Konbini])
        );
        assert_eq!(Method::parse_list("card,bitcoin"), None);
        assert_eq!(Method::parse_list(""), Some(vec![]));
    }

    #[test]
    fn garaho_get_every_method() {
        for m in Method::ALL {
            assert!(m.works_on(Device::Garaho), "{m:?}");
        }
    }

    #[test]
    fn feature_phones_get_docomo_only_carrier() {
        assert!(Method::Docomo.works_on(Device::FeaturePhone));
        assert!(!Method::Au.works_on(Device::FeaturePhone));
        assert!(!Method::Softbank.works_on(Device::FeaturePhone));
        assert!(!Method::Banknet.works_on(Device::FeaturePhone));
        assert!(Method::Au.works_on(Device::Smartphone));
    }

    #[test]
    fn unavailable_says_why() {
        let all = Method::ALL.to_vec();
        let u = unavailable(&all, &all, Device::Pc, 350_000);
        assert!(u.contains(&(Method::Konbini, Unavailable::OverLimit(300_000))));
        assert!(u.contains(&(Method::Docomo, Unavailable::OverLimit(100_000))));
        assert!(!u
            .iter()
            .any(|(m, _)| *m == Method::Card || *m == Method::Payeasy));
        let u = unavailable(&all, &all, Device::FeaturePhone, 1000);
        assert_eq!(
            u,
            vec![
                (Method::Banknet, Unavailable::Device),
                (Method::Au, Unavailable::Device),
                (Method::Softbank, Unavailable::Device),
                (Method::Wallet, Unavailable::Device)
            ]
        );
        assert!(unavailable(&[Method::Card], &all, Device::FeaturePhone, 1000).is_empty());
    }

    #[test]
    fn limits() {
        assert_eq!(Method::Konbini.max_amount(), 300_000);
        assert_eq!(Method::Docomo.max_amount(), 100_000);
    }
}
