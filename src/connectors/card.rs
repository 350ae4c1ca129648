//! Card acquirer connector: the `CardConnector` trait the checkout talks to, its request/outcome types, and the deterministic sandbox (test mode) implementation.
//!
//! Pages and the state machine only see this trait, so a live acquirer can be
//! added as another implementation without touching them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rand::Rng;

use crate::connectors::bank::SANDBOX_REFUSES_LIVE;
use crate::domain::card::{
    allowed_for_brand, Brand, CardHolder, CardNumber, CardStatus, Expiry, PaymentOption,
    SecurityCode, ThreeDsResult, ThreeDsStatus,
};
use crate::domain::Mode;

/// Wrong one-time codes a shopper may enter on the challenge page before the
/// payment fails. The caller counts them (see [`ChallengeOutcome::WrongCode`])
/// because the connector may not remember across instances or restarts.
pub const MAX_CHALLENGE_ATTEMPTS: u32 = 3;

/// The one-time code that passes every sandbox challenge.
pub const SANDBOX_OTP: &str = "123456";

/// Attempts remaining after `wrong_attempts` wrong codes.
pub fn challenge_attempts_left(wrong_attempts: u32) -> u32 {
    MAX_CHALLENGE_ATTEMPTS.saturating_sub(wrong_attempts)
}

// ---------------------------------------------------------------------------
// Requests and outcomes
// ---------------------------------------------------------------------------

/// Start of EMV 3-D Secure for one payment.
#[derive(Debug, Clone)]
pub struct AuthenticateRequest {
    /// Our payment id; lets the connector correlate and deduplicate.
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub card: CardNumber,
    pub expiry: Expiry,
    /// Yen; 3DS messages carry the purchase amount for risk assessment.
    pub amount: i64,
    /// The security code and holder: a processor that authenticates on its own pages (KOMOJU's
    /// secure token) takes the whole card here, so it never has to pass through us again.
    pub cvc: SecurityCode,
    pub holder: Option<CardHolder>,
    /// Our signed URL the issuer's page sends the shopper back to after a redirect challenge
    /// (`AuthenticateOutcome::Challenge` with an `acs_url`). Connectors that render no page of
    /// their own ignore it.
    pub return_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticateOutcome {
    /// Decided without shopper interaction. The status may be any of
    /// Y/A/N/U/R: proceed to authorization only if
    /// [`ThreeDsResult::allows_authorization`].
    Frictionless(ThreeDsResult),
    /// The issuer wants the shopper to confirm (one-time code).
    Challenge {
        /// Opaque id to pass to [`CardConnector::complete_challenge`]; safe
        /// to store in the payment row or a form field.
        challenge_id: String,
        /// Issuer (ACS) page to send the shopper to. `None` means the
        /// checkout renders its own code-entry page (the sandbox does this).
        acs_url: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// Challenge finished: Y (authenticated) or N (failed, e.g. the issuer
    /// locked the challenge after too many wrong codes).
    Completed(ThreeDsResult),
    /// Wrong code; the shopper may try again. The caller counts wrong codes
    /// and fails the payment at [`MAX_CHALLENGE_ATTEMPTS`].
    WrongCode,
}

/// Authorization (オーソリ) request, sent only after successful 3DS.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub card: CardNumber,
    pub expiry: Expiry,
    pub cvc: SecurityCode,
    pub holder: Option<CardHolder>,
    /// Yen.
    pub amount: i64,
    /// 支払区分, forwarded to the issuer.
    pub option: PaymentOption,
    /// Outcome of 3DS (status and ECI) forwarded to the acquirer.
    pub three_ds: ThreeDsResult,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    Approved {
        /// The connector's transaction id / card token used for capture,
        /// cancel, refund and query. Never contains the card number.
        token: String,
        /// 承認番号 from the issuer (7 digits in Japan); shown in the console.
        approval_code: String,
    },
    Declined {
        reason: DeclineReason,
    },
}

/// Authorization of a card that was authenticated on the processor's own page (a challenge with
/// an `acs_url`): the processor kept the card under the challenge id, so no card data is sent
/// (or held by us) for this step.
#[derive(Debug, Clone)]
pub struct AuthenticatedAuthorizeRequest {
    pub payment_id: String,
    pub mode: Mode,
    /// The `challenge_id` of the redirect challenge (KOMOJU: the secure token id).
    pub challenge_id: String,
    /// Yen.
    pub amount: i64,
    pub option: PaymentOption,
    /// The completed challenge's result; only Y or A may be authorized.
    pub three_ds: ThreeDsResult,
}

/// Why the issuer/acquirer declined an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    InsufficientFunds,
    ExpiredCard,
    DoNotHonour,
    InvalidNumber,
    ProcessingError,
}

impl DeclineReason {
    pub const ALL: [DeclineReason; 5] = [
        DeclineReason::InsufficientFunds,
        DeclineReason::ExpiredCard,
        DeclineReason::DoNotHonour,
        DeclineReason::InvalidNumber,
        DeclineReason::ProcessingError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeclineReason::InsufficientFunds => "insufficient_funds",
            DeclineReason::ExpiredCard => "expired_card",
            DeclineReason::DoNotHonour => "do_not_honour",
            DeclineReason::InvalidNumber => "invalid_number",
            DeclineReason::ProcessingError => "processing_error",
        }
    }

    pub fn parse(code: &str) -> Option<DeclineReason> {
        DeclineReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Shopper message. Deliberately vague for do-not-honour: issuers do not
    /// tell merchants why, and hinting at fraud rules helps fraudsters.
    pub fn message_ja(self) -> &'static str {
        match self {
            DeclineReason::InsufficientFunds => "ご利用可能額を超えているため、お支払いできませんでした。別のカードをご利用いただくか、カード会社にお問い合わせください。",
            DeclineReason::ExpiredCard => "カードの有効期限が切れているため、お支払いできませんでした。別のカードをご利用ください。",
            DeclineReason::DoNotHonour => "このカードはご利用いただけませんでした。詳しくはカード会社にお問い合わせいただくか、別のカードをご利用ください。",
            DeclineReason::InvalidNumber => "カード情報に誤りがあるため、お支払いできませんでした。カード番号をご確認ください。",
            DeclineReason::ProcessingError => "通信エラーによりお支払いを完了できませんでした。お手数ですが、しばらくしてから再度お試しください。",
        }
    }

    pub fn message_en(self) -> &'static str {
        match self {
            DeclineReason::InsufficientFunds => "The payment exceeds the card's available limit. Please use another card or contact your card issuer.",
            DeclineReason::ExpiredCard => "The card has expired. Please use another card.",
            DeclineReason::DoNotHonour => "This card could not be used. Please contact your card issuer or use another card.",
            DeclineReason::InvalidNumber => "The card details are incorrect. Please check the card number.",
            DeclineReason::ProcessingError => "The payment could not be completed because of a processing error. Please try again in a moment.",
        }
    }

    /// Whether retrying the same card later can succeed (a technical error,
    /// not an issuer decision). Only then should the page offer "retry".
    pub fn retryable(self) -> bool {
        matches!(self, DeclineReason::ProcessingError)
    }
}

