//! Turns a rendered template into a response in the device's encoding.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::device::Device;
use crate::error::AppError;

/// Renders an askama page for `device`: UTF-8 for PC and smartphone, Shift_JIS for feature
/// phones (docomo and au browsers want it; SoftBank accepts it too).
pub fn page<T: askama::Template>(device: Device, tpl: &T) -> Result<Response, AppError> {
    page_with_status(device, StatusCode::OK, tpl)
}

pub fn page_with_status<T: askama::Template>(
    device: Device,
    status: StatusCode,
    tpl: &T,
) -> Result<Response, AppError> {
    let html = tpl.render().map_err(|e| anyhow::anyhow!("template: {e}"))?;
    Ok(html_response(device, status, html))
}

pub fn html_response(device: Device, status: StatusCode, html: String) -> Response {
    match device {
        Device::FeaturePhone => {
            let bytes = to_shift_jis(&html);
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=Shift_JIS"),
            );
            r
        }
        _ => {
            let mut r = (status, html).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
    }
}

/// Encodes as Shift_JIS (Windows-31J). WAVE DASH U+301C is mapped to FULLWIDTH TILDE U+FF5E as
/// Windows-31J does; characters with no Shift_JIS form become `?` rather than HTML entities,
/// which old handsets may not decode.
pub fn to_shift_jis(s: &str) -> Vec<u8> {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '\u{301C}' => '\u{FF5E}',
            '\u{2016}' => '\u{2225}',
            '\u{2212}' => '\u{FF0D}',
            c => c,
        })
        .collect();
    let mut encoder = encoding_rs::SHIFT_JIS.new_encoder();
    let mut out = Vec::with_capacity(mapped.len());
    let mut src = mapped.as_str();
    loop {
        let mut buf = [0u8; 4096];
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(src, &mut buf, true);
        out.extend_from_slice(&buf[..written]);
        src = &src[read..];
        match result {
            encoding_rs::EncoderResult::InputEmpty => break,
            encoding_rs::EncoderResult::OutputFull => {}
            encoding_rs::EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_jis_mapping() {
        let bytes = to_shift_jis("あ〜😀");
        let (decoded, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, "あ～?");
    }
}
