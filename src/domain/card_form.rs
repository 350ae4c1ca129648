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
