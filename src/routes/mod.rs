//! Every route of the server, in one place, with the layers that wrap them.

mod assets;
mod bank;
mod bench_limit;
mod card;
mod card_browser;
mod carrier;
pub mod checkout;
pub mod console;
mod console_admin;
mod console_bulk;
mod console_checkouts;
mod console_merchants;
mod console_messages;
mod console_owners;
mod console_processors;
mod console_refunds;
mod console_repeat;
mod console_requests;
mod console_searches;
mod console_settlements;
mod console_subscriptions;
mod console_themes;
mod console_users;
mod demo;
mod handoff;
pub(crate) mod konbini;
pub mod messages;
mod ops;
mod processor_webhooks;
mod redirect;
pub mod redirect_result;
mod refund;
mod sandbox;
mod sandbox_pages;
mod shopper;
mod short;
mod wallet;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::flows::bank::BankNet;
use crate::flows::wallet::Wallets;
use crate::state::AppState;

/// The merchant console under /console, with its own error pages.
fn console_router(state: AppState) -> Router<AppState> {
    let limit = middleware::from_fn_with_state(
        console::SignInLimit {
            limiter: console::sign_in_limiter(state.config.console_login_per_minute),
            trusted_proxies: state.config.trusted_proxies.clone().into(),
        },
        console::limit_sign_in,
    );
    // Enrolment posts hash a password: limited per address like sign-in, with their own budget.
    let enrol_limit = middleware::from_fn_with_state(
        console::SignInLimit {
            limiter: console::sign_in_limiter(state.config.console_login_per_minute),
            trusted_proxies: state.config.trusted_proxies.clone().into(),
        },
        console::limit_sign_in,
    );
    Router::new()
        .route("/console", get(console::home))
        .route(
            "/console/login",
            get(console::login_get)
                .post(console::login_post)
                .route_layer(limit.clone()),
        )
        .route(
            "/console/login/totp",
            get(console::totp_get)
                .post(console::totp_post)
                .route_layer(limit),
        )
        .route("/console/logout", post(console::logout))
        .route(
            "/console/enrol/{token}",
            get(console_users::enrol_get)
                .post(console_users::enrol_post)
                .route_layer(enrol_limit),
        )
        .route(
            "/console/enrol/{token}/qr.svg",
            get(console_users::enrol_qr),
        )
        .route("/console/users", get(console_users::list))
        .route("/console/users/invite", post(console_users::invite))
        .route("/console/users/{id}/role", post(console_users::role))
        .route("/console/users/{id}/disable", post(console_users::disable))
        .route("/console/users/{id}/enable", post(console_users::enable))
        .route(
            "/console/users/{id}/reset-totp",
            post(console_users::reset_totp),
        )
        .route("/console/invites/{id}/revoke", post(console_users::revoke))
        .route("/console/payments", get(console::list))
        .route("/console/payments.csv", get(console::csv))
        .route("/console/payments/bulk", post(console_bulk::bulk))
        .route("/console/payments/{id}", get(console::detail))
        .route("/console/searches", post(console_searches::save))
        .route(
            "/console/searches/{id}/delete",
            post(console_searches::delete),
        )
        .route("/console/checkouts/new", get(console_checkouts::new))
        .route("/console/checkouts", post(console_checkouts::create))
        .route(
            "/console/payments/{id}/refund-requests",
            post(console_refunds::create),
        )
        .route(
            "/console/refund-requests/{id}/{op}",
            post(console_refunds::act),
        )
        .route("/console/payments/{id}/action", post(console_admin::action))
        .route(
            "/console/payments/{id}/redeliver",
            post(console_admin::redeliver),
        )
        .route(
            "/console/payments/{id}/messages/resend",
            post(console_messages::resend),
        )
        .route(
            "/console/settings/messages",
            get(console_messages::settings_get).post(console_messages::settings_post),
        )
        .route(
            "/console/settings",
            get(console_admin::settings_get).post(console_admin::settings_post),
        )
        .route(
            "/console/settings/rotate-key",
            post(console_admin::rotate_key),
        )
        .route(
            "/console/settings/rotate-webhook",
            post(console_admin::rotate_webhook),
        )
        .route("/console/settings/preview", get(console_admin::preview))
        .route(
            "/console/settings/api-keys",
            post(console_merchants::api_key_create),
        )
        .route(
            "/console/settings/api-keys/{id}/retire",
            post(console_merchants::api_key_retire),
        )
        .route(
            "/console/settings/keys/{id}/retire",
            post(console_merchants::signing_key_retire),
        )
        .route(
            "/console/settings/test-notification",
            post(console_merchants::test_notification),
        )
        .route(
            "/console/settings/test-notification/{id}",
            get(console_merchants::test_notification_get),
        )
        .route(
            "/console/merchants",
            get(console_merchants::list).post(console_merchants::create),
        )
        .route("/console/tenants", get(console_owners::tenants))
        .route(
            "/console/owners",
            get(console_owners::list).post(console_owners::create),
        )
        .route("/console/owners/attach", post(console_owners::attach))
        .route(
            "/console/merchants/{id}",
            get(console_merchants::edit_get).post(console_merchants::edit_post),
        )
        .route(
            "/console/settings/theme",
            post(console_themes::upload).layer(DefaultBodyLimit::max(console_themes::BODY_LIMIT)),
        )
        .route("/console/processors", get(console_processors::show))
        .route("/console/processors/add", post(console_processors::add))
        .route(
            "/console/processors/mode",
            post(console_processors::set_mode),
        )
        .route(
            "/console/processors/{id}/retire",
            post(console_processors::retire),
        )
        .route(
            "/console/payment-requests",
            get(console_requests::list).post(console_requests::send),
        )
        .route(
            "/console/payment-requests/{id}/resend",
            post(console_requests::resend),
        )
        .route(
            "/console/payment-requests/{id}/cancel",
            post(console_requests::cancel),
        )
        .route("/console/repeat-numbers", get(console_repeat::list))
        .route("/console/repeat-numbers/{id}", get(console_repeat::detail))
        .route(
            "/console/repeat-numbers/{id}/card",
            get(console_repeat::card),
        )
        .route(
            "/console/repeat-numbers/{id}/retire",
            post(console_repeat::retire),
        )
        .route("/console/subscriptions", get(console_subscriptions::list))
        .route(
            "/console/subscriptions/{id}",
            get(console_subscriptions::detail),
        )
        .route(
            "/console/subscriptions/{id}/cancel",
            post(console_subscriptions::cancel),
        )
        .route("/console/summary", get(console_admin::summary_page))
        .route("/console/settlements", get(console_settlements::list))
        .route(
            "/console/settlements/terms",
            get(console_settlements::terms).post(console_settlements::terms_post),
        )
        .route(
            "/console/settlements/terms/fee",
            post(console_settlements::fee_post),
        )
        .route(
            "/console/settlements.csv",
            get(console_settlements::list_csv),
        )
        .route(
            "/console/settlements/{id}",
            get(console_settlements::detail),
        )
        .route(
            "/console/settlements/{id}/csv",
            get(console_settlements::detail_csv),
        )
        .route(
            "/console/settlements/{id}/pdf",
            get(console_settlements::statement_pdf),
        )
        .route(
            "/console/reports/konbini.pdf",
            get(console_settlements::konbini_pdf),
        )
        .route("/console/audit", get(console_admin::audit_page))
        .layer(middleware::from_fn_with_state(
            state,
            console::render_errors,
        ))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        // Shopper checkout
        .route(
            "/checkout",
            get(checkout::open_get).post(checkout::open_post),
        )
        .route("/pay/{token}", get(checkout::show))
        .route("/pay/{token}/method", post(checkout::choose_method))
        .route("/pay/{token}/view", get(checkout::switch_view))
        .route("/pay/{token}/handoff.png", get(handoff::qr))
        .route("/pay/{token}/state", get(handoff::state))
        .route("/h/{token}", get(handoff::open))
        .route("/pay/{token}/lang", get(checkout::switch_lang))
        .route("/pay/{token}/card", get(card::form_page).post(card::submit))
        .route(
            "/pay/{token}/card/challenge",
            get(card::challenge_page).post(card::challenge_submit),
        )
        .route(
            "/pay/{token}/card/challenge/cancel",
            post(card::challenge_cancel),
        )
        .route("/pay/{token}/card/result", get(card::result_page))
        .route("/pay/{token}/card/3ds-return", get(card::three_ds_return))
        .route("/pay/{token}/card/intent", post(card_browser::intent))
        .route("/pay/{token}/card/confirm", post(card_browser::confirm))
        .route(
            "/pay/{token}/card/saved/{id}/delete",
            post(card_browser::remove_saved),
        )
        .route("/pay/{token}/card/return", get(card_browser::back))
        .route("/js/card-elements.js", get(card_browser::script))
        .route(
            "/webhooks/stripe/{account_id}",
            post(card_browser::stripe_webhook),
        )
        // SMS payment links: the short URL redirects to a freshly signed checkout link
        .route("/s/{code}", get(short::open))
        // Refund requests (返金依頼): the shopper's bank account page, by signed link
        .route("/refund/{id}", get(refund::show).post(refund::submit))
        // Server-to-server API (its own auth, idempotency and JSON error layers)
        .merge(crate::api::router(state.clone()))
        // The demo shop's return page (the printed demo link returns here)
        .route("/demo/return", get(demo::return_page))
        // Konbini and Pay-easy
        .route(
            "/pay/{token}/konbini",
            get(konbini::konbini_get).post(konbini::konbini_post),
        )
        .route(
            "/pay/{token}/payeasy",
            get(konbini::payeasy_get).post(konbini::payeasy_post),
        )
        .route(
            "/pay/{token}/bank_transfer",
            get(konbini::bank_transfer_get).post(konbini::bank_transfer_post),
        )
        .route(
            "/pay/{token}/number/retry",
            post(konbini::number_retry_post),
        )
        // Shopper messages: the number page's e-mail form and the links in messages
        .route(
            "/pay/{token}/email-instructions",
            post(messages::email_instructions),
        )
        .route("/m/{payment_id}/{mac}", get(messages::open_link))
        .route(
            "/pay/{token}/number/change",
            post(konbini::number_change_post),
        )
        .route(
            "/sandbox/v1/payments/{payment_id}/{action}",
            post(sandbox::control),
        )
        .route(
            "/sandbox/v1/repeat-numbers/{id}/pay",
            post(sandbox::repeat_pay),
        )
        // Processor webhooks (one URL per processor account)
        .route(
            "/webhooks/komoju/{account_id}",
            post(processor_webhooks::komoju),
        )
        // Bank net and carrier billing, and their sandbox bank / carrier pages
        .route(
            "/pay/{token}/banknet",
            get(bank::show).post(redirect::start::<BankNet>),
        )
        .route(
            "/pay/{token}/banknet/return/{payment_id}",
            get(redirect::back::<BankNet>),
        )
        .route(
            "/pay/{token}/banknet/result/{payment_id}",
            get(redirect::result::<BankNet>),
        )
        // Carrier billing: static paths per carrier, so no route at this depth is ambiguous.
        .route(
            "/pay/{token}/docomo",
            get(carrier::show).post(carrier::start),
        )
        .route(
            "/pay/{token}/docomo/return/{payment_id}",
            get(carrier::back),
        )
        .route(
            "/pay/{token}/docomo/result/{payment_id}",
            get(carrier::result),
        )
        .route("/pay/{token}/au", get(carrier::show).post(carrier::start))
        .route("/pay/{token}/au/return/{payment_id}", get(carrier::back))
        .route("/pay/{token}/au/result/{payment_id}", get(carrier::result))
        .route(
            "/pay/{token}/softbank",
            get(carrier::show).post(carrier::start),
        )
        .route(
            "/pay/{token}/softbank/return/{payment_id}",
            get(carrier::back),
        )
        .route(
            "/pay/{token}/softbank/result/{payment_id}",
            get(carrier::result),
        )
        // Wallets (PayPay, au PAY, …)
        .route(
            "/pay/{token}/wallet",
            get(wallet::show).post(redirect::start::<Wallets>),
        )
        .route(
            "/pay/{token}/wallet/return/{payment_id}",
            get(redirect::back::<Wallets>),
        )
        .route(
            "/pay/{token}/wallet/result/{payment_id}",
            get(redirect::result::<Wallets>),
        )
        // Sandbox bank, carrier and wallet pages (test mode's stand-ins for the real ones)
        .route(
            "/sandbox/bank/{bank_code}/{session}",
            get(sandbox_pages::page::<BankNet>).post(sandbox_pages::post::<BankNet>),
        )
        .route(
            "/sandbox/carrier/{carrier}/{session}",
            get(sandbox_pages::carrier_page).post(sandbox_pages::carrier_post),
        )
        .route(
            "/sandbox/wallet/{wallet}/{session}",
            get(sandbox_pages::page::<Wallets>).post(sandbox_pages::post::<Wallets>),
        )
        // Merchant console
        .merge(console_router(state.clone()))
        // Assets and health
        .route("/assets/{*path}", get(assets::serve))
        .route("/themes/{name}/{file}", get(console_themes::asset))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/favicon.ico", get(assets::favicon))
        // The benchmark's ceiling: only under KAKEHASHI_BENCH_LIMIT=1 (bench/README.md)
        .merge(bench_limit::routes(state.config.bench_limit))
        .fallback(assets::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::security::render_errors,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::security::headers,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line per answered request (status, latency), inside the request's span.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        // Outside the tracing layer, so the request's span carries the id it assigns.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::request_id::assign,
        ))
        // Outermost, so timeouts, body-limit refusals and error pages are counted as answered.
        .layer(middleware::from_fn(crate::telemetry::track))
        .with_state(state)
}

/// The tracing span of a request: its request id ([`crate::request_id`]), the method and the
/// route *template*. The raw path is never logged: it can hold a session token, and query
/// strings hold signatures.
fn request_span(req: &axum::extract::Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "-".into());
    let id = req
        .extensions()
        .get::<crate::request_id::RequestId>()
        .map_or("-", |r| r.0.as_str());
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
    )
}