/// The acquirer's view of a transaction, for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    pub status: CardStatus,
    pub authorized_amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
}

pub use crate::connectors::error::ConnectorError;

// ---------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------

#[async_trait::async_trait]
pub trait CardConnector: Send + Sync {
    /// Start EMV 3-D Secure authentication for a card (returns frictionless result or a challenge).
    async fn authenticate(
        &self,
        req: &AuthenticateRequest,
    ) -> Result<AuthenticateOutcome, ConnectorError>;
    /// Verify a challenge response (the one-time code typed by the shopper on the issuer page).
    async fn complete_challenge(
        &self,
        challenge_id: &str,
        otp: &str,
    ) -> Result<ChallengeOutcome, ConnectorError>;
    /// Authorize (オーソリ) after successful 3DS; declines are `Ok(Declined)`.
    async fn authorize(&self, req: &AuthorizeRequest) -> Result<AuthorizeOutcome, ConnectorError>;
    /// Authorize after a redirect challenge on the processor's page, by the challenge id
    /// (declines are `Ok(Declined)`). Only connectors whose challenges carry an `acs_url`
    /// implement it; the others never see such a challenge.
    async fn authorize_authenticated(
        &self,
        _req: &AuthenticatedAuthorizeRequest,
    ) -> Result<AuthorizeOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest("no_redirect_challenges"))
    }
    /// Whether the connector takes the 支払区分 other than 一括 (installments, bonus, revolving).
    /// When it does not, the card form offers 一括払い only.
    fn takes_installments(&self) -> bool {
        true
    }
    /// Capture (売上確定) up to the authorized amount.
    async fn capture(
        &self,
        token: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;
    /// Cancel (取消) an authorization or an unrefunded capture.
    async fn cancel(&self, token: &str, idempotency_key: &str) -> Result<(), ConnectorError>;
    /// Refund (返金) part or all of a capture.
    async fn refund(
        &self,
        token: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;
    /// The acquirer's current view of a transaction.
    async fn query(&self, token: &str) -> Result<RemoteStatus, ConnectorError>;
    /// Finds an approved authorization by our payment id (the merchant reference acquirers
    /// index), so a payment whose approval arrived but was never recorded (a crash between the
    /// answer and the commit) can be completed by reconciliation.
    async fn find_authorization(
        &self,
        payment_id: &str,
    ) -> Result<Option<FoundAuthorization>, ConnectorError>;
}

/// An approval found by [`CardConnector::find_authorization`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAuthorization {
    pub token: String,
    pub approval_code: String,
    /// The 3-D Secure result the authorization was made with.
    pub three_ds: ThreeDsResult,
}

// ---------------------------------------------------------------------------
// Sandbox
// ---------------------------------------------------------------------------

/// What a sandbox test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxScenario {
    /// 3DS frictionless (Y), authorization approved.
    Frictionless,
    /// 3DS attempted (A), authorization approved.
    Attempted,
    /// 3DS challenge (OTP [`SANDBOX_OTP`]), then approved.
    Challenge,
    /// 3DS failed (N): do not authorize.
    AuthenticationFailed,
    /// Issuer 3DS unavailable (U): do not authorize.
    AuthenticationUnavailable,
    /// Issuer rejected 3DS (R): do not authorize.
    AuthenticationRejected,
    /// 3DS Y, then authorization declined with the reason.
    Decline(DeclineReason),
    /// 3DS Y, approved, but capture is rejected by the acquirer.
    CaptureFails,
}

impl SandboxScenario {
    /// Code embedded in sandbox challenge ids and tokens (no '-' allowed,
    /// since '-' separates the parts).
    pub fn code(self) -> &'static str {
        match self {
            SandboxScenario::Frictionless => "frictionless",
            SandboxScenario::Attempted => "attempted",
            SandboxScenario::Challenge => "challenge",
            SandboxScenario::AuthenticationFailed => "auth_failed",
            SandboxScenario::AuthenticationUnavailable => "auth_unavailable",
            SandboxScenario::AuthenticationRejected => "auth_rejected",
            SandboxScenario::Decline(DeclineReason::InsufficientFunds) => {
                "decline_insufficient_funds"
            }
            SandboxScenario::Decline(DeclineReason::ExpiredCard) => "decline_expired_card",
            SandboxScenario::Decline(DeclineReason::DoNotHonour) => "decline_do_not_honour",
            SandboxScenario::Decline(DeclineReason::InvalidNumber) => "decline_invalid_number",
            SandboxScenario::Decline(DeclineReason::ProcessingError) => "decline_processing_error",
            SandboxScenario::CaptureFails => "capture_fails",
        }
    }

    pub fn from_code(code: &str) -> Option<SandboxScenario> {
        let fixed = [
            SandboxScenario::Frictionless,
            SandboxScenario::Attempted,
            SandboxScenario::Challenge,
            SandboxScenario::AuthenticationFailed,
            SandboxScenario::AuthenticationUnavailable,
            SandboxScenario::AuthenticationRejected,
            SandboxScenario::CaptureFails,
        ];
        fixed
            .into_iter()
            .chain(DeclineReason::ALL.map(SandboxScenario::Decline))
            .find(|s| s.code() == code)
    }
}

/// A sandbox test card, for docs, the test-mode page hint and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxCard {
    /// Grouped as printed, e.g. "4111 1111 1111 1111".
    pub number: &'static str,
    pub brand: Brand,
    pub scenario: SandboxScenario,
    pub description_ja: &'static str,
    pub description_en: &'static str,
}

impl SandboxCard {
    /// The number without spaces.
    pub fn digits(&self) -> String {
        self.number.chars().filter(|c| !c.is_whitespace()).collect()
    }
}

