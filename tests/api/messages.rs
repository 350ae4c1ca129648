//! Messages to shoppers (docs/messages.md) end to end: a konbini number's instructions e-mail
//! arrives at a real SMTP server on loopback with the number, the deadline and a working link;
//! the reminder goes out once at its time only while unpaid; the receipt after payment; a 4xx
//! is retried, a 5xx recorded; the number page's e-mail form. Both databases.

use std::time::Duration;

use kakehashi::config::SmtpTls;
use kakehashi::db::messages::{self, Settings};
use kakehashi::db::payments::PaymentRow;
use kakehashi::db::{checkouts, Db};
use kakehashi::flows::konbini as number_flow;
use kakehashi::messages::compose::deadline_text;

use crate::helpers::*;
use crate::smtp_fake::{Mail, SmtpFake};

const FROM: &str = "pay@kakehashi.test";

macro_rules! both_smtp {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let smtp = $crate::smtp_fake::SmtpFake::start().await;
                let app = super::spawn_with_smtp(Backend::Sqlite, &smtp)
                    .await
                    .unwrap();
                super::$name(app, smtp).await;
            }
            #[tokio::test]
            async fn postgres() {
                let smtp = $crate::smtp_fake::SmtpFake::start().await;
                if let Some(app) = super::spawn_with_smtp(Backend::Postgres, &smtp).await {
                    super::$name(app, smtp).await;
                }
            }
            use $crate::helpers::Backend;
        }
    };
}

async fn spawn_with_smtp(backend: Backend, smtp: &SmtpFake) -> Option<TestApp> {
    let port = smtp.port;
    spawn_app_with(backend, move |c| {
        c.mail.smtp_host = Some("127.0.0.1".into());
        c.mail.smtp_port = Some(port);
        c.mail.smtp_tls = SmtpTls::None;
        c.mail.from = Some(FROM.into());
        c.mail.timeout_s = 5;
    })
    .await
}

/// Opens the link, picks konbini and `chain`; returns the number page's path and body.
async fn issue(app: &TestApp, link: &str, chain: &str) -> (String, String) {
    let r = app.get(link, UA_PC).await;
    assert_eq!(r.status().as_u16(), 200);
    let body = r.text().await.unwrap();
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", "konbini")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let path = location(&r);
    let chooser = app.get(&path, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &path,
            UA_PC,
            &[
                ("csrf", &hidden(&chooser, "csrf")),
                ("chain", chain),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303, "number issued");
    let page = app.get(&path, UA_PC).await.text().await.unwrap();
    (path, page)
}

async fn payment(app: &TestApp, merchant_id: &str, order: &str) -> PaymentRow {
    let co = checkouts::find_by_order(&app.db, merchant_id, order)
        .await
        .unwrap()
        .unwrap();
    number_flow::issued_for_checkout(&app.db, &co.id)
        .await
        .unwrap()
        .expect("number issued")
}

async fn wait_mails(smtp: &SmtpFake, n: usize) -> Vec<Mail> {
    eventually(&format!("{n} e-mails"), || async {
        let got = smtp.accepted();
        (got.len() >= n).then_some(got)
    })
    .await
}

async fn message_states(db: &Db, payment_id: &str) -> Vec<(String, String)> {
    messages::for_payment(db, payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.kind.code().to_owned(), m.status.code().to_owned()))
        .collect()
}

