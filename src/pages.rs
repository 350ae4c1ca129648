//! One askama struct per page, and the page chrome (theme, layout, language) they share.
//!
//! PC and smartphone share one markup set (`templates/web/`) because they differ only in CSS
//! and viewport; feature phones get their own (`templates/fp/`): no script, no CSS, Shift_JIS.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::device::Device;
use crate::error::ErrorInfo;
use crate::state::AppState;
use crate::themes::Theme;
use crate::util::format_yen;

/// Declares a page's data once with its two templates: `web/…` (PC and smartphone) and `fp/…`
/// (feature phones). The templates deref to the data, so they read its fields as their own;
/// `render` picks the template for the device.
macro_rules! device_page {
    (
        $(#[$meta:meta])*
        pub struct $view:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }
        web: $web:ident = $web_path:literal,
        fp: $fp:ident = $fp_path:literal $(,)?
    ) => {
        $(#[$meta])*
        pub struct $view {
            $($(#[$fmeta])* pub $field: $ty),*
        }

        #[derive(Template)]
        #[template(path = $web_path)]
        pub struct $web(pub $view);

        #[derive(Template)]
        #[template(path = $fp_path)]
        pub struct $fp(pub $view);

        impl std::ops::Deref for $web {
            type Target = $view;
            fn deref(&self) -> &$view {
                &self.0
            }
        }

        impl std::ops::Deref for $fp {
            type Target = $view;
            fn deref(&self) -> &$view {
                &self.0
            }
        }

        impl $view {
            /// This page's HTML in the device's template.
            pub fn html(self, device: Device) -> askama::Result<String> {
                match device {
                    Device::FeaturePhone => $fp(self).render(),
                    _ => $web(self).render(),
                }
            }

            /// This page in the device's template, answered with `status`.
            pub fn render(
                self,
                device: Device,
                status: StatusCode,
            ) -> Result<Response, crate::error::AppError> {
                match device {
                    Device::FeaturePhone => {
                        crate::render::page_with_status(device, status, &$fp(self))
                    }
                    _ => crate::render::page_with_status(device, status, &$web(self)),
                }
            }
        }
    };
}

/// What every page needs around its content.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub shop_name: String,
    pub theme: Theme,
    pub app_css: String,
    /// `pc` or `sp` (web pages) or `fp`.
    pub layout: &'static str,
    pub lang: String,
    /// Layout switch targets, present on PC and smartphone pages of a session.
    pub to_pc: Option<String>,
    pub to_sp: Option<String>,
    /// The merchant is in test mode: every page says nothing real is charged.
    pub test_mode: bool,
    /// The ja/en switch of a session page (PC and smartphone).
    pub other_lang: Option<String>,
}

impl Chrome {
    pub fn new(state: &AppState, device: Device, shop_name: &str, theme: &str, lang: &str) -> Self {
        Chrome {
            shop_name: shop_name.to_owned(),
            theme: state.themes.resolve(theme).into_owned(),
            app_css: state.app_css.to_string(),
            layout: device.code(),
            lang: lang.to_owned(),
            to_pc: None,
            to_sp: None,
            test_mode: false,
            other_lang: None,
        }
    }

    /// Marks the pages of a test-mode merchant (the test-mode banner).
    pub fn test_mode(mut self, test: bool) -> Self {
        self.test_mode = test;
        self
    }

    /// Adds the PC/smartphone switch for a session page.
    pub fn with_switch(mut self, device: Device, token: &str) -> Self {
        if device != Device::FeaturePhone {
            let to = if self.en() { "ja" } else { "en" };
            self.other_lang = Some(format!("/pay/{token}/lang?to={to}"));
        }
        match device {
            Device::Pc => self.to_sp = Some(format!("/pay/{token}/view?to=sp")),
            Device::Smartphone => self.to_pc = Some(format!("/pay/{token}/view?to=pc")),
            Device::Garaho | Device::FeaturePhone => {}
        }
        self
    }

    pub fn en(&self) -> bool {
        self.lang == "en"
    }

    /// The compact ガラホ layout: actions carry numbered accesskeys (1–9, 0 = back), shown as
    /// "1." before their label as on feature phones.
    pub fn keys(&self) -> bool {
        self.layout == "gh"
    }

    // The shopper's words for the actions every page shares, in one place.

    /// Back to the method selector (every method page, failed results).
    pub fn other_method(&self) -> &'static str {
        if self.en() {
            "Choose another payment method"
        } else {
            "別の方法で支払う"
        }
    }

    /// Back to the shop.
    pub fn back_to_shop(&self) -> &'static str {
        if self.en() {
            "Return to the shop"
        } else {
            "ショップに戻る"
        }
    }
}