static SANDBOX_CARDS: &[SandboxCard] = &[
    SandboxCard {
        number: "4111 1111 1111 1111",
        brand: Brand::Visa,
        scenario: SandboxScenario::Frictionless,
        description_ja: "3Dセキュア認証成功（フリクションレス、Y / ECI 05）→ オーソリ承認",
        description_en: "3-D Secure frictionless (Y, ECI 05) → approved",
    },
    SandboxCard {
        number: "5555 5555 5555 4444",
        brand: Brand::Mastercard,
        scenario: SandboxScenario::Frictionless,
        description_ja: "3Dセキュア認証成功（フリクションレス、Y / ECI 02）→ オーソリ承認",
        description_en: "3-D Secure frictionless (Y, ECI 02) → approved",
    },
    SandboxCard {
        number: "2221 0000 0000 0009",
        brand: Brand::Mastercard,
        scenario: SandboxScenario::Frictionless,
        description_ja:
            "Mastercard 2シリーズ。3Dセキュア認証成功（フリクションレス）→ オーソリ承認",
        description_en: "Mastercard 2-series; 3-D Secure frictionless (Y) → approved",
    },
    SandboxCard {
        number: "3530 1113 3330 0000",
        brand: Brand::Jcb,
        scenario: SandboxScenario::Frictionless,
        description_ja: "3Dセキュア認証成功（フリクションレス、Y / ECI 05）→ オーソリ承認",
        description_en: "3-D Secure frictionless (Y, ECI 05) → approved",
    },
    SandboxCard {
        number: "3782 822463 10005",
        brand: Brand::Amex,
        scenario: SandboxScenario::Frictionless,
        description_ja: "3Dセキュア認証成功（フリクションレス、Y / ECI 05）→ オーソリ承認",
        description_en: "3-D Secure frictionless (Y, ECI 05) → approved",
    },
    SandboxCard {
        number: "3622 720627 1667",
        brand: Brand::Diners,
        scenario: SandboxScenario::Frictionless,
        description_ja: "14桁。3Dセキュア認証成功（フリクションレス、Y / ECI 05）→ オーソリ承認",
        description_en: "14 digits; 3-D Secure frictionless (Y, ECI 05) → approved",
    },
    SandboxCard {
        number: "4000 0000 0000 1000",
        brand: Brand::Visa,
        scenario: SandboxScenario::Attempted,
        description_ja: "3Dセキュア認証試行（A / ECI 06）→ オーソリ承認",
        description_en: "3-D Secure attempted (A, ECI 06) → approved",
    },
    SandboxCard {
        number: "4000 0000 0000 2008",
        brand: Brand::Visa,
        scenario: SandboxScenario::Challenge,
        description_ja: "チャレンジ認証（ワンタイムパスワード 123456）→ オーソリ承認",
        description_en: "3-D Secure challenge (one-time code 123456) → approved",
    },
    SandboxCard {
        number: "5200 0000 0000 2003",
        brand: Brand::Mastercard,
        scenario: SandboxScenario::Challenge,
        description_ja: "チャレンジ認証（ワンタイムパスワード 123456）→ オーソリ承認",
        description_en: "3-D Secure challenge (one-time code 123456) → approved",
    },
    SandboxCard {
        number: "3540 0000 0000 2007",
        brand: Brand::Jcb,
        scenario: SandboxScenario::Challenge,
        description_ja: "J/Secure チャレンジ認証（ワンタイムパスワード 123456）→ オーソリ承認",
        description_en: "J/Secure challenge (one-time code 123456) → approved",
    },
    SandboxCard {
        number: "4000 0000 0000 3006",
        brand: Brand::Visa,
        scenario: SandboxScenario::AuthenticationFailed,
        description_ja: "3Dセキュア認証失敗（N）→ 決済失敗（オーソリは行われません）",
        description_en: "3-D Secure authentication failed (N) → payment fails, no authorization",
    },
    SandboxCard {
        number: "4000 0000 0000 4004",
        brand: Brand::Visa,
        scenario: SandboxScenario::AuthenticationUnavailable,
        description_ja: "カード会社の3Dセキュアが利用不可（U）→ 決済失敗（オーソリは行われません）",
        description_en: "Issuer 3-D Secure unavailable (U) → payment fails, no authorization",
    },
    SandboxCard {
        number: "4000 0000 0000 4103",
        brand: Brand::Visa,
        scenario: SandboxScenario::AuthenticationRejected,
        description_ja: "カード会社が認証を拒否（R）→ 決済失敗（オーソリは行われません）",
        description_en: "Issuer rejected 3-D Secure (R) → payment fails, no authorization",
    },
    SandboxCard {
        number: "4000 0000 0000 5100",
        brand: Brand::Visa,
        scenario: SandboxScenario::Decline(DeclineReason::InsufficientFunds),
        description_ja: "認証成功 → オーソリ否認：利用可能額不足（insufficient_funds）",
        description_en: "Authenticated → declined: insufficient funds (insufficient_funds)",
    },
    SandboxCard {
        number: "4000 0000 0000 5209",
        brand: Brand::Visa,
        scenario: SandboxScenario::Decline(DeclineReason::ExpiredCard),
        description_ja:
            "認証成功 → オーソリ否認：有効期限切れ（expired_card）※入力する有効期限は未来の日付で可",
        description_en:
            "Authenticated → declined: expired card (expired_card); enter any future expiry",
    },
    SandboxCard {
        number: "4000 0000 0000 5308",
        brand: Brand::Visa,
        scenario: SandboxScenario::Decline(DeclineReason::DoNotHonour),
        description_ja: "認証成功 → オーソリ否認：取引不可（do_not_honour）",
        description_en: "Authenticated → declined: do not honour (do_not_honour)",
    },
    SandboxCard {
        number: "4000 0000 0000 5407",
        brand: Brand::Visa,
        scenario: SandboxScenario::Decline(DeclineReason::InvalidNumber),
        description_ja: "認証成功 → オーソリ否認：カード番号無効（invalid_number）",
        description_en: "Authenticated → declined: invalid card number (invalid_number)",
    },
    SandboxCard {
        number: "4000 0000 0000 5506",
        brand: Brand::Visa,
        scenario: SandboxScenario::Decline(DeclineReason::ProcessingError),
        description_ja: "認証成功 → オーソリ否認：処理エラー（processing_error、再試行可能）",
        description_en: "Authenticated → declined: processing error (processing_error, retryable)",
    },
    SandboxCard {
        number: "4000 0000 0000 6009",
        brand: Brand::Visa,
        scenario: SandboxScenario::CaptureFails,
        description_ja: "認証成功・オーソリ承認 → 売上確定（capture）がアクワイアラに拒否される",
        description_en: "Authenticated and approved → capture is rejected by the acquirer",
    },
];