/// Calls the sandbox control endpoint (test-mode konbini: mark paid).
async fn sandbox(app: &TestApp, m: &TestMerchant, payment_id: &str, action_name: &str) {
    let path = format!("/sandbox/v1/payments/{payment_id}/{action_name}");
    // The server's clock, which the test may have moved.
    let ts = app.state.now_s();
    let sig = kakehashi::signing::sign(&m.secret, &format!("POST\n{path}\n{ts}"));
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .header("x-merchant-id", &m.id)
        .header("x-key-id", &m.key_id)
        .header("x-timestamp", ts.to_string())
        .header("x-signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

both_smtp!(instructions_then_receipt_arrive_with_number_deadline_and_link);
async fn instructions_then_receipt_arrive_with_number_deadline_and_link(
    app: TestApp,
    smtp: SmtpFake,
) {
    let m = app.merchant().await;
    messages::set_settings(
        &app.db,
        &m.id,
        &Settings {
            reply_to: Some("support@shop.example".into()),
            ..Settings::default()
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let f = app.fields(
        &m,
        "mail-1",
        1980,
        &[
            ("shopper_email", "hanako@example.jp"),
            ("konbini_days", "5"),
        ],
    );
    let (_, page) = issue(&app, &app.link(&m, &f), "lawson").await;
    assert!(
        !page.contains("id=\"mail-form\"") || page.contains("mail-address"),
        "the form, if shown, has its field"
    );
    let p = payment(&app, &m.id, "mail-1").await;
    let details = p.details_json();
    let customer_no = details["customer_no"].as_str().unwrap().to_owned();
    let confirm_no = details["confirm_no"].as_str().unwrap().to_owned();
    let deadline = deadline_text(p.deadline_at.unwrap(), false);
    assert!(deadline.contains(")"), "with a weekday: {deadline}");

    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, vec!["hanako@example.jp".to_owned()]);
    assert_eq!(
        mail.subject, "【テスト】【テスト商店】ローソンのお支払い番号のご案内",
        "RFC 2047 subject decodes to the Japanese text"
    );
    assert!(mail.header("Subject").contains("=?utf-8?"), "encoded");
    assert!(
        mail.from.contains("テスト商店") && mail.from.contains(FROM),
        "{}",
        mail.from
    );
    assert!(mail.header("Reply-To").contains("support@shop.example"));
    assert!(mail
        .header("Content-Type")
        .starts_with("multipart/alternative"));
    for part in [&mail.text, &mail.html] {
        assert!(part.contains(&customer_no), "customer number in {part}");
        assert!(part.contains(&confirm_no), "confirmation number");
        assert!(part.contains(&deadline), "deadline with weekday");
        assert!(part.contains("1,980"), "amount");
        assert!(part.contains("Loppi"), "Lawson's steps");
        assert!(part.contains(&p.id), "payment id");
    }
    assert!(mail.html.contains("background:#"), "theme colour");
    // The link back to the number page works after the session would have expired.
    let link = mail
        .text
        .split_whitespace()
        .find(|w| w.contains("/m/"))
        .expect("link in the text part")
        .to_owned();
    assert!(mail.html.contains(&link), "same link in the HTML part");
    let path = link.trim_start_matches(&app.base).to_owned();
    app.clock.advance(Duration::from_secs(2 * 3600));
    let r = app.get(&path, UA_PC).await;
    assert_eq!(r.status().as_u16(), 303);
    let number_page = location(&r);
    assert!(number_page.ends_with("/konbini"), "{number_page}");
    let shown = app.get(&number_page, UA_PC).await.text().await.unwrap();
    assert!(shown.contains("id=\"num-customer_no\""), "number page");
    let forged = format!("{}x", path.trim_end_matches(|c: char| c != '/'));
    assert_eq!(app.get(&forged, UA_PC).await.status().as_u16(), 404);

    // Paid: the reminder is cancelled, a receipt goes out.
    let want = vec![
        ("instructions".to_owned(), "sent".to_owned()),
        ("reminder".to_owned(), "pending".to_owned()),
    ];
    eventually("the instructions recorded as sent", || async {
        (message_states(&app.db, &p.id).await == want).then_some(())
    })
    .await;
    sandbox(&app, &m, &p.id, "paid").await;
    let receipt = wait_mails(&smtp, 2).await.remove(1);
    assert_eq!(
        receipt.subject,
        "【テスト】【テスト商店】お支払い完了のお知らせ"
    );
    for part in [&receipt.text, &receipt.html] {
        assert!(part.contains("テスト商品") && part.contains("1,980"));
        assert!(part.contains("コンビニ"), "method: {part}");
        assert!(part.contains(&p.id));
    }
    let states = message_states(&app.db, &p.id).await;
    assert!(
        states.contains(&("reminder".into(), "cancelled".into())),
        "{states:?}"
    );
    // A week later nothing more arrived.
    app.clock.advance(Duration::from_secs(7 * 86400));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(smtp.all().len(), 2, "no reminder after payment");
}

both_smtp!(reminder_goes_out_once_at_its_time_only_while_unpaid);
async fn reminder_goes_out_once_at_its_time_only_while_unpaid(app: TestApp, smtp: SmtpFake) {
    let m = app.merchant().await;
    messages::set_settings(
        &app.db,
        &m.id,
        &Settings {
            reminder_hours: 48,
            ..Settings::default()
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let f = app.fields(
        &m,
        "rem-1",
        3000,
        &[
            ("shopper_email", "taro@example.jp"),
            ("konbini_days", "5"),
            ("lang", "en"),
        ],
    );
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "rem-1").await;
    wait_mails(&smtp, 1).await;
    let remind_at = p.deadline_at.unwrap() - 48 * 3_600_000;
    // Just before its time: nothing.
    let wait = remind_at - app.state.now_ms() - 60_000;
    app.clock.advance(Duration::from_millis(wait as u64));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(smtp.all().len(), 1, "not yet");
    app.clock.advance(Duration::from_secs(120));
    let mails = wait_mails(&smtp, 2).await;
    let reminder = &mails[1];
    assert!(
        reminder
            .subject
            .starts_with("[TEST] テスト商店: your payment is due"),
        "{}",
        reminder.subject
    );
    let deadline = deadline_text(p.deadline_at.unwrap(), true);
    assert!(reminder.text.contains(&deadline), "{}", reminder.text);
    assert!(reminder.text.contains("have not yet received"));
    // Once only.
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(smtp.all().len(), 2, "the reminder is sent once");
}

both_smtp!(temporary_refusal_is_retried_and_permanent_refusal_recorded);
async fn temporary_refusal_is_retried_and_permanent_refusal_recorded(app: TestApp, smtp: SmtpFake) {
    let m = app.merchant().await;
    smtp.reply_with(&["451 4.3.0 try again later"]);
    let f = app.fields(&m, "t-1", 1000, &[("shopper_email", "a@example.jp")]);
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "t-1").await;
    let first = eventually("a temporary refusal recorded", || async {
        let ms = messages::for_payment(&app.db, &p.id).await.unwrap();
        ms.into_iter()
            .find(|x| x.kind.code() == "instructions" && x.attempts == 1)
    })
    .await;
    assert_eq!(first.status.code(), "pending", "retried later");
    assert!(first.last_error.as_deref().unwrap_or("").contains("451"));
    assert!(first.send_at > app.state.now_ms(), "with a delay");
    app.clock.advance(Duration::from_secs(120));
    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert!(mail.subject.contains("セブン-イレブン"));
    eventually("sent on the second attempt", || async {
        let m = messages::get(&app.db, &first.id).await.unwrap().unwrap();
        (m.status.code() == "sent" && m.attempts == 2).then_some(())
    })
    .await;

    smtp.reply_with(&["550 5.1.1 no such user"]);
    let f = app.fields(&m, "t-2", 1000, &[("shopper_email", "nobody@example.jp")]);
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "t-2").await;
    let failed = eventually("a permanent refusal recorded", || async {
        let ms = messages::for_payment(&app.db, &p.id).await.unwrap();
        ms.into_iter()
            .find(|x| x.kind.code() == "instructions" && x.status.code() == "failed")
    })
    .await;
    assert_eq!(failed.attempts, 1, "not retried");
    assert!(failed.last_error.unwrap().contains("550"));
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(smtp.all().len(), 3, "451, then 250, then 550, nothing more");
}

both_smtp!(number_page_form_sends_to_a_typed_address_a_few_times);
async fn number_page_form_sends_to_a_typed_address_a_few_times(app: TestApp, smtp: SmtpFake) {
    let m = app.merchant().await;
    let f = app.fields(&m, "form-1", 1500, &[]);
    let (path, page) = issue(&app, &app.link(&m, &f), "famima").await;
    assert!(page.contains("id=\"mail-form\""), "form shown");
    let token = path.trim_end_matches("/konbini").to_owned();
    let post = format!("{token}/email-instructions");
    let csrf = hidden(&page, "csrf");
    let r = app
        .post_form(&post, UA_PC, &[("email", "x@example.jp")])
        .await;
    assert_eq!(r.status().as_u16(), 403, "CSRF token required");
    let r = app
        .post_form(
            &post,
            UA_PC,
            &[("csrf", &csrf), ("email", "not an address")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("id=\"mail-notice\""));
    for (i, to) in ["a@example.jp", "b@example.jp", "c@example.jp"]
        .iter()
        .enumerate()
    {
        let r = app
            .post_form(&post, UA_PC, &[("csrf", &csrf), ("email", to)])
            .await;
        assert_eq!(r.status().as_u16(), 200, "address {i}");
    }
    let r = app
        .post_form(&post, UA_PC, &[("csrf", &csrf), ("email", "d@example.jp")])
        .await;
    assert_eq!(r.status().as_u16(), 429, "limited per payment");
    let mails = wait_mails(&smtp, 3).await;
    let p = payment(&app, &m.id, "form-1").await;
    let mut to: Vec<String> = mails.iter().map(|x| x.rcpt_to[0].clone()).collect();
    to.sort();
    assert_eq!(to, ["a@example.jp", "b@example.jp", "c@example.jp"]);
    for x in &mails {
        assert!(x.subject.contains("ファミリーマート"));
        assert!(x
            .text
            .contains(p.details_json()["customer_no"].as_str().unwrap()));
    }
}

both!(without_smtp_the_form_is_hidden_and_messages_fail_visibly);
async fn without_smtp_the_form_is_hidden_and_messages_fail_visibly(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "none-1", 1500, &[("shopper_email", "a@example.jp")]);
    let (_, page) = issue(&app, &app.link(&m, &f), "seven").await;
    assert!(!page.contains("id=\"mail-form\""));
    let p = payment(&app, &m.id, "none-1").await;
    let m = eventually("the message recorded as failed", || async {
        let ms = messages::for_payment(&app.db, &p.id).await.unwrap();
        ms.into_iter().find(|x| x.status.code() == "failed")
    })
    .await;
    assert!(m.last_error.unwrap().contains("KAKEHASHI_SMTP_HOST"));
}

both_smtp!(console_lists_messages_and_staff_can_resend);
async fn console_lists_messages_and_staff_can_resend(app: TestApp, smtp: SmtpFake) {
    use crate::console::{user, Console};
    use kakehashi::console::Role;
    let m = app.merchant().await;
    smtp.reply_with(&["550 5.1.1 mailbox unavailable"]);
    let f = app.fields(&m, "con-1", 2500, &[("shopper_email", "typo@example.jp")]);
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "con-1").await;
    eventually("the refusal recorded", || async {
        let ms = messages::for_payment(&app.db, &p.id).await.unwrap();
        ms.into_iter().find(|x| x.status.code() == "failed")
    })
    .await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let (s, page) = c.get(&format!("/console/payments/{}", p.id)).await;
    assert_eq!(s, 200);
    assert!(page.contains("お客様へのメッセージ"));
    assert!(page.contains("typo@example.jp"));
    assert!(
        page.contains("送信失敗") && page.contains("550"),
        "status and reply: {page}"
    );
    assert!(
        page.contains("data-kind=\"reminder\""),
        "the reminder is listed as pending"
    );
    let failed = messages::for_payment(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.status.code() == "failed")
        .unwrap();
    let resend = format!("/console/payments/{}/messages/resend", p.id);
    let r = c
        .post(&resend, &[("csrf", "forged"), ("message_id", &failed.id)])
        .await;
    assert_eq!(r.status(), 403, "CSRF token required");
    let csrf = hidden(&page, "csrf");
    let r = c
        .post(&resend, &[("csrf", &csrf), ("message_id", &failed.id)])
        .await;
    assert_eq!(r.status(), 303);
    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, ["typo@example.jp"]);
    assert!(mail.subject.contains("セブン-イレブン"));
    let audit: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = 'message.resend' AND target = $1")
        .bind(&failed.id).fetch_one(c).await)
    .unwrap();
    assert_eq!(audit, 1, "audited");
    // Another merchant's staff cannot resend it.
    let other = app.merchant().await;
    let stranger = user(&app, Some(&other.id), Role::Admin).await;
    let c2 = Console::login(&app, &stranger).await;
    let (_, own) = c2.get("/console/payments").await;
    let r = c2
        .post(
            &resend,
            &[("csrf", &hidden(&own, "csrf")), ("message_id", &failed.id)],
        )
        .await;
    assert_eq!(r.status(), 404);
}

