//! What shopper messages say (docs/messages.md): subjects, the text and HTML e-mail bodies and
//! the 70-character SMS, in Japanese or English, from facts the message worker gathers.
//! Pure: no I/O.

pub mod compose;
