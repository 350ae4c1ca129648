//! Messages to shoppers: per-merchant settings, the message outbox (queued in the same
//! transaction as the payment event that causes them), leasing due messages to the sender and
//! recording each outcome. See docs/messages.md.

use crate::db::payment_row::PaymentRow;
use crate::db::{Db, Tx};
use crate::domain::message::{
    plan_for_event, reminder_at, Channel, MessageKind, MessageSource, MessageStatus,
};
use crate::util::random_id;
use crate::{args, exec_tx, on_db, on_tx};

/// A merchant's message settings (defaults when the merchant never saved any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// From display name; `None`: the shop name.
    pub sender_name: Option<String>,
    pub reply_to: Option<String>,
    /// 0 (off), 24 or 48.
    pub reminder_hours: i64,
    pub receipts: bool,
    pub sms: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sender_name: None,
            reply_to: None,
            reminder_hours: 24,
            receipts: true,
            sms: false,
        }
    }
}

type SettingsTuple = (Option<String>, Option<String>, i64, i64, i64);

/// A checkout's addresses and language, its merchant's settings (all `None` without a
/// settings row) and how many messages of one kind its payment already has.
type ContactRow = (
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

fn settings_of(row: Option<SettingsTuple>) -> Settings {
    match row {
        Some((sender_name, reply_to, reminder_hours, receipts, sms)) => Settings {
            sender_name,
            reply_to,
            reminder_hours,
            receipts: receipts != 0,
            sms: sms != 0,
        },
        None => Settings::default(),
    }
}

const SETTINGS_SQL: &str = "SELECT sender_name, reply_to, reminder_hours, receipts, sms \
     FROM message_settings WHERE merchant_id = $1";

pub async fn settings(db: &Db, merchant_id: &str) -> Result<Settings, sqlx::Error> {
    let row: Option<SettingsTuple> = on_db!(db, c => sqlx::query_as(SETTINGS_SQL)
        .bind(merchant_id)
        .fetch_optional(c)
        .await)?;
    Ok(settings_of(row))
}

async fn settings_tx(tx: &mut Tx, merchant_id: &str) -> Result<Settings, sqlx::Error> {
    let row: Option<SettingsTuple> = on_tx!(tx, c => sqlx::query_as(SETTINGS_SQL)
        .bind(merchant_id)
        .fetch_optional(c)
        .await)?;
    Ok(settings_of(row))
}

/// Saves a merchant's settings (validated by the caller).
pub async fn set_settings(
    db: &Db,
    merchant_id: &str,
    s: &Settings,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO message_settings (merchant_id, sender_name, reply_to, reminder_hours, receipts, sms, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (merchant_id) DO UPDATE SET sender_name = excluded.sender_name, \
         reply_to = excluded.reply_to, reminder_hours = excluded.reminder_hours, \
         receipts = excluded.receipts, sms = excluded.sms, updated_at = excluded.updated_at",
    )
    .bind(merchant_id)
    .bind(&s.sender_name)
    .bind(&s.reply_to)
    .bind(s.reminder_hours)
    .bind(i64::from(s.receipts))
    .bind(i64::from(s.sms))
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// One message row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub merchant_id: String,
    /// The payment the message is about; `None` for a payment request's e-mail.
    pub payment_id: Option<String>,
    /// The payment request (決済依頼) an e-mail carries, before any payment exists.
    pub payment_request_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub kind: MessageKind,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub recipient: String,
    pub lang: String,
    #[sqlx(try_from = "String")]
    pub source: MessageSource,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub attempts: i64,
    pub send_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

const COLS: &str = "id, merchant_id, payment_id, payment_request_id, kind, channel, recipient, lang, source, status, \
attempts, send_at, last_error, created_at, sent_at";

/// A message to queue.
pub struct NewMessage<'a> {
    pub merchant_id: &'a str,
    pub about: About<'a>,
    pub kind: MessageKind,
    pub channel: Channel,
    pub recipient: &'a str,
    pub lang: &'a str,
    pub source: MessageSource,
    pub send_at: i64,
    /// When the row is written (the caller's clock).
    pub now: i64,
}

/// What a message is about: a payment, or a payment request not paid yet.
#[derive(Clone, Copy, Debug)]
pub enum About<'a> {
    Payment(&'a str),
    Request(&'a str),
}

impl MessageRow {
    pub fn about(&self) -> Option<About<'_>> {
        match (&self.payment_id, &self.payment_request_id) {
            (Some(p), None) => Some(About::Payment(p)),
            (None, Some(r)) => Some(About::Request(r)),
            _ => None,
        }
    }
}

/// Queues one message inside the caller's transaction; returns its id.
pub async fn queue(tx: &mut Tx, m: &NewMessage<'_>) -> Result<String, sqlx::Error> {
    let id = random_id("msg", 20);
    tx.write(
        "INSERT INTO messages (id, merchant_id, payment_id, payment_request_id, kind, channel, \
         recipient, lang, source, status, send_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)",
        args![
            &id,
            m.merchant_id,
            match m.about {
                About::Payment(p) => Some(p),
                About::Request(_) => None,
            },
            match m.about {
                About::Request(r) => Some(r),
                About::Payment(_) => None,
            },
            m.kind.code(),
            m.channel.code(),
            m.recipient,
            m.lang,
            m.source.code(),
            m.send_at,
            m.now
        ],
    )
    .await?;
    Ok(id)
}

/// Whether a payment's number still waits for the shopper's payment (reminders go out only
/// then). The one place that reads the stored status for messages.
pub fn awaiting_payment(p: &PaymentRow) -> bool {
    p.status == crate::domain::konbini::NumberStatus::AwaitingPayment
}

/// The addresses, the merchant's settings and how many messages of the kind went out already.
const CONTACT_SQL: &str =
    "SELECT c.shopper_email, c.shopper_phone, c.lang, s.sender_name, s.reply_to, \
     s.reminder_hours, s.receipts, s.sms, \
     (SELECT COUNT(*) FROM messages m WHERE m.payment_id = $2 AND m.kind = $3) \
     FROM checkouts c LEFT JOIN message_settings s ON s.merchant_id = $4 WHERE c.id = $1";

fn contact_args(p: &PaymentRow, kind: MessageKind) -> Vec<crate::db::Arg> {
    args![&p.checkout_id, &p.id, kind.code(), &p.merchant_id]
}

/// Announces ([`Tx::read_ahead`]) the read [`on_payment_event`] will make for `event` on `p`.
/// Nothing `payments::transition` writes before it changes that row: the checkout's addresses
/// and the settings are not written, and cancelling reminders changes no message's kind.
pub fn read_ahead(tx: &mut Tx, p: &PaymentRow, event: &str) {
    if let Some(kind) = plan_for_event(event).send {
        tx.read_ahead(CONTACT_SQL, contact_args(p, kind));
    }
}

/// Called by `payments::transition` with the changed payment and its event, in the same
/// transaction: cancels reminders of a payment no longer awaiting payment, and queues the
/// message the event calls for to the addresses the signed link carried.
pub async fn on_payment_event(
    tx: &mut Tx,
    p: &PaymentRow,
    event: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    // Only number payments have reminders; other methods skip the UPDATE.
    let number = crate::domain::konbini::NumberMethod::of(p.method).is_some();
    if number && !awaiting_payment(p) {
        cancel_reminders(tx, &p.id).await?;
    }
    let plan = plan_for_event(event);
    let Some(kind) = plan.send else {
        return Ok(());
    };
    // The addresses, the merchant's settings and whether this kind already went out, in one
    // read (a round trip each, in the payment's transaction, were three).
    let row: Option<ContactRow> = tx
        .fetch_optional(CONTACT_SQL, contact_args(p, kind))
        .await?;
    let Some((email, phone, lang, sender_name, reply_to, reminder_hours, receipts, sms, sent)) =
        row
    else {
        return Ok(());
    };
    let settings = settings_of(match (reminder_hours, receipts, sms) {
        (Some(h), Some(r), Some(s)) => Some((sender_name, reply_to, h, r, s)),
        _ => None,
    });
    // One receipt per payment: a capture after completion sends no second one.
    if kind == MessageKind::Receipt && (!settings.receipts || sent > 0) {
        return Ok(());
    }
    let mut to: Vec<(Channel, String)> = Vec::new();
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        to.push((Channel::Email, e));
    }
    if let Some(ph) = phone.filter(|p| !p.is_empty()) {
        if settings.sms && kind.sms_allowed() {
            to.push((Channel::Sms, ph));
        }
    }
    let remind = if plan.remind {
        p.deadline_at
            .and_then(|d| reminder_at(d, settings.reminder_hours, now))
    } else {
        None
    };
    for (channel, recipient) in &to {
        let mut m = NewMessage {
            merchant_id: &p.merchant_id,
            about: About::Payment(&p.id),
            kind,
            channel: *channel,
            recipient,
            lang: &lang,
            source: MessageSource::Link,
            send_at: now,
            now,
        };
        queue(tx, &m).await?;
        if let Some(at) = remind {
            m.kind = MessageKind::Reminder;
            m.send_at = at;
            queue(tx, &m).await?;
        }
    }
    Ok(())
}