/// The order as shown on every checkout page.
#[derive(Clone, Debug)]
pub struct OrderView {
    pub order_id: String,
    pub item_name: String,
    pub amount: String,
}

impl OrderView {
    pub fn new(order_id: &str, item_name: &str, amount: i64) -> Self {
        OrderView {
            order_id: order_id.to_owned(),
            item_name: item_name.to_owned(),
            amount: format_yen(amount),
        }
    }
}

/// The hand-off block of the PC selector: the QR code image, the state URL its script polls,
/// the page's own URL (reloading shows what the phone did) and the script.
#[derive(Clone, Debug)]
pub struct HandoffView {
    pub qr: String,
    pub state: String,
    pub reload: String,
    pub script: String,
}

#[derive(Clone, Debug)]
pub struct MethodView {
    pub code: &'static str,
    pub name: &'static str,
    pub accesskey: usize,
    /// Our own badge for the method, when it has one (wallets); PC and smartphone only.
    pub badge: &'static str,
}

/// The selector badge of a method (empty when it has none): wallets show the first brand the
/// merchant offers (PayPay unless it is switched off).
pub fn method_badge(
    m: crate::domain::Method,
    first_wallet: Option<crate::domain::wallet::Wallet>,
) -> &'static str {
    match (m, first_wallet) {
        (crate::domain::Method::Wallet, Some(w)) => {
            crate::badges::wallet(w.code()).unwrap_or_default()
        }
        _ => "",
    }
}

device_page! {
    /// The payment-method selector.
    pub struct SelectorPage {
        pub c: Chrome,
        pub order: OrderView,
        pub methods: Vec<MethodView>,
        pub action: String,
        pub csrf: String,
        pub cancel_url: Option<String>,
        /// Why a method is missing on this phone (card through a processor's browser form);
        /// feature phones only.
        pub note: Option<String>,
        /// Why an enabled method is not offered for this order (amount limit, device).
        pub unavailable: Vec<String>,
        /// The PC → phone hand-off QR code; PC layout, open checkouts only.
        pub handoff: Option<HandoffView>,
    }
    web: WebSelector = "web/selector.html",
    fp: FpSelector = "fp/selector.html",
}

device_page! {
    /// A checkout that can no longer be paid (already paid, or closed): shows its state.
    pub struct ClosedPage {
        pub c: Chrome,
        pub order: OrderView,
        pub status_ja: String,
        pub status_en: String,
        pub return_url: Option<String>,
    }
    web: WebClosed = "web/closed.html",
    fp: FpClosed = "fp/closed.html",
}

device_page! {
    /// A shopper-facing error (see `error_page`).
    pub struct ErrorPage {
        pub c: Chrome,
        pub status: u16,
        pub info: ErrorInfo,
        pub title: &'static str,
        pub message: String,
        /// Back to the shop (cancel URL, else return URL) when the merchant is known.
        pub back_url: Option<String>,
    }
    web: WebError = "web/error.html",
    fp: FpError = "fp/error.html",
}

