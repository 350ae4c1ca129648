//! Device detection: which layout (PC, smartphone, ガラホ, feature phone) a shopper gets.
//! woothee sorts most agents; ガラホ, which woothee takes for smartphones, come from our table.

/// The layout family a page is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Pc,
    Smartphone,
    /// ガラホ: an Android feature phone (flip phone with keys, small screen, a Chromium
    /// browser). It can use every method a smartphone can, but gets a compact UTF-8 layout
    /// with numbered accesskeys that fits 240 CSS px.
    Garaho,
    FeaturePhone,
}

/// ガラホ models, by the model token their browsers send in the User-Agent
/// (`Mozilla/5.0 (Linux; Android 5.1; KYF31 Build/…) … Mobile Safari/537.36`).
///
/// Sources: the carriers' own model numbering and product pages: au names every feature phone
/// `<maker>F<nn>` (KYF = 京セラ, SHF = シャープ; smartphones are `…V<nn>`), so au is a pattern,
/// see [`au_feature_phone`]; docomo's and SoftBank's numbers are shared with smartphones
/// (SH-01J is a ケータイ, SH-01K a smartphone), so theirs are listed one by one from the
/// docomo ケータイ and SoftBank / Y!mobile ケータイ lineups (and the model lists of the
/// Japanese Wikipedia article 「ガラホ」). Add a model here when one is released.
const GARAHO_MODELS: &[&str] = &[
    // docomo: AQUOS ケータイ (SH-06G, SH-01J, SH-02K, SH-02L), P-smart ケータイ (P-01H,
    // P-01J), arrows ケータイ F-03L, らくらくホン F-01M, DIGNO ケータイ KY-42C.
    "SH-06G", "SH-01J", "SH-02K", "SH-02L", "P-01H", "P-01J", "F-03L", "F-01M", "KY-42C",
    // SoftBank / Y!mobile: AQUOS ケータイ (501SH), AQUOS ケータイ2 (601SH, 602SH),
    // AQUOS ケータイ3 (805SH, 806SH), AQUOS ケータイ4 (A206SH), DIGNO ケータイ2 (701KC).
    "501SH", "601SH", "602SH", "805SH", "806SH", "A206SH", "701KC",
    // au models outside the `…F<nn>` pattern: INFOBAR xv.
    "KYX31",
];

/// An au feature-phone model token: two or three capital letters, `F`, two digits (KYF31,
/// SHF34, KYF42).
fn au_feature_phone(token: &str) -> bool {
    let b = token.as_bytes();
    let n = b.len();
    (5..=6).contains(&n)
        && b[n - 3] == b'F'
        && b[n - 2].is_ascii_digit()
        && b[n - 1].is_ascii_digit()
        && b[..n - 3].iter().all(u8::is_ascii_uppercase)
}

/// Whether an agent is a ガラホ: an Android browser whose model is in [`GARAHO_MODELS`] or
/// matches the au pattern, or a KaiOS feature phone.
pub fn is_garaho(user_agent: &str) -> bool {
    if user_agent.contains("KAIOS/") {
        return true;
    }
    let Some(rest) = user_agent.split("Android").nth(1) else {
        return false;
    };
    // `Android 5.1; KYF31 Build/…)`, sometimes `Android 5.1; ja-jp; SHF31 Build/…)`.
    let inside = rest.split(')').next().unwrap_or("");
    inside
        .split(';')
        .map(|part| part.trim().split(" Build").next().unwrap_or("").trim())
        .any(|model| GARAHO_MODELS.contains(&model) || au_feature_phone(model))
}

/// The carrier of a classic feature phone, for carrier-specific input hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpCarrier {
    Docomo,
    Au,
    Softbank,
    Other,
}