both!(sms_instructions_when_the_merchant_enabled_them);
async fn sms_instructions_when_the_merchant_enabled_them(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "sms-0", 1500, &[("shopper_phone", "090-1234-5678")]);
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "sms-0").await;
    assert!(
        messages::for_payment(&app.db, &p.id)
            .await
            .unwrap()
            .is_empty(),
        "SMS is off by default"
    );
    messages::set_settings(
        &app.db,
        &m.id,
        &Settings {
            sms: true,
            ..Settings::default()
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let f = app.fields(&m, "sms-1", 1500, &[("shopper_phone", "090-1234-5678")]);
    issue(&app, &app.link(&m, &f), "seven").await;
    let p = payment(&app, &m.id, "sms-1").await;
    let sent = eventually("the SMS sent through the sandbox provider", || async {
        let ms = messages::for_payment(&app.db, &p.id).await.unwrap();
        ms.into_iter().find(|x| {
            x.channel.code() == "sms"
                && x.kind.code() == "instructions"
                && x.status.code() == "sent"
        })
    })
    .await;
    assert_eq!(sent.recipient, "090-1234-5678");
    let mut kinds: Vec<String> = messages::for_payment(&app.db, &p.id)
        .await
        .unwrap()
        .iter()
        .map(|x| format!("{}/{}", x.channel.code(), x.kind.code()))
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["sms/instructions", "sms/reminder"]);
}