/// All sandbox test cards (each passes the Luhn check).
pub fn sandbox_cards() -> &'static [SandboxCard] {
    SANDBOX_CARDS
}

/// The sandbox card matching `number`, if it is one.
pub fn sandbox_card(number: &CardNumber) -> Option<&'static SandboxCard> {
    SANDBOX_CARDS
        .iter()
        .find(|c| c.digits() == number.expose_digits())
}

/// ECI the brand's directory server would return for a 3DS status.
fn eci_for(brand: Brand, status: ThreeDsStatus) -> Option<String> {
    let eci = match (brand, status) {
        (_, ThreeDsStatus::Challenge) => return None,
        (Brand::Mastercard, ThreeDsStatus::Authenticated) => "02",
        (Brand::Mastercard, ThreeDsStatus::Attempted) => "01",
        (Brand::Mastercard, _) => "00",
        (_, ThreeDsStatus::Authenticated) => "05",
        (_, ThreeDsStatus::Attempted) => "06",
        (_, _) => "07",
    };
    Some(eci.to_string())
}

fn three_ds(brand: Brand, status: ThreeDsStatus) -> ThreeDsResult {
    ThreeDsResult {
        status,
        eci: eci_for(brand, status),
    }
}

/// Random hex so ids and tokens are unique across instances without
/// coordination.
fn nonce() -> String {
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// Deterministic 7-digit 承認番号 from the payment id (FNV-1a), so the same
/// test payment always shows the same code.
fn approval_code(payment_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in payment_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:07}", h % 10_000_000)
}

const CHALLENGE_PREFIX: &str = "sbxch";
const TOKEN_PREFIX: &str = "sbxtok";

/// Parses `sbxch-{scenario}-{brand}-{nonce}`.
fn parse_challenge_id(id: &str) -> Option<(SandboxScenario, Brand)> {
    let mut parts = id.split('-');
    let (prefix, scenario, brand, nonce) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != CHALLENGE_PREFIX || parts.next().is_some() || nonce.is_empty() {
        return None;
    }
    Some((
        SandboxScenario::from_code(scenario)?,
        Brand::from_code(brand)?,
    ))
}

/// Parses `sbxtok-{scenario}-{authorized amount}-{nonce}`.
fn parse_token(token: &str) -> Option<(SandboxScenario, i64)> {
    let mut parts = token.split('-');
    let (prefix, scenario, amount, nonce) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if prefix != TOKEN_PREFIX || parts.next().is_some() || nonce.is_empty() {
        return None;
    }
    let amount: i64 = amount.parse().ok().filter(|a| *a > 0)?;
    Some((SandboxScenario::from_code(scenario)?, amount))
}

#[derive(Debug, Default)]
struct ChallengeState {
    wrong_codes: u32,
    completed: bool,
}

/// Deterministic test-mode connector that merchants integrate against.
///
/// Behaviour depends only on the card number (see [`sandbox_cards`]); any
/// expiry in the future and any CVC of the right length work. Numbers that
/// are not sandbox cards pass 3DS but are declined at authorization with
/// `invalid_number`, so a real card typed into a test shop can never look
/// paid.
///
/// Everything the next call needs is encoded in the challenge id and the
/// token, so flows survive restarts and work across several server
/// instances. The in-memory maps only add stricter checks (challenge reuse,
/// issuer lock after [`MAX_CHALLENGE_ATTEMPTS`], capture/refund totals) when
/// the same instance sees the whole flow.
#[derive(Debug, Default)]
pub struct SandboxCardConnector {
    challenges: Mutex<HashMap<String, ChallengeState>>,
    transactions: Mutex<HashMap<String, RemoteStatus>>,
    /// Approvals by payment id, for [`CardConnector::find_authorization`]. In memory: the
    /// sandbox reconciles within one process lifetime.
    approvals: Mutex<HashMap<String, FoundAuthorization>>,
    /// Answers of capture / cancel / refund by idempotency key.
    idempotent: Mutex<HashMap<String, Result<(), ConnectorError>>>,
}

/// Locks even if another thread panicked while holding the lock: the maps
/// hold plain values that are never left half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SandboxCardConnector {
    pub fn new() -> Self {
        Self::default()
    }

    fn token_state(&self, token: &str) -> Result<(SandboxScenario, RemoteStatus), ConnectorError> {
        let (scenario, authorized) =
            parse_token(token).ok_or(ConnectorError::UnknownTransaction)?;
        let state = lock(&self.transactions)
            .get(token)
            .cloned()
            // Unknown to this instance (restart / other instance): the token
            // proves an approved authorization for this amount.
            .unwrap_or(RemoteStatus {
                status: CardStatus::Authorized,
                authorized_amount: authorized,
                captured_amount: 0,
                refunded_amount: 0,
            });
        Ok((scenario, state))
    }

    fn store(&self, token: &str, state: RemoteStatus) {
        lock(&self.transactions).insert(token.to_string(), state);
    }
}

fn wrong_state(state: &RemoteStatus) -> ConnectorError {
    ConnectorError::InvalidState(format!("transaction is {}", state.status.code()))
}

/// Capture, cancel and refund without the idempotency layer.
impl SandboxCardConnector {
    /// The stored answer of an earlier call with this idempotency key: a retried call (after a
    /// timeout or a crash) gets the same answer instead of acting twice.
    fn replayed(&self, key: &str) -> Option<Result<(), ConnectorError>> {
        lock(&self.idempotent).get(key).cloned()
    }

    fn remember(&self, key: &str, r: &Result<(), ConnectorError>) {
        lock(&self.idempotent).insert(key.to_owned(), r.clone());
    }

    fn capture_once(&self, token: &str, amount: i64) -> Result<(), ConnectorError> {
        let (scenario, mut state) = self.token_state(token)?;
        if state.status != CardStatus::Authorized {
            return Err(wrong_state(&state));
        }
        if amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        if amount > state.authorized_amount {
            return Err(ConnectorError::AmountExceeded);
        }
        if scenario == SandboxScenario::CaptureFails {
            return Err(ConnectorError::Rejected(
                "capture refused by the acquirer (sandbox test card)".into(),
            ));
        }
        state.status = CardStatus::Captured;
        state.captured_amount = amount;
        self.store(token, state);
        Ok(())
    }

