//! Building the application from its settings and running it until a
//! shutdown signal.
//!
//! Nothing here waits for Redis or the identity provider: Redis clients
//! reconnect on their own and the provider is discovered on first use, so
//! the service starts (and answers `/healthz`) while either is away.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware;
use axum::routing::{get, post};
use chat_core::token::TokenSigner;
use metrics_exporter_prometheus::PrometheusHandle;
use thiserror::Error;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions_redis_store::fred::clients::Client;

use crate::config::Config;
use crate::oidc::IdentityProvider;
use crate::{headers, health, login, logout, pages, session, tokens};

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

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The settings.
    pub config: Arc<Config>,
    /// The identity provider.
    pub idp: Arc<IdentityProvider>,
    /// Redis, for presence counts and revocations (sessions use it too).
    pub redis: Client,
    /// Mints room tokens and publishes their keys.
    pub signer: Arc<TokenSigner>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// A built application, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    router: Router,
}

impl App {
    /// Builds everything from `config` and binds `WEB_ADDR`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let path = config.jwt_private_key_file.display().to_string();
        let pem =
            std::fs::read_to_string(&config.jwt_private_key_file).map_err(|e| StartError::Key {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let signer = TokenSigner::from_pkcs8_pem(&pem).map_err(|e| StartError::Key {
            path,
            reason: e.to_string(),
        })?;
        tracing::info!(
            kid = signer.kid(),
            keys = signer.jwks().keys.len(),
            "room token keys loaded"
        );

        let redis = chat_store::connection::RedisSettings::new(config.redis_url.clone())
            .command_client()
            .map_err(StartError::Redis)?;
        let idp = IdentityProvider::new(&config).map_err(StartError::Provider)?;
        let csp = HeaderValue::from_str(&headers::content_security_policy(
            &config.gateway_public_url,
            &config.oidc_issuer,
        ))
        .map_err(|_| StartError::Csp)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;

        let session_layer = session::layer(redis.clone(), &config);
        let static_dir = config.static_dir.clone();
        let state = AppState {
            config: Arc::new(config),
            idp: Arc::new(idp),
            redis,
            signer: Arc::new(signer),
            metrics: health::prometheus(),
        };
        Ok(Self {
            listener,
            router: router(state, session_layer, static_dir, csp),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "chat-web listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// The routes: those that need a session sit behind the session layer;
/// health, metrics, JWKS and static assets never touch Redis.
fn router(
    state: AppState,
    session_layer: tower_sessions::SessionManagerLayer<
        tower_sessions_redis_store::RedisStore<Client>,
    >,
    static_dir: std::path::PathBuf,
    csp: HeaderValue,
) -> Router {
    let with_session = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::start))
        .route("/authorization-code/callback", get(login::callback))
        .route("/dashboard", get(pages::dashboard))
        .route("/chat/{room}", get(pages::room))
        .route("/api/rooms/{room}/token", post(tokens::issue))
        .route("/logout", post(logout::logout))
        .layer(session_layer);
    let assets = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .service(ServeDir::new(static_dir).append_index_html_on_directories(false));
    Router::new()
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest_service("/static", assets)
        .merge(with_session)
        .fallback(pages::not_found)
        .with_state(state)
        .layer(middleware::from_fn(health::count_requests))
        .layer(middleware::from_fn_with_state(
            csp,
            headers::security_headers,
        ))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
