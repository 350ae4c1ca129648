//! Device detection with woothee: which layout (PC, smartphone, feature phone) a shopper gets.

/// The layout family a page is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Pc,
    Smartphone,
    FeaturePhone,
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
