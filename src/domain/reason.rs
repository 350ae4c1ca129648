//! Why a shopper request or a link was refused: a stable code and the messages shown for it.
//! Pure values; the edge maps each to an HTTP status (`error::http_status`).

/// Why a shopper request was refused. The code is stable and shown on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MissingField,
    UnknownField,
    InvalidField,
    BadSignature,
    UnknownMerchant,
    UnknownKey,
    LinkExpired,
    ExpiryTooFar,
    InvalidAmount,
    AmountOverLimit,
    ReturnUrlNotAllowed,
    OrderConflict,
    NoMethodAvailable,
    /// None of the methods the link asks for has a connector in the merchant's mode (a live
    /// merchant without a processor account for them).
    MethodsUnavailable,
    MerchantDisabled,
    SessionExpired,
    BadCsrf,
    MethodNotAvailable,
    CheckoutClosed,
    Locked,
    BadRequest,
    NotFound,
    /// A bank or carrier result that failed its signature or does not match the payment.
    ReturnRejected,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingField => "missing_field",
            Reason::UnknownField => "unknown_field",
            Reason::InvalidField => "invalid_field",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownMerchant => "unknown_merchant",
            Reason::UnknownKey => "unknown_key",
            Reason::LinkExpired => "link_expired",
            Reason::ExpiryTooFar => "expiry_too_far",
            Reason::InvalidAmount => "invalid_amount",
            Reason::AmountOverLimit => "amount_over_limit",
            Reason::ReturnUrlNotAllowed => "return_url_not_allowed",
            Reason::OrderConflict => "order_conflict",
            Reason::NoMethodAvailable => "no_method_available",
            Reason::MethodsUnavailable => "methods_unavailable",
            Reason::MerchantDisabled => "merchant_disabled",
            Reason::SessionExpired => "session_expired",
            Reason::BadCsrf => "bad_csrf",
            Reason::MethodNotAvailable => "method_not_available",
            Reason::CheckoutClosed => "checkout_closed",
            Reason::Locked => "checkout_locked",
            Reason::BadRequest => "bad_request",
            Reason::NotFound => "not_found",
            Reason::ReturnRejected => "return_rejected",
        }
    }

    pub fn message_ja(self) -> &'static str {
        match self {
            Reason::MissingField => "決済に必要な項目が不足しています。",
            Reason::UnknownField => "決済リンクに不明な項目が含まれています。",
            Reason::InvalidField => "決済リンクの項目の形式が正しくありません。",
            Reason::BadSignature => "決済リンクの署名を確認できませんでした。",
            Reason::UnknownMerchant => "加盟店を確認できませんでした。",
            Reason::UnknownKey => "決済リンクの鍵を確認できませんでした。",
            Reason::LinkExpired => {
                "決済リンクの有効期限が切れています。ショップから手続きをやり直してください。"
            }
            Reason::ExpiryTooFar => "決済リンクの有効期限が長すぎます。",
            Reason::InvalidAmount => "決済金額が正しくありません。",
            Reason::AmountOverLimit => "この金額はご利用いただける決済方法の上限を超えています。",
            Reason::ReturnUrlNotAllowed => "戻り先URLが加盟店に登録されていません。",
            Reason::OrderConflict => "この取引IDは別の内容ですでに受け付けています。",
            Reason::NoMethodAvailable => "この端末・金額でご利用いただける決済方法がありません。",
            Reason::MethodsUnavailable => {
                "このショップでは、ご指定の決済方法を現在ご利用いただけません。ショップにお問い合わせください。"
            }
            Reason::MerchantDisabled => "この加盟店は現在決済を受け付けていません。",
            Reason::SessionExpired => {
                "お手続きの有効時間が過ぎました。ショップから手続きをやり直してください。"
            }
            Reason::BadCsrf => "画面の有効期限が切れました。もう一度お試しください。",
            Reason::MethodNotAvailable => "選択された決済方法はご利用いただけません。",
            Reason::CheckoutClosed => "このお支払いはすでに手続き済みです。",
            Reason::Locked => "入力の誤りが続いたため、このお支払いは一時的にロックされました。",
            Reason::BadRequest => "リクエストが正しくありません。",
            Reason::NotFound => "ページが見つかりません。",
            Reason::ReturnRejected => {
                "お支払い結果を確認できませんでした。お支払いは完了していません。"
            }
        }
    }

    pub fn message_en(self) -> &'static str {
        match self {
            Reason::MissingField => "A required field is missing from the payment link.",
            Reason::UnknownField => "The payment link contains an unknown field.",
            Reason::InvalidField => "A field of the payment link is malformed.",
            Reason::BadSignature => "The payment link's signature could not be verified.",
            Reason::UnknownMerchant => "Unknown merchant.",
            Reason::UnknownKey => "Unknown signing key.",
            Reason::LinkExpired => {
                "This payment link has expired. Please start again from the shop."
            }
            Reason::ExpiryTooFar => "The payment link's expiry is too far in the future.",
            Reason::InvalidAmount => "The amount is not a positive whole number of yen.",
            Reason::AmountOverLimit => {
                "The amount exceeds the limit of every available payment method."
            }
            Reason::ReturnUrlNotAllowed => "The return URL is not registered for this merchant.",
            Reason::OrderConflict => "This order id was already used with different content.",
            Reason::NoMethodAvailable => {
                "No payment method is available for this device and amount."
            }
            Reason::MethodsUnavailable => {
                "None of the requested payment methods can be used at this shop right now. Please contact the shop."
            }
            Reason::MerchantDisabled => "This merchant is not accepting payments.",
            Reason::SessionExpired => "Your session has expired. Please start again from the shop.",
            Reason::BadCsrf => "This form has expired. Please try again.",
            Reason::MethodNotAvailable => "The chosen payment method is not available.",
            Reason::CheckoutClosed => "This payment has already been made.",
            Reason::Locked => "Too many failed attempts: this checkout is locked for now.",
            Reason::BadRequest => "Bad request.",
            Reason::NotFound => "Page not found.",
            Reason::ReturnRejected => {
                "The payment result could not be verified. The payment has not been made."
            }
        }
    }
}

