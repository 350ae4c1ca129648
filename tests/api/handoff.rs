//! PC → phone hand-off (issue 16, item 16): the PC selector's QR code opens the same checkout
//! on a phone, and the PC page learns that the phone paid.

use crate::card::CardPage;
use crate::helpers::*;

/// The `src` of the hand-off QR image on a PC selector, if any.
fn qr_src(body: &str) -> Option<String> {
    let at = body.find("id=\"handoff-qr\" src=\"")? + 21;
    Some(body[at..].split('"').next()?.replace("&#x2F;", "/"))
}

fn data_state(body: &str) -> String {
    let at = body.find("data-state=\"").unwrap() + 12;
    body[at..].split('"').next().unwrap().to_owned()
}

/// Decodes the QR code as a phone camera would and returns the address in it.
async fn scan(app: &TestApp, src: &str) -> String {
    let r = app.get(src, UA_PC).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let png = r.bytes().await.unwrap();
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

async fn state(app: &TestApp, url: &str) -> String {
    let r = app.get(url, UA_PC).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: serde_json::Value = r.json().await.unwrap();
    v["state"].as_str().unwrap().to_owned()
}

/// The QR code on the PC selector opens the same order on a phone, in the phone's layout; the
/// phone pays by card; the PC page's state endpoint and the PC page itself then say it is paid.
async fn pc_selector_hands_the_checkout_to_a_phone(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ho-1", 3300, &[]);
    let (status, pc) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200, "{pc}");
    let src = qr_src(&pc).expect("the PC selector shows the hand-off QR code");
    assert!(pc.contains("スマートフォンでお支払い"), "{pc}");
    let pc_page = action(&pc).trim_end_matches("/method").to_owned();
    let state_url = data_state(&pc);
    assert_eq!(state(&app, &state_url).await, "open");

    // The phone scans the code: an address on this server that becomes a session of its own.
    let url = scan(&app, &src).await;
    let origin = app.state.public_url.to_string();
    let path = url
        .strip_prefix(&origin)
        .expect("an address on this server");
    assert!(path.starts_with("/h/"), "{path}");
    let r = app.get(path, UA_IPHONE).await;
    assert_eq!(r.status(), 303);
    let phone_page = location(&r);
    let sp = app.get(&phone_page, UA_IPHONE).await.text().await.unwrap();
    assert!(sp.contains("ho-1"), "the same order: {sp}");
    assert!(sp.contains("layout-sp"), "the phone's layout: {sp}");
    assert!(qr_src(&sp).is_none(), "no hand-off from a phone");

    // The phone pays by card.
    let r = app
        .post_form(
            &action(&sp),
            UA_IPHONE,
            &[("csrf", &hidden(&sp, "csrf")), ("method", "card")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let base = location(&r).trim_end_matches("/card").to_owned();
    let form = app
        .get(&format!("{base}/card"), UA_IPHONE)
        .await
        .text()
        .await
        .unwrap();
    let card = CardPage {
        csrf: hidden(&form, "csrf"),
        base,
    };
    let r = card
        .pay(&app, UA_IPHONE, "4111111111111111", "123", "lump")
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(app.checkout_status(&m, "ho-1").await, "paid");

    // The PC learns it: the state its script polls, and the page itself after a reload.
    assert_eq!(state(&app, &state_url).await, "paid");
    let pc = app.get(&pc_page, UA_PC).await.text().await.unwrap();
    assert!(pc.contains("お支払いは完了しています"), "{pc}");
    assert!(qr_src(&pc).is_none());
    // A paid checkout draws no more codes.
    assert_eq!(app.get(&src, UA_PC).await.status(), 404);
}
both!(pc_selector_hands_the_checkout_to_a_phone);

/// Only the PC layout offers the hand-off; the code works for ten minutes and never beyond the
/// PC session's absolute lifetime.
async fn handoff_is_pc_only_and_short_lived(app: TestApp) {
    let m = app.merchant().await;
    for (i, ua) in [UA_IPHONE, UA_ANDROID, UA_DOCOMO].into_iter().enumerate() {
        let f = app.fields(&m, &format!("ho-d{i}"), 1200, &[]);
        let r = app.get(&app.link(&m, &f), ua).await;
        let bytes = r.bytes().await.unwrap();
        let body = String::from_utf8_lossy(&bytes);
        assert!(!body.contains("handoff"), "{ua}: {body}");
    }

    let f = app.fields(&m, "ho-2", 1200, &[]);
    let (_, pc) = app.open(&m, &f, UA_PC).await;
    let url = scan(&app, &qr_src(&pc).unwrap()).await;
    let path = url
        .strip_prefix(&app.state.public_url.to_string())
        .unwrap()
        .to_owned();
    app.advance_clock_to(app.state.now_ms() + 601_000);
    let r = app.get(&path, UA_IPHONE).await;
    assert_ne!(
        r.status(),
        303,
        "a code older than ten minutes opens nothing"
    );
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "session_expired", "{body}");

    // A fresh code, close to the PC session's absolute lifetime: it ends with that session.
    // The order itself outlives the session: only the session's lifetime is tested.
    let later = (now_s() + 4 * 3600).to_string();
    let f = app.fields(&m, "ho-3", 1200, &[("expires_at", &later)]);
    let (_, pc) = app.open(&m, &f, UA_PC).await;
    let pc_page = action(&pc).trim_end_matches("/method").to_owned();
    let max_s = app.state.config.session_max_s;
    let ttl_s = app.state.config.session_ttl_s;
    // Keep the PC session alive (a layout switch renews the idle lifetime) until 5 minutes
    // before its absolute end, then draw a code there.
    let started = app.state.now_ms();
    let mut page = pc_page;
    let mut at = started;
    while at + ttl_s * 1000 / 2 < started + (max_s - 300) * 1000 {
        at += ttl_s * 1000 / 2;
        app.advance_clock_to(at);
        let r = app.get(&format!("{page}/view?to=pc"), UA_PC).await;
        assert_eq!(r.status(), 303);
        page = location(&r);
    }
    app.advance_clock_to(started + (max_s - 300) * 1000);
    let r = app.get(&format!("{page}/view?to=pc"), UA_PC).await;
    page = location(&r);
    let pc = app.get(&page, UA_PC).await.text().await.unwrap();
    let url = scan(&app, &qr_src(&pc).unwrap()).await;
    let path = url
        .strip_prefix(&app.state.public_url.to_string())
        .unwrap()
        .to_owned();
    app.advance_clock_to(started + (max_s + 1) * 1000);
    let r = app.get(&path, UA_IPHONE).await;
    assert_ne!(r.status(), 303, "the hand-off ends with the PC session");
}
both!(handoff_is_pc_only_and_short_lived);
