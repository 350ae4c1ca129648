//! Rules for merchant-chosen theme colours (valid hex, readable white text: WCAG AA 4.5:1) and
//! the self-describing name of an uploaded theme, `u-<primary><accent><hash>`, from which its
//! colours and asset URLs follow without a database read.

/// The smallest contrast ratio of white text on a theme colour (WCAG 2 AA, normal text).
pub const MIN_CONTRAST: f64 = 4.5;

/// A colour as six lowercase hex digits (no `#`), parsed from `#rgb` or `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour([u8; 3]);

impl Colour {
    pub fn parse(s: &str) -> Option<Colour> {
        let hex = s.trim().strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digit = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).ok();
        match hex.len() {
            3 => Some(Colour([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17])),
            6 => {
                let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
                Some(Colour([byte(0)?, byte(2)?, byte(4)?]))
            }
            _ => None,
        }
    }

    /// `#rrggbb`, lowercase: the only form written into a stylesheet.
    pub fn css(&self) -> String {
        format!("#{}", hex::encode(self.0))
    }

    /// WCAG 2 relative luminance.
    fn luminance(&self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0[0]) + 0.7152 * lin(self.0[1]) + 0.0722 * lin(self.0[2])
    }

    /// Contrast ratio of white text on this colour (1.0 to 21.0).
    pub fn contrast_with_white(&self) -> f64 {
        1.05 / (self.luminance() + 0.05)
    }
}

/// The identity of an uploaded theme: its colours and a hash of the merchant, colours and logo,
/// so a changed logo or colour is a new name (and new URLs browsers may cache forever).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedName {
    pub primary: Colour,
    pub accent: Colour,
    pub hash: String,
}

/// Hex digits of the content hash in a name.
const HASH_LEN: usize = 16;

impl UploadedName {
    pub fn parse(name: &str) -> Option<UploadedName> {
        let rest = name.strip_prefix("u-")?;
        if rest.len() != 12 + HASH_LEN
            || !rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        Some(UploadedName {
            primary: Colour::parse(&format!("#{}", &rest[..6]))?,
            accent: Colour::parse(&format!("#{}", &rest[6..12]))?,
            hash: rest[12..].to_owned(),
        })
    }

    /// The name for `digest` (any hash of merchant, colours and logo; its first bytes are used).
    pub fn new(primary: Colour, accent: Colour, digest: &[u8]) -> UploadedName {
        let mut hash = hex::encode(digest);
        hash.truncate(HASH_LEN);
        UploadedName {
            primary,
            accent,
            hash,
        }
    }

    pub fn name(&self) -> String {
        format!(
            "u-{}{}{}",
            hex::encode(self.primary.0),
            hex::encode(self.accent.0),
            self.hash
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_contrast() {
        assert_eq!(Colour::parse("#FFF").unwrap().css(), "#ffffff");
        assert_eq!(Colour::parse("#1a2B3c").unwrap().css(), "#1a2b3c");
        for bad in ["1a2b3c", "#12345", "#gggggg", "#1a2b3c;}", "red", ""] {
            assert_eq!(Colour::parse(bad), None, "{bad}");
        }
        let black = Colour::parse("#000000").unwrap().contrast_with_white();
        assert!((black - 21.0).abs() < 0.01);
        // #767676 is the lightest grey that passes AA on white; #777777 fails.
        assert!(Colour::parse("#767676").unwrap().contrast_with_white() >= MIN_CONTRAST);
        assert!(Colour::parse("#777777").unwrap().contrast_with_white() < MIN_CONTRAST);
    }

    #[test]
    fn names_round_trip() {
        let n = UploadedName::new(
            Colour::parse("#123456").unwrap(),
            Colour::parse("#abcdef").unwrap(),
            &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6],
        );
        assert_eq!(n.name(), "u-123456abcdefdeadbeef01020304");
        assert_eq!(UploadedName::parse(&n.name()), Some(n));
        for bad in [
            "default",
            "u-123",
            "u-123456ABCDEFdeadbeef01020304",
            "u-../../x",
        ] {
            assert_eq!(UploadedName::parse(bad), None, "{bad}");
        }
    }
}
