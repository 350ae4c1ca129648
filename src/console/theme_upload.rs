//! Theme upload from the console: a PNG or JPEG logo (type read from its bytes, size and
//! dimensions bounded before and while decoding) and two colours that white text stays readable
//! on; the feature-phone GIF is made from the logo here. SVG is refused outright: a sanitiser
//! that misses one construct would let a logo run script on our origin.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits, Rgba};
use sha2::{Digest, Sha256};

use crate::domain::theme::{Colour, UploadedName, MIN_CONTRAST};

/// Largest logo file accepted.
pub const MAX_LOGO_BYTES: usize = 200 * 1024;
/// Largest logo width or height, in pixels (bounds decoding work and memory).
const MAX_SIDE: u32 = 2000;
/// The feature-phone logo: at most this wide and high, and under [`MAX_FP_BYTES`].
const FP_MAX_WIDTH: u32 = 120;
const FP_MAX_HEIGHT: u32 = 60;
pub const MAX_FP_BYTES: usize = 5 * 1024;

/// A validated upload, ready to store.
#[derive(Debug)]
pub struct Upload {
    pub name: UploadedName,
    pub logo: Vec<u8>,
    pub logo_type: &'static str,
    pub logo_fp: Vec<u8>,
}

/// Checks the form and builds the feature-phone GIF; `Err` is a message for the user and
/// nothing is stored.
pub fn prepare(
    merchant_id: &str,
    primary: &str,
    accent: &str,
    logo: &[u8],
) -> Result<Upload, String> {
    let primary = colour("メインカラー", primary)?;
    let accent = colour("アクセントカラー", accent)?;
    if logo.is_empty() {
        return Err("ロゴ画像を選択してください。".into());
    }
    if logo.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "ロゴ画像が大きすぎます（{}KBまで）。",
            MAX_LOGO_BYTES / 1024
        ));
    }
    let (format, logo_type) = if logo.starts_with(b"\x89PNG\r\n\x1a\n") {
        (ImageFormat::Png, "image/png")
    } else if logo.starts_with(&[0xFF, 0xD8, 0xFF]) {
        (ImageFormat::Jpeg, "image/jpeg")
    } else if looks_like_svg(logo) {
        return Err(
            "SVG画像は受け付けていません（スクリプトを含められるため）。PNGまたはJPEGでアップロードしてください。"
                .into(),
        );
    } else {
        return Err("ロゴ画像はPNGまたはJPEG形式でアップロードしてください。".into());
    };
    let img = decode(logo, format)?;
    let logo_fp = fp_gif(&img).ok_or(
        "ロゴから携帯電話用の画像（5KB未満）を作れませんでした。もっと単純なロゴをお使いください。",
    )?;
    let mut h = Sha256::new();
    let colours = format!("{}{}", primary.css(), accent.css());
    for part in [
        merchant_id.as_bytes(),
        b"\0",
        colours.as_bytes(),
        b"\0",
        logo,
    ] {
        h.update(part);
    }
    let name = UploadedName::new(primary, accent, &h.finalize());
    Ok(Upload {
        name,
        logo: logo.to_vec(),
        logo_type,
        logo_fp,
    })
}

fn colour(label: &str, s: &str) -> Result<Colour, String> {
    let c =
        Colour::parse(s).ok_or_else(|| format!("{label}は #1a2b3c の形式で入力してください。"))?;
    let ratio = c.contrast_with_white();
    if ratio < MIN_CONTRAST {
        return Err(format!(
            "{label} {} は白い文字が読みにくい色です（コントラスト比 {ratio:.1}:1、{MIN_CONTRAST}:1 以上が必要）。もっと濃い色を選んでください。",
            c.css()
        ));
    }
    Ok(c)
}

fn looks_like_svg(b: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&b[..b.len().min(1024)]).to_ascii_lowercase();
    head.contains("<svg") || head.trim_start().starts_with("<?xml")
}

fn decode(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, String> {
    let mut r = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(64 * 1024 * 1024);
    r.limits(limits);
    r.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => {
            format!("ロゴ画像の縦横は{MAX_SIDE}ピクセル以内にしてください。")
        }
        _ => "ロゴ画像を読み込めません（壊れているか、形式が正しくありません）。".into(),
    })
}

/// The logo shrunk to fit the feature-phone box, on white (those browsers draw transparency
/// poorly), as a GIF; smaller sizes are tried until it is under [`MAX_FP_BYTES`].
fn fp_gif(img: &DynamicImage) -> Option<Vec<u8>> {
    for scale in [1.0, 0.8, 0.6, 0.45] {
        let w = ((f64::from(FP_MAX_WIDTH) * scale) as u32).max(8);
        let h = ((f64::from(FP_MAX_HEIGHT) * scale) as u32).max(8);
        let mut small = img
            .resize(w, h, image::imageops::FilterType::Triangle)
            .to_rgba8();
        for p in small.pixels_mut() {
            let a = u16::from(p[3]);
            let on_white = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
            *p = Rgba([on_white(p[0]), on_white(p[1]), on_white(p[2]), 255]);
        }
        let mut out = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
            enc.encode(
                small.as_raw(),
                small.width(),
                small.height(),
                image::ExtendedColorType::Rgba8,
            )
            .ok()?;
        }
        if out.len() < MAX_FP_BYTES {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| {
            Rgba([
                (x * 7) as u8,
                (y * 5) as u8,
                0x80,
                if x < 4 { 0 } else { 255 },
            ])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn png_becomes_small_gif() {
        let u = prepare("m_1", "#1a2b3c", "#aa0000", &png(600, 200)).unwrap();
        assert_eq!(u.logo_type, "image/png");
        assert!(u.logo_fp.starts_with(b"GIF8"));
        assert!(u.logo_fp.len() < MAX_FP_BYTES);
        let gif = image::load_from_memory(&u.logo_fp).unwrap();
        assert!(gif.width() <= FP_MAX_WIDTH && gif.height() <= FP_MAX_HEIGHT);
        // Another merchant uploading the same file gets another name.
        let v = prepare("m_2", "#1a2b3c", "#aa0000", &png(600, 200)).unwrap();
        assert_ne!(u.name, v.name);
    }

    #[test]
    fn jpeg_is_accepted() {
        let img = image::RgbImage::from_fn(300, 100, |x, _| image::Rgb([x as u8, 0x20, 0x60]));
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        let u = prepare("m_1", "#123", "#345", &jpeg).unwrap();
        assert_eq!(u.logo_type, "image/jpeg");
        assert!(u.logo_fp.starts_with(b"GIF8") && u.logo_fp.len() < MAX_FP_BYTES);
        assert_eq!(u.name.primary.css(), "#112233");
    }

    #[test]
    fn refusals() {
        let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert!(prepare("m", "#000", "#000", svg)
            .unwrap_err()
            .contains("SVG"));
        assert!(prepare("m", "#000", "#000", b"GIF89a....").is_err());
        assert!(prepare("m", "#ffff00", "#000", &png(10, 10))
            .unwrap_err()
            .contains("コントラスト"));
        assert!(prepare("m", "red", "#000", &png(10, 10)).is_err());
        assert!(prepare("m", "#000", "#000", &[0u8; MAX_LOGO_BYTES + 1]).is_err());
        let mut broken = png(10, 10);
        broken.truncate(40);
        assert!(prepare("m", "#000", "#000", &broken)
            .unwrap_err()
            .contains("読み込めません"));
        assert!(prepare("m", "#000", "#000", &png(MAX_SIDE + 1, 1))
            .unwrap_err()
            .contains("ピクセル"));
    }
}
