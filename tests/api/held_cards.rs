//! Issue 20 finding 4: 3-D Secure challenge state is shared through the database, so a
//! challenge started on one instance is finished on another. The card waits sealed in
//! `pending_cards` (never in clear) and is deleted at authorization, when the challenge fails or
//! is cancelled, and at expiry; each is checked by reading the table. See docs/security.md.

use kakehashi::domain::card_form::CardInput;
use kakehashi::flows::card_hold;

use crate::card::card_page;
use crate::helpers::*;

const CHALLENGE_VISA: &str = "4000000000002008";
const CVC: &str = "246";

/// Every row of `pending_cards`: (payment id, sealed card).
async fn held(app: &TestApp) -> Vec<(String, String)> {
    kakehashi::on_db!(&app.db, c => sqlx::query_as(
        "SELECT payment_id, sealed FROM pending_cards ORDER BY payment_id")
        .fetch_all(c)
        .await)
    .unwrap()
}

/// A URL of `app` as a path, to be sent to any instance.
fn path(app: &TestApp, url: &str) -> String {
    url.strip_prefix(&app.base).unwrap_or(url).to_owned()
}

async fn status_of(app: &TestApp, order: &str) -> (String, String) {
    let sql = format!("SELECT status, details FROM payments WHERE order_id = '{order}'");
    let (status, details): (String, String) =
        kakehashi::on_db!(&app.db, c => sqlx::query_as(&sql).fetch_one(c).await).unwrap();
    let failure = serde_json::from_str::<serde_json::Value>(&details).unwrap()["failure"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (status, failure)
}

/// Starts a challenge on `app` for a new checkout `order`; returns the page (its `base` as a
/// path) once the card is held.
async fn start_challenge(app: &TestApp, m: &TestMerchant, order: &str) -> crate::card::CardPage {
    let mut page = card_page(app, m, order, 3000, UA_PC).await;
    let r = page.pay(app, UA_PC, CHALLENGE_VISA, CVC, "lump").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert!(
        location(&r).ends_with("/card/challenge"),
        "{}",
        location(&r)
    );
    page.base = path(app, &page.base);
    page
}

/// The challenge is started on instance 1 and answered on instance 2 (a wrong code, then the
/// right one): it is counted and authorized there, and the held card is gone afterwards.
async fn challenge_finishes_on_another_instance(app: TestApp) {
    let other = spawn_app_sharing(&app, false).await;
    let m = app.merchant().await;
    let page = start_challenge(&app, &m, "ch-other").await;
    let rows = held(&app).await;
    assert_eq!(rows.len(), 1, "the card is held in the database");
    let (pid, sealed) = &rows[0];
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
    assert!(!sealed.contains(CHALLENGE_VISA), "no card number in clear");
    // Without a master key (the test configuration) it is sealed with the key derived from
    // the server secret, which both instances share.
    let opened = other
        .state
        .card_keys
        .open(sealed, &card_hold::seal_context(pid))
        .unwrap();
    let card = CardInput::from_sealable(&opened).unwrap();
    assert_eq!(card.card.expose_digits(), CHALLENGE_VISA);
    assert_eq!(card.cvc.expose(), CVC);
    assert!(
        other
            .state
            .card_keys
            .open(sealed, &card_hold::seal_context("pay_other"))
            .is_err(),
        "bound to its payment"
    );

    let wrong = page.otp(&other, UA_PC, "000000").await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong.text().await.unwrap().contains("残り2回"));
    assert_eq!(held(&app).await.len(), 1, "still held after a wrong code");
    let ok = page.otp(&other, UA_PC, "123456").await;
    assert_eq!(ok.status(), 303, "{}", ok.text().await.unwrap());
    assert!(location(&ok).ends_with("/card/result"));
    assert_eq!(status_of(&app, "ch-other").await.0, "captured");
    assert!(held(&app).await.is_empty(), "deleted at authorization");
    // The result page is the same on either instance.
    let body = page.result(&app, UA_PC).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
}
both!(challenge_finishes_on_another_instance);

