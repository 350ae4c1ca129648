//! Settlements over the API (list with keyset pages, one settlement with its entries, its
//! statement PDF, the settlement terms) with merchant and owner keys, where any settlement
//! outside the key's scope is `404`; and the console's 手数料・支払条件 page: operators change
//! payout terms and fees (the next collection uses them), staff only read them, every refusal
//! (role, CSRF, bad value) changes nothing, and every attempt is audited.

use kakehashi::cli::SettlementCmd;
use kakehashi::console::Role;
use kakehashi::db::settlements::{self, SettlementRow};
use kakehashi::domain::fees::Schedule;
use kakehashi::domain::payout::Cycle;
use kakehashi::domain::scope::Scope;
use kakehashi::domain::Method;
use serde_json::Value;

use crate::console::{user, Console};
use crate::helpers::*;
use crate::settlements::{cutoff_day, fee_of, payment, pdf_text, sandbox, squeezed, terms};

/// A GET with `key`, naming `merchant` in `Kakehashi-Merchant` when given: status, content
/// type and body bytes.
async fn get(
    app: &TestApp,
    path: &str,
    key: &str,
    merchant: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut rb = app
        .client
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {key}"));
    if let Some(m) = merchant {
        rb = rb.header("kakehashi-merchant", m);
    }
    let r = rb.send().await.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

async fn get_json(app: &TestApp, path: &str, key: &str, merchant: Option<&str>) -> (u16, Value) {
    let (status, _, body) = get(app, path, key, merchant).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// One paid konbini payment of `amount` for `m` (with payout terms), settled by the cut-off.
async fn settled(app: &TestApp, m: &TestMerchant, order: &str, amount: i64) -> SettlementRow {
    terms(app, m, false).await;
    let p = payment(
        app,
        m,
        order,
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        amount,
    )
    .await;
    sandbox(app, m, &p.id, "paid").await;
    let (_, day) = cutoff_day(app);
    kakehashi::flows::settlements::cutoff(&app.db, day, app.state.now_ms())
        .await
        .unwrap();
    settlements::list(&app.db, &Scope::Merchant(m.id.clone()), None, 10)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a settlement")
}

async fn api_reads_settlements_within_the_key_scope(app: TestApp) {
    // Merchants A and B are tenants of owner 1, C of owner 2.
    let (a, b, c) = (
        app.merchant_with(|n| n.name = "さくら商店".into()).await,
        app.merchant().await,
        app.merchant().await,
    );
    let now = app.state.now_ms();
    let own1 = kakehashi::flows::owners::create(&app.db, "Mall One", None, now)
        .await
        .unwrap();
    let own2 = kakehashi::flows::owners::create(&app.db, "Mall Two", None, now)
        .await
        .unwrap();
    for (m, o) in [(&a, &own1), (&b, &own1), (&c, &own2)] {
        kakehashi::flows::owners::attach(&app.db, &m.id, Some(o))
            .await
            .unwrap();
    }
    settlements::set_schedule(
        &app.db,
        &a.id,
        Method::Konbini,
        Schedule {
            fixed_fee: 120,
            rate_bp: 25,
        },
        now,
    )
    .await
    .unwrap();
    let sa = settled(&app, &a, "api-a", 50_000).await;
    let sb = settled(&app, &b, "api-b", 12_345).await;
    let sc = settled(&app, &c, "api-c", 7_000).await;
    // 50,000 − 120 − 125 (0.25 %) − 1,500 − 174 tax − 200 stamp.
    assert_eq!(sa.net, 47_881);
    let ka = app.api_key(&a).await;
    let kb = app.api_key(&b).await;

    // A merchant key: its own settlements, totals and entries.
    let (status, list) = get_json(&app, "/api/v1/settlements", &ka, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), vec![sa.id.clone()]);
    assert_eq!(list["has_more"], false);
    let first = &list["data"][0];
    assert_eq!(first["merchant_id"], a.id.as_str());
    assert_eq!(first["cycle"], "month_end");
    assert_eq!(first["payout_date"], sa.payout_date.as_str());
    assert_eq!(first["net"], 47_881);
    let (status, one) = get_json(&app, &format!("/api/v1/settlements/{}", sa.id), &ka, None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], sa.id.as_str());
    assert_eq!(
        (
            one["gross"].clone(),
            one["fees"].clone(),
            one["fee_tax"].clone()
        ),
        (50_000.into(), 245.into(), 174.into())
    );
    assert_eq!(
        (one["stamp_duty"].clone(), one["net"].clone()),
        (200.into(), 47_881.into())
    );
    let entries = one["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{one}");
    assert_eq!(entries[0]["kind"], "collected");
    assert_eq!(entries[0]["order_id"], "api-a");
    assert_eq!(
        (
            entries[0]["amount"].clone(),
            entries[0]["fixed_fee"].clone(),
            entries[0]["rate_fee"].clone()
        ),
        (50_000.into(), 120.into(), 125.into())
    );

    // The statement: the console's PDF, with the net total in its text.
    let (status, ct, pdf) = get(
        &app,
        &format!("/api/v1/settlements/{}/statement.pdf", sa.id),
        &ka,
        None,
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/pdf"));
    let text = squeezed(&pdf_text(&pdf));
    for want in [
        "支払明細書",
        "さくら商店様",
        "差引支払額",
        "47,881円",
        "50,000円",
        sa.id.as_str(),
    ] {
        assert!(text.contains(want), "{want} in the statement: {text}");
    }

    // IDOR: B's key cannot read A's settlement, nor A's key B's: 404, as for an unknown id.
    for (key, other) in [(&kb, &sa), (&ka, &sb)] {
        for path in [
            format!("/api/v1/settlements/{}", other.id),
            format!("/api/v1/settlements/{}/statement.pdf", other.id),
        ] {
            let (status, body) = get_json(&app, &path, key, None).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert_eq!(body["error"]["code"], "settlement_not_found", "{path}");
        }
    }
    let (status, body) = get_json(&app, "/api/v1/settlements/stl_nope", &ka, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("settlement_not_found"))
    );
    let (_, theirs) = get_json(&app, "/api/v1/settlements", &kb, None).await;
    assert_eq!(ids(&theirs), vec![sb.id.clone()]);
    // A merchant key's `merchant` filter names only itself.
    let (status, body) = get_json(
        &app,
        &format!("/api/v1/settlements?merchant={}", b.id),
        &ka,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("merchant_not_found"))
    );

    // An owner key without a tenant: every tenant's settlements (A and B), not owner 2's C.
    let (_, ok) = kakehashi::api::keys::create_owner_key(&app.db, &own1, app.state.now_ms())
        .await
        .unwrap();
    let (status, list) = get_json(&app, "/api/v1/settlements", &ok, None).await;
    assert_eq!(status, 200, "{list}");
    let mut seen = ids(&list);
    seen.sort();
    let mut want = vec![sa.id.clone(), sb.id.clone()];
    want.sort();
    assert_eq!(seen, want);
    for s in [&sa, &sb] {
        let (status, _) = get_json(&app, &format!("/api/v1/settlements/{}", s.id), &ok, None).await;
        assert_eq!(status, 200);
    }
    for path in [
        format!("/api/v1/settlements/{}", sc.id),
        format!("/api/v1/settlements/{}/statement.pdf", sc.id),
    ] {
        let (status, body) = get_json(&app, &path, &ok, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("settlement_not_found")),
            "{path}"
        );
    }
    // The filter: one tenant, or 404 for another owner's tenant (the same as no merchant).
    let (_, only_b) = get_json(
        &app,
        &format!("/api/v1/settlements?merchant={}", b.id),
        &ok,
        None,
    )
    .await;
    assert_eq!(ids(&only_b), vec![sb.id.clone()]);
    for m in [c.id.as_str(), "m_nobody"] {
        let (status, body) = get_json(
            &app,
            &format!("/api/v1/settlements?merchant={m}"),
            &ok,
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("merchant_not_found")),
            "{m}"
        );
    }
    // Naming a tenant in the header narrows the key to it.
    let (_, only_a) = get_json(&app, "/api/v1/settlements", &ok, Some(&a.id)).await;
    assert_eq!(ids(&only_a), vec![sa.id.clone()]);
    let (status, _) = get_json(
        &app,
        &format!("/api/v1/settlements/{}", sb.id),
        &ok,
        Some(&a.id),
    )
    .await;
    assert_eq!(status, 404);
    // Other operations still need the tenant named.
    let (status, body) = get_json(&app, "/api/v1/payments", &ok, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("merchant_required"))
    );

    // Keyset pages: one at a time, then the rest; a cursor outside the scope is refused.
    let (_, p1) = get_json(&app, "/api/v1/settlements?limit=1", &ok, None).await;
    assert_eq!(
        (ids(&p1).len(), p1["has_more"].clone()),
        (1, Value::Bool(true))
    );
    let (_, p2) = get_json(
        &app,
        &format!("/api/v1/settlements?limit=1&starting_after={}", ids(&p1)[0]),
        &ok,
        None,
    )
    .await;
    assert_eq!(
        (ids(&p2).len(), p2["has_more"].clone()),
        (1, Value::Bool(false))
    );
    let mut both = [ids(&p1), ids(&p2)].concat();
    both.sort();
    assert_eq!(both, want);
    let (status, body) = get_json(
        &app,
        &format!("/api/v1/settlements?starting_after={}", sc.id),
        &ok,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let (status, _) = get_json(&app, "/api/v1/settlements?limit=0", &ka, None).await;
    assert_eq!(status, 400);

    // Payout terms and fees, read only.
    let (status, t) = get_json(&app, "/api/v1/settlement-terms", &ka, None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["merchant_id"], a.id.as_str());
    assert_eq!(t["terms"]["cycle"], "month_end");
    assert_eq!(t["terms"]["settlement_fee"], 1_500);
    assert_eq!(t["terms"]["payout_delay_days"], 15);
    assert_eq!(
        t["fees"],
        serde_json::json!([{"method": "konbini", "fixed_fee": 120, "rate_percent": "0.25", "rate_bp": 25}])
    );
    let (status, body) = get_json(&app, "/api/v1/settlement-terms", &ok, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("merchant_required"))
    );
    let (_, tb) = get_json(&app, "/api/v1/settlement-terms", &ok, Some(&b.id)).await;
    assert_eq!(
        (tb["merchant_id"].as_str(), tb["fees"].clone()),
        (Some(b.id.as_str()), serde_json::json!([]))
    );
    // No key: 401.
    let r = app
        .api("GET", "/api/v1/settlements", None, None, None)
        .await;
    assert_eq!(r.status, 401);
}
both!(api_reads_settlements_within_the_key_scope);