/// The refund request e-mail (返金依頼) of payment `p`, inside the caller's transaction: to
/// `address` when staff typed one, else to the signed link's `shopper_email`. Returns the
/// recipient, or `None` when there is no address to send to.
pub async fn queue_refund_request(
    tx: &mut Tx,
    p: &PaymentRow,
    address: Option<&str>,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let source = if address.is_some() {
        MessageSource::Staff
    } else {
        MessageSource::Link
    };
    let checkout: Option<(Option<String>, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT shopper_email, lang FROM checkouts WHERE id = $1",
    )
    .bind(&p.checkout_id)
    .fetch_optional(c)
    .await)?;
    let (link_email, lang) = checkout.unwrap_or((None, "ja".to_owned()));
    let Some(to) = address
        .map(str::to_owned)
        .or(link_email)
        .filter(|e| !e.is_empty())
    else {
        return Ok(None);
    };
    queue(
        tx,
        &NewMessage {
            merchant_id: &p.merchant_id,
            about: About::Payment(&p.id),
            kind: MessageKind::RefundRequest,
            channel: Channel::Email,
            recipient: &to,
            lang: &lang,
            source,
            send_at: now,
            now,
        },
    )
    .await?;
    Ok(Some(to))
}

/// Instructions (and the reminder, when the merchant has them on) to an address the shopper
/// typed on the number page; one transaction. Returns the instructions' message id.
pub async fn queue_from_form(
    db: &Db,
    p: &PaymentRow,
    address: &str,
    lang: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    let settings = settings_tx(&mut tx, &p.merchant_id).await?;
    let mut m = NewMessage {
        merchant_id: &p.merchant_id,
        about: About::Payment(&p.id),
        kind: MessageKind::Instructions,
        channel: Channel::Email,
        recipient: address,
        lang,
        source: MessageSource::Form,
        send_at: now,
        now,
    };
    let id = queue(&mut tx, &m).await?;
    let remind = p
        .deadline_at
        .and_then(|d| reminder_at(d, settings.reminder_hours, now));
    // A second address typed for the same payment gets no second reminder to the first one.
    if let Some(at) = remind.filter(|_| awaiting_payment(p)) {
        m.kind = MessageKind::Reminder;
        m.send_at = at;
        queue(&mut tx, &m).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// The e-mail of payment request `request_id` to `address`, inside the caller's transaction
/// (the request's insert, or a staff resend).
pub async fn queue_payment_request(
    tx: &mut Tx,
    merchant_id: &str,
    request_id: &str,
    address: &str,
    lang: &str,
    source: MessageSource,
    now: i64,
) -> Result<String, sqlx::Error> {
    queue(
        tx,
        &NewMessage {
            merchant_id,
            about: About::Request(request_id),
            kind: MessageKind::PaymentRequest,
            channel: Channel::Email,
            recipient: address,
            lang,
            source,
            send_at: now,
            now,
        },
    )
    .await
}

/// A payment request's e-mails, oldest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM messages WHERE payment_request_id = $1 ORDER BY created_at, send_at, id"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(request_id).fetch_all(c).await)
}

/// How many addresses the shopper typed on this payment's number page (the form's limit).
pub async fn form_requests(db: &Db, payment_id: &str) -> Result<i64, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE payment_id = $1 AND source = 'form' AND kind = 'instructions'",
    )
    .bind(payment_id)
    .fetch_one(c)
    .await)
}

