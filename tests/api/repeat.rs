//! Reusable payment numbers (リピート, issue 18 item 1) through real HTTP: register over the
//! API, pay the number at the store again and again through the signed sandbox control (each a
//! new payment with its own 速報 / 確報 events and notifications), retire, validity expiry, the
//! amount rules, and that another merchant can neither read nor retire a number (API and
//! console).

use std::collections::BTreeMap;

use kakehashi::console::Role;
use kakehashi::db::payments;
use serde_json::{json, Value};

use crate::console::{user, Console};
use crate::helpers::*;

/// Calls a sandbox control path (`/sandbox/v1/…`) signed with the merchant's key, at the
/// server's clock.
async fn sandbox(app: &TestApp, m: &TestMerchant, path_and_query: &str) -> (u16, Value) {
    let ts = app.state.now_s();
    let sig = kakehashi::signing::sign(&m.secret, &format!("POST\n{path_and_query}\n{ts}"));
    let r = app
        .client
        .post(format!("{}{path_and_query}", app.base))
        .header("x-merchant-id", &m.id)
        .header("x-key-id", &m.key_id)
        .header("x-timestamp", ts.to_string())
        .header("x-signature", sig)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// "The customer paid number `id` at the store now."
async fn pay(app: &TestApp, m: &TestMerchant, id: &str, query: &str) -> (u16, Value) {
    sandbox(
        app,
        m,
        &format!("/sandbox/v1/repeat-numbers/{id}/pay{query}"),
    )
    .await
}

async fn create(app: &TestApp, key: &str, body: Value) -> ApiResp {
    app.api_post("/api/v1/repeat-numbers", key, body).await
}

fn fixed(reference: &str, amount: i64) -> Value {
    json!({"reference": reference, "name": "月謝", "customer_name": "山田 花子",
           "amount_type": "fixed", "amount": amount})
}

async fn repeat_number_paid_three_times_then_retired(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let key = app.api_key(&m).await;
    let r = create(&app, &key, fixed("member-7", 3000)).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let number = r.json["number"].as_str().unwrap().to_owned();
    assert_eq!(number.len(), 13);
    assert!(number.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(r.json["status"], "active");
    assert_eq!(r.json["amount_type"], "fixed");
    assert_eq!(r.json["payments_count"], 0);
    assert_eq!(
        app.count("payments").await,
        0,
        "registering takes no payment"
    );

    let mut ids = Vec::new();
    for (n, chain) in [(1, "lawson"), (2, "seven"), (3, "famima")] {
        let (status, v) = pay(&app, &m, &id, &format!("?chain={chain}")).await;
        assert_eq!(status, 200, "{v}");
        let p = &v["payment"];
        assert_eq!(p["status"], "paid");
        assert_eq!(p["amount"], 3000);
        assert_eq!(p["institution"], chain);
        assert_eq!(p["order_id"], format!("member-7#{n}"));
        assert_eq!(p["number"]["repeat_number_id"], id.as_str());
        let pid = p["id"].as_str().unwrap().to_owned();
        assert!(!ids.contains(&pid), "each store payment is a new payment");
        ids.push(pid);
    }
    // 確報 for each, through the ordinary payment sandbox control.
    for pid in &ids {
        let (status, v) = sandbox(&app, &m, &format!("/sandbox/v1/payments/{pid}/confirm")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["payment"]["status"], "confirmed");
    }
    for pid in &ids {
        let kinds: Vec<String> = payments::events(&app.db, pid)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["payment.created", "konbini.paid", "konbini.confirmed"],
            "{pid}"
        );
    }
    // Each payment's own notifications: 速報 then 確報, linked to the number.
    let hits = rx.wait_for("six notifications", |h| h.len() >= 6).await;
    let mut per_payment: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in &hits {
        let body = h.json();
        assert_eq!(body["data"]["konbini"]["repeat_number_id"], id.as_str());
        per_payment
            .entry(body["data"]["payment_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_payment.len(), 3, "{per_payment:?}");
    for (pid, kinds) in &per_payment {
        assert!(ids.contains(pid));
        assert_eq!(kinds, &["konbini.paid", "konbini.confirmed"], "{pid}");
    }

    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}/payments"), &key)
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let listed: Vec<&str> = r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}"), &key)
        .await;
    assert_eq!(r.json["payments_count"], 3);
    let r = app.api_get("/api/v1/repeat-numbers", &key).await;
    assert_eq!(r.json["data"][0]["id"], id.as_str());

    // Retire: the fourth store payment is refused and nothing is written.
    let r = app
        .api_post(
            &format!("/api/v1/repeat-numbers/{id}/retire"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "retired");
    assert!(r.json["retired_at"].is_string());
    let before = app.count("payments").await;
    let (status, v) = pay(&app, &m, &id, "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("repeat_number_retired"))
    );
    assert_eq!(app.count("payments").await, before);
    assert_eq!(app.count("checkouts").await, 3);
    // Retiring again changes nothing.
    let r = app
        .api_post(
            &format!("/api/v1/repeat-numbers/{id}/retire"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("retired"))
    );
}
both!(repeat_number_paid_three_times_then_retired);

async fn repeat_number_expires_after_its_validity(app: TestApp) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    let mut body = fixed("member-x", 1000);
    body["valid_days"] = json!(1);
    let r = create(&app, &key, body).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let (status, v) = pay(&app, &m, &id, "").await;
    assert_eq!(status, 200, "paid while valid: {v}");
    // Past the end of the last valid day (JST).
    let until = kakehashi::domain::konbini::deadline_ms(app.state.now_ms(), 1);
    app.advance_clock_to(until + 1);
    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}"), &key)
        .await;
    assert_eq!(r.json["status"], "expired");
    let before = app.count("payments").await;
    let (status, v) = pay(&app, &m, &id, "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("repeat_number_expired"))
    );
    assert_eq!(app.count("payments").await, before);
}
both!(repeat_number_expires_after_its_validity);

async fn repeat_number_amount_rules(app: TestApp) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    // Registration.
    for (body, code) in [
        (
            json!({"reference": "a", "name": "n", "amount_type": "fixed"}),
            "amount_required",
        ),
        (fixed("a", 300_001), "amount_too_large"),
        (fixed("a", 0), "amount_not_positive"),
        (
            json!({"reference": "a", "name": "n", "amount_type": "per_payment", "amount": 5}),
            "invalid_field",
        ),
        (
            json!({"reference": "a", "name": "n", "amount_type": "monthly"}),
            "invalid_field",
        ),
        (
            json!({"reference": " ", "name": "n", "amount_type": "per_payment"}),
            "invalid_field",
        ),
        (
            json!({"reference": "a", "name": "n", "amount_type": "per_payment", "valid_days": 0}),
            "invalid_valid_days",
        ),
        (
            json!({"reference": "a", "name": "n", "amount_type": "per_payment", "valid_days": 1097}),
            "invalid_valid_days",
        ),
    ] {
        let r = create(&app, &key, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, code), "{body}");
    }
    assert_eq!(
        app.count("repeat_numbers").await,
        0,
        "refusals write nothing"
    );

    // Amount decided at the store: within 1..=300,000 yen, stamp duty from 50,000.
    let r = create(
        &app,
        &key,
        json!({"reference": "card-1", "name": "チャージ", "amount_type": "per_payment"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["amount"], Value::Null);
    let top_up = r.json["id"].as_str().unwrap().to_owned();
    for (q, code) in [
        ("", "amount_required"),
        ("?amount=0", "amount_not_positive"),
        ("?amount=300001", "amount_too_large"),
    ] {
        let (status, v) = pay(&app, &m, &top_up, q).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{q}"
        );
    }
    let (status, v) = pay(&app, &m, &top_up, "?amount=abc").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    assert_eq!(app.count("payments").await, 0);
    let (status, v) = pay(&app, &m, &top_up, "?amount=300000").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["payment"]["amount"].as_i64(),
            v["payment"]["fee"].as_i64()
        ),
        (Some(300_000), Some(200))
    );
    let (status, v) = pay(&app, &m, &top_up, "?amount=500").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["payment"]["amount"].as_i64(),
            v["payment"]["fee"].as_i64()
        ),
        (Some(500), Some(0))
    );

    // Fixed amount: the store cannot change it.
    let r = create(&app, &key, fixed("member-f", 2000)).await;
    let fixed_id = r.json["id"].as_str().unwrap().to_owned();
    let (status, v) = pay(&app, &m, &fixed_id, "?amount=2500").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("amount_fixed"))
    );
    let (status, v) = pay(&app, &m, &fixed_id, "?amount=2000").await;
    assert_eq!((status, v["payment"]["amount"].as_i64()), (200, Some(2000)));
    // A chain the merchant did not enable.
    let only_lawson = app
        .merchant_with(|n| n.konbini_chains = vec!["lawson".into()])
        .await;
    let key2 = app.api_key(&only_lawson).await;
    let r = create(&app, &key2, fixed("m", 100)).await;
    let id2 = r.json["id"].as_str().unwrap().to_owned();
    let (status, v) = pay(&app, &only_lawson, &id2, "?chain=seven").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("chain_not_available"))
    );
    let (status, v) = pay(&app, &only_lawson, &id2, "").await;
    assert_eq!(
        (status, v["payment"]["institution"].as_str()),
        (200, Some("lawson"))
    );
}
both!(repeat_number_amount_rules);

