//! The chat's web service: people sign in with OpenID Connect, get a session
//! kept in Redis, see the rooms and their member counts, and fetch short-lived
//! room tokens (EdDSA JWTs) that admit them to a room on the gateway. Logging
//! out revokes the session so gateways close its sockets.
//!
//! The service never calls the gateway: they share Redis (through
//! `chat-store`) and a key pair (this service signs, gateways verify).
//!
//! # Layout
//! - [`config`]: the service's typed settings, read through `chat_settings::Env`
//!   (shared `TokenSettings`, `ROOMS`, `RedisSettings`; `OidcSettings` here).
//! - [`client_addr`]: the client address behind trusted proxies (`X-Forwarded-For`).
//! - [`startup`]: `App::build(config)` and `run_until_stopped(shutdown)`; the router.
//! - [`state`]: `AppState`, what every handler shares.
//! - [`oidc`]: the identity provider: discovery, PKCE, code exchange, ID token checks.
//! - [`login`]: `GET /login` and the OIDC callback.
//! - [`login_cookie`]: the login in progress, sealed in a cookie of its own.
//! - [`session`]: the Redis session layer, the signed-in user, idle and absolute expiry.
//! - [`pages`]: home, dashboard and room pages (askama templates).
//! - [`tokens`]: the room token endpoint and the JWKS.
//! - [`rate_limit`]: per-client budgets of sign-ins and of the token endpoint.
//! - [`logout`]: CSRF-checked logout, revocation and provider logout.
//! - [`headers`]: security headers on every response.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics` and request counting.
//! - [`labels`]: the bounded method, route and status labels requests are counted under.
//! - [`metrics_names`]: the names of the service's metrics.
//! - [`html`]: `HtmlTemplate`, askama templates as never-cached pages.
//! - [`error`]: `AppError`, the one error page, and `ApiError`, the JSON
//!   routes' `{ "error": code }` with its code enum.

pub mod access;
pub mod client_addr;
pub mod config;
pub mod error;
pub mod headers;
pub mod health;
pub mod html;
pub mod labels;
pub mod login;
pub mod login_cookie;
pub mod logout;
pub mod members_api;
pub mod metrics_names;
pub mod oidc;
pub mod pages;
pub mod people_api;
pub mod rate_limit;
pub mod rooms_api;
pub mod session;
pub mod startup;
pub mod state;
pub mod tokens;

pub use config::Config;
pub use startup::{App, Parts, router};
pub use state::AppState;