/// The shopper's wording of an error: a heading saying what happened and a sentence saying
/// what to do, in plain words; reasons without their own wording use their message.
pub fn error_text(info: &ErrorInfo, en: bool) -> (&'static str, String) {
    let own = |ja: &'static str, en_s: &'static str| if en { en_s } else { ja };
    let (title, body): (&'static str, Option<&'static str>) = match info.code {
        "link_expired" => (
            own("お支払いリンクの有効期限が切れています", "This payment link has expired"),
            Some(own(
                "お手数ですが、ショップに戻ってもう一度お手続きください。",
                "Please go back to the shop and start the payment again.",
            )),
        ),
        "bad_signature" | "unknown_key" => (
            own("このお支払いリンクは正しくありません", "This payment link is not valid"),
            Some(own(
                "リンクが途中で変わったか、一部が欠けている可能性があります。ショップのページからもう一度お手続きください。",
                "The link may have been changed or cut short. Please start again from the shop's page.",
            )),
        ),
        "session_expired" => (
            own("お手続きの有効時間が過ぎました", "This payment session has timed out"),
            Some(own(
                "安全のため、時間が経ったお手続きは終了しています。ショップに戻ってもう一度お手続きください。",
                "For your security, sessions end after a while. Please go back to the shop and start again.",
            )),
        ),
        "checkout_locked" => (
            own("カードのご利用を一時的に停止しています", "Card payment is paused for this order"),
            Some(own(
                "入力の誤りが続いたため、安全のためこのご注文ではしばらくカードをご利用いただけません。時間をおいてお試しいただくか、ショップにお問い合わせください。",
                "After several failed attempts, card payment is paused for this order for your security. Please try again later or contact the shop.",
            )),
        ),
        "internal_error" => (
            own("ただいまお手続きできません", "We can't take your payment right now"),
            None,
        ),
        _ => (
            own("お支払いを続けられません", "We couldn't continue with your payment"),
            None,
        ),
    };
    let body = body.map(str::to_owned).unwrap_or_else(|| {
        if en {
            info.message_en.clone()
        } else {
            info.message_ja.to_owned()
        }
    });
    (title, body)
}

/// Renders the device-appropriate error page: in the merchant's theme, language and test-mode
/// state with a link back to the shop when the request names the merchant
/// (`error_shop`), else in the neutral default theme.
pub fn error_page(
    state: &AppState,
    device: Device,
    status: StatusCode,
    info: &ErrorInfo,
    shop: Option<&crate::error_shop::ErrorShop>,
) -> Response {
    let c = match shop {
        Some(s) => Chrome::new(state, device, &s.name, &s.theme, &s.lang).test_mode(s.test_mode),
        None => Chrome::new(
            state,
            device,
            "Kakehashi",
            crate::themes::DEFAULT_THEME,
            "ja",
        ),
    };
    let (title, message) = error_text(info, c.en());
    let back_url = shop.and_then(|s| s.back_url.clone());
    let rendered = ErrorPage {
        c,
        status: status.as_u16(),
        info: info.clone(),
        title,
        message,
        back_url,
    }
    .html(device);
    match rendered {
        Ok(html) => crate::render::html_response(device, status, html),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            (status, info.code).into_response()
        }
    }
}

/// One payment option in the card form's select.
#[derive(Clone, Debug)]
pub struct OptionView {
    pub code: String,
    pub label: String,
    pub selected: bool,
    /// Codes of the brands that do not support this option (space-separated), for the card
    /// script; empty for most options, which keeps the page light.
    pub not_for: String,
}

/// The card form (PC / smartphone). Never carries the card number or code back.
#[derive(Template)]
#[template(path = "web/card_form.html")]
pub struct WebCardForm {
    pub c: Chrome,
    pub order: OrderView,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
    pub options: Vec<OptionView>,
    pub holder: bool,
    pub holder_value: String,
    pub exp_month: String,
    pub exp_year: String,
    pub errors: crate::flows::card::FieldErrors,
    pub form_error: Option<String>,
    /// URL of the card form script (checks as the shopper types; the form works without it).
    pub script: String,
    /// This month in Japan (`YYYY-MM`): the script's expiry check agrees with the server's.
    pub today: String,
    /// The script's messages, `(name, text)`: the server's own wording for the same errors.
    pub script_msgs: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "fp/card_form.html")]