impl Reason {
    /// Every reason: the docs drift test checks that each code is documented.
    pub const ALL: &'static [Reason] = &[
        Reason::MissingField,
        Reason::UnknownField,
        Reason::InvalidField,
        Reason::BadSignature,
        Reason::UnknownMerchant,
        Reason::UnknownKey,
        Reason::LinkExpired,
        Reason::ExpiryTooFar,
        Reason::InvalidAmount,
        Reason::AmountOverLimit,
        Reason::ReturnUrlNotAllowed,
        Reason::OrderConflict,
        Reason::NoMethodAvailable,
        Reason::MethodsUnavailable,
        Reason::MerchantDisabled,
        Reason::SessionExpired,
        Reason::BadCsrf,
        Reason::MethodNotAvailable,
        Reason::CheckoutClosed,
        Reason::Locked,
        Reason::BadRequest,
        Reason::NotFound,
        Reason::ReturnRejected,
    ];
}

#[cfg(test)]
mod tests {
    use super::Reason;

    /// `Reason::ALL` names exactly the variants declared in the enum above (read from this
    /// file), so a new reason cannot be left out of it, nor out of the docs drift test.
    #[test]
    fn all_lists_every_reason_once() {
        let src = include_str!("reason.rs");
        let start = src.find("pub enum Reason {").expect("enum") + "pub enum Reason {".len();
        let body = &src[start..start + src[start..].find('}').expect("end of enum")];
        let mut declared: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("#["))
            .map(|l| l.trim_end_matches(','))
            .collect();
        let mut listed: Vec<String> = Reason::ALL.iter().map(|r| format!("{r:?}")).collect();
        declared.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, declared, "Reason::ALL must list every variant once");
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len(), "codes are unique");
    }
}