async fn another_merchant_cannot_read_or_retire_a_number(app: TestApp) {
    let a = app.merchant().await;
    let b = app.merchant().await;
    let (key_a, key_b) = (app.api_key(&a).await, app.api_key(&b).await);
    let r = create(&app, &key_a, fixed("member-a", 1200)).await;
    let id = r.json["id"].as_str().unwrap().to_owned();

    // API: B sees nothing of A's number and cannot retire or pay it.
    for path in [
        format!("/api/v1/repeat-numbers/{id}"),
        format!("/api/v1/repeat-numbers/{id}/payments"),
    ] {
        let r = app.api_get(&path, &key_b).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "repeat_number_not_found"),
            "{path}"
        );
    }
    let r = app
        .api_post(
            &format!("/api/v1/repeat-numbers/{id}/retire"),
            &key_b,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "repeat_number_not_found"));
    let r = app.api_get("/api/v1/repeat-numbers", &key_b).await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 0);
    let (status, v) = pay(&app, &b, &id, "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("repeat_number_not_found"))
    );

    // Console: B's staff neither see, print nor retire it.
    let staff_b = Console::login(&app, &user(&app, Some(&b.id), Role::Admin).await).await;
    let (s, list) = staff_b.get("/console/repeat-numbers").await;
    assert_eq!(s, 200);
    assert!(!list.contains(&id));
    for path in [
        format!("/console/repeat-numbers/{id}"),
        format!("/console/repeat-numbers/{id}/card"),
    ] {
        assert_eq!(staff_b.get(&path).await.0, 404, "{path}");
    }
    let (_, page) = staff_b.get("/console/repeat-numbers").await;
    let csrf = hidden(&page, "csrf");
    let r = staff_b
        .post(
            &format!("/console/repeat-numbers/{id}/retire"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}"), &key_a)
        .await;
    assert_eq!(r.json["status"], "active", "still usable");

    // A's staff: list, detail with the payment, the member card, and retire after confirming.
    let (status, v) = pay(&app, &a, &id, "").await;
    assert_eq!(status, 200, "{v}");
    let pid = v["payment"]["id"].as_str().unwrap().to_owned();
    let staff_a = Console::login(&app, &user(&app, Some(&a.id), Role::Admin).await).await;
    let (s, list) = staff_a.get("/console/repeat-numbers").await;
    assert_eq!(s, 200);
    assert!(list.contains(&format!("id=\"{id}\"")), "{list}");
    let (s, detail) = staff_a.get(&format!("/console/repeat-numbers/{id}")).await;
    assert_eq!(s, 200);
    assert!(detail.contains(&pid), "the store payment is listed");
    assert!(detail.contains("member-a#1"));
    let (s, card) = staff_a
        .get(&format!("/console/repeat-numbers/{id}/card"))
        .await;
    assert_eq!(s, 200);
    let number = r.json["number"].as_str().unwrap();
    let grouped: Vec<String> = number
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(card.contains("id=\"member-card\""));
    assert!(card.contains(&grouped.join(" ")), "the number is printed");
    assert!(card.contains("1,200円"));
    assert!(
        !card.contains("style=") && !card.contains("<script"),
        "CSP-clean"
    );
    let csrf = hidden(&detail, "csrf");
    let r = staff_a
        .post(
            &format!("/console/repeat-numbers/{id}/retire"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 200, "confirmation page first");
    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}"), &key_a)
        .await;
    assert_eq!(r.json["status"], "active", "not retired before confirming");
    let r = staff_a
        .post(
            &format!("/console/repeat-numbers/{id}/retire"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = app
        .api_get(&format!("/api/v1/repeat-numbers/{id}"), &key_a)
        .await;
    assert_eq!(r.json["status"], "retired");
    let (status, v) = pay(&app, &a, &id, "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("repeat_number_retired"))
    );
}
both!(another_merchant_cannot_read_or_retire_a_number);

async fn repeat_numbers_from_the_command_line(app: TestApp) {
    use kakehashi::cli::{repeat, sandbox, RepeatCmd, SandboxCmd};
    let m = app.merchant().await;
    repeat(
        &app.state,
        RepeatCmd::Create {
            merchant_id: m.id.clone(),
            reference: "cli-1".into(),
            name: "駐車場".into(),
            customer_name: None,
            amount: None,
            valid_days: Some(30),
        },
    )
    .await
    .unwrap();
    let rows = kakehashi::db::repeat_numbers::list(
        &app.db,
        &kakehashi::domain::scope::Scope::Merchant(m.id.clone()),
        10,
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let id = rows[0].id.clone();
    assert_eq!(rows[0].amount, None, "no --amount: decided at the store");
    let pay = |amount| SandboxCmd::PayRepeat {
        repeat_id: id.clone(),
        amount,
        chain: Some("daily".into()),
    };
    assert!(
        sandbox(&app.db, pay(None)).await.is_err(),
        "amount required"
    );
    sandbox(&app.db, pay(Some(700))).await.unwrap();
    let p = kakehashi::db::payments::get(
        &app.db,
        &kakehashi::db::repeat_numbers::payment_ids(&app.db, &id, 10)
            .await
            .unwrap()[0],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (p.amount, p.order_id.as_str(), p.institution.as_deref()),
        (700, "cli-1#1", Some("daily"))
    );
    repeat(
        &app.state,
        RepeatCmd::Retire {
            repeat_id: id.clone(),
        },
    )
    .await
    .unwrap();
    let err = sandbox(&app.db, pay(Some(700))).await.unwrap_err();
    assert!(err.to_string().contains("repeat_number_retired"), "{err}");
    // A live merchant is refused.
    let live = app
        .merchant_with(|n| n.mode = kakehashi::domain::Mode::Live)
        .await;
    let err = repeat(
        &app.state,
        RepeatCmd::Create {
            merchant_id: live.id.clone(),
            reference: "x".into(),
            name: "x".into(),
            customer_name: None,
            amount: Some(100),
            valid_days: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("repeat_numbers_unavailable"),
        "{err}"
    );
}
both!(repeat_numbers_from_the_command_line);
