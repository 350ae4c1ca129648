//! Shopper messages (docs/messages.md): the sender that works through the message outbox
//! (e-mail over SMTP, SMS through the merchant's provider), the long-lived link back to the
//! number page, the number page's "send these instructions to my e-mail" request and the
//! console's resend.
//!
//! Stopping: the sender checks its token only between batches; a message in flight keeps its
//! lease if the sender is aborted and goes out again when the lease expires (a duplicate e-mail
//! is better than a lost number).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tokio_util::sync::CancellationToken;

use crate::connectors::konbini::IssueTarget;
use crate::context::Ctx;
use crate::db::messages::{self, About, MessageRow, Outcome};
use crate::db::payments::{self, PaymentRow};
use crate::db::{checkouts, merchants};
use crate::domain::konbini as rules;
use crate::domain::message::{
    retry_delay_ms, valid_email, Channel, MessageKind, MessageStatus, Refusal, MAX_ATTEMPTS,
};
use crate::domain::{Method, Mode};
use crate::flows::konbini::{target_of, NumberDetails};
use crate::mail::{Email, Mailer};
use crate::messages::compose::{self, Branding, Facts, NumberFacts};

const BATCH: i64 = 16;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longer than an SMTP conversation may take (`KAKEHASHI_SMTP_TIMEOUT`, 30 s by default).
const LEASE_MS: i64 = 120_000;
/// Addresses a shopper may type on one number page: enough for a typo or two, too few to use
/// the form to send mail to strangers.
pub const FORM_LIMIT: i64 = 3;

/// The theme of a merchant, as e-mail shows it (built by `startup` from the loaded themes).
pub type BrandingOf = Arc<dyn Fn(&str) -> Branding + Send + Sync>;

/// The message sender.
pub struct Sender {
    pub ctx: Ctx,
    /// `None`: no SMTP server configured; e-mail messages fail with a message saying so.
    pub mailer: Option<Arc<Mailer>>,
    pub branding: BrandingOf,
    pub owner: String,
}

impl Sender {
    /// Sends until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let idle = match self.tick().await {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "message sender");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }

