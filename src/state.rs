//! Shared application state handed to every handler: the flows' context plus what only the
//! edge needs (themes, assets, stylesheet URLs). Derefs to [`Ctx`].

use std::sync::Arc;

use crate::assets::Assets;
use crate::context::Ctx;
use crate::themes::Themes;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Ctx,
    pub themes: Arc<Themes>,
    pub assets: Arc<Assets>,
    /// URL of the main stylesheet (content-hashed).
    pub app_css: Arc<str>,
    /// URL of the favicon asset.
    pub favicon: Arc<str>,
    /// URL of the merchant console stylesheet (content-hashed).
    pub console_css: Arc<str>,
    /// URL of the payment-number page's script (copy and print buttons; content-hashed).
    pub number_js: Arc<str>,
    /// URL of the card form's script (checks, brand, grouping; content-hashed).
    pub card_form_js: Arc<str>,
    /// URL of the PC selector's hand-off script (notices a payment made on the phone).
    pub handoff_js: Arc<str>,
    /// Set once a stop has begun: `/readyz` then answers 503 while requests are still served.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl std::ops::Deref for AppState {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}
