//! Saved cards (card on file) of a merchant's customer: listed for the card page and the API,
//! and removed — detached at the processor first, so a removed card can no longer be charged,
//! then forgotten here. Cards are saved by [`crate::flows::client_card`] when a payment made
//! with the shopper's consent is paid.

use crate::context::Ctx;
use crate::db::merchants::MerchantRow;
use crate::db::saved_cards::{self, SavedCardRow};
use crate::domain::processor::ConnectorId;
use crate::flows::error::{FlowError, FlowResult, Refused};

fn not_found() -> FlowError {
    FlowError::Refused {
        kind: Refused::NotFound,
        code: "saved_card_not_found",
        message: "no such saved card for this customer".into(),
    }
}

/// A customer's saved cards (all processor accounts), newest first.
pub async fn list(
    state: &Ctx,
    merchant_id: &str,
    customer_ref: &str,
) -> FlowResult<Vec<SavedCardRow>> {
    Ok(saved_cards::list(&state.db, merchant_id, customer_ref, None).await?)
}

/// The saved cards a checkout can pay with: its customer's, at the card connector's account.
pub async fn for_checkout(
    state: &Ctx,
    o: &crate::flows::checkout::Opened,
) -> FlowResult<Vec<SavedCardRow>> {
    let (Some(r), Some(resolved)) = (&o.checkout.customer_ref, o.connectors.client_card()) else {
        return Ok(vec![]);
    };
    let ConnectorId::Account(account) = &resolved.id else {
        return Ok(vec![]);
    };
    Ok(saved_cards::list(&state.db, &o.merchant.id, r, Some(account)).await?)
}

/// Removes a saved card: detached at the processor, then deleted here. Nothing is deleted
/// when the processor does not answer (the card could still be charged there).
pub async fn remove(
    state: &Ctx,
    merchant: &MerchantRow,
    customer_ref: &str,
    id: &str,
) -> FlowResult<SavedCardRow> {
    let card = saved_cards::get(&state.db, &merchant.id, customer_ref, id)
        .await?
        .ok_or_else(not_found)?;
    let conn = crate::flows::merchant_connectors(state, merchant)
        .await?
        .client_card_for(&ConnectorId::Account(card.account_id.clone()))
        .ok_or_else(|| FlowError::Refused {
            kind: Refused::Upstream,
            code: "connector_error",
            message: "the card's processor account cannot be reached from this server".into(),
        })?;
    conn.detach_method(&card.processor_method)
        .await
        .map_err(|e| FlowError::Refused {
            kind: Refused::Upstream,
            code: "connector_error",
            message: format!("the card processor refused: {}", e.code()),
        })?;
    saved_cards::delete(&state.db, &merchant.id, &card.id).await?;
    Ok(card)
}
