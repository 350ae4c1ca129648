//! The card form as served (issue 16 item 2): our script from `/assets`, the options each brand
//! supports marked for it, the page light, and a server-side error keeping every field that is
//! not card data, with the focus on the first error.

use crate::card::card_page;
use crate::helpers::*;

fn script_src(body: &str) -> String {
    body.split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("our script")
        .to_owned()
}

async fn card_form_serves_its_script_and_stays_light(app: TestApp) {
    let m = app
        .merchant_with(|n| n.card_options = "lump,inst3,bonus,revo,holder".into())
        .await;
    let page = card_page(&app, &m, "form", 1000, UA_PC).await;
    let body = app
        .get(&format!("{}/card", page.base), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    let script = script_src(&body);
    assert!(script.starts_with("/assets/") && script.ends_with("/card-form.js"));
    let js = app.get(&script, UA_PC).await.text().await.unwrap();
    assert!(js.contains("msgNumber") && js.contains("msgExpiry"));
    // The brands an option is not offered for: installments never for Amex or Diners.
    assert!(
        body.contains("value=\"inst3\" data-not=\"amex diners\""),
        "{body}"
    );
    assert!(body.contains("<option value=\"lump\" selected>"));
    assert!(body.contains("data-msg-number=\"カード番号に誤りがあります"));
    // Nothing is focused or marked before the shopper has done anything.
    assert!(!body.contains("autofocus") && !body.contains("aria-invalid"));
    // Page weight: HTML, stylesheets and script under 15 KB.
    let mut weight = body.len() + js.len();
    for part in body.split("<link rel=\"stylesheet\" href=\"").skip(1) {
        let href = part.split('"').next().unwrap();
        weight += app.get(href, UA_PC).await.bytes().await.unwrap().len();
    }
    assert!(weight < 15 * 1024, "card form weighs {weight} bytes");
}
both!(card_form_serves_its_script_and_stays_light);

/// After a decline the form keeps the expiry, holder and option (never the number or code)
/// and focuses the number; after a field error the first wrong field is focused.
async fn server_errors_keep_safe_fields_and_focus_the_first(app: TestApp) {
    let m = app
        .merchant_with(|n| n.card_options = "lump,inst3,holder".into())
        .await;
    let page = card_page(&app, &m, "keep", 1000, UA_PC).await;
    let year = future_exp_year();
    let declined = "4000000000005100";
    let form = |number: &'static str, month: &'static str| {
        vec![
            ("csrf", page.csrf.clone()),
            ("number", number.to_owned()),
            ("exp_month", month.to_owned()),
            ("exp_year", year.clone()),
            ("cvc", "987".to_owned()),
            ("holder", "TARO YAMADA".to_owned()),
            ("option", "inst3".to_owned()),
        ]
    };
    let url = format!("{}/card", page.base);
    let (status, body) = post(&app, &url, form(declined, "12")).await;
    assert_eq!(status, 402);
    assert!(body.contains("value=\"TARO YAMADA\""), "{body}");
    assert!(body.contains(&format!("value=\"{year}\"")) && body.contains("value=\"12\""));
    assert!(body.contains("value=\"inst3\" data-not=\"amex diners\" selected"));
    assert!(!body.contains(declined) && !body.contains("\"987\""));
    assert!(body.contains("id=\"cc-number\" name=\"number\"") && autofocused(&body) == "cc-number");

    // A wrong month: the expiry is focused, its error marked like the others.
    let (status, body) = post(&app, &url, form("4111111111111111", "13")).await;
    assert_eq!(status, 422);
    assert_eq!(autofocused(&body), "cc-exp-month");
    assert!(body.contains("<p class=\"err\" id=\"cc-exp-err\">"));
    assert!(body.contains("value=\"TARO YAMADA\"") && !body.contains("4111111111111111"));
}
both!(server_errors_keep_safe_fields_and_focus_the_first);

async fn post(app: &TestApp, url: &str, f: Vec<(&'static str, String)>) -> (u16, String) {
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.post_form(url, UA_PC, &pairs).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The id of the one element with `autofocus`.
fn autofocused(body: &str) -> String {
    let hits: Vec<&str> = body
        .split("<input ")
        .chain(body.split("<select "))
        .filter(|t| t.split('>').next().unwrap_or("").contains("autofocus"))
        .collect();
    assert_eq!(hits.len(), 1, "{body}");
    hits[0]
        .split("id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}
