//! Brings a processor-issued payment number up to date from what the processor reports now:
//! an inbound event (Stripe's `payment_intent.*` for a konbini PaymentIntent) only says that
//! something changed, so the number is read back and each change the processor reports is
//! applied when the number's state machine allows it — a late, repeated or out-of-order event
//! changes nothing.

use crate::connectors::konbini::{IssuedNumber, NumberConnector};
use crate::db::payments::PaymentRow;
use crate::db::Db;
use crate::flows::konbini::{apply_action, target_of, ActionError};

/// The reference the processor knows the number by (its content is not needed to query).
fn number_ref(p: &PaymentRow) -> Option<IssuedNumber> {
    Some(IssuedNumber {
        target: target_of(p)?,
        receipt_no: None,
        customer_no: None,
        confirm_no: None,
        institution_no: None,
        payment_url: None,
        deadline_ms: p.deadline_at.unwrap_or(0),
        connector_ref: p.connector_ref.clone()?,
        account: None,
    })
}

/// Why a number could not be brought up to date. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the processor did not answer: {0}")]
    Connector(String),
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// Reads the number back from `conn` and applies what changed (paid, expired, withdrawn), each
/// with its event and notification. Returns the payment as it is now when something changed.
pub async fn from_processor(
    db: &Db,
    conn: &dyn NumberConnector,
    p: &PaymentRow,
    actor: &str,
    now: i64,
) -> Result<Option<PaymentRow>, SyncError> {
    let Some(number) = number_ref(p) else {
        return Ok(None);
    };
    let actions = conn
        .query(&number)
        .await
        .map_err(|e| SyncError::Connector(e.code().to_owned()))?;
    let mut changed = None;
    for a in actions {
        match apply_action(db, &p.id, a, actor, now).await {
            Ok(row) => changed = Some(row),
            // Already there, or moved on (paid before this expiry arrived): nothing to do.
            Err(ActionError::Transition(_) | ActionError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(changed)
}
