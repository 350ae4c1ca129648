//! Merchant themes: `themes/<name>/theme.toml` plus logo files, validated at startup.
//!
//! Colours reach pages through a generated stylesheet (CSS custom properties), never inline
//! styles, so the Content-Security-Policy needs no `unsafe-inline`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::assets::Assets;
use crate::domain::theme::UploadedName;

/// The theme every merchant falls back to.
pub const DEFAULT_THEME: &str = "default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    display_name: String,
    primary: String,
    accent: String,
    /// Logo for PC and smartphone pages (SVG, PNG, GIF or JPEG).
    logo: String,
    /// Small logo for feature phones: GIF or JPEG only, as those browsers render nothing else.
    logo_fp: String,
}

/// A loaded theme with the URLs of its assets.
#[derive(Clone, Debug)]
pub struct Theme {
    pub name: String,
    pub display_name: String,
    pub primary: String,
    pub accent: String,
    pub logo_url: String,
    pub logo_fp_url: String,
    pub css_url: String,
}

#[derive(Clone, Debug, Default)]
pub struct Themes {
    map: HashMap<String, Theme>,
}

impl Themes {
    /// Loads every theme folder; any invalid theme is an error naming the file and field.
    pub fn load(dir: &Path, assets: &mut Assets) -> anyhow::Result<Themes> {
        let mut map = HashMap::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read themes folder {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if !path.join("theme.toml").is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let theme = load_one(&name, &path, assets)?;
            map.insert(name, theme);
        }
        if !map.contains_key(DEFAULT_THEME) {
            anyhow::bail!(
                "{}: the `{DEFAULT_THEME}` theme is missing",
                dir.join(DEFAULT_THEME).join("theme.toml").display()
            );
        }
        Ok(Themes { map })
    }

    /// The named theme, or the default one if it no longer exists.
    pub fn get(&self, name: &str) -> &Theme {
        self.map
            .get(name)
            .or_else(|| self.map.get(DEFAULT_THEME))
            .expect("default theme is checked at load")
    }

    /// The theme `name`: a folder theme, an uploaded one (`u-…`, built from its name alone, so
    /// no database read is needed to render a page) or else the default one.
    pub fn resolve(&self, name: &str) -> std::borrow::Cow<'_, Theme> {
        match UploadedName::parse(name) {
            Some(u) => std::borrow::Cow::Owned(uploaded(&u)),
            None => std::borrow::Cow::Borrowed(self.get(name)),
        }
    }

    /// Whether `name` is a folder theme (uploaded themes are checked against their owner).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.map.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// An uploaded theme: colours from its name, assets at `/themes/<name>/…` (served from the
/// database by `routes::console_themes::asset`; cached forever, as the name changes with the
/// content).
fn uploaded(u: &UploadedName) -> Theme {
    let name = u.name();
    Theme {
        display_name: format!("アップロード {}", &u.hash[..8]),
        primary: u.primary.css(),
        accent: u.accent.css(),
        logo_url: format!("/themes/{name}/logo"),
        logo_fp_url: format!("/themes/{name}/logo.gif"),
        css_url: format!("/themes/{name}/theme.css"),
        name,
    }
}

/// The stylesheet of an uploaded theme: built from validated colours only, never user text.
pub fn uploaded_css(u: &UploadedName) -> String {
    format!(
        ":root{{--primary:{};--accent:{}}}\n",
        u.primary.css(),
        u.accent.css()
    )
}

fn load_one(name: &str, dir: &Path, assets: &mut Assets) -> anyhow::Result<Theme> {
    let file = dir.join("theme.toml");
    let shown = file.display();
    let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let t: ThemeFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        anyhow::bail!("{shown}: theme folder name must be [A-Za-z0-9_-]");
    }
    if t.display_name.trim().is_empty() {
        anyhow::bail!("{shown}: field `display_name` is empty");
    }
    for (field, value) in [("primary", &t.primary), ("accent", &t.accent)] {
        if !is_hex_colour(value) {
            anyhow::bail!("{shown}: field `{field}` must be a colour like #1a2b3c, got {value:?}");
        }
    }
    let logo_path = asset_path(dir, &t.logo, "logo", &shown.to_string())?;
    let fp_path = asset_path(dir, &t.logo_fp, "logo_fp", &shown.to_string())?;
    let fp_bytes = std::fs::read(&fp_path)?;
    let is_gif = fp_bytes.starts_with(b"GIF87a") || fp_bytes.starts_with(b"GIF89a");
    let is_jpeg = fp_bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    if !is_gif && !is_jpeg {
        anyhow::bail!("{shown}: field `logo_fp` must be a GIF or JPEG file");
    }
    let logo_url = assets.add_file(&format!("{name}-{}", t.logo), &logo_path)?;
    let logo_fp_url = assets.add(&format!("{name}-{}", t.logo_fp), fp_bytes);
    let css = format!(
        ":root{{--primary:{};--accent:{}}}\n",
        t.primary.to_ascii_lowercase(),
        t.accent.to_ascii_lowercase()
    );
    let css_url = assets.add(&format!("theme-{name}.css"), css.into_bytes());
    Ok(Theme {
        name: name.to_owned(),
        display_name: t.display_name,
        primary: t.primary,
        accent: t.accent,
        logo_url,
        logo_fp_url,
        css_url,
    })
}

fn asset_path(
    dir: &Path,
    file: &str,
    field: &str,
    shown: &str,
) -> anyhow::Result<std::path::PathBuf> {
    if file.is_empty() || file.contains('/') || file.contains('\\') || file.starts_with('.') {
        anyhow::bail!("{shown}: field `{field}` must be a file name in the theme folder");
    }
    let path = dir.join(file);
    if !path.is_file() {
        anyhow::bail!(
            "{shown}: field `{field}`: file {} not found",
            path.display()
        );
    }
    Ok(path)
}

fn is_hex_colour(s: &str) -> bool {
    let Some(hex) = s.strip_prefix('#') else {
        return false;
    };
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert!(is_hex_colour("#fff"));
        assert!(is_hex_colour("#1A2b3c"));
        assert!(!is_hex_colour("red"));
        assert!(!is_hex_colour("#12345"));
        assert!(!is_hex_colour("#fff;background:url(x)"));
    }

    #[test]
    fn invalid_theme_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("default");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("logo.svg"), "<svg/>").unwrap();
        std::fs::write(t.join("logo.gif"), b"GIF89a....").unwrap();
        std::fs::write(
            t.join("theme.toml"),
            "display_name='x'\nprimary='blue'\naccent='#000'\nlogo='logo.svg'\nlogo_fp='logo.gif'\n",
        )
        .unwrap();
        let err = Themes::load(dir.path(), &mut Assets::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("theme.toml") && err.contains("`primary`"),
            "{err}"
        );

        std::fs::write(
            t.join("theme.toml"),
            "display_name='x'\nprimary='#123'\naccent='#000'\nlogo='logo.svg'\nlogo_fp='logo.svg'\n",
        )
        .unwrap();
        let err = Themes::load(dir.path(), &mut Assets::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`logo_fp`"), "{err}");

        std::fs::write(
            t.join("theme.toml"),
            "display_name='x'\nprimary='#123'\naccent='#000'\nlogo='logo.svg'\nlogo_fp='logo.gif'\n",
        )
        .unwrap();
        let themes = Themes::load(dir.path(), &mut Assets::default()).unwrap();
        assert!(themes.get("default").logo_url.starts_with("/assets/"));
    }
}
