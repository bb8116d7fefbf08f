//! Building the application from its settings and running it until a
//! shutdown signal.
//!
//! Nothing here waits for Redis or the identity provider: Redis clients
//! reconnect on their own and the provider is discovered on first use, so
//! the service starts (and answers `/healthz`) while either is away.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware;
use axum::routing::{get, post};
use chat_core::token::TokenSigner;
use chat_http::Acceptor;
use chat_store::{Backend, RedisBackend};
use thiserror::Error;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::SessionStore;
use tower_sessions_redis_store::RedisStore;

use crate::config::Config;
use crate::login_cookie::{self, LoginCookies};
use crate::oidc::IdentityProvider;
use crate::rate_limit::{self, RateLimits};
use crate::state::AppState;
use crate::{headers, health, labels, login, logout, pages, session, tokens};

/// Why the application could not start. Each names the setting to fix.
#[derive(Debug, Error)]
pub enum StartError {
    /// The signing key file could not be read or parsed.
    #[error("JWT_PRIVATE_KEY_FILE {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The Redis settings are unusable.
    #[error("REDIS_URL: {0}")]
    Redis(chat_store::StoreError),
    /// The identity provider settings are unusable.
    #[error("{0}")]
    Provider(String),
    /// A setting the standalone service requires is missing.
    #[error(transparent)]
    Setting(#[from] chat_settings::SettingError),
    /// A derived header value is invalid.
    #[error("GATEWAY_PUBLIC_URL or OIDC_ISSUER makes an invalid Content-Security-Policy")]
    Csp,
    /// The listen address could not be bound.
    #[error("WEB_ADDR {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the web service is built from, besides its settings.
pub struct Parts<S> {
    /// Mints room tokens.
    pub signer: TokenSigner,
    /// Presence counts and revocations.
    pub store: Arc<dyn Backend>,
    /// Where sessions live.
    pub sessions: S,
    /// The identity provider, if sign-in goes through one.
    pub idp: Option<IdentityProvider>,
    /// The sign-in routes (`/login` and whatever it needs), behind the
    /// session layer; each spends the login budget where a sign-in costs
    /// something ([`RateLimits::spend_sign_in`]).
    pub sign_in: Router<AppState>,
}

/// A built application, bound to its port but not yet serving.
pub struct App {
    acceptor: Acceptor,
    router: Router,
    header_read_timeout: Duration,
}

impl App {
    /// Builds everything from `config` (Redis, the identity provider, the
    /// signing key) and binds `WEB_ADDR`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let key_file = config.jwt_private_key_file()?;
        let path = key_file.display().to_string();
        let pem = std::fs::read_to_string(key_file).map_err(|e| StartError::Key {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let signer = TokenSigner::from_pkcs8_pem(&pem).map_err(|e| StartError::Key {
            path,
            reason: e.to_string(),
        })?;
        let backend =
            RedisBackend::connect(config.redis()?, false, "web").map_err(StartError::Redis)?;
        let sessions = RedisStore::new(backend.client().clone());
        let idp = IdentityProvider::new(&config).map_err(StartError::Provider)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let parts = Parts {
            signer,
            store: Arc::new(backend),
            sessions,
            idp: Some(idp),
            sign_in: login::routes(),
        };
        Ok(Self {
            acceptor: Acceptor::new(listener, config.max_connections),
            header_read_timeout: config.header_read_timeout,
            router: router(config, parts)?,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.acceptor.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    /// Each connection must send every request head within
    /// `HTTP_HEADER_TIMEOUT_S`, and at most `WEB_MAX_CONNECTIONS` are open
    /// at once (`chat-http`); each request carries the peer's address, which
    /// rate limits count unless a trusted proxy forwards another.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.acceptor.local_addr()?, "chat-web listening");
        chat_http::serve(
            self.acceptor,
            self.router,
            self.header_read_timeout,
            shutdown,
        )
        .await;
        Ok(())
    }
}

/// One span per HTTP request, named after its method and route template
/// (bounded, [`labels`]); the path is an attribute, the query never
/// recorded (it carries authorization codes and `state` on the callback).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let method = labels::method(request.method());
    tracing::info_span!(
        "HTTP request",
        otel.kind = "server",
        otel.name = format!("{method} {}", labels::route(request)),
        http.request.method = method,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    )
}

fn record_status<B>(
    response: &axum::http::Response<B>,
    _latency: std::time::Duration,
    span: &tracing::Span,
) {
    span.record("http.response.status_code", response.status().as_u16());
}

/// The whole web service as a router. Routes that need a session sit behind
/// the session layer; health, metrics, JWKS and static assets never touch
/// the store.
pub fn router<S>(config: Config, parts: Parts<S>) -> Result<Router, StartError>
where
    S: SessionStore + Clone,
{
    tracing::info!(
        kid = parts.signer.kid(),
        keys = parts.signer.jwks().keys.len(),
        "room token keys loaded"
    );
    let csp = HeaderValue::from_str(&headers::content_security_policy(
        &config.gateway_public_url,
        config.logout_target(),
    ))
    .map_err(|_| StartError::Csp)?;
    let session_layer = session::layer(parts.sessions, &config);
    let static_dir = config.static_dir.clone();
    let login_cookies = LoginCookies::new(
        &parts.signer.derive_secret(login_cookie::KEY_PURPOSE),
        config.secure_cookies(),
    );
    let state = AppState {
        limits: Arc::new(RateLimits::new(&config)),
        login_cookies: Arc::new(login_cookies),
        config: Arc::new(config),
        idp: parts.idp.map(Arc::new),
        store: parts.store,
        signer: Arc::new(parts.signer),
        metrics: chat_telemetry::prometheus(),
    };
    let with_session = Router::new()
        .route("/", get(pages::home))
        .route("/dashboard", get(pages::dashboard))
        .merge(room_api(&state))
        .route("/chat/{room}", get(pages::room))
        .route(
            "/api/rooms/{room}/token",
            post(tokens::issue).layer(middleware::from_fn_with_state(
                state.limits.clone(),
                rate_limit::limit_tokens,
            )),
        )
        .route("/logout", post(logout::logout))
        .merge(parts.sign_in)
        .layer(session_layer);
    let assets = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .service(ServeDir::new(static_dir).append_index_html_on_directories(false));
    let routes = Router::new()
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest_service("/static", assets)
        .merge(with_session)
        .fallback(pages::not_found)
        .with_state(state)
        .layer(middleware::from_fn(health::count_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_status),
        );
    Ok(headers::with_security_headers(routes, csp))
}

/// The rooms API (contract v2.0): changes share the token endpoint's
/// per-client budget; reads (which dashboards poll) do not.
fn room_api(state: &AppState) -> Router<AppState> {
    use crate::{members_api, people_api, rooms_api};
    use axum::routing::{delete, patch, put};
    let limited = || middleware::from_fn_with_state(state.limits.clone(), rate_limit::limit_tokens);
    Router::new()
        .route(
            "/api/rooms",
            get(rooms_api::list).merge(post(rooms_api::create).layer(limited())),
        )
        .route("/api/rooms/directory", get(rooms_api::directory))
        .route(
            "/api/rooms/direct",
            post(rooms_api::direct).layer(limited()),
        )
        .route(
            "/api/rooms/{room}",
            get(rooms_api::get).merge(
                patch(rooms_api::update)
                    .delete(rooms_api::delete)
                    .layer(limited()),
            ),
        )
        .route(
            "/api/rooms/{room}/join",
            post(rooms_api::join).layer(limited()),
        )
        .route(
            "/api/rooms/{room}/leave",
            post(rooms_api::leave).layer(limited()),
        )
        .route(
            "/api/rooms/{room}/members/{user}",
            put(members_api::put)
                .merge(delete(members_api::remove))
                .layer(limited()),
        )
        .route(
            "/api/rooms/{room}/mutes/{user}",
            put(members_api::mute)
                .merge(delete(members_api::unmute))
                .layer(limited()),
        )
        .route("/api/rooms/{room}/audit", get(members_api::audit))
        .route("/api/users", get(people_api::find))
}
