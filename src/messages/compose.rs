//! Composes each message kind from [`Facts`]. The text part is complete on its own; the HTML
//! part says the same with the shop's theme colour and logo. Every value is escaped in HTML.

use crate::domain::jst;
use crate::domain::message::MessageKind;
use crate::util::format_yen;

/// The shop's look in e-mail (from its theme).
#[derive(Debug, Clone, Default)]
pub struct Branding {
    /// CSS colour, e.g. `#0a7d5a`.
    pub primary: String,
    /// Absolute URL of the logo, or empty.
    pub logo_url: String,
}

/// A konbini / Pay-easy number, as the number page shows it.
#[derive(Debug, Clone, Default)]
pub struct NumberFacts {
    /// Where to pay: "ローソン" / "Lawson" / "Pay-easy（ペイジー）".
    pub place: String,
    /// (label, value) in the order the shopper enters them.
    pub fields: Vec<(String, String)>,
    pub deadline_ms: i64,
    pub steps: Vec<String>,
}

/// Everything a message says.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub en: bool,
    pub test_mode: bool,
    pub shop: String,
    pub item: String,
    pub order_id: String,
    pub payment_id: String,
    pub amount: i64,
    /// The amount refunded so far (refund notices).
    pub refunded: i64,
    /// The amount of the open refund request (返金依頼 messages); 0 otherwise.
    pub requested: i64,
    /// "コンビニ決済" / "Convenience store".
    pub method: String,
    /// When it was paid (receipts) or when the notice was written.
    pub at_ms: i64,
    pub number: Option<NumberFacts>,
    /// The number page (long-lived signed link); empty when the payment has none.
    pub link: String,
    /// Whether replies reach the shop (the merchant set a reply-to address).
    pub replies_to_shop: bool,
    pub branding: Branding,
}

/// A composed e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The deadline as shoppers read it: `2026年12月8日(火) 23:59` / `Tue 8 Dec 2026, 23:59` (JST).
pub fn deadline_text(ms: i64, en: bool) -> String {
    let text = jst::shopper_text(ms, en);
    // Mail is read anywhere: English says which clock (Japanese readers assume Japan's).
    if en {
        format!("{text} (JST)")
    } else {
        text
    }
}

/// `12/8(火)`: the deadline's date in the few characters an SMS has.
fn short_date(ms: i64, en: bool) -> String {
    let t = jst::at_ms(ms);
    let (month, day, wd) = (u8::from(t.month()), t.day(), jst::weekday(t, en));
    if en {
        format!("{month}/{day} {wd}")
    } else {
        format!("{month}/{day}({wd})")
    }
}

/// Lines of text, later joined for the text part and paragraphs for HTML.
enum Block {
    Para(String),
    /// (label, value) rows.
    Table(Vec<(String, String)>),
    Steps(String, Vec<String>),
    Link(String, String),
    Small(String),
}

fn subject(f: &Facts, kind: MessageKind) -> String {
    let test = match (f.test_mode, f.en) {
        (false, _) => "",
        (true, false) => "【テスト】",
        (true, true) => "[TEST] ",
    };
    let place = f.number.as_ref().map(|n| n.place.as_str()).unwrap_or("");
    let s = match (kind, f.en) {
        (MessageKind::Instructions, false) => {
            format!("【{}】{}のお支払い番号のご案内", f.shop, place)
        }
        (MessageKind::Instructions, true) => {
            format!("{}: how to pay at {}", f.shop, place)
        }
        (MessageKind::Reminder, false) => {
            let d = f.number.as_ref().map(|n| short_date(n.deadline_ms, false));
            format!(
                "【{}】お支払期限（{}）が近づいています",
                f.shop,
                d.unwrap_or_default()
            )
        }
        (MessageKind::Reminder, true) => {
            let d = f.number.as_ref().map(|n| short_date(n.deadline_ms, true));
            format!("{}: your payment is due {}", f.shop, d.unwrap_or_default())
        }
        (MessageKind::Receipt, false) => format!("【{}】お支払い完了のお知らせ", f.shop),
        (MessageKind::Receipt, true) => format!("{}: payment received", f.shop),
        (MessageKind::Refund, false) => format!("【{}】返金のお知らせ", f.shop),
        (MessageKind::Refund, true) => format!("{}: refund issued", f.shop),
        (MessageKind::Cancellation, false) => format!("【{}】お支払い取消のお知らせ", f.shop),
        (MessageKind::Cancellation, true) => format!("{}: payment cancelled", f.shop),
        (MessageKind::RefundRequest, false) => {
            format!("【{}】返金先口座のご登録のお願い", f.shop)
        }
        (MessageKind::RefundRequest, true) => {
            format!("{}: where should we send your refund?", f.shop)
        }
        (MessageKind::PaymentRequest, false) => format!("【{}】お支払いのお願い", f.shop),
        (MessageKind::PaymentRequest, true) => format!("{}: your payment link", f.shop),
    };
    format!("{test}{s}")
}

