//! What every handler shares: the settings, the identity provider, the
//! store, the token signer, the metrics handle, the rate limits and the
//! login cookies. [`crate::startup`] builds it once; handlers take it as
//! `State<AppState>`, and extractors take only the part they need
//! (`Arc<Config>`, `Arc<RateLimits>`) through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use chat_core::RoomName;
use chat_core::token::TokenSigner;
use chat_store::Backend;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::error::AppError;
use crate::login_cookie::LoginCookies;
use crate::oidc::IdentityProvider;
use crate::rate_limit::RateLimits;

/// What every handler shares.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The settings.
    pub config: Arc<Config>,
    /// The identity provider (none in the single-process mode's dev sign-in).
    pub idp: Option<Arc<IdentityProvider>>,
    /// Presence counts and revocations (Redis, or memory in the single-process mode).
    pub store: Arc<dyn Backend>,
    /// Mints room tokens and publishes their keys.
    pub signer: Arc<TokenSigner>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Per-client budgets of sign-ins and of the token endpoint.
    pub limits: Arc<RateLimits>,
    /// Seals logins in progress into cookies, and opens them at the callback.
    pub login_cookies: Arc<LoginCookies>,
}

impl AppState {
    /// The identity provider, for the OIDC sign-in routes.
    pub fn provider(&self) -> Result<&IdentityProvider, AppError> {
        self.idp.as_deref().ok_or(AppError::NotFound)
    }

    /// The configured rooms.
    pub fn rooms(&self) -> Vec<RoomName> {
        self.config.rooms.iter().cloned().collect()
    }
}