pub struct FpCardForm {
    pub c: Chrome,
    pub order: OrderView,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
    pub options: Vec<OptionView>,
    pub holder: bool,
    pub holder_value: String,
    pub exp_month: String,
    pub exp_year: String,
    pub errors: crate::flows::card::FieldErrors,
    pub form_error: Option<String>,
}

/// The sandbox issuer's 3-D Secure challenge page.
#[derive(Template)]
#[template(path = "web/card_challenge.html")]
pub struct WebChallenge {
    pub c: Chrome,
    pub order: OrderView,
    pub action: String,
    pub csrf: String,
    pub program: String,
    pub masked: String,
    pub attempts_left: u32,
    pub wrong_code: bool,
    /// Leave the challenge for the method selector (POST, with the CSRF token).
    pub cancel_action: String,
}

#[derive(Template)]
#[template(path = "fp/card_challenge.html")]
pub struct FpChallenge {
    pub c: Chrome,
    pub order: OrderView,
    pub action: String,
    pub csrf: String,
    pub program: String,
    pub masked: String,
    pub attempts_left: u32,
    pub wrong_code: bool,
    /// Leave the challenge for the method selector (POST, with the CSRF token).
    pub cancel_action: String,
}

device_page! {
    /// A payment result: success, failure (with retry) or in progress.
    pub struct ResultPage {
        pub c: Chrome,
        pub order: OrderView,
        /// `success`, `failure` or `pending`.
        pub kind: &'static str,
        pub title: String,
        pub message: String,
        pub details: Vec<(String, String)>,
        pub return_url: Option<String>,
        pub retry_url: Option<String>,
        pub other_url: Option<String>,
    }
    web: WebResult = "web/result.html",
    fp: FpResult = "fp/result.html",
}

/// The demo shop's return page.
#[derive(Template)]
#[template(path = "web/demo_return.html")]
pub struct DemoReturn {
    pub c: Chrome,
    pub verified: bool,
    pub fields: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------
// Konbini (コンビニ決済) and Pay-easy pages
// ---------------------------------------------------------------------------

/// A convenience-store chain the shopper can pick.
#[derive(Clone, Debug)]
pub struct ChainView {
    pub code: &'static str,
    pub name: &'static str,
    pub accesskey: usize,
}

impl ChainView {
    /// The chain's badge (inline SVG of ours), empty if none.
    pub fn badge(&self) -> &'static str {
        crate::badges::chain(self.code).unwrap_or("")
    }
}

/// A refusal shown on a form page (the form is shown again so the shopper can choose again).
#[derive(Clone, Debug)]
pub struct FormErrorView {
    pub code: &'static str,
    pub message: String,
}

/// The chain choice form.
#[derive(Clone, Debug)]
pub struct KonbiniChoice {
    /// The chain chosen, for its confirm step (issuing is one more tap away; 戻る goes back).
    pub confirm: Option<ChainView>,
    pub chains: Vec<ChainView>,
    /// Why some enabled chain is not offered (FamilyMart with a same-day deadline).
    pub note: Option<String>,
    pub deadline: String,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
    pub error: Option<FormErrorView>,
}

device_page! {
    pub struct KonbiniChoicePage {
        pub c: Chrome,
        pub order: OrderView,
        pub f: KonbiniChoice,
    }
    web: WebKonbiniChoice = "web/konbini_choice.html",
    fp: FpKonbiniChoice = "fp/konbini_choice.html",
}

/// The Pay-easy or bank-transfer confirmation form (issuing a number is a POST, never a GET
/// side effect).
#[derive(Clone, Debug)]
pub struct PayeasyStart {
    /// `payeasy` or `bank_transfer`: which method's words the form shows.
    pub kind: &'static str,
    pub deadline: String,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
    pub error: Option<FormErrorView>,
}