async fn post(c: &Console, path: &str, f: &[(&str, &str)]) -> (u16, String) {
    let r = c.post(path, f).await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn schedule(app: &TestApp, m: &str, method: Method) -> Option<Schedule> {
    settlements::schedules(&app.db, m)
        .await
        .unwrap()
        .into_iter()
        .find(|(x, _)| *x == method)
        .map(|(_, s)| s)
}

async fn audit(app: &TestApp, action: &str) -> Vec<String> {
    let mut rows: Vec<String> = kakehashi::db::audit::list(&app.db, &Scope::All, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| e.detail)
        .collect();
    rows.reverse();
    rows
}

async fn console_sets_terms_and_fees(app: TestApp) {
    let m = app.merchant().await;
    let op = Console::login(&app, &user(&app, None, Role::Operator).await).await;
    let csrf = op.csrf().await;
    let page = format!("/console/settlements/terms?merchant={}", m.id);
    let fee_path = format!("/console/settlements/terms/fee?merchant={}", m.id);
    let terms_path = page.clone();

    // Linked from the settlements page; nothing set yet.
    let (_, list) = op.get("/console/settlements").await;
    assert!(list.contains("/console/settlements/terms"), "{list}");
    let (status, body) = op.get(&page).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"terms-none\""), "{body}");
    assert!(body.contains("id=\"fee-form\""), "operators get the forms");

    // An operator sets the konbini fee: 150 yen + 0 %, audited.
    let (status, body) = post(
        &op,
        &fee_path,
        &[
            ("csrf", &csrf),
            ("method", "konbini"),
            ("fixed", "150"),
            ("rate", "0"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let plan150 = Schedule {
        fixed_fee: 150,
        rate_bp: 0,
    };
    assert_eq!(schedule(&app, &m.id, Method::Konbini).await, Some(plan150));
    assert_eq!(
        audit(&app, "fee_schedule.update").await,
        vec!["ok konbini: - -> 150+0%"]
    );
    let (_, body) = op.get(&page).await;
    assert!(body.contains("150円"), "{body}");

    // The next collected payment is charged the new fee: 150 + 15 tax.
    let p = payment(
        &app,
        &m,
        "t-1",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        3_000,
    )
    .await;
    sandbox(&app, &m, &p.id, "paid").await;
    assert_eq!(fee_of(&app, &p.id).await, 165);

    // Payout terms, audited with before and after.
    let (status, body) = post(
        &op,
        &terms_path,
        &[
            ("csrf", &csrf),
            ("cycle", "half_month"),
            ("payout_delay_days", "10"),
            ("settlement_fee", "1,000"),
            ("goods_taxable", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let stored = settlements::terms(&app.db, &m.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.cycle,
            stored.payout_delay_days,
            stored.settlement_fee,
            stored.goods_taxable
        ),
        (Cycle::HalfMonth, 10, 1_000, true)
    );
    assert_eq!(
        audit(&app, "payout_terms.update").await,
        vec!["ok - -> half_month 10d fee=1000 taxable"]
    );

    // Bad values: a clear message, nothing changes, the attempt is audited as refused.
    for (fixed, rate, message) in [
        ("-5", "0", "固定手数料は0円以上"),
        ("100", "3.255", "小数点以下2桁まで"),
        ("abc", "1", "固定手数料は0円以上"),
    ] {
        let (status, body) = post(
            &op,
            &fee_path,
            &[
                ("csrf", &csrf),
                ("method", "konbini"),
                ("fixed", fixed),
                ("rate", rate),
            ],
        )
        .await;
        assert_eq!(status, 400, "{fixed} {rate}");
        assert!(
            body.contains(message) && body.contains("id=\"terms-error\""),
            "{body}"
        );
        assert_eq!(schedule(&app, &m.id, Method::Konbini).await, Some(plan150));
    }
    let (status, body) = post(
        &op,
        &terms_path,
        &[
            ("csrf", &csrf),
            ("cycle", "weekly"),
            ("payout_delay_days", "5"),
            ("settlement_fee", "0"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("精算周期を一覧から選んでください"), "{body}");
    let (status, _) = post(
        &op,
        &terms_path,
        &[
            ("csrf", &csrf),
            ("cycle", "month_end"),
            ("payout_delay_days", "5"),
            ("settlement_fee", "-1"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        settlements::terms(&app.db, &m.id).await.unwrap().unwrap(),
        stored
    );
    let refused = audit(&app, "fee_schedule.update").await;
    assert_eq!(refused.len(), 4);
    assert!(
        refused[1..]
            .iter()
            .all(|d| d.starts_with("refused konbini: ")),
        "{refused:?}"
    );
    assert!(audit(&app, "payout_terms.update").await[1..]
        .iter()
        .all(|d| d.starts_with("refused ")));

    // Without the form's CSRF token: refused, nothing changes, nothing audited.
    let (status, _) = post(
        &op,
        &fee_path,
        &[("method", "konbini"), ("fixed", "999"), ("rate", "0")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &op,
        &fee_path,
        &[
            ("csrf", "forged"),
            ("method", "konbini"),
            ("fixed", "999"),
            ("rate", "0"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(schedule(&app, &m.id, Method::Konbini).await, Some(plan150));
    assert_eq!(audit(&app, "fee_schedule.update").await.len(), 4);

    // Merchant staff, admins included, read their terms but cannot change them.
    let admin = Console::login(&app, &user(&app, Some(&m.id), Role::Admin).await).await;
    let admin_csrf = admin.csrf().await;
    let (status, body) = admin.get("/console/settlements/terms").await;
    assert_eq!(status, 200);
    assert!(body.contains("150円") && body.contains("月2回"), "{body}");
    assert!(!body.contains("id=\"fee-form\"") && !body.contains("id=\"terms-form\""));
    assert!(body.contains("id=\"terms-readonly\""));
    let (status, _) = post(
        &admin,
        &fee_path,
        &[
            ("csrf", &admin_csrf),
            ("method", "konbini"),
            ("fixed", "0"),
            ("rate", "0"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &admin,
        "/console/settlements/terms",
        &[
            ("csrf", &admin_csrf),
            ("cycle", "month_end"),
            ("payout_delay_days", "1"),
            ("settlement_fee", "0"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(schedule(&app, &m.id, Method::Konbini).await, Some(plan150));
    assert_eq!(
        settlements::terms(&app.db, &m.id).await.unwrap().unwrap(),
        stored
    );
    // Another merchant's staff: the page shows their own merchant, never this one.
    let other = app.merchant().await;
    let stranger = Console::login(&app, &user(&app, Some(&other.id), Role::Admin).await).await;
    let (status, body) = stranger.get(&page).await;
    assert_eq!(status, 200);
    assert!(!body.contains(&m.id) && body.contains(&other.id), "{body}");

    // The CLI goes through the same checks.
    for (fixed, rate) in [(-1, "0"), (0, "3.255")] {
        let r = kakehashi::cli::settlement(
            &app.db,
            SettlementCmd::Fee {
                merchant_id: m.id.clone(),
                method: "konbini".into(),
                fixed,
                rate: rate.into(),
            },
        )
        .await;
        assert!(r.is_err(), "{fixed} {rate}");
    }
    assert_eq!(schedule(&app, &m.id, Method::Konbini).await, Some(plan150));
}
both!(console_sets_terms_and_fees);

/// Owner staff read their tenants' terms and fees; even an owner admin does not change them,
/// and another owner's tenant is not found.
async fn owner_staff_read_terms_only(app: TestApp) {
    let (a, c) = (app.merchant().await, app.merchant().await);
    let now = app.state.now_ms();
    let own1 = kakehashi::flows::owners::create(&app.db, "Mall One", None, now)
        .await
        .unwrap();
    let own2 = kakehashi::flows::owners::create(&app.db, "Mall Two", None, now)
        .await
        .unwrap();
    kakehashi::flows::owners::attach(&app.db, &a.id, Some(&own1))
        .await
        .unwrap();
    kakehashi::flows::owners::attach(&app.db, &c.id, Some(&own2))
        .await
        .unwrap();
    terms(&app, &a, false).await;
    let email = format!("{}@mall.example", kakehashi::util::random_id("o", 8));
    let u = kakehashi::console::users::create_owner_staff(
        &app.db,
        &app.state.keys,
        &own1,
        &email,
        Role::Admin,
        now,
    )
    .await
    .unwrap();
    let oc = Console::login(&app, &u).await;
    let csrf = oc.csrf().await;
    let (status, body) = oc
        .get(&format!("/console/settlements/terms?merchant={}", a.id))
        .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("月1回") && !body.contains("id=\"fee-form\""),
        "{body}"
    );
    let (status, _) = oc
        .get(&format!("/console/settlements/terms?merchant={}", c.id))
        .await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &oc,
        &format!("/console/settlements/terms/fee?merchant={}", a.id),
        &[
            ("csrf", &csrf),
            ("method", "card"),
            ("fixed", "0"),
            ("rate", "3"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(schedule(&app, &a.id, Method::Card).await, None);
}
both!(owner_staff_read_terms_only);