fn order_rows(f: &Facts) -> Vec<(String, String)> {
    let l = |ja: &str, en: &str| if f.en { en.to_owned() } else { ja.to_owned() };
    vec![
        (l("ショップ", "Shop"), f.shop.clone()),
        (l("ご注文", "Item"), f.item.clone()),
        (l("注文番号", "Order number"), f.order_id.clone()),
        (l("お支払金額", "Amount"), yen(f.amount, f.en)),
    ]
}

fn yen(amount: i64, en: bool) -> String {
    if en {
        format!("JPY {}", format_yen(amount))
    } else {
        format!("{}円", format_yen(amount))
    }
}

fn blocks(f: &Facts, kind: MessageKind) -> Vec<Block> {
    let en = f.en;
    let l = |ja: &str, en_s: &str| if en { en_s.to_owned() } else { ja.to_owned() };
    let mut b = Vec::new();
    match kind {
        MessageKind::Instructions | MessageKind::Reminder => {
            let Some(n) = &f.number else {
                return b;
            };
            let deadline = deadline_text(n.deadline_ms, en);
            b.push(Block::Para(match (kind, en) {
                (MessageKind::Instructions, false) => format!(
                    "{}でのご注文ありがとうございます。お支払期限までに、下記の番号で{}にてお支払いください。",
                    f.shop, n.place
                ),
                (MessageKind::Instructions, true) => format!(
                    "Thank you for your order at {}. Please pay at {} with the number below before the deadline.",
                    f.shop, n.place
                ),
                (_, false) => format!(
                    "{}でのご注文のお支払いがまだ確認できていません。お支払期限は{}です。",
                    f.shop, deadline
                ),
                (_, true) => format!(
                    "We have not yet received your payment for your order at {}. The deadline is {}.",
                    f.shop, deadline
                ),
            }));
            let mut rows = order_rows(f);
            rows.extend(n.fields.iter().cloned());
            rows.push((l("お支払期限", "Pay by"), deadline));
            b.push(Block::Table(rows));
            b.push(Block::Steps(
                l("お支払い方法", "How to pay"),
                n.steps.clone(),
            ));
            if !f.link.is_empty() {
                b.push(Block::Link(
                    l("お支払い番号のページ", "Your payment number page"),
                    f.link.clone(),
                ));
            }
            b.push(Block::Para(l(
                "お支払期限を過ぎると、この番号ではお支払いいただけません。すでにお支払い済みの場合は、このメールは破棄してください。",
                "After the deadline this number can no longer be used. If you have already paid, please disregard this message.",
            )));
        }
        MessageKind::Receipt => {
            b.push(Block::Para(match en {
                false => format!(
                    "{}でのお支払いを受け付けました。ありがとうございました。",
                    f.shop
                ),
                true => format!("Your payment to {} has been received. Thank you.", f.shop),
            }));
            let mut rows = order_rows(f);
            rows.push((l("お支払い方法", "Payment method"), f.method.clone()));
            rows.push((l("お支払日時", "Paid on"), deadline_text(f.at_ms, en)));
            b.push(Block::Table(rows));
        }
        MessageKind::Refund => {
            b.push(Block::Para(match en {
                false => format!("{}でのご注文のお支払いを返金しました。", f.shop),
                true => format!("{} has refunded your payment.", f.shop),
            }));
            let mut rows = order_rows(f);
            rows.push((l("返金額（累計）", "Refunded (total)"), yen(f.refunded, en)));
            rows.push((l("お支払い方法", "Payment method"), f.method.clone()));
            b.push(Block::Table(rows));
            b.push(Block::Para(l(
                "お手元に戻るまでの日数はお支払い方法により異なります。",
                "How long the money takes to reach you depends on the payment method.",
            )));
        }
        MessageKind::Cancellation => {
            b.push(Block::Para(match en {
                false => format!(
                    "{}でのご注文のお支払いは取り消されました。代金は請求されません。",
                    f.shop
                ),
                true => format!(
                    "Your payment to {} was cancelled; you will not be charged.",
                    f.shop
                ),
            }));
            let mut rows = order_rows(f);
            rows.push((l("お支払い方法", "Payment method"), f.method.clone()));
            b.push(Block::Table(rows));
        }
        MessageKind::RefundRequest => {
            b.push(Block::Para(match en {
                false => format!(
                    "{}でのご注文について、お支払いいただいた代金を銀行振込で返金いたします。下記のページから、返金先の口座をご登録ください。",
                    f.shop
                ),
                true => format!(
                    "{} will refund your payment by bank transfer. Please tell us the account to send it to on the page below.",
                    f.shop
                ),
            }));
            let mut rows = order_rows(f);
            rows.push((l("お支払い方法", "Payment method"), f.method.clone()));
            rows.push((l("返金額", "Refund"), yen(f.requested, en)));
            b.push(Block::Table(rows));
            b.push(Block::Link(
                l("返金先口座のご登録", "Give your bank account"),
                f.link.clone(),
            ));
            b.push(Block::Para(l(
                "口座のご登録は、このメールのリンクからのみ受け付けています。お電話やメールで口座番号をお尋ねすることはありません。",
                "We take the account only on the page this link opens; we never ask for it by phone or e-mail.",
            )));
        }
        MessageKind::PaymentRequest => {
            b.push(Block::Para(match en {
                false => format!(
                    "{}からお支払いのお願いです。下記のページで、お支払い方法を選んでお支払いください。",
                    f.shop
                ),
                true => format!(
                    "{} asks you to pay for the order below. Open the page, choose how to pay, and pay.",
                    f.shop
                ),
            }));
            let mut rows = order_rows(f);
            rows.push((l("有効期限", "Valid until"), deadline_text(f.at_ms, en)));
            b.push(Block::Table(rows));
            b.push(Block::Link(l("お支払いページ", "Pay here"), f.link.clone()));
            b.push(Block::Para(l(
                "お心当たりのない場合は、このメールを破棄してください。",
                "If you did not expect this, please disregard this message.",
            )));
        }
    }
    let footer = match (en, f.replies_to_shop) {
        (false, true) => format!(
            "このメールは{}のご注文について、決済サービスからお送りしています。ご返信は{}に届きます。",
            f.shop, f.shop
        ),
        (false, false) => format!(
            "このメールは{}のご注文について、決済サービスからお送りしています。送信専用のため、お問い合わせは{}へ直接お願いします。",
            f.shop, f.shop
        ),
        (true, true) => format!(
            "Sent by the payment service on behalf of {}. Replies reach {}.",
            f.shop, f.shop
        ),
        (true, false) => format!(
            "Sent by the payment service on behalf of {}. This address does not take replies: please contact {} directly.",
            f.shop, f.shop
        ),
    };
    b.push(Block::Small(if f.payment_id.is_empty() {
        footer
    } else {
        format!(
            "{}\n{}: {}",
            footer,
            l("決済ID", "Payment ID"),
            f.payment_id
        )
    }));
    b
}

