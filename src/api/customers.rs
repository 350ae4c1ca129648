//! A customer's saved cards (card on file) over the API: list them, remove one. The customer is
//! the `customer_id` the merchant signs into order links; cards are saved only with the
//! shopper's consent, at the processor (Stripe), and only brand, last 4 and expiry are shown.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{err, ApiMerchant};
use crate::db::saved_cards::SavedCardRow;
use crate::error::AppResult;
use crate::state::AppState;

/// A saved card: never the number.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedCard {
    /// Saved card id (`card_…`).
    pub id: String,
    /// `visa`, `mastercard`, `jcb`, `amex`, `diners` (or the processor's code).
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    /// The processor account holding the card (`pa_…`).
    pub processor_account: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<SavedCardRow> for SavedCard {
    fn from(c: SavedCardRow) -> Self {
        SavedCard {
            id: c.id,
            brand: c.brand,
            last4: c.last4,
            exp_month: c.exp_month,
            exp_year: c.exp_year,
            processor_account: c.account_id,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavedCardList {
    /// Newest first.
    pub data: Vec<SavedCard>,
}

/// A removed card.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedCardRemoved {
    pub id: String,
    /// Always `true`.
    pub deleted: bool,
}

fn check_ref(customer: &str) -> AppResult<()> {
    let ok = !customer.is_empty()
        && customer.len() <= 64
        && customer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "customer id: 1–64 of A-Z a-z 0-9 _ -",
        ))
    }
}

/// List a customer's saved cards.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{customer_id}/cards",
    operation_id = "listSavedCards",
    tag = "customers",
    params(("customer_id" = String, Path, description = "Your customer id (the link's customer_id)")),
    responses(
        (status = 200, body = SavedCardList),
        (status = 400, description = "invalid_parameter", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(customer): Path<String>,
) -> AppResult<Json<SavedCardList>> {
    check_ref(&customer)?;
    let cards = crate::flows::saved_cards::list(&state, &m.id, &customer).await?;
    Ok(Json(SavedCardList {
        data: cards.into_iter().map(SavedCard::from).collect(),
    }))
}

/// Remove a saved card: detached at the processor (it can no longer be charged), then
/// forgotten.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{customer_id}/cards/{card_id}",
    operation_id = "removeSavedCard",
    tag = "customers",
    params(
        ("customer_id" = String, Path, description = "Your customer id"),
        ("card_id" = String, Path, description = "Saved card id (card_…)"),
    ),
    responses(
        (status = 200, body = SavedCardRemoved),
        (status = 400, description = "invalid_parameter", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "saved_card_not_found", body = super::openapi::ApiError),
        (status = 502, description = "connector_error: the processor refused or did not answer; the card is kept", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path((customer, card)): Path<(String, String)>,
) -> AppResult<Json<SavedCardRemoved>> {
    check_ref(&customer)?;
    let c = crate::flows::saved_cards::remove(&state, &m, &customer, &card).await?;
    Ok(Json(SavedCardRemoved {
        id: c.id,
        deleted: true,
    }))
}
