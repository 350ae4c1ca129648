//! Status labels: the console's (決済ステータス, the words merchants and processors use) and
//! the shopper's (plain words, ja/en). Shopper pages use only [`shopper_label`].

/// The label merchants see for a payment status; unknown codes are shown as they are.
pub fn label_ja(method: &str, status: &str) -> &'static str {
    match (method, status) {
        (_, "awaiting_3ds") | (_, "challenge") => "認証中",
        (_, "authorized") => "オーソリOK",
        (_, "captured") => "売上済",
        (_, "cancelled") => "取消済",
        (_, "refunded") => "返金済",
        (_, "failed") | (_, "declined") => "失敗",
        (_, "expired") => "期限切れ",
        (_, "awaiting_payment") => "申込済",
        (_, "paid") => "消込済（速報）",
        (_, "confirmed") => "確報",
        (_, "reversed") => "速報取消",
        (_, "late_paid") => "期限後入金",
        (_, "awaiting_auth") | (_, "awaiting_bank") => "手続き中",
        (_, "completed") => "決済完了",
        (_, "timed_out") => "タイムアウト",
        _ => "その他",
    }
}

/// The label a shopper sees for a payment status: plain words, never the console's terms
/// (速報, 消込, 取消, オーソリ).
pub fn shopper_label(status: &str, en: bool) -> &'static str {
    let (ja, en_s) = match status {
        "awaiting_3ds" | "challenge" => ("本人認証の途中です", "Verifying your identity"),
        "authorized" => ("お支払いを受け付けました", "Payment accepted"),
        "captured" | "paid" | "confirmed" | "completed" | "late_paid" => ("お支払い済み", "Paid"),
        "cancelled" => ("キャンセルされました", "Cancelled"),
        "refunded" => ("返金されました", "Refunded"),
        "failed" | "declined" => ("お支払いできませんでした", "Not completed"),
        "expired" => ("お支払期限が過ぎました", "Deadline passed"),
        "awaiting_payment" => ("お支払いをお待ちしています", "Awaiting your payment"),
        "reversed" => ("お支払いが取り消されました", "Payment reversed"),
        "awaiting_auth" | "awaiting_bank" => ("手続き中です", "In progress"),
        "timed_out" => ("時間切れになりました", "Timed out"),
        _ => ("確認中です", "Being checked"),
    };
    if en {
        en_s
    } else {
        ja
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopper_labels_have_no_console_jargon() {
        for s in [
            "awaiting_3ds",
            "authorized",
            "captured",
            "cancelled",
            "refunded",
            "failed",
            "declined",
            "expired",
            "awaiting_payment",
            "paid",
            "confirmed",
            "reversed",
            "late_paid",
            "awaiting_auth",
            "awaiting_bank",
            "completed",
            "timed_out",
            "x",
        ] {
            let l = shopper_label(s, false);
            for jargon in ["速報", "確報", "消込", "取消済", "オーソリ", "売上"] {
                assert!(!l.contains(jargon), "{s}: {l}");
            }
        }
    }
}
