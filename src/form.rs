//! Form and query decoding in UTF-8 or Shift_JIS: Japanese carts and feature phones still post
//! Shift_JIS, and many of those browsers ignore `accept-charset` and post in the page's encoding.

use axum::http::HeaderMap;
use encoding_rs::{Encoding, SHIFT_JIS, UTF_8};

/// Splits `a=b&c=d` into percent-decoded byte pairs ('+' is a space).
fn pairs(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut it = part.splitn(2, |&b| b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus).collect()
}

/// Decodes a urlencoded body or query in `encoding`. Malformed sequences become U+FFFD, never
/// an error: a shopper's odd input must not become a 500.
pub fn decode(input: &[u8], encoding: &'static Encoding) -> Vec<(String, String)> {
    pairs(input)
        .into_iter()
        .map(|(k, v)| {
            (
                encoding.decode_without_bom_handling(&k).0.into_owned(),
                encoding.decode_without_bom_handling(&v).0.into_owned(),
            )
        })
        .collect()
}

/// Picks the body's encoding: the Content-Type `charset`, else a `_charset_` field, else the
/// given default (the encoding of the page that holds the form).
pub fn body_encoding(
    headers: &HeaderMap,
    body: &[u8],
    default: &'static Encoding,
) -> &'static Encoding {
    let from_header = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| {
            ct.split(';')
                .filter_map(|p| p.trim().strip_prefix("charset="))
                .next()
                .map(|c| c.trim_matches('"').to_owned())
        });
    let from_field = || {
        pairs(body)
            .into_iter()
            .find(|(k, _)| k == b"_charset_")
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
    };
    from_header
        .or_else(from_field)
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .map(|e| {
            if e == SHIFT_JIS || e.name() == "windows-31j" {
                SHIFT_JIS
            } else {
                e
            }
        })
        .filter(|e| *e == UTF_8 || *e == SHIFT_JIS)
        .unwrap_or(default)
}

/// Parses a form body with the detected encoding.
pub fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
    default: &'static Encoding,
) -> Vec<(String, String)> {
    decode(body, body_encoding(headers, body, default))
}

/// First value of `name`, or "".
pub fn get<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_jis_roundtrip() {
        let (bytes, _, _) = SHIFT_JIS.encode("山田 ﾀﾛｳ");
        let mut body = b"name=".to_vec();
        body.extend(
            percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .bytes(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=Shift_JIS"
                .parse()
                .unwrap(),
        );
        let f = parse_body(&headers, &body, UTF_8);
        assert_eq!(get(&f, "name"), "山田 ﾀﾛｳ");
    }

    #[test]
    fn charset_field_and_bad_bytes() {
        let body = b"_charset_=Shift_JIS&x=%82%A0&bad=%FF%FF";
        let f = parse_body(&HeaderMap::new(), body, UTF_8);
        assert_eq!(get(&f, "x"), "あ");
        assert!(get(&f, "bad").contains('\u{FFFD}'));
        let f = parse_body(&HeaderMap::new(), b"a=b+c%20d", UTF_8);
        assert_eq!(get(&f, "a"), "b c d");
    }
}
