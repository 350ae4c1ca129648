//! The demo shop's return page: where the printed demo link sends the shopper back. It checks
//! the signed result the way a merchant's cart should, and shows it.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use crate::db::merchants;
use crate::device::Ua;
use crate::error::AppResult;
use crate::form;
use crate::pages::{Chrome, DemoReturn};
use crate::render::page;
use crate::state::AppState;

/// `GET /demo/return?...`
pub async fn return_page(
    State(state): State<AppState>,
    ua: Ua,
    RawQuery(q): RawQuery,
) -> AppResult<Response> {
    let fields = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let merchant_id = form::get(&fields, "merchant_id").to_owned();
    let key_id = form::get(&fields, "key_id");
    let verified = match merchants::merchant_with_key(&state.db, &state.keys, &merchant_id, key_id)
        .await
    {
        Ok((_, secret)) => {
            // Only the result fields are signed; the return URL's own parameters are not.
            const SIGNED: [&str; 5] = ["merchant_id", "key_id", "order_id", "payment_id", "status"];
            let canonical = crate::signing::canonical(
                fields
                    .iter()
                    .filter(|(k, _)| SIGNED.contains(&k.as_str()))
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            crate::signing::verify(&secret, &canonical, form::get(&fields, "signature"))
        }
        Err(_) => false,
    };
    let shown: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| ["order_id", "payment_id", "status"].contains(&k.as_str()))
        .cloned()
        .collect();
    let c = Chrome::new(&state, ua.device, "さくらデモショップ", "demo", "ja");
    let device = match ua.device {
        crate::device::Device::FeaturePhone => crate::device::Device::Smartphone,
        d => d,
    };
    page(
        device,
        &DemoReturn {
            c,
            verified,
            fields: shown,
        },
    )
}