    /// Claims and sends one batch of due messages; returns how many it handled.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        let now = self.ctx.now_ms();
        let batch = messages::claim(&self.ctx.db, &self.owner, now, LEASE_MS, BATCH).await?;
        let n = batch.len();
        for m in batch {
            let outcome = self.send_one(&m).await;
            let (status, attempted, retry_at, error) = match outcome {
                Ok(Sent::Sent) => (MessageStatus::Sent, true, None, None),
                Ok(Sent::NotNeeded) => (MessageStatus::Cancelled, false, None, None),
                Err((Refusal::Temporary, e)) if m.attempts + 1 < MAX_ATTEMPTS => (
                    MessageStatus::Pending,
                    true,
                    Some(self.ctx.now_ms() + retry_delay_ms(m.attempts)),
                    Some(e),
                ),
                Err((_, e)) => (MessageStatus::Failed, true, None, Some(e)),
            };
            if let Some(e) = &error {
                tracing::info!(message_id = %m.id, kind = %m.kind, channel = %m.channel,
                    status = %status, error = %e, "shopper message not sent");
            }
            messages::finish(
                &self.ctx.db,
                &m.id,
                &self.owner,
                &Outcome {
                    status,
                    attempted,
                    retry_at,
                    error: error.as_deref(),
                    at: self.ctx.now_ms(),
                },
            )
            .await?;
        }
        Ok(n)
    }

    async fn send_one(&self, m: &MessageRow) -> Result<Sent, (Refusal, String)> {
        let db_err = |e: sqlx::Error| (Refusal::Temporary, format!("database: {e}"));
        let payment_id = match m.about() {
            Some(About::Payment(id)) => id,
            Some(About::Request(id)) => return self.send_request(m, id).await,
            None => return Err((Refusal::Permanent, "no payment or request".to_owned())),
        };
        let p = payments::get(&self.ctx.db, payment_id)
            .await
            .map_err(db_err)?
            .ok_or((Refusal::Permanent, "payment not found".to_owned()))?;
        // Never remind after payment (or expiry, or cancellation), whatever the queue says.
        if m.kind == MessageKind::Reminder && !messages::awaiting_payment(&p) {
            return Ok(Sent::NotNeeded);
        }
        let mut facts = self.facts(m, &p).await.map_err(db_err)?;
        if m.kind == MessageKind::RefundRequest {
            // The link of the request still waiting for an account (the newest, if staff made
            // several); none left (paid out or withdrawn meanwhile): nothing to ask for.
            let open = crate::flows::refund_requests::of_payment(&self.ctx, &p.id)
                .await
                .map_err(|e| (Refusal::Temporary, format!("refund requests: {e}")))?
                .into_iter()
                .filter(|r| r.status.accepts_account())
                .max_by_key(|r| r.row.created_at);
            let Some(r) = open else {
                return Ok(Sent::NotNeeded);
            };
            facts.link = crate::flows::refund_requests::shopper_url(&self.ctx, &r.row.id);
            facts.requested = r.row.amount;
        }
        match m.channel {
            Channel::Email => self.send_email(m, &p.merchant_id, &facts).await,
            Channel::Sms => self.send_sms(m, &p, &facts).await,
        }
    }

    /// A payment request's e-mail: the order and the short link, while the request is open
    /// (paid, expired or cancelled first: nothing to ask for).
    async fn send_request(
        &self,
        m: &MessageRow,
        request_id: &str,
    ) -> Result<Sent, (Refusal, String)> {
        let db_err = |e: sqlx::Error| (Refusal::Temporary, format!("database: {e}"));
        let Some(r) = crate::db::payment_requests::get(&self.ctx.db, &m.merchant_id, request_id)
            .await
            .map_err(db_err)?
        else {
            return Err((Refusal::Permanent, "payment request not found".to_owned()));
        };
        let status = crate::flows::payment_requests::status_of(&self.ctx.db, &r, self.ctx.now_ms())
            .await
            .map_err(db_err)?;
        if status != crate::domain::RequestStatus::Open {
            return Ok(Sent::NotNeeded);
        }
        let merchant = merchants::get(&self.ctx.db, &m.merchant_id)
            .await
            .map_err(db_err)?;
        let (shop, theme, test_mode) = match &merchant {
            Some(mr) => (mr.name.clone(), mr.theme.clone(), mr.mode() == Mode::Test),
            None => (String::new(), String::new(), false),
        };
        let settings = messages::settings(&self.ctx.db, &m.merchant_id)
            .await
            .map_err(db_err)?;
        let facts = Facts {
            en: m.lang == "en",
            test_mode,
            shop,
            item: r.item_name.clone(),
            order_id: r.order_id.clone(),
            amount: r.amount,
            at_ms: r.expires_at,
            link: crate::flows::payment_requests::short_url(&self.ctx, &r.code),
            replies_to_shop: settings.reply_to.is_some(),
            branding: self.branding_of(&theme),
            ..Facts::default()
        };
        self.send_email(m, &m.merchant_id, &facts).await
    }

    fn branding_of(&self, theme: &str) -> crate::messages::compose::Branding {
        let mut branding = (self.branding)(theme);
        if branding.logo_url.starts_with('/') {
            branding.logo_url = format!("{}{}", self.ctx.public_url, branding.logo_url);
        }
        branding
    }

    async fn send_email(
        &self,
        m: &MessageRow,
        merchant_id: &str,
        f: &Facts,
    ) -> Result<Sent, (Refusal, String)> {
        let Some(mailer) = &self.mailer else {
            return Err((
                Refusal::Permanent,
                "e-mail is not configured on this server (KAKEHASHI_SMTP_HOST)".into(),
            ));
        };
        let settings = messages::settings(&self.ctx.db, merchant_id)
            .await
            .map_err(|e| (Refusal::Temporary, format!("database: {e}")))?;
        let c = compose::email(f, m.kind);
        let email = Email {
            to: m.recipient.clone(),
            sender_name: settings.sender_name.unwrap_or_else(|| f.shop.clone()),
            reply_to: settings.reply_to,
            subject: c.subject,
            text: c.text,
            html: c.html,
        };
        mailer
            .send(&email)
            .await
            .map(|()| Sent::Sent)
            .map_err(|e| (e.refusal(), e.to_string()))
    }

    async fn send_sms(
        &self,
        m: &MessageRow,
        p: &PaymentRow,
        f: &Facts,
    ) -> Result<Sent, (Refusal, String)> {
        let Some(to) = crate::sms::normalize_phone(&m.recipient) else {
            return Err((Refusal::Permanent, "not a Japanese mobile number".into()));
        };
        let mode = merchants::get(&self.ctx.db, &p.merchant_id)
            .await
            .map_err(|e| (Refusal::Temporary, format!("database: {e}")))?
            .map(|mr| mr.mode())
            .unwrap_or(Mode::Live);
        let provider = self.ctx.sms.for_mode(mode).map_err(|_| {
            (
                Refusal::Permanent,
                "no SMS gateway is configured".to_owned(),
            )
        })?;
        let Some(text) = compose::sms(f, m.kind, &f.link) else {
            return Err((
                Refusal::Permanent,
                "the message does not fit in one SMS".into(),
            ));
        };
        match provider.send(&to, &text).await {
            Ok(_) => Ok(Sent::Sent),
            // A gateway's 5xx is its own trouble (try again); a 4xx refuses this message.
            Err(crate::sms::SmsError::Status(code)) if code >= 500 => {
                Err((Refusal::Temporary, format!("gateway answered HTTP {code}")))
            }
            Err(crate::sms::SmsError::Status(code)) => {
                Err((Refusal::Permanent, format!("gateway answered HTTP {code}")))
            }
            Err(e) => Err((Refusal::Temporary, e.to_string())),
        }
    }

    async fn facts(&self, m: &MessageRow, p: &PaymentRow) -> Result<Facts, sqlx::Error> {
        let en = m.lang == "en";
        let merchant = merchants::get(&self.ctx.db, &p.merchant_id).await?;
        let checkout = checkouts::get(&self.ctx.db, &p.checkout_id).await?;
        let (shop, theme, test_mode) = match &merchant {
            Some(mr) => (mr.name.clone(), mr.theme.clone(), mr.mode() == Mode::Test),
            None => (String::new(), String::new(), false),
        };
        let branding = self.branding_of(&theme);
        let settings = messages::settings(&self.ctx.db, &p.merchant_id).await?;
        let number = number_facts(p, en);
        Ok(Facts {
            en,
            test_mode,
            shop,
            item: checkout
                .as_ref()
                .map(|c| c.item_name.clone())
                .unwrap_or_default(),
            order_id: p.order_id.clone(),
            payment_id: p.id.clone(),
            amount: p.amount,
            refunded: p.refunded_amount,
            requested: 0,
            method: if en {
                p.method.name_en()
            } else {
                p.method.name_ja()
            }
            .to_owned(),
            at_ms: p.paid_at.unwrap_or_else(|| self.ctx.now_ms()),
            link: if number.is_some() {
                number_link(&self.ctx, &p.id)
            } else {
                String::new()
            },
            number,
            replies_to_shop: settings.reply_to.is_some(),
            branding,
        })
    }
}