    fn cancel_once(&self, token: &str) -> Result<(), ConnectorError> {
        let (_, mut state) = self.token_state(token)?;
        match state.status {
            // Idempotent, so a retried cancel after a timeout succeeds.
            CardStatus::Cancelled => Ok(()),
            CardStatus::Authorized => {
                state.status = CardStatus::Cancelled;
                self.store(token, state);
                Ok(())
            }
            CardStatus::Captured if state.refunded_amount == 0 => {
                state.status = CardStatus::Cancelled;
                self.store(token, state);
                Ok(())
            }
            _ => Err(wrong_state(&state)),
        }
    }

    fn refund_once(&self, token: &str, amount: i64) -> Result<(), ConnectorError> {
        let (_, mut state) = self.token_state(token)?;
        if lock(&self.transactions).get(token).is_none() {
            // Stateless fallback: assume the authorization was captured in
            // full, the most the token can prove.
            state.status = CardStatus::Captured;
            state.captured_amount = state.authorized_amount;
        }
        if state.status != CardStatus::Captured {
            return Err(wrong_state(&state));
        }
        if amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        let total = state.refunded_amount + amount;
        if total > state.captured_amount {
            return Err(ConnectorError::AmountExceeded);
        }
        state.refunded_amount = total;
        if total == state.captured_amount {
            state.status = CardStatus::Refunded;
        }
        self.store(token, state);
        Ok(())
    }
}