impl Device {
    /// woothee categories: `pc` -> PC; `smartphone` (tablets included) -> smartphone;
    /// `mobilephone` -> feature phone; crawlers, appliances and unknown agents -> PC.
    pub fn detect(user_agent: &str) -> Device {
        if is_garaho(user_agent) {
            return Device::Garaho;
        }
        match woothee::parser::Parser::new().parse(user_agent) {
            Some(r) if r.category == "smartphone" => Device::Smartphone,
            Some(r) if r.category == "mobilephone" => Device::FeaturePhone,
            _ => Device::Pc,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Device::Pc => "pc",
            Device::Smartphone => "sp",
            Device::Garaho => "gh",
            Device::FeaturePhone => "fp",
        }
    }
}

impl FpCarrier {
    pub fn detect(user_agent: &str) -> FpCarrier {
        if user_agent.starts_with("DoCoMo/") {
            FpCarrier::Docomo
        } else if user_agent.starts_with("KDDI-") || user_agent.contains("UP.Browser") {
            FpCarrier::Au
        } else if ["SoftBank/", "Vodafone/", "J-PHONE/", "MOT-"]
            .iter()
            .any(|p| user_agent.starts_with(p))
        {
            FpCarrier::Softbank
        } else {
            FpCarrier::Other
        }
    }
}

/// A PC/smartphone choice the shopper made with the layout switch; feature phones ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewOverride {
    Auto,
    Pc,
    Smartphone,
}