enum Sent {
    Sent,
    /// A reminder whose payment no longer awaits payment.
    NotNeeded,
}

/// The number, deadline and steps of a konbini / Pay-easy payment, as its page shows them.
pub fn number_facts(p: &PaymentRow, en: bool) -> Option<NumberFacts> {
    let target = target_of(p)?;
    let details = NumberDetails::of(p);
    let mut fields: Vec<(String, String)> = target
        .shape()
        .fields()
        .iter()
        .map(|f| {
            (
                (if en { f.label_en } else { f.label_ja }).to_owned(),
                details.get(f.key).unwrap_or("").to_owned(),
            )
        })
        .collect();
    if let Some(a) = &details.account {
        fields.extend(
            crate::flows::konbini::account_lines(a, en)
                .into_iter()
                .map(|(_, l, v)| (l.to_owned(), v)),
        );
    }
    let (place, steps) = match target {
        IssueTarget::Konbini(c) if en => (c.name_en().to_owned(), c.how_to_pay_en()),
        IssueTarget::Konbini(c) => (c.name_ja().to_owned(), c.how_to_pay_ja()),
        IssueTarget::Payeasy if en => ("Pay-easy".to_owned(), rules::payeasy_how_to_pay_en()),
        IssueTarget::Payeasy => (
            "Pay-easy（ペイジー）".to_owned(),
            rules::payeasy_how_to_pay_ja(),
        ),
        IssueTarget::BankTransfer if en => (
            "Bank transfer".to_owned(),
            rules::bank_transfer_how_to_pay_en(),
        ),
        IssueTarget::BankTransfer => ("銀行振込".to_owned(), rules::bank_transfer_how_to_pay_ja()),
    };
    Some(NumberFacts {
        place,
        fields,
        deadline_ms: p.deadline_at.unwrap_or(0),
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
    })
}

