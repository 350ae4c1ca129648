//! The card-testing defence keyed on what identifies an attacker: the checkout, a keyed hash of
//! the card number, and the client address — read from `X-Forwarded-For` / `Forwarded` only
//! when the peer is a trusted proxy (`KAKEHASHI_TRUSTED_PROXIES`).

use kakehashi::connectors::card::{sandbox_cards, SandboxScenario};

use crate::card::{card_page, CardPage};
use crate::helpers::*;

const VISA: &str = "4111111111111111";

/// The sandbox's declining cards (distinct numbers, so the per-card limit stays out of the way).
fn declines() -> Vec<String> {
    sandbox_cards()
        .iter()
        .filter(|c| matches!(c.scenario, SandboxScenario::Decline(_)))
        .map(|c| c.digits())
        .collect()
}

/// Posts the card form with extra request headers (what a proxy in front of us adds).
async fn pay_via(app: &TestApp, page: &CardPage, headers: &[(&str, &str)], number: &str) -> u16 {
    let year = future_exp_year();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", page.csrf.as_str()),
            ("number", number),
            ("exp_month", "12"),
            ("exp_year", &year),
            ("cvc", "123"),
            ("option", "lump"),
        ])
        .finish();
    let url = if page.base.starts_with('/') {
        format!("{}{}/card", app.base, page.base)
    } else {
        format!("{}/card", page.base)
    };
    let mut req = app
        .client
        .post(url)
        .header("user-agent", UA_PC)
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap().status().as_u16()
}

async fn attempt_rows(app: &TestApp) -> Vec<(String, String)> {
    kakehashi::on_db!(&app.db, c => sqlx::query_as::<_, (String, String)>(
        "SELECT client_ip, card_key FROM card_attempts ORDER BY created_at").fetch_all(c).await)
    .unwrap()
}

/// Behind a trusted proxy, one shopper's failures lock that shopper's address, not everyone's:
/// a fresh checkout from another client of the same proxy pays on its first attempt. A spoofed
/// first `X-Forwarded-For` entry is not believed (the proxy appends the real one).
async fn trusted_proxy_separates_shoppers(app: TestApp) {
    let m = app.merchant().await;
    let cards = declines();
    let attacker = [("x-forwarded-for", "198.51.100.77, 203.0.113.5")];
    for n in 0..3 {
        let page = card_page(&app, &m, &format!("t{n}"), 1000, UA_PC).await;
        for card in cards.iter().cycle().take(5) {
            assert_eq!(pay_via(&app, &page, &attacker, card).await, 402);
        }
    }
    let rows = attempt_rows(&app).await;
    assert_eq!(rows.len(), 15);
    assert!(rows.iter().all(|(ip, _)| ip == "203.0.113.5"), "{rows:?}");
    // The card number is never stored: only its keyed hash.
    for (_, key) in &rows {
        assert_eq!(key.len(), 64, "{key}");
        assert!(cards.iter().all(|c| !key.contains(c.as_str())));
    }

    // Another shopper behind the same proxy: not refused because of the attacker.
    let page = card_page(&app, &m, "neighbour", 1000, UA_PC).await;
    let neighbour = [("forwarded", "for=203.0.113.6;proto=https")];
    assert_eq!(pay_via(&app, &page, &neighbour, VISA).await, 303);
    assert_eq!(app.checkout_status(&m, "neighbour").await, "paid");

    // The attacker's own address is still counted: one more failure on a new checkout locks it.
    let page = card_page(&app, &m, "again", 1000, UA_PC).await;
    assert_eq!(pay_via(&app, &page, &attacker, &cards[0]).await, 402);
    assert_eq!(pay_via(&app, &page, &attacker, VISA).await, 429);
}

mod trusted_proxy_separates_shoppers {
    use crate::helpers::{spawn_app_with, Backend};

    fn trust(c: &mut kakehashi::config::Config) {
        c.trusted_proxies = kakehashi::client_addr::parse_list("127.0.0.1/32, ::1").unwrap();
    }

    #[tokio::test]
    async fn sqlite() {
        let app = spawn_app_with(Backend::Sqlite, trust).await.unwrap();
        super::trusted_proxy_separates_shoppers(app).await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn_app_with(Backend::Postgres, trust).await {
            super::trusted_proxy_separates_shoppers(app).await;
        }
    }
}

/// Without a trusted proxy the headers are the client's own words: ignored, so rotating
/// them does not spread failures over fake addresses.
async fn forwarded_headers_ignored_from_untrusted_peers(app: TestApp) {
    let m = app.merchant().await;
    let cards = declines();
    let page = card_page(&app, &m, "spoof", 1000, UA_PC).await;
    for (i, card) in cards.iter().take(3).enumerate() {
        let xff = format!("203.0.113.{i}");
        let h = [
            ("x-forwarded-for", xff.as_str()),
            ("forwarded", "for=192.0.2.1"),
        ];
        assert_eq!(pay_via(&app, &page, &h, card).await, 402);
    }
    let rows = attempt_rows(&app).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(ip, _)| ip == "127.0.0.1"), "{rows:?}");
}
both!(forwarded_headers_ignored_from_untrusted_peers);

/// One card declined on five checkouts (one attempt each, so no checkout locks) is refused on
/// the sixth: the keyed hash links it. Another card on that checkout still pays.
async fn one_card_across_checkouts_is_refused(app: TestApp) {
    let m = app.merchant().await;
    let card = &declines()[0];
    for n in 0..5 {
        let page = card_page(&app, &m, &format!("c{n}"), 1000, UA_PC).await;
        assert_eq!(pay_via(&app, &page, &[], card).await, 402);
    }
    let page = card_page(&app, &m, "c5", 1000, UA_PC).await;
    let payments = app.count("payments").await;
    let r = page.pay(&app, UA_PC, card, "123", "lump").await;
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "checkout_locked");
    // The lock page is the shop's, with a way back.
    assert!(
        body.contains("テスト商店") && body.contains("id=\"back-to-shop\""),
        "{body}"
    );
    assert_eq!(app.count("payments").await, payments, "nothing was tried");
    let keys = attempt_rows(&app).await;
    assert!(
        keys.iter().all(|(_, k)| k == &keys[0].1),
        "one key per card"
    );
    assert_eq!(pay_via(&app, &page, &[], VISA).await, 303);
}
both!(one_card_across_checkouts_is_refused);
