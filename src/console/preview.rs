//! Theme preview for the settings page: the shopper's payment-method selector rendered with a
//! sample order in a chosen theme, for PC, smartphone or feature phone. Nothing is stored and
//! the form posts nowhere useful (its action is the preview itself).

use axum::response::Response;

use crate::db::merchants::MerchantRow;
use crate::device::Device;
use crate::error::AppError;
use crate::pages::{Chrome, MethodView, OrderView, SelectorPage};
use crate::state::AppState;

pub fn render(
    state: &AppState,
    m: &MerchantRow,
    theme: &str,
    device: Device,
) -> Result<Response, AppError> {
    let c = Chrome::new(state, device, &m.name, theme, "ja");
    let order = OrderView::new("preview-0001", "プレビュー商品", 1500);
    let methods: Vec<MethodView> = m
        .methods()
        .into_iter()
        .filter(|x| x.works_on(device))
        .enumerate()
        .map(|(i, x)| MethodView {
            code: x.code(),
            name: x.name_ja(),
            accesskey: i + 1,
            badge: crate::pages::method_badge(x, Some(crate::domain::wallet::Wallet::PayPay)),
        })
        .collect();
    let action = "/console/settings".to_owned();
    SelectorPage {
        c,
        order,
        methods,
        action,
        csrf: String::new(),
        cancel_url: None,
        note: None,
        unavailable: Vec::new(),
        handoff: None,
    }
    .render(device, axum::http::StatusCode::OK)
}
