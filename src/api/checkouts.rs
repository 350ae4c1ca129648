//! `POST /api/v1/checkouts` (a checkout link the server signs itself) and
//! `POST /api/v1/checkouts/{order_id}/expire`.
//!
//! The API builds the same raw link fields a cart would, signs them with the merchant's newest
//! signing key and opens them through [`crate::flows::checkout::open_link`]: every rule and reason code
//! of signed links applies unchanged, and the checkout exists from now on (so it can be expired
//! before the shopper ever opens it).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{err, time, ApiJson, ApiMerchant};
use crate::db::checkouts;
use crate::error::AppResult;
use crate::flows::checkout::{self};
use crate::state::AppState;

pub use crate::flows::checkout::{lifetime, DEFAULT_EXPIRES_IN};

/// A checkout to create. Values follow the link protocol (docs/link-protocol.md).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCheckout {
    /// The merchant's order id (取引ID): 1–50 of `A-Z a-z 0-9 _ -`, unique per merchant.
    #[schema(example = "order-1001")]
    pub order_id: String,
    /// Integer yen.
    #[schema(example = 1500)]
    pub amount: i64,
    /// Shown to the shopper, at most 100 characters.
    #[schema(example = "抹茶ラテ セット")]
    pub item_name: String,
    pub shopper_name: Option<String>,
    pub shopper_kana: Option<String>,
    pub shopper_email: Option<String>,
    pub shopper_phone: Option<String>,
    /// Method codes to offer (default: the merchant's settings).
    #[schema(example = json!(["card", "konbini"]))]
    pub methods: Option<Vec<String>>,
    /// Where the shopper returns; its origin must be registered for the merchant.
    #[schema(example = "https://shop.example/thanks")]
    pub return_url: String,
    pub cancel_url: Option<String>,
    /// Seconds the link stays valid (default 86400, at most 30 days).
    #[schema(example = 3600)]
    pub expires_in: Option<i64>,
    /// Konbini payment deadline in days (0–60).
    pub konbini_days: Option<i64>,
    /// `ja` (default) or `en`.
    pub lang: Option<String>,
    /// Your id of the shopper (会員ID, 1–64 of `A-Z a-z 0-9 _ -`): cards saved with the
    /// shopper's consent are kept under it and offered at their next checkout.
    #[schema(example = "member-42")]
    pub customer_id: Option<String>,
}

impl CreateCheckout {
    /// The link's order fields (everything but merchant, key, expiry and signature).
    pub fn order_fields(&self) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = vec![
            ("order_id".into(), self.order_id.clone()),
            ("amount".into(), self.amount.to_string()),
            ("item_name".into(), self.item_name.clone()),
            ("return_url".into(), self.return_url.clone()),
        ];
        let opt = [
            ("shopper_name", &self.shopper_name),
            ("shopper_kana", &self.shopper_kana),
            ("shopper_email", &self.shopper_email),
            ("shopper_phone", &self.shopper_phone),
            ("cancel_url", &self.cancel_url),
            ("lang", &self.lang),
            ("customer_id", &self.customer_id),
        ];
        for (k, v) in opt {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                f.push((k.into(), v.clone()));
            }
        }
        if let Some(m) = self.methods.as_ref().filter(|m| !m.is_empty()) {
            f.push(("methods".into(), m.join(",")));
        }
        if let Some(d) = self.konbini_days {
            f.push(("konbini_days".into(), d.to_string()));
        }
        f
    }
}

/// A created checkout.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutCreated {
    pub checkout_id: String,
    pub order_id: String,
    /// The signed link to send the shopper to.
    pub checkout_url: String,
    /// When the link stops working (RFC 3339, Japan time).
    pub expires_at: String,
    /// `open`, `pending`, `paid`, `cancelled` or `expired`.
    pub status: String,
}

/// A checkout after `expire`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutExpired {
    pub checkout_id: String,
    pub order_id: String,
    pub status: String,
}

/// Create a checkout and get its signed link.
#[utoipa::path(
    post,
    path = "/api/v1/checkouts",
    operation_id = "createCheckout",
    tag = "checkouts",
    params(super::openapi::IdempotencyKey),
    request_body = CreateCheckout,
    responses(
        (status = 201, description = "Created (or the same order again): the link", body = CheckoutCreated),
        (status = 400, description = "Invalid field (same reason codes as links)", body = super::openapi::ApiError),
        (status = 401, description = "Missing or bad API key", body = super::openapi::ApiError),
        (status = 409, description = "order_conflict: the order id was used with other content", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    ApiJson(req): ApiJson<CreateCheckout>,
) -> AppResult<(StatusCode, Json<CheckoutCreated>)> {
    let expires_at = state.now_s() + lifetime(req.expires_in)?;
    let (opened, url) =
        checkout::sign_and_open(&state, &m.id, &req.order_fields(), expires_at).await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutCreated {
            checkout_id: opened.checkout.id,
            order_id: opened.checkout.order_id,
            checkout_url: url,
            expires_at: time(expires_at * 1000),
            status: opened.checkout.status.code().to_owned(),
        }),
    ))
}

/// Expire an open checkout (no live payment): its link then shows it closed.
#[utoipa::path(
    post,
    path = "/api/v1/checkouts/{order_id}/expire",
    operation_id = "expireCheckout",
    tag = "checkouts",
    params(("order_id" = String, Path, description = "The merchant's order id"), super::openapi::IdempotencyKey),
    responses(
        (status = 200, description = "Expired (also when it already was)", body = CheckoutExpired),
        (status = 401, description = "Missing or bad API key", body = super::openapi::ApiError),
        (status = 404, description = "checkout_not_found", body = super::openapi::ApiError),
        (status = 409, description = "payment_exists or checkout_not_open", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn expire(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(order_id): Path<String>,
) -> AppResult<Json<CheckoutExpired>> {
    let c = checkouts::find_by_order(&state.db, &m.id, &order_id)
        .await?
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                "checkout_not_found",
                format!("no checkout for order {order_id}"),
            )
        })?;
    let mut tx = state.db.begin().await?;
    checkout::expire_in_tx(&mut tx, &c.id, state.now_ms()).await?;
    tx.commit().await?;
    Ok(Json(CheckoutExpired {
        checkout_id: c.id,
        order_id: c.order_id,
        status: "expired".into(),
    }))
}