device_page! {
    pub struct PayeasyStartPage {
        pub c: Chrome,
        pub order: OrderView,
        pub f: PayeasyStart,
    }
    web: WebPayeasyStart = "web/payeasy_start.html",
    fp: FpPayeasyStart = "fp/payeasy_start.html",
}

/// The form that withdraws an unpaid number so the shopper can pay another way.
#[derive(Clone, Debug)]
pub struct NumberChange {
    pub action: String,
    pub csrf: String,
}

/// One number the shopper must note (払込票番号, お客様番号, 確認番号, 収納機関番号, ...).
#[derive(Clone, Debug)]
pub struct NumberFieldView {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
}

impl NumberFieldView {
    /// The value in groups of four digits from the left, shown apart (CSS margin, so a copy
    /// gives the plain number). A value that is not all digits is one group.
    pub fn groups(&self) -> Vec<String> {
        group_digits(&self.value)
    }
}

/// `12345678901234567890` → `["1234", "5678", "9012", "3456", "7890"]`.
pub fn group_digits(value: &str) -> Vec<String> {
    if value.len() <= 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return vec![value.to_owned()];
    }
    value
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// A deadline as the shopper reads it, in Japan time with the weekday:
/// `2026年12月8日(火) 23:59` / `Tue 8 Dec 2026, 23:59`.
pub fn shopper_deadline(ms: i64, en: bool) -> String {
    crate::domain::jst::shopper_text(ms, en)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_in_fours() {
        assert_eq!(
            group_digits("12345678901234567890"),
            ["1234", "5678", "9012", "3456", "7890"]
        );
        assert_eq!(group_digits("58091"), ["5809", "1"]);
        assert_eq!(group_digits("1234"), ["1234"]);
        assert_eq!(group_digits("AB-12345"), ["AB-12345"]);
    }
}

/// An issued payment number with its deadline and how to pay.
#[derive(Clone, Debug)]
pub struct NumberPage {
    /// The "change store or method" form, while the number is unpaid.
    pub change: Option<NumberChange>,
    /// A notice above the number (a change that could not be made).
    pub notice: Option<String>,
    /// The chain's (or Pay-easy's) badge.
    pub badge: Option<&'static str>,
    /// URL of our copy / print script.
    pub script: String,
    pub payment_id: String,
    /// e.g. 「セブン-イレブンでのお支払い」.
    pub title: String,
    /// Status code (CSS hook and tests) and the sentence the shopper reads.
    pub status: &'static str,
    pub status_text: String,
    /// False once the number can no longer be used (expired): the numbers are then hidden.
    pub payable: bool,
    pub fields: Vec<NumberFieldView>,
    /// Bank transfer: the 振込先 lines (key, label, value); empty for numbers.
    pub account: Vec<(&'static str, &'static str, String)>,
    /// "Try again" while the number's issue has not completed (`issuing`).
    pub retry: Option<NumberChange>,
    pub deadline: String,
    pub amount: String,
    pub steps: Vec<&'static str>,
    pub test_mode: bool,
    pub return_url: String,
    /// The processor's own instructions page for this number (e.g. KOMOJU's), if it gave one.
    pub instructions_url: Option<String>,
    /// "Send these instructions to my e-mail" (docs/messages.md), when the server sends e-mail
    /// and the number can still be paid.
    pub mail: Option<MailForm>,
}

/// The number page's e-mail form.
#[derive(Clone, Debug)]
pub struct MailForm {
    pub action: String,
    pub csrf: String,
    /// The outcome of the last post (sent, or why not).
    pub notice: Option<String>,
}

device_page! {
    pub struct IssuedNumberPage {
        pub c: Chrome,
        pub order: OrderView,
        pub n: NumberPage,
    }
    web: WebNumber = "web/number.html",
    fp: FpNumber = "fp/number.html",
}

