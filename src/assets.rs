//! In-memory static assets served under content-hashed URLs with year-long cache lifetimes.

use std::collections::HashMap;
use std::path::Path;

use axum::body::Bytes;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct Asset {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// All assets, keyed by their URL path (`/assets/<hash>/<name>`). Built once at startup, so a
/// changed file gets a new URL and browsers may cache every URL forever.
#[derive(Clone, Debug, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// Adds an asset and returns its URL.
    pub fn add(&mut self, name: &str, bytes: Vec<u8>) -> String {
        let hash = hex::encode(&Sha256::digest(&bytes)[..6]);
        let url = format!("/assets/{hash}/{name}");
        self.files.insert(
            url.clone(),
            Asset {
                content_type: content_type(name),
                bytes: Bytes::from(bytes),
            },
        );
        url
    }

    /// Loads a file from disk and adds it under `name`.
    pub fn add_file(&mut self, name: &str, path: &Path) -> anyhow::Result<String> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read asset {}: {e}", path.display()))?;
        let bytes = match (name.ends_with(".css"), String::from_utf8(bytes)) {
            (true, Ok(css)) => compact_css(&css).into_bytes(),
            (_, Ok(text)) => text.into_bytes(),
            (_, Err(e)) => e.into_bytes(),
        };
        Ok(self.add(name, bytes))
    }

    pub fn get(&self, url: &str) -> Option<&Asset> {
        self.files.get(url)
    }
}

/// A stylesheet without comments and the whitespace nothing needs: pages stay within their
/// weight budget (15 KB of HTML, CSS and script) while the source keeps its comments. Only
/// whitespace next to `{ } ; , >` and after a declaration's colon is dropped, never inside a
/// selector (`.a :focus` differs from `.a:focus`) or a quoted string.
pub fn compact_css(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    let mut quote: Option<char> = None;
    let mut pending_space = false;
    // Whether we are inside a declaration block, after a property name's colon.
    let mut in_value = false;
    let mut depth_decl = false;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for d in chars.by_ref() {
                if prev == '*' && d == '/' {
                    break;
                }
                prev = d;
            }
            pending_space = true;
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        let tight = |x: char| matches!(x, '{' | '}' | ';' | ',' | '>');
        let last = out.chars().last();
        if pending_space
            && !out.is_empty()
            && !tight(c)
            && !last.is_some_and(tight)
            && (!in_value || last != Some(':'))
        {
            out.push(' ');
        }
        pending_space = false;
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => {
                depth_decl = true;
                in_value = false;
            }
            '}' | ';' => in_value = false,
            ':' if depth_decl && !in_value => {
                in_value = last.is_some_and(|l| l.is_ascii_alphanumeric() || l == '-')
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::compact_css;

    #[test]
    fn compact_css_keeps_meaning() {
        let css = "/* note */\n.a :focus, .b > .c {\n  color: red; /* why */\n  font-family: \"Noto  Sans\", sans-serif;\n}\n@media (max-width: 400px) {\n  .d { margin: 0 auto; }\n}\n";
        assert_eq!(
            compact_css(css),
            ".a :focus,.b>.c{color:red;font-family:\"Noto  Sans\",sans-serif;}@media (max-width:400px){.d{margin:0 auto;}}"
        );
    }
}
