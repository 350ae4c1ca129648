//! The OpenAPI 3 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! annotations and the request/response types, served at `/api/openapi.json`.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::{
    checkouts, customers, events, payment_requests, payments, repeat_numbers, settlements,
};

/// The error body every failure has.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiErrorDetail {
    /// Stable machine-readable code, e.g. `unauthorized`, `invalid_field`, `rate_limited`.
    pub code: String,
    /// Human-readable explanation (English).
    pub message: String,
    /// The request field concerned, when there is one.
    pub field: Option<String>,
}

/// The `Idempotency-Key` header every POST requires.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// Unique per operation (e.g. a UUID), 1–255 visible ASCII characters. Retrying with the
    /// same key and body replays the first response; kept at least 24 hours.
    #[param(rename = "Idempotency-Key")]
    #[allow(dead_code)]
    idempotency_key: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ak_test_… / ak_live_… / ok_…")
                    .description(Some(
                        "A merchant key, or an owner key (`ok_…`) sent with the \
                         `Kakehashi-Merchant` header naming one of the owner's tenants \
                         (docs/owners.md); the settlement reads also take an owner key \
                         without it, for every tenant.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kakehashi API",
        description = "Server-to-server API of the Kakehashi hosted checkout. See docs/api.md.",
        version = "1"
    ),
    paths(
        checkouts::create,
        checkouts::expire,
        payments::list,
        payments::get,
        payments::capture,
        payments::cancel,
        payments::refund,
        events::redeliver,
        events::ping,
        payment_requests::create,
        payment_requests::get,
        payment_requests::resend,
        payment_requests::cancel,
        payment_requests::messages,
        repeat_numbers::create,
        repeat_numbers::list,
        repeat_numbers::get,
        repeat_numbers::payments,
        repeat_numbers::retire,
        customers::list,
        customers::remove,
        settlements::list,
        settlements::get,
        settlements::statement_pdf,
        settlements::terms,
    ),
    components(schemas(ApiError, ApiErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation has an explicit `operation_id`, and no two share one: code generators
    /// name client methods after them (issue 20 item 7).
    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let mut seen = std::collections::BTreeMap::new();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let Some(id) = op.get("operationId").and_then(|v| v.as_str()) else {
                    continue;
                };
                let at = format!("{} {path}", method.to_uppercase());
                if let Some(first) = seen.insert(id.to_owned(), at.clone()) {
                    panic!("operationId {id:?} used by {first} and {at}");
                }
            }
        }
        assert_eq!(
            seen.len(),
            25,
            "every operation has an operationId: {seen:?}"
        );
    }
}