// ---------------------------------------------------------------------------
// Bank net and carrier billing (flows::bank, flows::carrier)
// ---------------------------------------------------------------------------

/// A choice in a list of buttons (bank, billing kind, sandbox decision).
#[derive(Clone, Debug)]
pub struct Choice {
    pub value: &'static str,
    pub label: String,
    pub accesskey: usize,
}

/// Bank choice before the redirect to the bank (PC and smartphone only).
#[derive(Template)]
#[template(path = "web/bank_choose.html")]
pub struct WebBankChoose {
    pub c: Chrome,
    pub order: OrderView,
    pub banks: Vec<Choice>,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
}

/// A wallet button: its code, name and our own badge (inline SVG, decorative).
#[derive(Clone, Debug)]
pub struct WalletChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub badge: &'static str,
}

/// Wallet choice before the redirect to the wallet (PC and smartphone only).
#[derive(Template)]
#[template(path = "web/wallet_choose.html")]
pub struct WebWalletChoose {
    pub c: Chrome,
    pub order: OrderView,
    pub wallets: Vec<WalletChoice>,
    pub action: String,
    pub csrf: String,
    pub back_url: String,
}

device_page! {
    /// Carrier confirmation before the redirect to the carrier (都度 / 継続 when enabled).
    pub struct CarrierConfirmPage {
        pub c: Chrome,
        pub order: OrderView,
        pub carrier_name: &'static str,
        /// What paying this way means for this shopper ([`carrier_note`]).
        pub note: &'static str,
        pub billing: Vec<Choice>,
        pub action: String,
        pub csrf: String,
        pub back_url: String,
    }
    web: WebCarrierConfirm = "web/carrier_confirm.html",
    fp: FpCarrierConfirm = "fp/carrier_confirm.html",
}

/// What paying by carrier billing means. A feature phone of au or SoftBank is offered d払い
/// only (the carriers' rule, see `domain::method`): it is said plainly that d払い is docomo's,
/// paid with a docomo d ACCOUNT, and never added to that phone's own bill.
pub fn carrier_note(
    carrier: crate::domain::carrier::Carrier,
    device: Device,
    phone: crate::device::FpCarrier,
    en: bool,
) -> &'static str {
    use crate::device::FpCarrier;
    use crate::domain::carrier::Carrier;
    let other_carriers_phone =
        carrier == Carrier::Docomo && device == Device::FeaturePhone && phone != FpCarrier::Docomo;
    match (other_carriers_phone, en) {
        (true, false) => "d払いは、NTTドコモのdアカウントでのお支払いです。お使いの携帯電話（auやソフトバンク）のご利用料金とは合算されません。ドコモの画面でdアカウントのIDとパスワードを入力してください。",
        (true, true) => "d Barai is docomo's payment service, paid with a docomo d ACCOUNT. It is not added to your au or SoftBank phone bill. You will log in with your d ACCOUNT ID and password on docomo's page.",
        (false, false) => "代金は携帯電話のご利用料金と合わせてお支払いいただきます。携帯電話会社の画面で電話番号と暗証番号を入力してください。",
        (false, true) => "The amount is added to your phone bill. You will log in on the carrier's page with your phone number and payment password.",
    }
}

/// What a bank/carrier result page says.
#[derive(Clone, Debug)]
pub struct PayResult {
    pub ok: bool,
    /// Still waiting for the bank (the shopper came back without a result).
    pub waiting: bool,
    pub method_name: &'static str,
    pub payment_id: String,
    pub status_label: &'static str,
    /// Why it failed, when we know (e.g. the carrier monthly limit).
    pub message: Option<String>,
    /// "ショップに戻る": the checkout's return_url with the signed result.
    pub return_link: Option<String>,
    /// "別の方法で支払う": back to the selector.
    pub retry_url: Option<String>,
}