/// A staff resend: a new pending copy of `original`, due now. One transaction with the
/// caller's audit row.
pub async fn queue_resend(
    tx: &mut Tx,
    original: &MessageRow,
    now: i64,
) -> Result<String, sqlx::Error> {
    let about = original.about().ok_or_else(|| {
        sqlx::Error::Decode(format!("message {} has no payment or request", original.id).into())
    })?;
    queue(
        tx,
        &NewMessage {
            merchant_id: &original.merchant_id,
            about,
            kind: original.kind,
            channel: original.channel,
            recipient: &original.recipient,
            lang: &original.lang,
            source: MessageSource::Staff,
            send_at: now,
            now,
        },
    )
    .await
}

async fn cancel_reminders(tx: &mut Tx, payment_id: &str) -> Result<(), sqlx::Error> {
    tx.write(
        "UPDATE messages SET status = 'cancelled', lease_owner = NULL, lease_until = NULL \
         WHERE payment_id = $1 AND kind = 'reminder' AND status = 'pending'",
        args![payment_id],
    )
    .await
}

/// Leases up to `limit` messages due at `now` (the server's clock, so tests can move it).
/// PostgreSQL instances skip each other's locked rows; an expired lease is taken over.
///
/// One statement, atomic on its own: no BEGIN/COMMIT round trips around it on PostgreSQL; on
/// SQLite it shares its COMMIT with the writers in line. PostgreSQL plans it at each claim,
/// and the UPDATE finds its rows by key (`id = ANY(ARRAY(…))`): as a prepared statement, the
/// generic plan made while the table was small was kept once the table had grown, and it
/// read the whole table twice, a scan for the due rows and a hash join for the UPDATE (70 ms
/// a claim over 200,000 messages against 1.2 ms planned with its values; bench/README.md,
/// change 37).
pub async fn claim(
    db: &Db,
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    db.write_fetch_all_replanned(
        &claim_sql(db.is_postgres()),
        args![owner, now + lease_ms, now, now, limit],
    )
    .await
}

