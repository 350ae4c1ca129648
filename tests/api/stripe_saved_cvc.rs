//! CVC re-entry for saved cards (issue 14, item 6), per the merchant's setting: on (the
//! default), the card page mounts Stripe's `cardCvc` field for a saved card, our server
//! confirms only with the `cvc_update` token Stripe.js made of it and sends it as
//! `payment_method_options[card][cvc_token]`; off, nothing is asked and nothing is sent. The
//! setting is shown and changed on the console's settings page (and `merchant set`).
//! localstripe has neither CVC tokens nor `setup_future_usage`: the calls go through
//! [`InstallmentsProxy`], which adds them as Stripe's reference describes.

use kakehashi::console::Role;
use serde_json::Value;

use crate::console::{user, Console};
use crate::helpers::*;
use crate::stripe::{
    app_on, choose_card_with, confirm_plan, data, payment_method, payment_of, stripe_merchant_with,
    LocalStripe, PAN, SK,
};
use crate::stripe_installments::InstallmentsProxy;

/// A CVC update token, as Stripe.js `createToken('cvc_update', cardCvcElement)` makes it.
async fn cvc_token(base: &str, cvc: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/tokens"))
        .bearer_auth(SK)
        .form(&[("cvc_update[cvc]", cvc)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "cvc_update");
    v["id"].as_str().unwrap().to_owned()
}

/// Our script's saved-card path: the saved card to `/card/intent`, then the confirm with
/// `extra` fields. Returns the confirm's status and body.
async fn pay_saved(
    app: &TestApp,
    path: &str,
    csrf: &str,
    card_id: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", csrf), ("saved_card", card_id)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut form = vec![("csrf", csrf), ("option", "lump")];
    form.extend_from_slice(extra);
    let r = app
        .post_form(&format!("{path}/confirm"), UA_PC, &form)
        .await;
    (r.status().as_u16(), r.text().await.unwrap())
}

fn cvc_radio(page: &str, value: &str) -> bool {
    page.contains(&format!(
        "name=\"saved_card_cvc\" value=\"{value}\" checked"
    ))
}

async fn saved_card_cvc(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let proxy = InstallmentsProxy::start(&ls.url).await;
    let Some(app) = app_on(backend, &ls, &proxy.url).await else {
        return;
    };
    let (m, _) = stripe_merchant_with(&app, "manual", "lump").await;
    let who = [("customer_id", "member-9")];

    // A card saved with consent; no security code is asked for a card typed in full.
    let path = choose_card_with(&app, &m, "cvc-1", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(!body.contains("card-cvc-element"), "{body}");
    assert!(!body.contains("data-saved-cvc"), "{body}");
    let csrf = data(&body, "csrf");
    let pm = payment_method(&proxy.url, PAN).await;
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", &csrf), ("payment_method", &pm), ("save_card", "1")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (s, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(proxy.confirm_cvc_tokens(), vec![None]);
    let card_id = app
        .scalar_str("SELECT id FROM saved_cards")
        .await
        .expect("saved card");

    // Default (on): the saved card comes with Stripe's security-code field.
    let path = choose_card_with(&app, &m, "cvc-2", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(body.contains(&format!("value=\"{card_id}\"")), "{body}");
    assert_eq!(data(&body, "saved-cvc"), "1");
    assert!(body.contains("id=\"card-cvc-element\""), "{body}");
    assert!(!body.contains("name=\"cvc\""), "{body}");
    let csrf = data(&body, "csrf");
    // Without the code's token: refused, nothing sent to Stripe, the payment still waits.
    let (s, b) = pay_saved(&app, &path, &csrf, &card_id, &[]).await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("cvc_required"), "{b}");
    assert_eq!(proxy.confirm_cvc_tokens().len(), 1);
    assert_eq!(
        payment_of(&app, "cvc-2").await.status.code(),
        "awaiting_3ds"
    );
    // With it: sent to Stripe with the confirmation, and paid.
    let token = cvc_token(&proxy.url, "123").await;
    let (s, b) = pay_saved(&app, &path, &csrf, &card_id, &[("cvc_token", &token)]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        proxy.confirm_cvc_tokens().last().unwrap().as_deref(),
        Some(token.as_str())
    );
    let p = payment_of(&app, "cvc-2").await;
    assert_eq!(p.status.code(), "authorized");
    assert_eq!(p.details_json()["saved_card"], card_id.as_str());

    // The console's settings page shows the setting and turns it off.
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let (s, page) = c.get("/console/settings").await;
    assert_eq!(s, 200);
    assert!(cvc_radio(&page, "on"), "{page}");
    assert!(!cvc_radio(&page, "off"), "{page}");
    // The rest of the form as stored, so only the setting under test changes.
    let row = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    let (theme, origins) = (row.theme.clone(), row.origins().join(" "));
    let callback = row.callback_url.clone().unwrap_or_default();
    let csrf_console = hidden(&page, "csrf");
    let form = |v: &'static str| {
        vec![
            ("csrf", csrf_console.clone()),
            ("methods", "card".to_owned()),
            ("konbini_days", "7".to_owned()),
            ("capture_mode", "manual".to_owned()),
            ("theme", theme.clone()),
            ("return_origins", origins.clone()),
            ("callback_url", callback.clone()),
            ("saved_card_cvc", v.to_owned()),
        ]
    };
    let owned = form("sometimes");
    let bad: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(c.post("/console/settings", &bad).await.status(), 400);
    let stored = |app: &TestApp| {
        let db = app.db.clone();
        let id = m.id.clone();
        async move {
            kakehashi::db::merchants::get(&db, &id)
                .await
                .unwrap()
                .unwrap()
                .saved_card_cvc()
        }
    };
    assert!(stored(&app).await);
    let owned = form("off");
    let off: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(c.post("/console/settings", &off).await.status(), 303);
    assert!(!stored(&app).await);
    let (_, page) = c.get("/console/settings").await;
    assert!(cvc_radio(&page, "off"), "{page}");

    // Off: no field, and the saved card is paid without a code; one posted anyway is not sent.
    let path = choose_card_with(&app, &m, "cvc-3", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(!body.contains("card-cvc-element"), "{body}");
    assert!(!body.contains("data-saved-cvc"), "{body}");
    let csrf = data(&body, "csrf");
    let stray = cvc_token(&proxy.url, "456").await;
    let (s, b) = pay_saved(&app, &path, &csrf, &card_id, &[("cvc_token", &stray)]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(proxy.confirm_cvc_tokens().last().unwrap(), &None);
    assert_eq!(payment_of(&app, "cvc-3").await.status.code(), "authorized");

    // The CLI turns it back on.
    kakehashi::cli::merchant(
        &app.db,
        &app.state.connectors,
        &app.state.config,
        kakehashi::cli::MerchantCmd::Set {
            merchant_id: m.id.clone(),
            name: None,
            status: None,
            carrier_continuous: None,
            saved_card_cvc: Some(true),
            settings: kakehashi::cli::Settings::default(),
        },
    )
    .await
    .unwrap();
    assert!(stored(&app).await);
    // The code itself never reached this server.
    assert!(!logs().contains("cvc_update[cvc]"));
}

mod saved_card_cvc {
    use crate::helpers::Backend;
    #[tokio::test]
    async fn sqlite() {
        super::saved_card_cvc(Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::saved_card_cvc(Backend::Postgres).await;
    }
}