device_page! {
    pub struct PayResultPage {
        pub c: Chrome,
        pub order: OrderView,
        pub r: PayResult,
    }
    web: WebPayResult = "web/pay_result.html",
    fp: FpPayResult = "fp/pay_result.html",
}

/// A sandbox institution page (bank net, wallets): deliberately not the merchant's theme, so
/// nobody mistakes it for a real bank or wallet, or for the shop.
#[derive(Template)]
#[template(path = "web/sandbox_redirect.html")]
pub struct WebSandboxInstitution {
    pub app_css: String,
    /// In the title: `みずほ銀行 ネットバンキング`, `PayPay`.
    pub title_name: String,
    /// What the page stands in for, after 「テスト環境（サンドボックス）の」.
    pub banner_ja: &'static str,
    pub banner_en: &'static str,
    pub heading: String,
    pub item_name: String,
    pub amount: String,
    pub action: String,
    pub csrf: String,
    pub choices: Vec<Choice>,
    /// The shopper chose to walk away: tell them nothing comes back.
    pub left: bool,
}

/// How a sandbox institution page names what it stands in for.
pub trait SandboxCopy {
    const BANNER_JA: &'static str;
    const BANNER_EN: &'static str;
    fn sandbox_title(self) -> String;
    fn sandbox_heading(self) -> String;
}

impl SandboxCopy for crate::domain::bank::Bank {
    const BANNER_JA: &'static str = "銀行画面です。実際の銀行ではありません";
    const BANNER_EN: &'static str = "Sandbox bank page: not a real bank";
    fn sandbox_title(self) -> String {
        format!("{} ネットバンキング", self.name_ja())
    }
    fn sandbox_heading(self) -> String {
        format!("{}（金融機関コード {}）", self.name_ja(), self.code())
    }
}

impl SandboxCopy for crate::domain::wallet::Wallet {
    const BANNER_JA: &'static str = "スマホ決済画面です。実際のサービスではありません";
    const BANNER_EN: &'static str = "Sandbox wallet page: not a real wallet";
    fn sandbox_title(self) -> String {
        self.name_ja().to_owned()
    }
    fn sandbox_heading(self) -> String {
        self.name_ja().to_owned()
    }
}

device_page! {
    /// The sandbox carrier's login / confirmation page.
    pub struct SandboxCarrierPage {
        /// The stylesheet, inlined on PC and smartphone (feature phones get none).
        pub app_css: String,
        pub carrier_name: &'static str,
        pub item_name: String,
        pub amount: String,
        pub billing_label: &'static str,
        pub action: String,
        pub csrf: String,
        /// false: login form; true: confirmation (承認) step.
        pub confirm: bool,
        pub error: Option<&'static str>,
        pub phone: String,
    }
    web: WebSandboxCarrier = "web/sandbox_carrier.html",
    fp: FpSandboxCarrier = "fp/sandbox_carrier.html",
}

/// An account type choice on the refund account form.
#[derive(Clone, Debug)]
pub struct AccountTypeChoice {
    pub code: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

device_page! {
    /// The shopper's bank account for a refund request (返金依頼), reached by a signed link:
    /// `stage` is `form` (with any errors), `done` once given, or `closed` after the payout or
    /// withdrawal.
    pub struct RefundAccountPage {
        pub c: Chrome,
        pub order_id: String,
        pub amount: String,
        pub stage: &'static str,
        pub action: String,
        pub csrf: String,
        pub bank_code: String,
        pub branch_code: String,
        pub types: Vec<AccountTypeChoice>,
        pub number: String,
        pub holder: String,
        /// One sentence per wrong field, empty when right.
        pub e_bank_code: String,
        pub e_branch_code: String,
        pub e_account_type: String,
        pub e_number: String,
        pub e_holder: String,
        pub has_errors: bool,
    }
    web: WebRefundAccount = "web/refund_account.html",
    fp: FpRefundAccount = "fp/refund_account.html",
}