fn link_mac(ctx: &Ctx, payment_id: &str) -> String {
    let m =
        crate::signing::hmac_bytes(&ctx.secret, format!("message-link|{payment_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&m[..9])
}

/// The number page's address in messages: unlike a session token it never expires (the page
/// itself says when the number no longer works). `{public_url}/m/{payment_id}/{mac}`.
pub fn number_link(ctx: &Ctx, payment_id: &str) -> String {
    format!(
        "{}/m/{payment_id}/{}",
        ctx.public_url,
        link_mac(ctx, payment_id)
    )
}

/// Opens a message link: the path of the number page under a fresh session, or `None` when the
/// link is not ours or its payment has no number.
pub async fn open_number_link(
    ctx: &Ctx,
    payment_id: &str,
    mac: &str,
) -> Result<Option<String>, sqlx::Error> {
    let expected = link_mac(ctx, payment_id);
    let key = &ctx.secret;
    // Compare MACs of both so timing says nothing about the expected value.
    if crate::signing::hmac_bytes(key, mac.as_bytes())
        != crate::signing::hmac_bytes(key, expected.as_bytes())
    {
        return Ok(None);
    }
    let Some(p) = payments::get(&ctx.db, payment_id).await? else {
        return Ok(None);
    };
    let Some(target) = target_of(&p) else {
        return Ok(None);
    };
    let method: Method = target.method().method();
    let token =
        crate::flows::checkout::new_session(ctx, &p.checkout_id, crate::device::ViewOverride::Auto);
    Ok(Some(format!("/pay/{token}/{}", method.code())))
}

/// Why the number page's e-mail form refused an address.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("invalid address")]
    Invalid,
    #[error("too many addresses for this payment")]
    TooMany,
    /// Paid, expired or cancelled: nothing to send.
    #[error("nothing to send")]
    NotPayable,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// "Send these instructions to my e-mail": queues the instructions (and the reminder) to a
/// shopper-typed address. The address is kept only on those messages.
pub async fn request_instructions(
    ctx: &Ctx,
    p: &PaymentRow,
    address: &str,
    lang: &str,
) -> Result<(), FormError> {
    let address = address.trim();
    if !valid_email(address) {
        return Err(FormError::Invalid);
    }
    if !messages::awaiting_payment(p) || target_of(p).is_none() {
        return Err(FormError::NotPayable);
    }
    if messages::form_requests(&ctx.db, &p.id).await? >= FORM_LIMIT {
        return Err(FormError::TooMany);
    }
    messages::queue_from_form(&ctx.db, p, address, lang, ctx.now_ms()).await?;
    Ok(())
}

/// A staff resend of a message of `merchant_id`'s payment: a new copy, due now. `None` when the
/// message is not that merchant's.
pub async fn resend(
    ctx: &Ctx,
    merchant_id: &str,
    message_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let Some(original) = messages::get(&ctx.db, message_id).await? else {
        return Ok(None);
    };
    if original.merchant_id != merchant_id {
        return Ok(None);
    }
    let mut tx = ctx.db.begin().await?;
    let id = messages::queue_resend(&mut tx, &original, ctx.now_ms()).await?;
    tx.commit().await?;
    Ok(Some(id))
}
