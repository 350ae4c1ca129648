//! Shared application state handed to every handler: the flows' context plus what only the
//! edge needs (themes, assets, stylesheet URLs). Derefs to [`Shared`], which derefs to [`Ctx`].

use std::sync::Arc;

use crate::assets::Assets;
use crate::context::Ctx;
use crate::themes::Themes;

/// A handle on the state: one `Arc`, so a clone is one reference count. axum clones the state
/// for every `State` extractor and every `from_fn_with_state` layer, and each layer clones the
/// layers inside it, some forty clones a request: as a struct of twenty-odd `Arc`s that was
/// ~1,000 atomic increments and as many decrements per request, on counters both cores share
/// (bench/README.md, change 39).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }

    /// The state, to change before the app runs (drivers, a test's clock); `None` once a
    /// clone of it exists.
    pub fn get_mut(&mut self) -> Option<&mut Shared> {
        Arc::get_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
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

impl std::ops::Deref for Shared {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clone of the state is one reference count, whatever the state grows to hold: fields
    /// belong in [`Shared`], never beside the `Arc`.
    #[test]
    fn the_handle_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<AppState>(),
            std::mem::size_of::<usize>()
        );
    }
}
