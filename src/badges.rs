//! Our own small SVG badges for konbini chains, card brands and wallets (no third-party artwork):
//! a rounded tile in the chain's or brand's familiar colours with a letter or short name, so
//! a shopper finds their store or card at a glance. Inline, decorative (`aria-hidden`): the
//! name is always written next to the badge.

/// Opens a 40×24 badge tile.
macro_rules! tile {
    ($body:expr) => {
        concat!(
            r#"<svg class="badge" viewBox="0 0 40 24" width="40" height="24" aria-hidden="true" focusable="false">"#,
            $body,
            "</svg>"
        )
    };
}

/// The badge of a konbini chain (`domain::konbini::Chain::code`), if we draw one.
pub fn chain(code: &str) -> Option<&'static str> {
    Some(match code {
        // Three bands as on the storefront, with the 7.
        "seven" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#bbb"/><rect x="3" y="5" width="34" height="4" fill="#f58220"/><rect x="3" y="10" width="34" height="4" fill="#00a651"/><rect x="3" y="15" width="34" height="4" fill="#ee2e24"/><text x="20" y="18" font-size="15" font-weight="700" text-anchor="middle" fill="#fff" stroke="#00a651" stroke-width=".6" font-family="sans-serif">7</text>"##
        ),
        "lawson" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#0068b7"/><text x="20" y="17" font-size="11" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">LAW</text>"##
        ),
        "famima" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#bbb"/><rect x="1" y="1" width="38" height="8" fill="#00a040"/><rect x="1" y="15" width="38" height="8" fill="#0a3a8c"/><text x="20" y="15" font-size="7" font-weight="700" text-anchor="middle" fill="#0a3a8c" font-family="sans-serif">FM</text>"##
        ),
        "ministop" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#003f8e"/><text x="20" y="17" font-size="11" font-weight="700" text-anchor="middle" fill="#ffe100" font-family="sans-serif">MINI</text>"##
        ),
        "daily" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#e60012"/><text x="20" y="17" font-size="11" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">DY</text>"##
        ),
        "seicomart" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#f39800"/><text x="20" y="17" font-size="11" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">SEC</text>"##
        ),
        "payeasy" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#c8102e"/><text x="20" y="16" font-size="9" font-weight="700" text-anchor="middle" fill="#c8102e" font-family="sans-serif">Pay-e</text>"##
        ),
        _ => return None,
    })
}

/// The badge of a wallet (`domain::wallet::Wallet::code`), if we draw one: our own simple
/// tile in the service's colour with a short name, never the service's artwork.
pub fn wallet(code: &str) -> Option<&'static str> {
    Some(match code {
        "paypay" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#ff0033"/><text x="20" y="16" font-size="8" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">PayPay</text>"##
        ),
        "aupay" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#eb5505"/><text x="20" y="16" font-size="8" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">au PAY</text>"##
        ),
        "merpay" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#bbb"/><circle cx="20" cy="12" r="8" fill="#ff333f"/><text x="20" y="15.5" font-size="9" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">m</text>"##
        ),
        "rakutenpay" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#bf0000"/><text x="20" y="17" font-size="11" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">R</text>"##
        ),
        "paidy" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#5b3fb7"/><text x="20" y="16" font-size="8" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">Paidy</text>"##
        ),
        "linepay" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#06c755"/><text x="20" y="16" font-size="7.5" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">LINE Pay</text>"##
        ),
        _ => return None,
    })
}

/// The badge of a card brand (`domain::card::Brand::code`), if we draw one.
pub fn card(code: &str) -> Option<&'static str> {
    Some(match code {
        "visa" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#1a1f71"/><text x="20" y="16.5" font-size="10" font-weight="700" font-style="italic" text-anchor="middle" fill="#fff" font-family="sans-serif">VISA</text>"##
        ),
        // Two overlapping circles.
        "mastercard" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#222"/><circle cx="16" cy="12" r="7" fill="#eb001b"/><circle cx="24" cy="12" r="7" fill="#f79e1b" fill-opacity=".85"/>"##
        ),
        // Three coloured panels.
        "jcb" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#bbb"/><rect x="5" y="4" width="9" height="16" rx="2" fill="#0e4c96"/><rect x="15.5" y="4" width="9" height="16" rx="2" fill="#e21836"/><rect x="26" y="4" width="9" height="16" rx="2" fill="#007b40"/><text x="20" y="15" font-size="7" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">J C B</text>"##
        ),
        "amex" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#2e77bb"/><text x="20" y="16" font-size="9" font-weight="700" text-anchor="middle" fill="#fff" font-family="sans-serif">AMEX</text>"##
        ),
        "diners" => tile!(
            r##"<rect width="40" height="24" rx="4" fill="#fff" stroke="#bbb"/><circle cx="20" cy="12" r="8" fill="none" stroke="#004a97" stroke-width="2.5"/><text x="20" y="15" font-size="7" font-weight="700" text-anchor="middle" fill="#004a97" font-family="sans-serif">DC</text>"##
        ),
        _ => return None,
    })
}

/// Every card brand's badge in a row, for the card form ("these cards are accepted").
pub fn all_cards() -> String {
    crate::domain::card::Brand::ALL
        .into_iter()
        .filter_map(|b| card(b.code()))
        .collect()
}

/// The brands' names, said to screen readers in place of the decorative badges.
pub fn all_card_names() -> String {
    crate::domain::card::Brand::ALL
        .into_iter()
        .map(|b| b.display_name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chain_and_brand_has_a_small_self_contained_badge() {
        let chains = crate::domain::konbini::Chain::all()
            .iter()
            .map(|c| c.code());
        let brands = crate::domain::card::Brand::ALL
            .into_iter()
            .map(|b| b.code());
        for (code, svg) in chains
            .map(|c| (c, chain(c)))
            .chain(brands.map(|b| (b, card(b))))
        {
            let svg = svg.unwrap_or_else(|| panic!("{code}: no badge"));
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{code}");
            assert!(svg.contains(r#"aria-hidden="true""#), "{code}: decorative");
            // Ours, inline: nothing fetched from anywhere, no script, no style attribute (CSP).
            for banned in ["href", "http", "<script", " style=", "<image"] {
                assert!(!svg.contains(banned), "{code}: {banned}");
            }
            assert!(svg.len() < 700, "{code}: {} bytes", svg.len());
        }
        assert_eq!(chain("nope"), None);
        assert_eq!(card("nope"), None);
    }
}
