//! Keyset paging of the console payment list and the API list over many rows with equal sort
//! keys, cursors combined with filters, edited cursors refused, and a CSV export of a few
//! thousand rows checked row by row.

use std::collections::{BTreeMap, HashSet};

use kakehashi::console::Role;

use crate::console::{user, Console};
use crate::helpers::*;

/// A seeded payment, as the assertions need it.
#[derive(Clone, Debug)]
struct Seeded {
    id: String,
    order_id: String,
    method: &'static str,
    status: &'static str,
    amount: i64,
    created_at: i64,
}

/// Inserts `n` payments (and their checkouts) of `m` straight into the store, many sharing a
/// `created_at` (seven a hour, so `n / 7` distinct instants over some days) and an amount, so
/// pages end inside ties.
async fn seed(app: &TestApp, m: &TestMerchant, n: usize) -> Vec<Seeded> {
    let base = app.state.now_ms() - 30 * 86_400_000;
    let kinds = [
        ("card", "authorized"),
        ("card", "captured"),
        ("konbini", "awaiting_payment"),
        ("konbini", "paid"),
        ("payeasy", "awaiting_payment"),
    ];
    let rows: Vec<Seeded> = (0..n)
        .map(|i| {
            let (method, status) = kinds[i % kinds.len()];
            Seeded {
                id: format!("pay_seed{i:06}"),
                order_id: format!("seed-{i:06}"),
                method,
                status,
                amount: 1000 + (i as i64 % 13) * 100,
                created_at: base + (i as i64 / 7) * 3_600_000,
            }
        })
        .collect();
    let mut tx = app.db.begin().await.unwrap();
    for chunk in rows.chunks(200) {
        let mut co = String::from(
            "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
             methods, return_url, lang, status, selected_method, created_at, updated_at) VALUES ",
        );
        let mut pay = String::from(
            "INSERT INTO payments (id, merchant_id, checkout_id, order_id, method, status, amount, \
             created_at, updated_at) VALUES ",
        );
        for (k, s) in chunk.iter().enumerate() {
            let sep = if k == 0 { "" } else { "," };
            co.push_str(&format!(
                "{sep}('co_{id}','{mid}','{o}','h',{a},'商品','{me}','https://shop.example/r','ja',\
                 'pending','{me}',{t},{t})",
                id = s.id,
                mid = m.id,
                o = s.order_id,
                a = s.amount,
                me = s.method,
                t = s.created_at
            ));
            pay.push_str(&format!(
                "{sep}('{id}','{mid}','co_{id}','{o}','{me}','{st}',{a},{t},{t})",
                id = s.id,
                mid = m.id,
                o = s.order_id,
                me = s.method,
                st = s.status,
                a = s.amount,
                t = s.created_at
            ));
        }
        kakehashi::exec_tx!(&mut tx, c => sqlx::query(&co).execute(c).await).unwrap();
        kakehashi::exec_tx!(&mut tx, c => sqlx::query(&pay).execute(c).await).unwrap();
    }
    tx.commit().await.unwrap();
    rows
}