impl ViewOverride {
    pub fn code(self) -> &'static str {
        match self {
            ViewOverride::Auto => "a",
            ViewOverride::Pc => "p",
            ViewOverride::Smartphone => "s",
        }
    }
    pub fn parse(s: &str) -> Option<ViewOverride> {
        match s {
            "a" => Some(ViewOverride::Auto),
            "p" | "pc" => Some(ViewOverride::Pc),
            "s" | "sp" => Some(ViewOverride::Smartphone),
            _ => None,
        }
    }

    /// The device to render for, given the detected one.
    pub fn apply(self, detected: Device) -> Device {
        match (self, detected) {
            (_, Device::FeaturePhone) => Device::FeaturePhone,
            // Its screen is as small as a feature phone's: the compact layout always.
            (_, Device::Garaho) => Device::Garaho,
            (ViewOverride::Pc, _) => Device::Pc,
            (ViewOverride::Smartphone, _) => Device::Smartphone,
            (ViewOverride::Auto, d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DOCOMO: &str = "DoCoMo/2.0 P903i(c100;TB;W24H12)";
    pub const AU: &str = "KDDI-SH3I UP.Browser/6.2.0.13.2 (GUI) MMP/2.0";
    pub const SOFTBANK: &str = "SoftBank/1.0/930SH/SHJ001/SN353012345678901 Browser/NetFront/3.5 Profile/MIDP-2.0 Configuration/CLDC-1.1";

    #[test]
    fn categories() {
        assert_eq!(Device::detect(DOCOMO), Device::FeaturePhone);
        assert_eq!(Device::detect(AU), Device::FeaturePhone);
        assert_eq!(Device::detect(SOFTBANK), Device::FeaturePhone);
        assert_eq!(FpCarrier::detect(DOCOMO), FpCarrier::Docomo);
        assert_eq!(FpCarrier::detect(AU), FpCarrier::Au);
        assert_eq!(FpCarrier::detect(SOFTBANK), FpCarrier::Softbank);
        assert_eq!(Device::detect(""), Device::Pc);
        assert_eq!(
            Device::detect("Googlebot/2.1 (+http://www.google.com/bot.html)"),
            Device::Pc
        );
    }

    /// User-Agents as ガラホ browsers send them (the Android WebView / Chromium format with the
    /// model token), and smartphones of the same makers that must not match.
    pub const GARAHO: &[&str] = &[
        // au AQUOS K SHF31 (2015), GRATINA 4G KYF31, かんたんケータイ KYF32 (stock browser).
        "Mozilla/5.0 (Linux; U; Android 4.4.2; ja-jp; SHF31 Build/S1150) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
        "Mozilla/5.0 (Linux; Android 5.1; KYF31 Build/101.0.2c10) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/37.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 5.1; KYF32 Build/100.0.2b40) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/37.0.0.0 Mobile Safari/537.36",
        // au GRATINA KYF42 (Android 10 based).
        "Mozilla/5.0 (Linux; Android 10; KYF42) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/83.0.4103.106 Mobile Safari/537.36",
        // docomo AQUOS ケータイ SH-01J, P-smart ケータイ P-01J, arrows ケータイ F-03L.
        "Mozilla/5.0 (Linux; Android 5.1; SH-01J Build/S9030) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/39.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 5.1; P-01J Build/V29R059A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/39.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 8.1.0; F-03L Build/V10R030B) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/61.0.3163.98 Mobile Safari/537.36",
        // docomo KY-42C.
        "Mozilla/5.0 (Linux; Android 11; KY-42C) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.104 Mobile Safari/537.36",
        // SoftBank AQUOS ケータイ2 602SH, DIGNO ケータイ2 701KC.
        "Mozilla/5.0 (Linux; Android 6.0.1; 602SH Build/S3031) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/44.0.2403.133 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 6.0.1; 701KC Build/1.050KC.0010.a) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/52.0.2743.98 Mobile Safari/537.36",
        // A KaiOS feature phone.
        "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i;Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5",
    ];

    pub const SMARTPHONES: &[&str] = &[
        // docomo AQUOS sense SH-01K and au AQUOS sense SHV40, Kyocera TORQUE KYV46.
        "Mozilla/5.0 (Linux; Android 8.0.0; SH-01K Build/S3160) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.137 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 9; SHV40) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.93 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; KYV46) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.93 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        // SoftBank AQUOS R 605SH (a smartphone with an NNNSH number).
        "Mozilla/5.0 (Linux; Android 8.0.0; 605SH Build/S4160) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/63.0.3239.111 Mobile Safari/537.36",
    ];

    #[test]
    fn garaho_from_the_table_and_smartphones_not() {
        for ua in GARAHO {
            assert_eq!(Device::detect(ua), Device::Garaho, "{ua}");
            // A ガラホ is not a classic feature phone: it posts UTF-8 like a smartphone.
            assert_eq!(page_encoding(Device::detect(ua)), encoding_rs::UTF_8);
        }
        for ua in SMARTPHONES {
            assert_eq!(Device::detect(ua), Device::Smartphone, "{ua}");
        }
        for ua in [DOCOMO, AU, SOFTBANK] {
            assert_eq!(Device::detect(ua), Device::FeaturePhone, "{ua}");
        }
        assert!(au_feature_phone("KYF31") && au_feature_phone("SHF34"));
        assert!(
            !au_feature_phone("KYV46") && !au_feature_phone("F31") && !au_feature_phone("kyf31")
        );
        assert_eq!(ViewOverride::Pc.apply(Device::Garaho), Device::Garaho);
    }

    #[test]
    fn override_never_leaves_feature_phone_layout() {
        assert_eq!(
            ViewOverride::Pc.apply(Device::FeaturePhone),
            Device::FeaturePhone
        );
        assert_eq!(ViewOverride::Pc.apply(Device::Smartphone), Device::Pc);
        assert_eq!(
            ViewOverride::Smartphone.apply(Device::Pc),
            Device::Smartphone
        );
    }
}

/// Extractor: the device and carrier detected from the request's User-Agent.
#[derive(Clone, Copy, Debug)]
pub struct Ua {
    pub device: Device,
    pub carrier: FpCarrier,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ua {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let ua = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(Ua {
            device: Device::detect(ua),
            carrier: FpCarrier::detect(ua),
        })
    }
}

/// The encoding forms on our pages are posted in.
pub fn page_encoding(device: Device) -> &'static encoding_rs::Encoding {
    match device {
        Device::FeaturePhone => encoding_rs::SHIFT_JIS,
        _ => encoding_rs::UTF_8,
    }
}
