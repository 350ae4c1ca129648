//! Card data held between a 3-D Secure challenge and the authorization that follows it, in the
//! database (`pending_cards`) so the one-time code may reach any instance.
//!
//! The card is sealed with AES-256-GCM, bound to its payment id, under the master key; without
//! one (a test-mode installation, which has only the sandbox connector) under a key derived from
//! the server secret (`Ctx::card_keys`, docs/security.md). It is deleted when taken for the
//! authorization (before the request is sent: PCI DSS 3.3.1 allows the security code only until
//! authorization), with the change that fails or cancels the challenge, and by the sweep once
//! [`PENDING_TTL`] has passed.

use crate::context::{Ctx, PENDING_TTL};
use crate::db::{pending_cards, Db, Tx};
use crate::domain::card_form::CardInput;
use crate::flows::error::FlowResult;

/// The seal context: a sealed card copied into another payment's row does not open.
pub fn seal_context(payment_id: &str) -> String {
    format!("pending_cards:{payment_id}:card")
}

/// The purpose the test-mode card key is derived from the server secret for.
pub const DERIVED_KEY_PURPOSE: &str = "kakehashi/pending-cards/v1";

/// Holds the card for `payment_id` until [`PENDING_TTL`] from now, in the caller's transaction.
pub async fn put(tx: &mut Tx, state: &Ctx, payment_id: &str, input: &CardInput) -> FlowResult<()> {
    let sealed = state
        .card_keys
        .seal(&input.to_sealable(), &seal_context(payment_id))
        .map_err(anyhow::Error::from)?;
    let now = state.now_ms();
    let expires_at = now + PENDING_TTL.as_millis() as i64;
    pending_cards::put(tx, payment_id, &sealed, expires_at, now).await?;
    Ok(())
}

/// True if a card is held for `payment_id` and has not expired.
pub async fn held(state: &Ctx, payment_id: &str) -> FlowResult<bool> {
    Ok(pending_cards::held(&state.db, payment_id, state.now_ms()).await?)
}

/// Takes the held card: the row is deleted, whatever follows. `None` when there is none, it
/// has expired, or it cannot be opened (sealed under a key no longer configured).
pub async fn take(state: &Ctx, payment_id: &str) -> FlowResult<Option<CardInput>> {
    let Some(sealed) = pending_cards::take(&state.db, payment_id, state.now_ms()).await? else {
        return Ok(None);
    };
    match state.card_keys.open(&sealed, &seal_context(payment_id)) {
        Ok(text) => Ok(CardInput::from_sealable(&text)),
        Err(e) => {
            tracing::warn!(payment = payment_id, error = %e, "a held card cannot be opened");
            Ok(None)
        }
    }
}

/// Drops the held card of a payment whose challenge ended, in the transaction of that change.
pub async fn drop_in(tx: &mut Tx, payment_id: &str) -> FlowResult<()> {
    pending_cards::delete(tx, payment_id).await?;
    Ok(())
}

/// Deletes every held card past its expiry (the sweep); returns how many.
pub async fn purge_expired(db: &Db, now: i64) -> anyhow::Result<u64> {
    Ok(pending_cards::purge_expired(db, now).await?)
}
