//! `GET /bench/limit`, the benchmark's no-database checkout page: absent unless
//! `KAKEHASHI_BENCH_LIMIT` is on; when on, the selector of a verified link with nothing read or
//! stored after the merchant's first link.

use crate::helpers::*;

/// The signed query of a link, on the limit route.
fn limit_url(app: &TestApp, m: &TestMerchant, order_id: &str) -> String {
    let link = app.link(m, &app.fields(m, order_id, 1500, &[]));
    let query = link.split_once('?').unwrap().1;
    format!("{}/bench/limit?{query}", app.base)
}

async fn limit_route_is_a_404_by_default(app: TestApp) {
    let m = app.merchant().await;
    let r = app.get(&limit_url(&app, &m, "ord-limit"), UA_PC).await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.count("checkouts").await, 0);
}
both!(limit_route_is_a_404_by_default);

/// Closes the server's pools: any database access after this fails.
async fn close_database(app: &TestApp) {
    match &app.db {
        kakehashi::db::Db::Sqlite { read, write } => {
            read.close().await;
            write.close().await;
        }
        kakehashi::db::Db::Postgres(pool) => pool.close().await,
    }
}

async fn limit_route_renders_the_selector_without_the_database(app: TestApp) {
    let m = app.merchant().await;
    let r = app.get(&limit_url(&app, &m, "ord-limit-1"), UA_PC).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    // The page GET /checkout shows: order, shop, methods and the selector form with its token.
    assert!(
        body.contains("ord-limit-1") && body.contains("1,500"),
        "{body}"
    );
    assert!(body.contains("テスト商品") && body.contains("テスト商店"));
    assert!(body.contains("value=\"card\""));
    assert!(!hidden(&body, "csrf").is_empty());
    assert!(action(&body).ends_with("/method"));
    assert_eq!(app.count("checkouts").await, 0, "nothing stored");

    // A tampered link is refused like on GET /checkout.
    let tampered = limit_url(&app, &m, "ord-limit-2").replace("amount=1500", "amount=1");
    let r = app.get(&tampered, UA_PC).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.text().await.unwrap()), "bad_signature");

    // With the merchant known, a new order renders with the database gone; GET /checkout fails.
    close_database(&app).await;
    let r = app
        .get(&limit_url(&app, &m, "ord-limit-3"), UA_IPHONE)
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ord-limit-3"));
    let r = app
        .get(
            &app.link(&m, &app.fields(&m, "ord-limit-4", 1500, &[])),
            UA_PC,
        )
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
}

mod limit_on {
    async fn app(backend: crate::helpers::Backend) -> Option<crate::helpers::TestApp> {
        crate::helpers::spawn_app_with(backend, |c| c.bench_limit = true).await
    }
    #[tokio::test]
    async fn sqlite() {
        let app = app(crate::helpers::Backend::Sqlite).await.unwrap();
        super::limit_route_renders_the_selector_without_the_database(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = app(crate::helpers::Backend::Postgres).await {
            super::limit_route_renders_the_selector_without_the_database(app).await;
        }
    }
}
