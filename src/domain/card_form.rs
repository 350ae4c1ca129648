//! The card form as the shopper submits it: parsed into domain values with every field's error
//! at once, and the merchant's card settings. Pure: no I/O.

use crate::domain::card::{
    CardError, CardHolder, CardNumber, Expiry, MerchantOptions, PaymentOption, SecurityCode,
};

/// A validated card form. Debug output of the number and code is masked by their types.
#[derive(Clone, Debug)]
pub struct CardInput {
    pub card: CardNumber,
    pub expiry: Expiry,
    pub cvc: SecurityCode,
    pub holder: Option<CardHolder>,
    pub option: PaymentOption,
}

impl CardInput {
    /// The card as text for sealing (`flows::card_hold`): one field per line, which no parsed
    /// field can contain. The caller seals it at once and lets it be wiped on drop.
    pub fn to_sealable(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!(
            "v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.card.expose_digits(),
            self.expiry.year(),
            self.expiry.month(),
            self.cvc.expose(),
            self.option.code(),
            self.holder.as_ref().map(|h| h.as_str()).unwrap_or(""),
        ))
    }

    /// Reads [`CardInput::to_sealable`] back, re-checking every field; `None` if it is not one.
    pub fn from_sealable(text: &str) -> Option<CardInput> {
        let mut f = text.split('\n');
        if f.next()? != "v1" {
            return None;
        }
        let card = CardNumber::parse(f.next()?).ok()?;
        let year = f.next()?.parse().ok()?;
        let expiry = Expiry::new(year, f.next()?.parse().ok()?)?;
        let cvc = SecurityCode::parse(f.next()?, card.brand()).ok()?;
        let option = PaymentOption::parse(f.next()?).ok()?;
        let holder = match f.next()? {
            "" => None,
            h => Some(CardHolder::parse(h).ok()?),
        };
        if f.next().is_some() {
            return None;
        }
        Some(CardInput {
            card,
            expiry,
            cvc,
            holder,
            option,
        })
    }
}

/// Per-field error messages for re-rendering the form.
#[derive(Clone, Debug, Default)]
pub struct FieldErrors {
    pub number: Option<String>,
    pub expiry: Option<String>,
    pub cvc: Option<String>,
    pub holder: Option<String>,
    pub option: Option<String>,
}

impl FieldErrors {
    /// The first field in form order with an error (`""` when none): it gets the focus.
    pub fn first_field(&self) -> &'static str {
        [
            ("number", &self.number),
            ("expiry", &self.expiry),
            ("cvc", &self.cvc),
            ("holder", &self.holder),
            ("option", &self.option),
        ]
        .into_iter()
        .find(|(_, e)| e.is_some())
        .map_or("", |(f, _)| f)
    }

    fn put(&mut self, e: &CardError, en: bool) {
        let msg = if en { e.message_en() } else { e.message_ja() };
        let slot = match e.field() {
            "number" => &mut self.number,
            "expiry" => &mut self.expiry,
            "cvc" => &mut self.cvc,
            "holder" => &mut self.holder,
            _ => &mut self.option,
        };
        slot.get_or_insert(msg);
    }
}

/// The merchant's card settings: payment options offered and whether the holder name is asked.
/// `card_options` holds option codes plus the flag `holder`.
pub fn merchant_card_settings(card_options: &str) -> (MerchantOptions, bool) {
    let holder = card_options.split(',').any(|s| s.trim() == "holder");
    let codes: Vec<&str> = card_options
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "holder")
        .collect();
    let opts = MerchantOptions::parse(&codes.join(",")).unwrap_or_default();
    (opts, holder)
}

/// Parses the posted card form. All fields are checked so every error shows at once.
pub fn parse_form(
    get: impl Fn(&str) -> String,
    opts: &MerchantOptions,
    holder_required: bool,
    today: (i32, u32),
    en: bool,
) -> Result<CardInput, FieldErrors> {
    let mut errs = FieldErrors::default();
    let card = CardNumber::parse(&get("number"))
        .map_err(|e| errs.put(&e, en))
        .ok();
    let expiry = Expiry::parse(&get("exp_month"), &get("exp_year"), today.0, today.1)
        .map_err(|e| errs.put(&e, en))
        .ok();
    let cvc = card.as_ref().and_then(|c| {
        SecurityCode::parse(&get("cvc"), c.brand())
            .map_err(|e| errs.put(&e, en))
            .ok()
    });
    let holder = if holder_required {
        CardHolder::parse(&get("holder"))
            .map_err(|e| errs.put(&e, en))
            .ok()
    } else {
        None
    };
    let raw_option = get("option");
    let option = PaymentOption::parse(if raw_option.is_empty() {
        "lump"
    } else {
        &raw_option
    })
    .map_err(|e| errs.put(&e, en))
    .ok();
    if let (Some(c), Some(o)) = (&card, option) {
        if let Err(e) = opts.check(o, c.brand()) {
            errs.put(&e, en);
        }
    }
    match (card, expiry, cvc, option) {
        (Some(card), Some(expiry), Some(cvc), Some(option))
            if errs.holder.is_none() && errs.option.is_none() =>
        {
            Ok(CardInput {
                card,
                expiry,
                cvc,
                holder,
                option,
            })
        }
        _ => Err(errs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealable_text_round_trips() {
        for (number, cvc, holder, option) in [
            ("4000 0000 0000 2008", "123", Some("TARO YAMADA"), "lump"),
            ("3782 822463 10005", "1234", None, "inst3"),
        ] {
            let card = CardNumber::parse(number).unwrap();
            let input = CardInput {
                cvc: SecurityCode::parse(cvc, card.brand()).unwrap(),
                card,
                expiry: Expiry::new(2031, 7).unwrap(),
                holder: holder.map(|h| CardHolder::parse(h).unwrap()),
                option: PaymentOption::parse(option).unwrap(),
            };
            let back = CardInput::from_sealable(&input.to_sealable()).unwrap();
            assert_eq!(back.card, input.card);
            assert_eq!(back.expiry, input.expiry);
            assert_eq!(back.cvc, input.cvc);
            assert_eq!(back.holder, input.holder);
            assert_eq!(back.option, input.option);
        }
        for bad in [
            "",
            "v2\n4111111111111111\n2031\n7\n123\nlump\n",
            "v1\n4111111111111112\n2031\n7\n123\nlump\n",
            "v1\n4111111111111111\n2031\n7\n123\nlump\n\nextra",
        ] {
            assert!(CardInput::from_sealable(bad).is_none(), "{bad:?}");
        }
    }
}
