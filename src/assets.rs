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
        Ok(self.add(name, bytes))
    }

    pub fn get(&self, url: &str) -> Option<&Asset> {
        self.files.get(url)
    }
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