fn ids(page: &str) -> Vec<String> {
    page.split("class=\"pid\" href=\"/console/payments/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

fn next_link(page: &str) -> Option<String> {
    let rest = page.split("id=\"next-page\" href=\"").nth(1)?;
    Some(
        rest.split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

/// Follows "次のページ" from `url` to the end; the ids of every page in order, and the pages.
async fn walk(c: &Console, url: &str) -> (Vec<String>, usize) {
    let (mut url, mut seen, mut pages) = (url.to_owned(), Vec::new(), 0);
    loop {
        let (s, page) = c.get(&url).await;
        assert_eq!(s, 200, "{url}: {page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= 50);
        seen.extend(got);
        match next_link(&page) {
            Some(next) => url = next,
            None => return (seen, pages),
        }
    }
}

/// `ids` hold each of `expected` exactly once.
fn exactly_once(ids: &[String], expected: impl Iterator<Item = String>) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "a row shown twice");
    let want: HashSet<String> = expected.collect();
    let got: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(got, want);
}

async fn keyset_pages_show_every_row_once_across_ties(app: TestApp) {
    let m = app.merchant().await;
    let rows = seed(&app, &m, 260).await;
    let other = app.merchant().await;
    seed_other(&app, &other).await;
    let u = user(&app, Some(&m.id), Role::General).await;
    let c = Console::login(&app, &u).await;
    // Newest first (the default): 7 payments per instant, pages of 50 end inside a tie.
    let (seen, pages) = walk(&c, "/console/payments").await;
    assert_eq!(pages, 6);
    exactly_once(&seen, rows.iter().map(|r| r.id.clone()));
    let by_id: BTreeMap<&str, &Seeded> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let keys: Vec<(i64, &str)> = seen
        .iter()
        .map(|id| (by_id[id.as_str()].created_at, id.as_str()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "newest first, id breaks ties"
    );
    // Every other sort column, both directions: text keys (status) and numbers (amount).
    // 支払機関名 and 消込日時 are empty for every row here: one tie of 260, read by id.
    for q in [
        "sort=status&dir=asc",
        "sort=amount&dir=desc",
        "sort=order_id&dir=asc",
        "sort=institution&dir=asc",
        "sort=paid_at&dir=desc",
        "sort=deadline_at&dir=asc",
    ] {
        let (seen, _) = walk(&c, &format!("/console/payments?{q}")).await;
        exactly_once(&seen, rows.iter().map(|r| r.id.clone()));
    }
    // The API list pages the same way with `starting_after`.
    let key = app.api_key(&m).await;
    let mut after = String::new();
    let mut seen = Vec::new();
    loop {
        let r = app
            .api_get(&format!("/api/v1/payments?limit=37{after}"), &key)
            .await;
        assert_eq!(r.status, 200);
        let body = &r.json;
        let data = body["data"].as_array().unwrap();
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        if !body["has_more"].as_bool().unwrap() {
            break;
        }
        after = format!("&starting_after={}", seen.last().unwrap());
    }
    exactly_once(&seen, rows.iter().map(|r| r.id.clone()));
}
both!(keyset_pages_show_every_row_once_across_ties);

/// A few payments of another merchant, which no page of the first may show.
async fn seed_other(app: &TestApp, m: &TestMerchant) {
    let mut tx = app.db.begin().await.unwrap();
    let t = app.state.now_ms() - 5 * 86_400_000;
    let sql = format!(
        "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
         methods, return_url, lang, status, selected_method, created_at, updated_at) VALUES \
         ('co_other1','{m}','other-1','h',1000,'x','card','https://shop.example/r','ja','pending','card',{t},{t})",
        m = m.id
    );
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(&sql).execute(c).await).unwrap();
    let sql = format!(
        "INSERT INTO payments (id, merchant_id, checkout_id, order_id, method, status, amount, \
         created_at, updated_at) VALUES ('pay_other1','{m}','co_other1','other-1','card','authorized',1000,{t},{t})",
        m = m.id
    );
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(&sql).execute(c).await).unwrap();
    tx.commit().await.unwrap();
}

async fn filters_hold_on_every_page(app: TestApp) {
    let m = app.merchant().await;
    let rows = seed(&app, &m, 400).await;
    let u = user(&app, Some(&m.id), Role::General).await;
    let c = Console::login(&app, &u).await;
    // Method + status: 80 rows over two pages.
    let (seen, pages) = walk(&c, "/console/payments?method=konbini&status=paid").await;
    assert_eq!(pages, 2);
    exactly_once(
        &seen,
        matching(&rows, |r: &Seeded| {
            r.method == "konbini" && r.status == "paid"
        }),
    );
    // Several methods newest first (one index seek per method, merged): 240 rows, 5 pages.
    let (seen, pages) = walk(&c, "/console/payments?method=card&method=payeasy").await;
    assert_eq!(pages, 5);
    exactly_once(&seen, matching(&rows, |r: &Seeded| r.method != "konbini"));
    let keys: Vec<(i64, &str)> = seen
        .iter()
        .map(|id| {
            (
                rows.iter().find(|r| &r.id == id).unwrap().created_at,
                id.as_str(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "newest first across methods"
    );
    // Several methods, sorted by amount ascending, with an amount range.
    let (seen, _) = walk(
        &c,
        "/console/payments?method=card&method=payeasy&min=1200&max=1800&sort=amount&dir=asc",
    )
    .await;
    exactly_once(
        &seen,
        matching(&rows, |r: &Seeded| {
            r.method != "konbini" && (1200..=1800).contains(&r.amount)
        }),
    );
    let amounts: Vec<i64> = seen
        .iter()
        .map(|id| rows.iter().find(|r| &r.id == id).unwrap().amount)
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] <= w[1]));
    // Status + amount range, newest first (a narrow range: the amount index drives).
    let (seen, _) = walk(&c, "/console/payments?status=captured&min=1000&max=1500").await;
    exactly_once(
        &seen,
        matching(&rows, |r: &Seeded| {
            r.status == "captured" && (1000..=1500).contains(&r.amount)
        }),
    );
    // A date range (Japan time) ending before the newest rows.
    let last_day = rows.last().unwrap().created_at;
    let to = kakehashi::util::format_jst(last_day - 86_400_000)[..10].replace('/', "-");
    let (seen, _) = walk(&c, &format!("/console/payments?to={to}")).await;
    let end = jst_day_end(&to);
    exactly_once(&seen, matching(&rows, |r: &Seeded| r.created_at < end));
    assert!(!seen.is_empty() && seen.len() < rows.len());
    // The API list with a filter and its cursor.
    let key = app.api_key(&m).await;
    let mut after = String::new();
    let mut seen = Vec::new();
    loop {
        let r = app
            .api_get(
                &format!("/api/v1/payments?method=card&status=captured&limit=30{after}"),
                &key,
            )
            .await;
        assert_eq!(r.status, 200);
        let body = &r.json;
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        if !body["has_more"].as_bool().unwrap() {
            break;
        }
        after = format!("&starting_after={}", seen.last().unwrap());
    }
    exactly_once(
        &seen,
        matching(&rows, |r: &Seeded| {
            r.method == "card" && r.status == "captured"
        }),
    );
}
both!(filters_hold_on_every_page);

/// An amount range matching 5,000 or more of the merchant's payments is read in the list's
/// order on the other filters' index, each entry's amount checked there (`AmountPlan::Wide`,
/// written differently on each database): with status and a start date, newest first.
async fn a_wide_amount_range_holds_on_every_page(app: TestApp) {
    let m = app.merchant().await;
    // Amounts 1,000–2,200 in steps of 100: 12 in 13 of the 5,600 payments (5,169) are in
    // 1,100–2,200, enough to be planned as wide.
    let rows = seed(&app, &m, 5_600).await;
    let u = user(&app, Some(&m.id), Role::General).await;
    let c = Console::login(&app, &u).await;
    let last = rows.last().unwrap().created_at;
    let from = kakehashi::util::format_jst(last - 4 * 86_400_000)[..10].replace('/', "-");
    let start = jst_day_end(&from) - 86_400_000;
    let (seen, pages) = walk(
        &c,
        &format!("/console/payments?status=captured&min=1100&max=2200&from={from}"),
    )
    .await;
    let want = |r: &Seeded| {
        r.status == "captured" && (1100..=2200).contains(&r.amount) && r.created_at >= start
    };
    assert!(pages > 1, "more than a page: {} rows", seen.len());
    exactly_once(&seen, matching(&rows, want));
    let keys: Vec<(i64, &str)> = seen
        .iter()
        .map(|id| {
            let r = rows.iter().find(|r| &r.id == id).unwrap();
            (r.created_at, id.as_str())
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first");
}
both!(a_wide_amount_range_holds_on_every_page);

/// The ids of the rows `p` holds for.
fn matching(rows: &[Seeded], p: impl Fn(&Seeded) -> bool) -> std::vec::IntoIter<String> {
    rows.iter()
        .filter(|r| p(r))
        .map(|r| r.id.clone())
        .collect::<Vec<_>>()
        .into_iter()
}

/// The first instant of the Japan-time day after `date` (`YYYY-MM-DD`), in unix ms.
fn jst_day_end(date: &str) -> i64 {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(date, fmt).unwrap();
    let t = d
        .midnight()
        .assume_offset(kakehashi::domain::jst::OFFSET)
        .unix_timestamp();
    t * 1000 + 86_400_000
}

async fn edited_cursors_are_refused(app: TestApp) {
    use base64::Engine;
    let m = app.merchant().await;
    let rows = seed(&app, &m, 120).await;
    let u = user(&app, Some(&m.id), Role::General).await;
    let c = Console::login(&app, &u).await;
    let (_, page) = c.get("/console/payments?sort=amount&dir=asc").await;
    let next = next_link(&page).unwrap();
    let cursor = next.split("after=").nth(1).unwrap().to_owned();
    assert_eq!(c.get(&next).await.0, 200);
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let refused = [
        // Not base64 / not JSON.
        "%%%".to_owned(),
        format!("{}x", &cursor[..cursor.len() - 2]),
        b64(serde_json::json!({"a": 1})),
        // Another sort or direction than the cursor was made for.
        format!("sort=created_at&dir=asc&after={cursor}"),
        format!("sort=amount&dir=desc&after={cursor}"),
        // A key of the wrong type, an id that is not an id, an unknown version.
        b64(serde_json::json!([2, "amount", "asc", "x", "pay_a"])),
        b64(serde_json::json!([
            2,
            "amount",
            "asc",
            1000,
            "pay_a' OR 1=1"
        ])),
        b64(serde_json::json!([9, "amount", "asc", 1000, "pay_a"])),
    ];
    for bad in refused {
        let url = if bad.contains("after=") {
            format!("/console/payments?{bad}")
        } else {
            format!("/console/payments?sort=amount&dir=asc&after={bad}")
        };
        let (s, body) = c.get(&url).await;
        assert_eq!(s, 400, "{url}");
        assert!(body.contains("ページ送りの位置"), "{url}: {body}");
    }
    // A link bookmarked before cursors named their order (`[key, id]`) still pages.
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| (a.amount, &a.id).cmp(&(b.amount, &b.id)));
    let k = &sorted[9];
    let old = b64(serde_json::json!([k.amount, k.id]));
    let (s, page) = c
        .get(&format!(
            "/console/payments?sort=amount&dir=asc&after={old}"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(ids(&page).first(), Some(&sorted[10].id));
}
both!(edited_cursors_are_refused);

async fn csv_export_is_complete(app: TestApp) {
    let m = app.merchant().await;
    // More than a few of the export's 500-row pages, ending inside a tie of created_at.
    let rows = seed(&app, &m, 2_345).await;
    let u = user(&app, Some(&m.id), Role::General).await;
    let c = Console::login(&app, &u).await;
    let r = c.get_raw("/console/payments.csv?enc=utf8").await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let mut rd = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, kakehashi::console::csv_export::COLUMNS);
    let by_id: BTreeMap<&str, &Seeded> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut seen = Vec::new();
    for rec in rd.records() {
        let rec = rec.unwrap();
        let s = by_id[&rec[1]];
        assert_eq!(&rec[0], s.order_id);
        assert_eq!(&rec[2], m.id);
        assert_eq!(&rec[6], s.status);
        assert_eq!(rec[10].parse::<i64>().unwrap(), s.amount);
        assert_eq!(&rec[7], kakehashi::util::format_jst(s.created_at));
        seen.push(rec[1].to_owned());
    }
    exactly_once(&seen, rows.iter().map(|r| r.id.clone()));
    // Newest first, like the list.
    let keys: Vec<(i64, &str)> = seen
        .iter()
        .map(|id| (by_id[id.as_str()].created_at, id.as_str()))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]));
    // A filtered export holds exactly the matching rows.
    let r = c
        .get_raw("/console/payments.csv?enc=utf8&method=konbini&sort=amount&dir=asc")
        .await;
    let bytes = r.bytes().await.unwrap();
    let mut rd = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
    let got: Vec<String> = rd.records().map(|r| r.unwrap()[1].to_owned()).collect();
    exactly_once(
        &got,
        rows.iter()
            .filter(|r| r.method == "konbini")
            .map(|r| r.id.clone()),
    );
}
both!(csv_export_is_complete);
