//! Human labels for the console: the payment-details keys connectors store (`bin6`,
//! `three_ds.eci`, …) and their coded values, so the detail page never shows raw keys.

use crate::domain::card::ThreeDsStatus;
use crate::domain::carrier::{BillingKind, Carrier};
use crate::domain::konbini::Chain;

/// One line of "決済手段の詳細": label, shown value, and the stored key (kept as a
/// `data-key` attribute for support staff and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailLine {
    pub label: String,
    pub value: String,
    pub key: String,
}

/// Keys with a human twin stored next to them (the code is then not shown twice).
const TWINNED: &[(&str, &str)] = &[
    ("brand", "brand_name"),
    ("option", "option_label"),
    ("bank_code", "bank_name"),
];

fn label(key: &str) -> Option<&'static str> {
    Some(match key {
        "brand_name" | "brand" => "カードブランド",
        "bin6" => "カード番号の先頭6桁（BIN）",
        "last4" => "カード番号の末尾4桁",
        "expiry" => "有効期限",
        "option_label" | "option" => "支払回数",
        "card_entry" => "カード情報の入力方法",
        "approval_code" => "承認番号",
        "three_ds.status" => "3Dセキュア認証結果",
        "three_ds.eci" => "ECI（3Dセキュアの結果区分）",
        "challenge_id" => "3Dセキュア認証の照会番号",
        "wrong_codes" => "ワンタイムパスワードの誤入力回数",
        "failure" | "failure_reason" => "失敗理由",
        "bank_code" => "金融機関コード",
        "bank_name" => "金融機関名",
        "bank_txn_id" => "銀行の取引番号",
        "carrier" => "携帯電話会社",
        "billing" => "課金種別",
        "phone_hash" => "電話番号（照合用ハッシュ）",
        "carrier_txn_id" => "携帯電話会社の取引番号",
        "subscription_id" => "継続課金ID",
        "charge_no" => "継続課金の回数",
        "limit_remaining" => "今月の残り利用可能額（円）",
        "chain" => "コンビニ",
        "receipt_no" => "払込票番号・受付番号",
        "customer_no" => "お客様番号",
        "confirm_no" => "確認番号",
        "institution_no" => "収納機関番号",
        "payment_url" => "払込票・お支払い方法のページ",
        "account.bank_name" => "振込先 銀行名",
        "account.branch_name" => "振込先 支店名",
        "account.account_type" => "振込先 預金種目",
        "account.account_number" => "振込先 口座番号",
        "account.account_holder" => "振込先 口座名義",
        _ => return None,
    })
}

/// A coded value in words, where the code is one of ours.
fn value(key: &str, v: &str) -> String {
    let named = match key {
        "three_ds.status" => ThreeDsStatus::from_code(v).map(|s| match s {
            ThreeDsStatus::Authenticated => "認証成功",
            ThreeDsStatus::Attempted => "認証試行（カード会社が未対応）",
            ThreeDsStatus::Challenge => "追加認証（チャレンジ）",
            ThreeDsStatus::Failed => "認証失敗",
            ThreeDsStatus::Unavailable => "認証できず（技術的な理由）",
            ThreeDsStatus::Rejected => "カード会社が拒否",
        }),
        "carrier" => Carrier::parse(v).map(|c| c.name_ja()),
        "billing" => BillingKind::parse(v).map(|b| b.label_ja()),
        "chain" => Chain::parse(v).map(|c| c.name_ja()),
        "card_entry" => Some(match v {
            "browser" => "カード会社のフォーム（ブラウザ）",
            _ => return v.to_owned(),
        }),
        _ => None,
    };
    match named {
        // The code stays visible after the words: it is what processors and logs say.
        Some(words) => format!("{words} ({v})"),
        None => v.to_owned(),
    }
}

/// The labelled lines for flattened `(key, value)` details, in their stored order; an unknown
/// key is shown as it is (a processor's own field), never dropped.
pub fn details(flat: &[(String, String)]) -> Vec<DetailLine> {
    flat.iter()
        .filter(|(k, _)| {
            !TWINNED
                .iter()
                .any(|(code, twin)| k == code && flat.iter().any(|(t, _)| t == twin))
        })
        .map(|(k, v)| DetailLine {
            label: label(k).map_or_else(|| k.clone(), str::to_owned),
            value: value(k, v),
            key: k.clone(),
        })
        .collect()
}

/// Institution codes (konbini chains, bank codes, carriers) in Japanese where we know them.
pub fn institution_ja(code: &str) -> String {
    if let Some(c) = Chain::parse(code) {
        return c.name_ja().to_owned();
    }
    if let Some(b) = crate::domain::bank::Bank::parse(code) {
        return b.name_ja().to_owned();
    }
    if let Some(c) = Carrier::parse(code) {
        return c.name_ja().to_owned();
    }
    match code {
        "payeasy" => "Pay-easy（ペイジー）".to_owned(),
        "bank_transfer" => "銀行振込".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn card_details_read_as_words() {
        let lines = details(&flat(&[
            ("brand", "visa"),
            ("brand_name", "Visa"),
            ("bin6", "411111"),
            ("three_ds.status", "Y"),
            ("three_ds.eci", "05"),
            ("processor_field", "x"),
        ]));
        let labels: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "カードブランド",
                "カード番号の先頭6桁（BIN）",
                "3Dセキュア認証結果",
                "ECI（3Dセキュアの結果区分）",
                "processor_field"
            ]
        );
        assert_eq!(lines[2].value, "認証成功 (Y)");
        assert_eq!(lines[1].key, "bin6");
    }

    #[test]
    fn institutions_by_name() {
        assert_eq!(institution_ja("0009"), "三井住友銀行");
        assert_eq!(institution_ja("docomo"), "d払い");
        assert_eq!(institution_ja("seven"), "セブン-イレブン");
        assert_eq!(institution_ja("payeasy"), "Pay-easy（ペイジー）");
        assert_eq!(institution_ja("9999x"), "9999x");
    }
}