#[async_trait::async_trait]
impl CardConnector for SandboxCardConnector {
    async fn authenticate(
        &self,
        req: &AuthenticateRequest,
    ) -> Result<AuthenticateOutcome, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if req.amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        let brand = req.card.brand();
        let status = match sandbox_card(&req.card).map(|c| c.scenario) {
            Some(SandboxScenario::Challenge) => {
                let challenge_id = format!(
                    "{CHALLENGE_PREFIX}-{}-{}-{}",
                    SandboxScenario::Challenge.code(),
                    brand.code(),
                    nonce()
                );
                lock(&self.challenges).insert(challenge_id.clone(), ChallengeState::default());
                return Ok(AuthenticateOutcome::Challenge {
                    challenge_id,
                    acs_url: None,
                });
            }
            Some(SandboxScenario::Attempted) => ThreeDsStatus::Attempted,
            Some(SandboxScenario::AuthenticationFailed) => ThreeDsStatus::Failed,
            Some(SandboxScenario::AuthenticationUnavailable) => ThreeDsStatus::Unavailable,
            Some(SandboxScenario::AuthenticationRejected) => ThreeDsStatus::Rejected,
            // Non-sandbox cards also pass here; they are declined at
            // authorization where the shopper gets a clear message.
            _ => ThreeDsStatus::Authenticated,
        };
        Ok(AuthenticateOutcome::Frictionless(three_ds(brand, status)))
    }

    async fn complete_challenge(
        &self,
        challenge_id: &str,
        otp: &str,
    ) -> Result<ChallengeOutcome, ConnectorError> {
        let (_, brand) = parse_challenge_id(challenge_id)
            .ok_or_else(|| ConnectorError::Invalid("unknown challenge id".into()))?;
        let mut challenges = lock(&self.challenges);
        // A missing entry means another instance or a restart: verify from
        // the id alone.
        let state = challenges.entry(challenge_id.to_string()).or_default();
        if state.completed {
            return Err(ConnectorError::InvalidState(
                "challenge already completed".into(),
            ));
        }
        if otp.trim() == SANDBOX_OTP {
            state.completed = true;
            return Ok(ChallengeOutcome::Completed(three_ds(
                brand,
                ThreeDsStatus::Authenticated,
            )));
        }
        state.wrong_codes += 1;
        if state.wrong_codes >= MAX_CHALLENGE_ATTEMPTS {
            // Issuers lock the challenge after too many wrong codes.
            state.completed = true;
            return Ok(ChallengeOutcome::Completed(three_ds(
                brand,
                ThreeDsStatus::Failed,
            )));
        }
        Ok(ChallengeOutcome::WrongCode)
    }

    async fn authorize(&self, req: &AuthorizeRequest) -> Result<AuthorizeOutcome, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if req.amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        if !allowed_for_brand(req.option, req.card.brand()) {
            return Err(ConnectorError::Invalid(format!(
                "payment option {} not available for {}",
                req.option.code(),
                req.card.brand().code()
            )));
        }
        if !req.three_ds.allows_authorization() {
            return Err(ConnectorError::Invalid(
                "3-D Secure did not succeed; authorization not allowed".into(),
            ));
        }
        let scenario = match sandbox_card(&req.card) {
            Some(card) => card.scenario,
            None => {
                return Ok(AuthorizeOutcome::Declined {
                    reason: DeclineReason::InvalidNumber,
                })
            }
        };
        match scenario {
            SandboxScenario::Decline(reason) => Ok(AuthorizeOutcome::Declined { reason }),
            // These cards never pass 3DS, so an authorization claiming they
            // did gets the answer the issuer would give.
            SandboxScenario::AuthenticationFailed
            | SandboxScenario::AuthenticationUnavailable
            | SandboxScenario::AuthenticationRejected => Ok(AuthorizeOutcome::Declined {
                reason: DeclineReason::DoNotHonour,
            }),
            SandboxScenario::Frictionless
            | SandboxScenario::Attempted
            | SandboxScenario::Challenge
            | SandboxScenario::CaptureFails => {
                let token = format!(
                    "{TOKEN_PREFIX}-{}-{}-{}",
                    scenario.code(),
                    req.amount,
                    nonce()
                );
                self.store(
                    &token,
                    RemoteStatus {
                        status: CardStatus::Authorized,
                        authorized_amount: req.amount,
                        captured_amount: 0,
                        refunded_amount: 0,
                    },
                );
                let found = FoundAuthorization {
                    token: token.clone(),
                    approval_code: approval_code(&req.payment_id),
                    three_ds: req.three_ds.clone(),
                };
                self.approvals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(req.payment_id.clone(), found.clone());
                Ok(AuthorizeOutcome::Approved {
                    token,
                    approval_code: found.approval_code,
                })
            }
        }
    }

    async fn capture(
        &self,
        token: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        if let Some(done) = self.replayed(idempotency_key) {
            return done;
        }
        let r = self.capture_once(token, amount);
        self.remember(idempotency_key, &r);
        r
    }

    async fn cancel(&self, token: &str, idempotency_key: &str) -> Result<(), ConnectorError> {
        if let Some(done) = self.replayed(idempotency_key) {
            return done;
        }
        let r = self.cancel_once(token);
        self.remember(idempotency_key, &r);
        r
    }

    async fn refund(
        &self,
        token: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError> {
        if let Some(done) = self.replayed(idempotency_key) {
            return done;
        }
        let r = self.refund_once(token, amount);
        self.remember(idempotency_key, &r);
        r
    }

    async fn query(&self, token: &str) -> Result<RemoteStatus, ConnectorError> {
        self.token_state(token).map(|(_, state)| state)
    }

    async fn find_authorization(
        &self,
        payment_id: &str,
    ) -> Result<Option<FoundAuthorization>, ConnectorError> {
        Ok(self
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(payment_id)
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::card::luhn_valid;

    /// A fresh idempotency key: each call in these tests is a new request.
    fn key() -> String {
        crate::util::random_id("op", 12)
    }

    #[tokio::test]
    async fn a_repeated_idempotency_key_replays_the_answer() {
        let c = SandboxCardConnector::new();
        let token = approve(&c, "4111 1111 1111 1111").await;
        c.refund(&token, 1, "k1").await.unwrap_err();
        c.capture(&token, 5_000, "k2").await.unwrap();
        // The same key again: the stored answer, not a second capture (which would fail).
        c.capture(&token, 5_000, "k2").await.unwrap();
        c.refund(&token, 1_000, "k3").await.unwrap();
        c.refund(&token, 1_000, "k3").await.unwrap();
        assert_eq!(c.query(&token).await.unwrap().refunded_amount, 1_000);
        // The earlier failure replays too.
        assert_eq!(
            c.refund(&token, 1, "k1").await.unwrap_err().code(),
            "invalid_state"
        );
    }

    fn card(number: &str) -> CardNumber {
        CardNumber::parse(number).unwrap()
    }

    fn auth_req(number: &str) -> AuthenticateRequest {
        AuthenticateRequest {
            payment_id: "pay_test_1".into(),
            mode: Mode::Test,
            card: card(number),
            expiry: Expiry::parse("12", "30", 2025, 1).unwrap(),
            amount: 10_000,
            cvc: SecurityCode::parse("123", Brand::Visa).unwrap(),
            holder: None,
            return_url: String::new(),
        }
    }

    fn authorize_req(number: &str, three_ds: ThreeDsResult) -> AuthorizeRequest {
        let c = card(number);
        let cvc = if c.brand() == Brand::Amex {
            "1234"
        } else {
            "123"
        };
        AuthorizeRequest {
            payment_id: "pay_test_1".into(),
            mode: Mode::Test,
            cvc: SecurityCode::parse(cvc, c.brand()).unwrap(),
            card: c,
            expiry: Expiry::parse("12", "30", 2025, 1).unwrap(),
            holder: Some(CardHolder::parse("TARO YAMADA").unwrap()),
            amount: 10_000,
            option: PaymentOption::Lump,
            three_ds,
        }
    }

    /// Runs 3DS (answering a challenge with the right code) and returns the
    /// final 3DS result.
    async fn authenticate(c: &SandboxCardConnector, number: &str) -> ThreeDsResult {
        match c.authenticate(&auth_req(number)).await.unwrap() {
            AuthenticateOutcome::Frictionless(r) => r,
            AuthenticateOutcome::Challenge { challenge_id, .. } => {
                match c
                    .complete_challenge(&challenge_id, SANDBOX_OTP)
                    .await
                    .unwrap()
                {
                    ChallengeOutcome::Completed(r) => r,
                    ChallengeOutcome::WrongCode => panic!("right code rejected"),
                }
            }
        }
    }

    async fn approve(c: &SandboxCardConnector, number: &str) -> String {
        let r = authenticate(c, number).await;
        match c.authorize(&authorize_req(number, r)).await.unwrap() {
            AuthorizeOutcome::Approved {
                token,
                approval_code,
            } => {
                assert_eq!(approval_code.len(), 7);
                assert!(approval_code.bytes().all(|b| b.is_ascii_digit()));
                token
            }
            other => panic!("{number}: {other:?}"),
        }
    }

    #[test]
    fn sandbox_cards_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for sc in sandbox_cards() {
            assert!(luhn_valid(&sc.digits()), "{} fails Luhn", sc.number);
            let parsed = CardNumber::parse(sc.number)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", sc.number));
            assert_eq!(parsed.brand(), sc.brand, "{}", sc.number);
            assert!(seen.insert(sc.digits()), "duplicate {}", sc.number);
            assert_eq!(sandbox_card(&parsed), Some(sc));
            assert_eq!(
                SandboxScenario::from_code(sc.scenario.code()),
                Some(sc.scenario)
            );
            assert!(!sc.scenario.code().contains('-'));
        }
        // Every decline reason has a card.
        for r in DeclineReason::ALL {
            assert!(sandbox_cards()
                .iter()
                .any(|c| c.scenario == SandboxScenario::Decline(r)));
        }
    }

    #[test]
    fn docs_list_every_sandbox_card() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/test-cards.md");
        let doc = std::fs::read_to_string(path).expect("docs/test-cards.md");
        for sc in sandbox_cards() {
            assert!(doc.contains(sc.number), "docs lack {}", sc.number);
        }
        assert!(doc.contains(SANDBOX_OTP));
    }

    #[tokio::test]
    async fn frictionless_cards_are_approved_with_brand_eci() {
        let c = SandboxCardConnector::new();
        for (number, eci) in [
            ("4111 1111 1111 1111", "05"),
            ("5555 5555 5555 4444", "02"),
            ("2221 0000 0000 0009", "02"),
            ("3530 1113 3330 0000", "05"),
            ("3782 822463 10005", "05"),
            ("3622 720627 1667", "05"),
        ] {
            let out = c.authenticate(&auth_req(number)).await.unwrap();
            assert_eq!(
                out,
                AuthenticateOutcome::Frictionless(ThreeDsResult {
                    status: ThreeDsStatus::Authenticated,
                    eci: Some(eci.into()),
                }),
                "{number}"
            );
            let token = approve(&c, number).await;
            assert!(!token.contains(&card(number).expose_digits()[6..]));
            assert_eq!(
                c.query(&token).await.unwrap().status,
                CardStatus::Authorized
            );
        }
    }

    #[tokio::test]
    async fn attempted_card_is_approved() {
        let c = SandboxCardConnector::new();
        let r = authenticate(&c, "4000 0000 0000 1000").await;
        assert_eq!(r.status, ThreeDsStatus::Attempted);
        assert_eq!(r.eci.as_deref(), Some("06"));
        approve(&c, "4000 0000 0000 1000").await;
    }

    #[tokio::test]
    async fn challenge_cards_need_the_otp() {
        for (number, eci) in [
            ("4000 0000 0000 2008", "05"),
            ("5200 0000 0000 2003", "02"),
            ("3540 0000 0000 2007", "05"),
        ] {
            let c = SandboxCardConnector::new();
            let AuthenticateOutcome::Challenge {
                challenge_id,
                acs_url,
            } = c.authenticate(&auth_req(number)).await.unwrap()
            else {
                panic!("{number}: expected challenge");
            };
            assert_eq!(acs_url, None);
            assert!(!challenge_id.contains(&card(number).expose_digits()[6..]));
            assert_eq!(
                c.complete_challenge(&challenge_id, "000000").await.unwrap(),
                ChallengeOutcome::WrongCode
            );
            let ChallengeOutcome::Completed(r) = c
                .complete_challenge(&challenge_id, " 123456 ")
                .await
                .unwrap()
            else {
                panic!("{number}: expected completion");
            };
            assert_eq!(r.status, ThreeDsStatus::Authenticated);
            assert_eq!(r.eci.as_deref(), Some(eci));
            // A completed challenge cannot be replayed on this instance.
            assert_eq!(
                c.complete_challenge(&challenge_id, SANDBOX_OTP)
                    .await
                    .unwrap_err()
                    .code(),
                "invalid_state"
            );
            approve(&c, number).await;
        }
    }

    #[tokio::test]
    async fn challenge_is_verifiable_by_another_instance() {
        let a = SandboxCardConnector::new();
        let AuthenticateOutcome::Challenge { challenge_id, .. } = a
            .authenticate(&auth_req("4000 0000 0000 2008"))
            .await
            .unwrap()
        else {
            panic!("expected challenge");
        };
        // Fresh instance = restarted server or another node.
        let b = SandboxCardConnector::new();
        assert_eq!(
            b.complete_challenge(&challenge_id, "999999").await.unwrap(),
            ChallengeOutcome::WrongCode
        );
        assert!(matches!(
            b.complete_challenge(&challenge_id, SANDBOX_OTP)
                .await
                .unwrap(),
            ChallengeOutcome::Completed(ThreeDsResult {
                status: ThreeDsStatus::Authenticated,
                ..
            })
        ));
        assert_eq!(
            b.complete_challenge("sbxch-challenge-visa", SANDBOX_OTP)
                .await
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        assert_eq!(
            b.complete_challenge("nonsense", SANDBOX_OTP)
                .await
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }

    #[tokio::test]
    async fn challenge_locks_after_max_wrong_codes() {
        let c = SandboxCardConnector::new();
        let AuthenticateOutcome::Challenge { challenge_id, .. } = c
            .authenticate(&auth_req("4000 0000 0000 2008"))
            .await
            .unwrap()
        else {
            panic!("expected challenge");
        };
        let mut wrong = 0;
        let last = loop {
            let out = c.complete_challenge(&challenge_id, "111111").await.unwrap();
            if out != ChallengeOutcome::WrongCode {
                break out;
            }
            wrong += 1;
            assert!(challenge_attempts_left(wrong) > 0);
        };
        // The caller sees WrongCode MAX-1 times, then the issuer fails it.
        assert_eq!(wrong, MAX_CHALLENGE_ATTEMPTS - 1);
        assert!(matches!(
            last,
            ChallengeOutcome::Completed(ThreeDsResult {
                status: ThreeDsStatus::Failed,
                ..
            })
        ));
        assert_eq!(challenge_attempts_left(MAX_CHALLENGE_ATTEMPTS), 0);
    }

    #[tokio::test]
    async fn failed_3ds_cards_are_not_authorized() {
        let c = SandboxCardConnector::new();
        for (number, status) in [
            ("4000 0000 0000 3006", ThreeDsStatus::Failed),
            ("4000 0000 0000 4004", ThreeDsStatus::Unavailable),
            ("4000 0000 0000 4103", ThreeDsStatus::Rejected),
        ] {
            let r = authenticate(&c, number).await;
            assert_eq!(r.status, status, "{number}");
            assert_eq!(r.eci.as_deref(), Some("07"));
            assert!(!r.allows_authorization());
            // Passing the failed result on is a caller bug.
            assert_eq!(
                c.authorize(&authorize_req(number, r))
                    .await
                    .unwrap_err()
                    .code(),
                "invalid_request"
            );
            // Even a forged Y result does not get these cards approved.
            let forged = three_ds(Brand::Visa, ThreeDsStatus::Authenticated);
            assert_eq!(
                c.authorize(&authorize_req(number, forged)).await.unwrap(),
                AuthorizeOutcome::Declined {
                    reason: DeclineReason::DoNotHonour
                }
            );
        }
    }

    #[tokio::test]
    async fn decline_cards() {
        let c = SandboxCardConnector::new();
        for (number, reason) in [
            ("4000 0000 0000 5100", DeclineReason::InsufficientFunds),
            ("4000 0000 0000 5209", DeclineReason::ExpiredCard),
            ("4000 0000 0000 5308", DeclineReason::DoNotHonour),
            ("4000 0000 0000 5407", DeclineReason::InvalidNumber),
            ("4000 0000 0000 5506", DeclineReason::ProcessingError),
        ] {
            let r = authenticate(&c, number).await;
            assert_eq!(r.status, ThreeDsStatus::Authenticated);
            let out = c.authorize(&authorize_req(number, r)).await.unwrap();
            assert_eq!(out, AuthorizeOutcome::Declined { reason }, "{number}");
            assert_eq!(reason.retryable(), reason == DeclineReason::ProcessingError);
            assert_eq!(DeclineReason::parse(reason.code()), Some(reason));
            assert!(!reason.message_ja().is_empty() && !reason.message_en().is_empty());
        }
    }

    #[tokio::test]
    async fn non_sandbox_card_is_declined() {
        let c = SandboxCardConnector::new();
        // Valid Luhn, not in the table.
        let number = "4242 4242 4242 4242";
        let r = authenticate(&c, number).await;
        assert_eq!(
            c.authorize(&authorize_req(number, r)).await.unwrap(),
            AuthorizeOutcome::Declined {
                reason: DeclineReason::InvalidNumber
            }
        );
    }

    #[tokio::test]
    async fn capture_fails_card() {
        let c = SandboxCardConnector::new();
        let token = approve(&c, "4000 0000 0000 6009").await;
        let e = c.capture(&token, 10_000, &key()).await.unwrap_err();
        assert_eq!(e.code(), "rejected");
        assert!(!e.retryable());
        assert_eq!(
            c.query(&token).await.unwrap().status,
            CardStatus::Authorized
        );
        c.cancel(&token, &key()).await.unwrap();
    }

    #[tokio::test]
    async fn authorize_validates_request() {
        let c = SandboxCardConnector::new();
        let y = three_ds(Brand::Amex, ThreeDsStatus::Authenticated);
        let mut req = authorize_req("3782 822463 10005", y);
        req.option = PaymentOption::Installments(3);
        assert_eq!(
            c.authorize(&req).await.unwrap_err().code(),
            "invalid_request"
        );
        req.option = PaymentOption::Revolving;
        assert!(matches!(
            c.authorize(&req).await.unwrap(),
            AuthorizeOutcome::Approved { .. }
        ));
        req.amount = 0;
        assert_eq!(
            c.authorize(&req).await.unwrap_err().code(),
            "invalid_request"
        );
        let mut a = auth_req("4111 1111 1111 1111");
        a.amount = -1;
        assert_eq!(
            c.authenticate(&a).await.unwrap_err().code(),
            "invalid_request"
        );
    }

    #[tokio::test]
    async fn capture_refund_lifecycle() {
        let c = SandboxCardConnector::new();
        let token = approve(&c, "4111 1111 1111 1111").await;
        assert_eq!(
            c.capture(&token, 10_001, &key()).await.unwrap_err(),
            ConnectorError::AmountExceeded
        );
        assert_eq!(
            c.capture(&token, 0, &key()).await.unwrap_err().code(),
            "invalid_request"
        );
        c.capture(&token, 8_000, &key()).await.unwrap();
        assert_eq!(
            c.capture(&token, 8_000, &key()).await.unwrap_err().code(),
            "invalid_state"
        );
        c.refund(&token, 3_000, &key()).await.unwrap();
        assert_eq!(
            c.query(&token).await.unwrap(),
            RemoteStatus {
                status: CardStatus::Captured,
                authorized_amount: 10_000,
                captured_amount: 8_000,
                refunded_amount: 3_000,
            }
        );
        // No cancel after a partial refund.
        assert_eq!(
            c.cancel(&token, &key()).await.unwrap_err().code(),
            "invalid_state"
        );
        assert_eq!(
            c.refund(&token, 5_001, &key()).await.unwrap_err(),
            ConnectorError::AmountExceeded
        );
        c.refund(&token, 5_000, &key()).await.unwrap();
        assert_eq!(c.query(&token).await.unwrap().status, CardStatus::Refunded);
        assert_eq!(
            c.refund(&token, 1, &key()).await.unwrap_err().code(),
            "invalid_state"
        );
    }

    #[tokio::test]
    async fn cancel_is_idempotent_and_final() {
        let c = SandboxCardConnector::new();
        let token = approve(&c, "3530 1113 3330 0000").await;
        c.cancel(&token, &key()).await.unwrap();
        c.cancel(&token, &key()).await.unwrap();
        assert_eq!(c.query(&token).await.unwrap().status, CardStatus::Cancelled);
        assert_eq!(
            c.capture(&token, 1, &key()).await.unwrap_err().code(),
            "invalid_state"
        );
        // Cancel after capture (取消 of a sale) is allowed before refunds.
        let token = approve(&c, "5555 5555 5555 4444").await;
        c.capture(&token, 10_000, &key()).await.unwrap();
        c.cancel(&token, &key()).await.unwrap();
        assert_eq!(c.query(&token).await.unwrap().status, CardStatus::Cancelled);
    }

    #[tokio::test]
    async fn tokens_work_after_restart() {
        let before = SandboxCardConnector::new();
        let token = approve(&before, "4111 1111 1111 1111").await;
        let after = SandboxCardConnector::new();
        assert_eq!(
            after.query(&token).await.unwrap(),
            RemoteStatus {
                status: CardStatus::Authorized,
                authorized_amount: 10_000,
                captured_amount: 0,
                refunded_amount: 0,
            }
        );
        assert_eq!(
            after.capture(&token, 10_001, &key()).await.unwrap_err(),
            ConnectorError::AmountExceeded
        );
        after.capture(&token, 10_000, &key()).await.unwrap();

        // Refund on yet another instance, assuming a full capture.
        let third = SandboxCardConnector::new();
        assert_eq!(
            third.refund(&token, 10_001, &key()).await.unwrap_err(),
            ConnectorError::AmountExceeded
        );
        third.refund(&token, 10_000, &key()).await.unwrap();
        assert_eq!(
            third.query(&token).await.unwrap().status,
            CardStatus::Refunded
        );

        // Capture-fails card still fails after restart: the token carries it.
        let token = approve(&before, "4000 0000 0000 6009").await;
        assert_eq!(
            SandboxCardConnector::new()
                .capture(&token, 100, &key())
                .await
                .unwrap_err()
                .code(),
            "rejected"
        );

        for bad in [
            "",
            "sbxtok",
            "sbxtok-frictionless-0-abc",
            "sbxtok-frictionless-100-",
            "sbxtok-nope-100-abc",
            "sbxtok-frictionless-100-abc-extra",
            "tok-frictionless-100-abc",
        ] {
            assert_eq!(
                after.query(bad).await.unwrap_err(),
                ConnectorError::UnknownTransaction,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn approval_code_is_deterministic() {
        assert_eq!(approval_code("pay_1"), approval_code("pay_1"));
        assert_eq!(approval_code("pay_1").len(), 7);
    }

    #[test]
    fn connector_error_codes() {
        assert!(ConnectorError::Timeout.retryable());
        assert!(ConnectorError::Unavailable("x".into()).retryable());
        assert!(!ConnectorError::UnknownTransaction.retryable());
        assert_eq!(ConnectorError::AmountExceeded.code(), "amount_exceeded");
    }

    #[test]
    fn requests_never_debug_print_the_pan_or_cvc() {
        let req = authorize_req(
            "4111 1111 1111 1111",
            three_ds(Brand::Visa, ThreeDsStatus::Authenticated),
        );
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("4111111111111111"));
        assert!(!dbg.contains("\"123\""));
        assert!(dbg.contains("411111******1111"));
    }

    #[test]
    fn connector_is_object_safe() {
        let c: Box<dyn CardConnector> = Box::new(SandboxCardConnector::new());
        drop(c);
    }
}
