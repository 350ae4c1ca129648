//! Theme upload in the console (issue 19): a PNG logo and colours become a theme stored in the
//! database, served under hashed URLs; the shopper's PC and feature-phone pages use it (the
//! latter a GIF under 5 KB); bad files and colours are refused and change nothing; another
//! merchant can neither choose nor preview it.

use std::io::Cursor;

use kakehashi::console::Role;

use crate::console::{user, Console};
use crate::helpers::*;

const BOUNDARY: &str = "----kakehashi-test-boundary";

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 3) as u8, (y * 5) as u8, 0x40, 255])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A multipart/form-data body with text fields and one `logo` file.
fn multipart(fields: &[(&str, &str)], logo: &[u8], file_name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(logo);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

async fn upload(
    c: &Console,
    merchant: &str,
    csrf: &str,
    primary: &str,
    logo: &[u8],
    file_name: &str,
) -> (u16, String) {
    let r = c
        .post_raw(
            &format!("/console/settings/theme?merchant={merchant}"),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(
                &[("csrf", csrf), ("primary", primary), ("accent", "#8a1c1c")],
                logo,
                file_name,
            ),
        )
        .await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn theme_of(app: &TestApp, id: &str) -> String {
    kakehashi::db::merchants::get(&app.db, id)
        .await
        .unwrap()
        .unwrap()
        .theme
}

async fn upload_choose_and_isolate(app: TestApp) {
    let a = app.merchant().await;
    let b = app.merchant().await;
    let ua = user(&app, Some(&a.id), Role::Admin).await;
    let c = Console::login(&app, &ua).await;
    let (_, page) = c.get(&format!("/console/settings?merchant={}", a.id)).await;
    let csrf = hidden(&page, "csrf");

    // Refusals: each a clear message, nothing stored, the audit log untouched.
    let audits = app.count("console_audit").await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    let cases: [(&str, Vec<u8>, &str, &str); 5] = [
        (
            "#1a2b3c",
            svg.to_vec(),
            "logo.svg",
            "SVG画像は受け付けていません",
        ),
        (
            "#1a2b3c",
            b"GIF89a\x01\x00".to_vec(),
            "logo.gif",
            "PNGまたはJPEG",
        ),
        ("#ffee00", png(200, 50), "logo.png", "コントラスト比"),
        ("blue;}", png(200, 50), "logo.png", "#1a2b3c の形式"),
        ("#1a2b3c", vec![0x89; 230 * 1024], "big.png", "大きすぎます"),
    ];
    for (primary, logo, file, message) in cases {
        let (s, body) = upload(&c, &a.id, &csrf, primary, &logo, file).await;
        assert_eq!(s, 400, "{file} {primary}");
        assert!(body.contains(message), "{file} {primary}: {body}");
    }
    // A missing CSRF token is refused too.
    let (s, _) = upload(&c, &a.id, "", "#1a2b3c", &png(200, 50), "logo.png").await;
    assert_eq!(s, 403);
    assert_eq!(app.count("theme_uploads").await, 0);
    assert_eq!(app.count("console_audit").await, audits);

    // A valid PNG: stored, audited, offered in the settings with previews.
    let logo = png(600, 150);
    let r = c
        .post_raw(
            &format!("/console/settings/theme?merchant={}", a.id),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(
                &[
                    ("csrf", &csrf),
                    ("primary", "#1A2B3C"),
                    ("accent", "#8a1c1c"),
                ],
                &logo,
                "logo.png",
            ),
        )
        .await;
    assert_eq!(r.status(), 303);
    let name = app
        .scalar_str("SELECT name FROM theme_uploads")
        .await
        .unwrap();
    assert!(name.starts_with("u-1a2b3c8a1c1c"), "{name}");
    assert_eq!(
        app.scalar_str("SELECT detail FROM console_audit WHERE action = 'theme.upload'")
            .await
            .unwrap()
            .split(';')
            .next()
            .unwrap(),
        "uploads 0 -> 1"
    );
    let (_, page) = c.get(&location(&r)).await;
    assert!(page.contains(&format!("value=\"{name}\"")), "{page}");
    for device in ["pc", "sp", "fp"] {
        let (s, _) = c
            .get(&format!(
                "/console/settings/preview?merchant={}&theme={name}&device={device}",
                a.id
            ))
            .await;
        assert_eq!(s, 200, "{device}");
    }
    // Not used until chosen in the settings; then the shopper's pages wear it.
    assert_eq!(theme_of(&app, &a.id).await, "demo");
    let base = |theme: &'static str| {
        vec![
            ("return_origins", SHOP),
            ("methods", "card"),
            ("methods", "konbini"),
            ("chains", "seven"),
            ("konbini_days", "7"),
            ("capture_mode", "auto"),
            ("theme", theme),
        ]
    };
    let mut form = base("demo");
    form.retain(|(k, _)| *k != "theme");
    form.push(("theme", name.as_str()));
    form.push(("csrf", csrf.as_str()));
    let r = c
        .post(&format!("/console/settings?merchant={}", a.id), &form)
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(theme_of(&app, &a.id).await, name);

    let (s, pc) = app
        .open(&a, &app.fields(&a, "th-1", 1200, &[]), UA_PC)
        .await;
    assert_eq!(s, 200, "{pc}");
    let logo_url = format!("/themes/{name}/logo");
    let css_url = format!("/themes/{name}/theme.css");
    assert!(pc.contains(&logo_url) && pc.contains(&css_url), "{pc}");
    let r = app.get(&logo_url, UA_PC).await;
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), logo);
    let css = app.get(&css_url, UA_PC).await;
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(
        css.text().await.unwrap(),
        ":root{--primary:#1a2b3c;--accent:#8a1c1c}\n"
    );
    let r = app
        .get(&app.link(&a, &app.fields(&a, "th-2", 1200, &[])), UA_DOCOMO)
        .await;
    let fp = sjis_text(r).await;
    let gif_url = format!("/themes/{name}/logo.gif");
    assert!(fp.contains(&gif_url), "{fp}");
    let r = app.get(&gif_url, UA_DOCOMO).await;
    assert_eq!(r.headers()["content-type"], "image/gif");
    let gif = r.bytes().await.unwrap();
    assert!(gif.len() < 5 * 1024, "{} bytes", gif.len());
    let img = image::load_from_memory(&gif).unwrap();
    assert!(img.width() <= 120, "{}", img.width());
    assert_eq!(
        app.get(&format!("/themes/{name}/other"), UA_PC)
            .await
            .status(),
        404
    );

    // Merchant B's admin can neither choose nor preview A's upload; B's theme is unchanged.
    let ub = user(&app, Some(&b.id), Role::Admin).await;
    let cb = Console::login(&app, &ub).await;
    let (_, page) = cb
        .get(&format!("/console/settings?merchant={}", b.id))
        .await;
    assert!(!page.contains(&name));
    let csrf_b = hidden(&page, "csrf");
    let mut form = base("demo");
    form.retain(|(k, _)| *k != "theme");
    form.push(("theme", name.as_str()));
    form.push(("csrf", csrf_b.as_str()));
    let r = cb
        .post(&format!("/console/settings?merchant={}", b.id), &form)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(theme_of(&app, &b.id).await, "demo");
    let (s, _) = cb
        .get(&format!(
            "/console/settings/preview?merchant={}&theme={name}&device=pc",
            b.id
        ))
        .await;
    assert_eq!(s, 404);
    // Nor upload into A: a merchant user's scope wins over the merchant in the query.
    let (s, _) = upload(&cb, &a.id, &csrf_b, "#1a2b3c", &png(300, 60), "x.png").await;
    assert_eq!(s, 303);
    assert_eq!(
        app.scalar_str(&format!(
            "SELECT merchant_id FROM theme_uploads WHERE name <> '{name}'"
        ))
        .await
        .unwrap(),
        b.id
    );
    // An operator uploads for the merchant named in the query.
    let uo = user(&app, None, Role::Operator).await;
    let co = Console::login(&app, &uo).await;
    let (_, page) = co.get("/console/payments").await;
    let csrf_o = hidden(&page, "csrf");
    let (s, _) = upload(&co, &a.id, &csrf_o, "#224466", &png(300, 60), "o.png").await;
    assert_eq!(s, 303);
    assert_eq!(
        app.scalar_str("SELECT merchant_id FROM theme_uploads WHERE name LIKE 'u-224466%'")
            .await
            .unwrap(),
        a.id
    );
    // A general user of A cannot upload.
    let ug = user(&app, Some(&a.id), Role::General).await;
    let cg = Console::login(&app, &ug).await;
    let (_, page) = cg.get("/console/payments").await;
    let csrf_g = hidden(&page, "csrf");
    let (s, _) = upload(&cg, &a.id, &csrf_g, "#1a2b3c", &png(300, 60), "x.png").await;
    assert_eq!(s, 403);
    assert_eq!(app.count("theme_uploads").await, 3);
}
both!(upload_choose_and_isolate);
