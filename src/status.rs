//! Japanese console labels (決済ステータス) for every method's status codes.

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