/// `kakehashi mail test` sends through the configured server; `kakehashi mail settings` saves
/// and checks a merchant's settings.
#[tokio::test]
async fn mail_commands() {
    let smtp = SmtpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let db = Db::connect(&url).await.unwrap();
    let m = kakehashi::db::merchants::NewMerchant {
        id: Some("m_cli".into()),
        name: "CLI商店".into(),
        mode: kakehashi::domain::Mode::Test,
        methods: vec![kakehashi::domain::Method::Konbini],
        konbini_chains: vec!["seven".into()],
        return_origins: vec![SHOP.into()],
        callback_url: None,
        notify_format: "standard".into(),
        theme: "default".into(),
        konbini_days: 7,
        capture_mode: "auto".into(),
        card_options: "lump".into(),
    };
    kakehashi::db::merchants::create(
        &db,
        &kakehashi::secrets::Keyring::default(),
        &m,
        kakehashi::util::now_ms(),
    )
    .await
    .unwrap();
    let run = |args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DATABASE_URL", &url)
            .env("KAKEHASHI_SMTP_HOST", "127.0.0.1")
            .env("KAKEHASHI_SMTP_PORT", smtp.port.to_string())
            .env("KAKEHASHI_SMTP_TLS", "none")
            .env("KAKEHASHI_MAIL_FROM", FROM)
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
    };
    let out = run(&["mail", "test", "ops@example.jp"]).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, ["ops@example.jp"]);
    assert!(mail.subject.contains("テストメール"), "{}", mail.subject);
    assert!(mail.text.contains("shopper e-mail works"));

    let out = run(&[
        "mail",
        "settings",
        "m_cli",
        "--reminder-hours",
        "48",
        "--sms",
        "true",
        "--reply-to",
        "help@shop.example",
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = messages::settings(&db, "m_cli").await.unwrap();
    assert_eq!(
        (s.reminder_hours, s.sms, s.receipts, s.reply_to.as_deref()),
        (48, true, true, Some("help@shop.example"))
    );
    let out = run(&["mail", "settings", "m_cli", "--reminder-hours", "12"])
        .await
        .unwrap();
    assert!(!out.status.success(), "only 0, 24 or 48");
    assert_eq!(
        messages::settings(&db, "m_cli")
            .await
            .unwrap()
            .reminder_hours,
        48
    );
}

both_smtp!(card_receipt_once_then_refund_and_cancellation_notices);
async fn card_receipt_once_then_refund_and_cancellation_notices(app: TestApp, smtp: SmtpFake) {
    let m = app
        .merchant_with(|n| n.capture_mode = "manual".into())
        .await;
    let key = app.api_key(&m).await;
    // Pays by card on the shop's link carrying the shopper's address.
    let pay = |order: &'static str| {
        let (app, m) = (&app, &m);
        async move {
            let f = app.fields(
                m,
                order,
                4000,
                &[("shopper_email", "card@example.jp"), ("lang", "en")],
            );
            let (status, body) = app.open(m, &f, UA_PC).await;
            assert_eq!(status, 200);
            let r = app
                .post_form(
                    &action(&body),
                    UA_PC,
                    &[("csrf", &hidden(&body, "csrf")), ("method", "card")],
                )
                .await;
            let base = location(&r).trim_end_matches("/card").to_owned();
            let page = crate::card::CardPage {
                csrf: hidden(
                    &app.get(&format!("{base}/card"), UA_PC)
                        .await
                        .text()
                        .await
                        .unwrap(),
                    "csrf",
                ),
                base,
            };
            let r = page
                .pay(app, UA_PC, "4111111111111111", "123", "lump")
                .await;
            assert_eq!(r.status(), 303);
            app.scalar_str(&format!(
                "SELECT id FROM payments WHERE order_id = '{order}' AND merchant_id = '{}'",
                m.id
            ))
            .await
            .unwrap()
        }
    };
    let p = pay("card-1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(smtp.all().is_empty(), "an authorization sends nothing");
    let r = app
        .api_post(
            &format!("/api/v1/payments/{p}/capture"),
            &key,
            serde_json::json!({"amount": 4000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let receipt = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(receipt.subject, "[TEST] テスト商店: payment received");
    assert!(receipt.text.contains("JPY 4,000") && receipt.text.contains(&p));
    assert!(
        !receipt.text.contains("/m/"),
        "no number link for a card payment"
    );
    let r = app
        .api_post(
            &format!("/api/v1/payments/{p}/refund"),
            &key,
            serde_json::json!({"amount": 1500}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let refund = wait_mails(&smtp, 2).await.remove(1);
    assert_eq!(refund.subject, "[TEST] テスト商店: refund issued");
    assert!(refund.text.contains("JPY 1,500"), "{}", refund.text);

    let q = pay("card-2").await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/payments/{q}/cancel"),
            Some(&key),
            Some("msg-cancel-1"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let cancel = wait_mails(&smtp, 3).await.remove(2);
    assert_eq!(cancel.subject, "[TEST] テスト商店: payment cancelled");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        smtp.all().len(),
        3,
        "one receipt, one refund, one cancellation"
    );
}

both_smtp!(feature_phone_number_page_sends_the_instructions_too);
async fn feature_phone_number_page_sends_the_instructions_too(app: TestApp, smtp: SmtpFake) {
    let m = app.merchant().await;
    let path = app.choose(&m, "fp-1", 1200, "konbini", UA_DOCOMO).await;
    let chooser = sjis_text(app.get(&path, UA_DOCOMO).await).await;
    let r = app
        .post_sjis(
            &path,
            UA_DOCOMO,
            &[
                ("csrf", &hidden(&chooser, "csrf")),
                ("chain", "seven"),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let page = sjis_text(app.get(&path, UA_DOCOMO).await).await;
    assert!(page.contains("番号をメールで受け取る"), "{page}");
    let post = format!("{}/email-instructions", path.trim_end_matches("/konbini"));
    let r = app
        .post_sjis(
            &post,
            UA_DOCOMO,
            &[
                ("csrf", &hidden(&page, "csrf")),
                ("email", "keitai@example.jp"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 10 * 1024, "feature-phone page under 10 KB");
    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, ["keitai@example.jp"]);
    assert!(mail.subject.contains("セブン-イレブン"));
}

both!(console_message_settings);
async fn console_message_settings(app: TestApp) {
    use crate::console::{user, Console};
    use kakehashi::console::Role;
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let (s, page) = c.get("/console/settings").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("id=\"message-settings\""),
        "linked from the settings page"
    );
    let (s, page) = c.get("/console/settings/messages").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("id=\"mail-off\""),
        "says this server sends no e-mail"
    );
    let csrf = hidden(&page, "csrf");
    let url = "/console/settings/messages";
    let r = c
        .post(url, &[("csrf", "forged"), ("reminder_hours", "48")])
        .await;
    assert_eq!(r.status(), 403);
    let r = c
        .post(url, &[("csrf", &csrf), ("reminder_hours", "12")])
        .await;
    assert_eq!(r.status(), 400, "only 0, 24 or 48");
    let r = c
        .post(
            url,
            &[
                ("csrf", &csrf),
                ("reply_to", "not-an-address"),
                ("reminder_hours", "24"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        messages::settings(&app.db, &m.id).await.unwrap(),
        Settings::default(),
        "nothing saved"
    );
    let r = c
        .post(
            url,
            &[
                ("csrf", &csrf),
                ("sender_name", "テスト商店 サポート"),
                ("reply_to", "help@shop.example"),
                ("reminder_hours", "0"),
                ("sms", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        messages::settings(&app.db, &m.id).await.unwrap(),
        Settings {
            sender_name: Some("テスト商店 サポート".into()),
            reply_to: Some("help@shop.example".into()),
            reminder_hours: 0,
            receipts: false,
            sms: true,
        }
    );
    let (_, page) = c.get("/console/settings/messages?saved=1").await;
    assert!(page.contains("id=\"settings-saved\"") && page.contains("help@shop.example"));
    let audit: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = 'message_settings.update'")
        .fetch_one(c).await)
    .unwrap();
    assert_eq!(audit, 1);
}

both_smtp!(refund_request_mails_the_account_link);
/// Staff create a refund request (返金依頼) for a paid konbini payment: the shopper receives the
/// e-mail with the amount and the account page's link, which opens that request's page; an address
/// staff type goes there instead; a bad address is refused and nothing is created; once the
/// request is withdrawn, a resend asks for nothing.
async fn refund_request_mails_the_account_link(app: TestApp, smtp: SmtpFake) {
    use crate::console::{user, Console};
    use kakehashi::console::Role;

    let m = app.merchant().await;
    let f = app.fields(
        &m,
        "rr-mail",
        4200,
        &[("shopper_email", "hanako@example.jp")],
    );
    issue(&app, &app.link(&m, &f), "lawson").await;
    let p = payment(&app, &m.id, "rr-mail").await;
    sandbox(&app, &m, &p.id, "paid").await;
    // Instructions and receipt.
    wait_mails(&smtp, 2).await;

    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let csrf = c.csrf().await;
    let path = format!("/console/payments/{}/refund-requests", p.id);
    let requests = || async {
        kakehashi::db::refund_requests::of_payment(&app.db, &p.id)
            .await
            .unwrap()
    };
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("amount", "3000"),
                ("email", "not an address"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409, "a bad address is refused");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("メールアドレスが正しくありません"));
    assert!(requests().await.is_empty(), "and nothing is created");

    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("amount", "3000"),
                ("email", ""),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("done=refund_request_mailed"));
    let mail = wait_mails(&smtp, 3).await.remove(2);
    assert_eq!(mail.rcpt_to, vec!["hanako@example.jp".to_owned()]);
    assert_eq!(
        mail.subject,
        "【テスト】【テスト商店】返金先口座のご登録のお願い"
    );
    let rid = requests().await[0].id.clone();
    for part in [&mail.text, &mail.html] {
        assert!(part.contains("3,000円"), "refund amount: {part}");
        assert!(part.contains(&format!("/refund/{rid}?t=")), "link: {part}");
    }
    let link = mail
        .text
        .split_whitespace()
        .find(|w| w.contains("/refund/"))
        .unwrap()
        .to_owned();
    let page = app
        .get(link.trim_start_matches(&app.base), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("3,000"), "the request's page: {page}");

    // A second request to an address staff typed.
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("amount", "1000"),
                ("email", "taro@example.jp"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mail = wait_mails(&smtp, 4).await.remove(3);
    assert_eq!(mail.rcpt_to, vec!["taro@example.jp".to_owned()]);
    assert!(mail.text.contains("1,000円"), "{}", mail.text);

    // Both withdrawn: resending the e-mail asks for nothing and sends nothing.
    for r in requests().await {
        let out = c
            .post(
                &format!("/console/refund-requests/{}/cancel", r.id),
                &[("csrf", &csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(out.status(), 303);
    }
    let first = messages::for_payment(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.kind.code() == "refund_request")
        .unwrap();
    let r = c
        .post(
            &format!("/console/payments/{}/messages/resend", p.id),
            &[("csrf", &csrf), ("message_id", &first.id)],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    eventually("the resend recorded as not needed", || async {
        messages::for_payment(&app.db, &p.id)
            .await
            .unwrap()
            .iter()
            .any(|x| x.kind.code() == "refund_request" && x.status.code() == "cancelled")
            .then_some(())
    })
    .await;
    assert_eq!(
        smtp.accepted().len(),
        4,
        "no e-mail for a withdrawn request"
    );
}

both_smtp!(payment_request_by_email_carries_a_working_link);
/// A payment request by e-mail (API `email`): no recipient or a bad address is refused and
/// writes nothing; the e-mail arrives with the order and the short link, which leads to the
/// order's checkout; a resend sends it again; once cancelled, a queued copy is not sent and the
/// link no longer works.
async fn payment_request_by_email_carries_a_working_link(app: TestApp, smtp: SmtpFake) {
    use serde_json::json;

    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    let body = |extra: serde_json::Value| {
        let mut b =
            json!({ "order_id": "mail-req-1", "amount": 4800, "item_name": "講習会参加費" });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let r = app
        .api_post("/api/v1/payment-requests", &key, body(json!({})))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "recipient_required"),
        "{}",
        r.json
    );
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            body(json!({ "email": "not-an-address" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_email"), "{}", r.json);
    assert_eq!(app.count("payment_requests").await, 0, "nothing written");

    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            body(json!({ "email": "hanako@example.jp", "expires_in": 3 * 86400 })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["phone"], serde_json::Value::Null);
    assert_eq!(r.json["email"], "hanako@example.jp");
    assert_eq!(r.json["messages"].as_array().unwrap().len(), 0, "no SMS");
    let id = r.json["id"].as_str().unwrap().to_owned();
    let url = r.json["url"].as_str().unwrap().to_owned();

    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, vec!["hanako@example.jp".to_owned()]);
    assert_eq!(mail.subject, "【テスト】【テスト商店】お支払いのお願い");
    for part in [&mail.text, &mail.html] {
        assert!(
            part.contains("4,800円") && part.contains("講習会参加費"),
            "{part}"
        );
        assert!(part.contains(&url), "the short link: {part}");
    }
    eventually("the e-mail recorded as sent", || async {
        let got = app
            .api_get(&format!("/api/v1/payment-requests/{id}"), &key)
            .await;
        (got.json["emails"][0]["status"] == "sent").then_some(())
    })
    .await;

    // The link opens the order's checkout, which carries the address for the receipt.
    let r = app.get(url.trim_start_matches(&app.base), UA_PC).await;
    assert_eq!(r.status(), 303);
    let link = location(&r);
    assert!(link.contains("order_id=mail-req-1"), "{link}");
    assert!(link.contains("shopper_email=hanako%40example.jp"), "{link}");
    assert_eq!(app.get(&link, UA_PC).await.status(), 200);

    // Resend: the same link again.
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let again = wait_mails(&smtp, 2).await.remove(1);
    assert!(again.text.contains(&url));

    // A resend queued, then the request cancelled before the sender runs: not sent.
    let mails = kakehashi::db::messages::for_request(&app.db, &id)
        .await
        .unwrap();
    assert_eq!(mails.len(), 2);
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/cancel"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.json["status"], "cancelled", "{}", r.json);
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "payment_request_not_open"));
    assert_eq!(
        app.get(url.trim_start_matches(&app.base), UA_PC)
            .await
            .status(),
        410
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(smtp.accepted().len(), 2, "nothing after the cancel");
}

both_smtp!(console_new_link_sent_by_email);
/// 決済新規登録 with an address: the link goes out as a payment request by e-mail, shown on the
/// result page and listed under SMS・メール決済 with its delivery state.
async fn console_new_link_sent_by_email(app: TestApp, smtp: SmtpFake) {
    use crate::console::{user, Console};
    use kakehashi::console::Role;

    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let csrf = c.csrf().await;
    let form = |email: &'static str| {
        [
            ("csrf", csrf.as_str()),
            ("order_id", "console-mail-1"),
            ("amount", "2,500"),
            ("item_name", "会費"),
            ("email", email),
        ]
    };
    let r = c.post("/console/checkouts", &form("nope")).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("メールアドレスが正しくありません"));
    assert_eq!(app.count("payment_requests").await, 0, "nothing written");
    let r = c.post("/console/checkouts", &form("taro@example.jp")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"sent-to\""), "{page}");
    assert!(page.contains("taro@example.jp に送信しました"), "{page}");
    let mail = wait_mails(&smtp, 1).await.remove(0);
    assert_eq!(mail.rcpt_to, vec!["taro@example.jp".to_owned()]);
    assert!(
        mail.text.contains("2,500円") && mail.text.contains("/s/"),
        "{}",
        mail.text
    );
    eventually("listed as sent", || async {
        let (_, list) = c.get("/console/payment-requests").await;
        (list.contains("taro@example.jp") && list.contains("送信済")).then_some(())
    })
    .await;
    let audited: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = 'payment_request.send'")
        .fetch_one(c).await)
    .unwrap();
    assert_eq!(audited, 2, "the refusal and the send");
}

/// The messages worker's claim is planned at each run, never kept as a prepared statement: its
/// generic plan, made while the table was small, read the whole table twice once it had grown
/// (70 ms a claim over 200,000 messages; bench/README.md, change 37).
#[tokio::test]
async fn postgres_claim_not_prepared() {
    let Some(app) = spawn_app_with(Backend::Postgres, |_| {}).await else {
        return;
    };
    let now = app.state.now_ms();
    for _ in 0..20 {
        messages::claim(&app.db, "plan-test", now, 60_000, 16)
            .await
            .unwrap();
    }
    app.assert_not_prepared("UPDATE messages SET lease_owner")
        .await;
}