/// The e-mail for `kind`.
pub fn email(f: &Facts, kind: MessageKind) -> Composed {
    let blocks = blocks(f, kind);
    Composed {
        subject: subject(f, kind),
        text: text_of(&blocks),
        html: html_of(f, &subject(f, kind), &blocks),
    }
}

fn text_of(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Para(p) | Block::Small(p) => out.push_str(p),
            Block::Table(rows) => {
                for (k, v) in rows {
                    out.push_str(&format!("{k}: {v}\n"));
                }
                out.pop();
            }
            Block::Steps(title, steps) => {
                out.push_str(&format!("■ {title}\n"));
                for (i, s) in steps.iter().enumerate() {
                    out.push_str(&format!("{}. {s}\n", i + 1));
                }
                out.pop();
            }
            Block::Link(label, url) => out.push_str(&format!("{label}:\n{url}")),
        }
        out.push_str("\n\n");
    }
    out.trim_end().to_owned() + "\n"
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A colour from a theme, or a neutral one when it is not a plain `#rgb` / `#rrggbb` value
/// (nothing from a theme file reaches the style attribute unchecked).
fn colour(c: &str) -> &str {
    let hex = c.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        c
    } else {
        "#333333"
    }
}

fn html_of(f: &Facts, title: &str, blocks: &[Block]) -> String {
    let primary = colour(&f.branding.primary);
    let lang = if f.en { "en" } else { "ja" };
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"margin:0;padding:0;background:#f4f4f4;font-family:sans-serif;color:#222\">\n\
         <table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr><td align=\"center\">\n\
         <table role=\"presentation\" width=\"600\" cellpadding=\"16\" cellspacing=\"0\" style=\"max-width:600px;background:#fff\">\n\
         <tr><td style=\"background:{primary};color:#fff;font-size:18px;font-weight:bold\">",
        esc(title)
    );
    if f.branding.logo_url.starts_with("https://") || f.branding.logo_url.starts_with("http://") {
        h.push_str(&format!(
            "<img src=\"{}\" alt=\"{}\" height=\"32\" style=\"vertical-align:middle;margin-right:8px;background:#fff\">",
            esc(&f.branding.logo_url),
            esc(&f.shop)
        ));
    }
    h.push_str(&esc(&f.shop));
    h.push_str("</td></tr>\n");
    for b in blocks {
        h.push_str("<tr><td>");
        match b {
            Block::Para(p) => h.push_str(&format!("<p style=\"margin:0\">{}</p>", esc(p))),
            Block::Small(p) => h.push_str(&format!(
                "<p style=\"margin:0;font-size:12px;color:#666\">{}</p>",
                esc(p).replace('\n', "<br>")
            )),
            Block::Table(rows) => {
                h.push_str("<table role=\"presentation\" cellpadding=\"6\" cellspacing=\"0\" style=\"border-collapse:collapse;width:100%\">");
                for (k, v) in rows {
                    h.push_str(&format!(
                        "<tr><th align=\"left\" style=\"border-bottom:1px solid #ddd;white-space:nowrap\">{}</th>\
                         <td style=\"border-bottom:1px solid #ddd;font-size:16px\">{}</td></tr>",
                        esc(k),
                        esc(v)
                    ));
                }
                h.push_str("</table>");
            }
            Block::Steps(t, steps) => {
                h.push_str(&format!(
                    "<h2 style=\"font-size:16px;margin:0 0 8px;color:{primary}\">{}</h2><ol style=\"margin:0;padding-left:20px\">",
                    esc(t)
                ));
                for s in steps {
                    h.push_str(&format!("<li>{}</li>", esc(s)));
                }
                h.push_str("</ol>");
            }
            Block::Link(label, url) => h.push_str(&format!(
                "<a href=\"{}\" style=\"display:inline-block;background:{primary};color:#fff;padding:10px 16px;text-decoration:none;border-radius:4px\">{}</a>",
                esc(url),
                esc(label)
            )),
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</table></td></tr></table></body></html>\n");
    h
}

/// One SMS in UCS-2: 70 UTF-16 code units (the same limit as `sms::MAX_SMS_UNITS`; kept here so
/// this module stays free of I/O modules).
const MAX_SMS_UNITS: usize = 70;

/// Length of an SMS as the network counts it (UCS-2 units).
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The SMS for instructions or a reminder, within 70 characters: the number(s), the deadline
/// and the link when it fits; the shop name is shortened first, then the link left out (the
/// number and the deadline are what the shopper needs at the register). `None` if even that
/// does not fit.
pub fn sms(f: &Facts, kind: MessageKind, link: &str) -> Option<String> {
    let n = f.number.as_ref()?;
    let numbers = n
        .fields
        .iter()
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let date = short_date(n.deadline_ms, f.en);
    let body = match (kind, f.en) {
        (MessageKind::Reminder, false) => format!("期限{date}迄 {} {numbers}", n.place),
        (MessageKind::Reminder, true) => format!("Due {date}: {} {numbers}", n.place),
        (_, false) => format!("{} {numbers} 期限{date}", n.place),
        (_, true) => format!("{} {numbers} due {date}", n.place),
    };
    let fill = |shop: &str, link: &str| {
        let mut s = format!("{shop}: {body}");
        if !link.is_empty() {
            s.push(' ');
            s.push_str(link);
        }
        s
    };
    for l in [link, ""] {
        let full = fill(&f.shop, l);
        if units(&full) <= MAX_SMS_UNITS {
            return Some(full);
        }
        let room = MAX_SMS_UNITS.saturating_sub(units(&fill("", l)));
        if room >= 3 {
            let mut short = String::new();
            for c in f.shop.chars() {
                if units(&short) + c.len_utf16() > room - 1 {
                    break;
                }
                short.push(c);
            }
            short.push('…');
            return Some(fill(&short, l));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_in_mail_and_sms() {
        // 2026-12-08 23:59:59 JST, a Tuesday.
        let ms = 1_796_741_999_000;
        assert_eq!(deadline_text(ms, false), "2026年12月8日(火) 23:59");
        assert_eq!(deadline_text(ms, true), "Tue 8 Dec 2026, 23:59 (JST)");
        assert_eq!(short_date(ms, false), "12/8(火)");
        assert_eq!(short_date(ms, true), "12/8 Tue");
    }

    fn facts(en: bool) -> Facts {
        Facts {
            en,
            shop: "テスト商店".into(),
            item: "テスト商品 <b>".into(),
            order_id: "o-1".into(),
            payment_id: "pay_1".into(),
            amount: 1200,
            method: "コンビニ決済".into(),
            number: Some(NumberFacts {
                place: "ローソン".into(),
                fields: vec![
                    ("お客様番号".into(), "12345678901".into()),
                    ("確認番号".into(), "1234".into()),
                ],
                // 2026-12-08 23:59 JST
                deadline_ms: 1_796_741_940_000,
                steps: vec!["Loppi".into()],
            }),
            link: "https://pay.example/m/pay_1/abc".into(),
            branding: Branding {
                primary: "red;background:url(x)".into(),
                logo_url: "https://pay.example/assets/logo.png".into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn refund_request_carries_the_amount_and_the_account_link() {
        let f = Facts {
            requested: 3000,
            link: "https://pay.example/refund/rfr_1?t=abc".into(),
            ..facts(false)
        };
        let c = email(&f, MessageKind::RefundRequest);
        assert!(c.subject.contains("返金先口座"), "{}", c.subject);
        for part in [&c.text, &c.html] {
            assert!(part.contains("3,000円"), "{part}");
            assert!(
                part.contains("https://pay.example/refund/rfr_1?t=abc"),
                "{part}"
            );
        }
        let en = email(&Facts { en: true, ..f }, MessageKind::RefundRequest);
        assert!(en.text.contains("JPY 3,000"), "{}", en.text);
        assert!(!MessageKind::RefundRequest.sms_allowed());
    }

    #[test]
    fn payment_request_carries_the_order_and_the_link() {
        let f = Facts {
            payment_id: String::new(),
            number: None,
            link: "https://pay.example/s/abcdefghij".into(),
            at_ms: 1_796_741_940_000,
            ..facts(false)
        };
        let c = email(&f, MessageKind::PaymentRequest);
        assert_eq!(c.subject, "【テスト商店】お支払いのお願い");
        for part in [&c.text, &c.html] {
            assert!(part.contains("1,200円") && part.contains("o-1"), "{part}");
            assert!(part.contains("https://pay.example/s/abcdefghij"), "{part}");
            assert!(part.contains("2026年12月8日(火) 23:59"), "{part}");
            assert!(!part.contains("決済ID"), "no payment yet: {part}");
        }
    }

    #[test]
    fn instructions_carry_number_deadline_and_link() {
        let c = email(&facts(false), MessageKind::Instructions);
        assert!(c.subject.contains("ローソン"), "{}", c.subject);
        for part in [&c.text, &c.html] {
            assert!(part.contains("12345678901"));
            assert!(part.contains("2026年12月8日(火) 23:59"), "{part}");
            assert!(part.contains("https://pay.example/m/pay_1/abc"));
        }
        assert!(c.html.contains("テスト商品 &lt;b&gt;"));
        assert!(!c.html.contains("url(x)"), "theme colour is checked");
        let en = email(&facts(true), MessageKind::Reminder);
        assert!(en.text.contains("Tue 8 Dec 2026, 23:59"), "{}", en.text);
    }

    #[test]
    fn sms_fits_in_70() {
        let f = facts(false);
        let s = sms(&f, MessageKind::Instructions, &f.link).unwrap();
        assert!(units(&s) <= 70, "{s}");
        assert!(s.contains("12345678901") && s.contains("12/8(火)"), "{s}");
        let mut long = f.clone();
        long.shop = "とても長いお店の名前がここに入りますとても長いお店の名前".into();
        let s = sms(&long, MessageKind::Reminder, &f.link).unwrap();
        assert!(units(&s) <= 70, "{s}");
        assert!(s.contains("12345678901"));
    }
}