/// The claim's statement ($1 owner, $2 lease end, $3 and $4 now, $5 limit).
fn claim_sql(postgres: bool) -> String {
    let (open, close, lock) = if postgres {
        ("= ANY(ARRAY(", "))", "FOR UPDATE SKIP LOCKED")
    } else {
        ("IN (", ")", "")
    };
    format!(
        "UPDATE messages SET lease_owner = $1, lease_until = $2 WHERE id {open}\
           SELECT id FROM messages WHERE status = 'pending' AND send_at <= $3 \
           AND (lease_until IS NULL OR lease_until < $4) \
           ORDER BY send_at, created_at LIMIT $5 {lock}{close} RETURNING {COLS}"
    )
}

/// The outcome of one attempt.
pub struct Outcome<'a> {
    pub status: MessageStatus,
    /// Counts as an attempt (false when nothing was tried, e.g. a cancelled reminder).
    pub attempted: bool,
    /// The next attempt's time for a `pending` status.
    pub retry_at: Option<i64>,
    pub error: Option<&'a str>,
    pub at: i64,
}

/// Records an attempt's outcome; only the lease holder may. One statement, atomic on its
/// own (no BEGIN/COMMIT around it on PostgreSQL; group-committed on SQLite).
pub async fn finish(db: &Db, id: &str, owner: &str, o: &Outcome<'_>) -> Result<bool, sqlx::Error> {
    let n = db
        .write_exec(
            "UPDATE messages SET status = $1, attempts = attempts + $2, send_at = COALESCE($3, send_at), \
             last_error = COALESCE($4, last_error), sent_at = CASE WHEN $5 = 'sent' THEN $6 ELSE sent_at END, \
             lease_owner = NULL, lease_until = NULL WHERE id = $7 AND lease_owner = $8",
            args![
                o.status.code(),
                i64::from(o.attempted),
                o.retry_at,
                o.error,
                o.status.code(),
                o.at,
                id,
                owner
            ],
        )
        .await?;
    Ok(n == 1)
}

/// A payment's messages, oldest first (the console's payment detail).
pub async fn for_payment(db: &Db, payment_id: &str) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM messages WHERE payment_id = $1 ORDER BY created_at, send_at, id"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(payment_id).fetch_all(c).await)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM messages WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}