/// With a master key the held card is sealed under it (its key id), and an instance with the
/// same key finishes the challenge.
async fn held_card_sealed_with_the_master_key(app: TestApp) {
    let other = spawn_app_sharing_with(&app, false, |c| {
        c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()))
    })
    .await;
    let m = app.merchant().await;
    let page = start_challenge(&app, &m, "ch-master").await;
    let rows = held(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        kakehashi::secrets::Keyring::key_id_of(&rows[0].1),
        app.state.keys.current_id(),
        "sealed under the master key"
    );
    let ok = page.otp(&other, UA_PC, "123456").await;
    assert_eq!(ok.status(), 303);
    assert_eq!(status_of(&app, "ch-master").await.0, "captured");
    assert!(held(&app).await.is_empty());
}

mod held_card_sealed_with_the_master_key {
    use crate::helpers::{spawn_app_with, Backend, TEST_MASTER_KEY};
    fn master(c: &mut kakehashi::config::Config) {
        c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()));
    }
    #[tokio::test]
    async fn sqlite() {
        let app = spawn_app_with(Backend::Sqlite, master).await.unwrap();
        super::held_card_sealed_with_the_master_key(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn_app_with(Backend::Postgres, master).await {
            super::held_card_sealed_with_the_master_key(app).await;
        }
    }
}

/// The held card is deleted when the challenge fails (too many wrong codes), is cancelled,
/// is swept after its expiry, or the payment is failed by reconciliation, and an expired card
/// is never used.
async fn held_card_deleted_at_failure_and_expiry(app: TestApp) {
    let m = app.merchant().await;
    // Three wrong codes: authentication failed.
    let page = start_challenge(&app, &m, "ch-wrong").await;
    for _ in 0..3 {
        page.otp(&app, UA_PC, "000000").await;
    }
    assert_eq!(
        status_of(&app, "ch-wrong").await,
        ("failed".into(), "authentication_failed".into())
    );
    assert!(
        held(&app).await.is_empty(),
        "deleted when the challenge failed"
    );

    // Cancelled by the shopper.
    let page = start_challenge(&app, &m, "ch-cancel").await;
    let r = app
        .post_form(
            &format!("{}/card/challenge/cancel", page.base),
            UA_PC,
            &[("csrf", &page.csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status_of(&app, "ch-cancel").await.0, "failed");
    assert!(held(&app).await.is_empty(), "deleted when cancelled");

    // The sweep deletes a card past its expiry, and only then.
    let _page = start_challenge(&app, &m, "ch-sweep").await;
    let now = app.state.now_ms();
    assert_eq!(card_hold::purge_expired(&app.db, now).await.unwrap(), 0);
    assert_eq!(held(&app).await.len(), 1);
    let expiry = now + kakehashi::flows::card::PENDING_TTL.as_millis() as i64;
    assert_eq!(card_hold::purge_expired(&app.db, expiry).await.unwrap(), 1);
    assert!(held(&app).await.is_empty(), "deleted at expiry");

    // Reconciliation fails an abandoned challenge and deletes its card in the same change.
    let _page = start_challenge(&app, &m, "ch-abandoned").await;
    assert_eq!(held(&app).await.len(), 1);
    kakehashi::flows::card::reconcile_stale(&app.db, &app.state.connectors, expiry + 60_000)
        .await
        .unwrap();
    assert_eq!(
        status_of(&app, "ch-abandoned").await,
        ("failed".into(), "challenge_expired".into())
    );
    assert!(
        held(&app).await.is_empty(),
        "deleted with the expired payment"
    );

    // An answer after the expiry finds no card: the payment fails (challenge_expired) and the
    // row is gone, even before any sweep.
    let page = start_challenge(&app, &m, "ch-late").await;
    app.clock.advance(kakehashi::flows::card::PENDING_TTL);
    let r = page.otp(&app, UA_PC, "123456").await;
    assert_ne!(r.status(), 303, "not paid with an expired card");
    assert_eq!(
        status_of(&app, "ch-late").await,
        ("failed".into(), "challenge_expired".into())
    );
    assert!(held(&app).await.is_empty(), "deleted at expiry");
}
both!(held_card_deleted_at_failure_and_expiry);
