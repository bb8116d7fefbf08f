//! Building the gateway and running it until it is told to stop, with the
//! drain the contract promises on SIGTERM.
//!
//! [`Realtime`] is the gateway without a listener (the Socket.IO layer plus
//! its background work), so the single-process mode can mount it beside the
//! web service; [`App`] is the standalone replica.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use chat_core::ErrorCode;
use chat_store::{Backend, RedisBackend};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;

use crate::auth::TokenKeys;
use crate::config::GatewayConfig;
use crate::connection::Ending;
use crate::registry::{Limits, Registry};
use crate::server::{Served, ServerLimits, TCP_HEADROOM, serve};
use crate::sockets::{Adapter, Writer};
use crate::state::Gateway;
use crate::{fanout, handlers, http, maintenance};

/// The realtime engine: the Socket.IO layer and the state behind it.
pub struct Realtime {
    gateway: Arc<Gateway>,
    layer: SocketIoLayer<Adapter>,
}

impl Realtime {
    /// Assembles the engine on `backend`.
    pub fn new(config: GatewayConfig, keys: TokenKeys, backend: Arc<dyn Backend>) -> Self {
        let writer = Writer::default();
        let limits = Limits {
            total: config.max_connections,
            per_user: config.max_connections_per_user,
        };
        let registry = Registry::new(limits, writer.clone());
        let gateway = Arc::new(Gateway::new(config, keys, backend, registry));
        let layer = socket_layer(&gateway, writer);
        Self { gateway, layer }
    }

    /// Puts the Socket.IO endpoint (`/socket.io/`) in front of `router`,
    /// behind the `Origin` allow-list (`ALLOWED_ORIGINS`); every other request
    /// passes on to `router`. In front of it rather than inside it
    /// (`Router::layer`): a Socket.IO request then never goes through axum's
    /// routing, whose extensions (the fallback route's path parameters) would
    /// stay in the request head that every connection keeps.
    pub fn mount(&self, router: Router) -> Served {
        let origins = Arc::new(self.gateway.config().allowed_origins.clone());
        Served::new(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    origins,
                    http::check_origin,
                ))
                .map_response(IntoResponse::into_response)
                .layer(self.layer.clone())
                .service(router),
        )
    }

    /// What the HTTP server under this engine allows each client connection.
    pub fn server_limits(&self) -> ServerLimits {
        let config = &self.gateway.config();
        ServerLimits {
            connections: config.max_connections.saturating_add(TCP_HEADROOM),
            header_read_timeout: config.header_read_timeout,
            slow_consumer_bytes: config.slow_consumer_max_bytes,
        }
    }

    /// The shared state.
    pub(crate) fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Starts the subscription (to the revocations; rooms are followed as
    /// connections arrive), heartbeat, sweeps, token expiry, the scheduled
    /// JWKS refresh and the return of freed memory.
    pub fn start(self) -> anyhow::Result<Running> {
        let gateway = self.gateway;
        let subscription = gateway
            .backend()
            .subscribe()
            .context("fan-out subscription")?;
        let background = TaskTracker::new();
        background.spawn(fanout::run(gateway.clone(), subscription));
        background.spawn(maintenance::heartbeat(gateway.clone()));
        background.spawn(maintenance::sweep(gateway.clone()));
        background.spawn(maintenance::expire_tokens(gateway.clone()));
        background.spawn(maintenance::end_stalled_handshakes(gateway.clone()));
        background.spawn(maintenance::refresh_keys(gateway.clone()));
        background.close();
        Ok(Running {
            gateway,
            background,
        })
    }
}

/// A started engine.
pub struct Running {
    gateway: Arc<Gateway>,
    background: TaskTracker,
}

impl Running {
    /// Drains (bounded by `DRAIN_TIMEOUT_S`) and stops the background work:
    /// connections are told `session ended` `shutdown` and closed, presence
    /// is released with the exit grace (so clients that reconnect elsewhere
    /// cause no events), and the replica leaves the registry of nodes. The
    /// loops stop at their next turn and the work spawned for connections is
    /// waited for, not aborted.
    pub async fn drain(self) {
        let gateway = &self.gateway;
        let timeout = gateway.config().drain_timeout;
        let stopped = async {
            drain(gateway).await;
            self.background.wait().await;
        };
        if tokio::time::timeout(timeout, stopped).await.is_err() {
            tracing::warn!("drain did not finish in {timeout:?}");
        }
    }
}

/// A standalone gateway replica, bound to its port and ready to run.
pub struct App {
    listener: TcpListener,
    service: Served,
    realtime: Realtime,
}

impl App {
    /// Connects to Redis (without waiting for it), loads the keys and binds
    /// the listen address.
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let keys =
            TokenKeys::load(config.keys()?, &config.token.issuer, &config.token.audience).await?;
        let node = uuid::Uuid::new_v4().simple().to_string();
        let backend = Arc::new(RedisBackend::connect(config.redis()?, true, node)?);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("GATEWAY_ADDR {}: cannot listen", config.addr))?;
        let realtime = Realtime::new(config, keys, backend);
        let service = realtime.mount(probes(realtime.gateway()));
        Ok(Self {
            listener,
            service,
            realtime,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains and exits.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            service,
            realtime,
        } = self;
        let gateway = realtime.gateway();
        tracing::info!(addr = %listener.local_addr()?, node = gateway.backend().node(), "gateway listening");
        let limits = realtime.server_limits();
        let running = realtime.start()?;
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, service, limits, stop.clone()));
        shutdown.await;
        running.drain().await;
        stop.cancel();
        let _ = server.await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Ends every connection with `shutdown`, stops the loops, waits for the
/// presence releases, and only then leaves: its liveness lapses at once, so a
/// survivor takes it and announces the exits it owed (the rooms where they
/// are to come stay on its list).
async fn drain(gateway: &Gateway) {
    gateway.start_draining();
    tracing::info!(connections = gateway.registry().count(), "draining");
    gateway.stopping().cancel();
    // A handshake already past the draining check may still be admitted:
    // close what the registry holds until it holds nothing.
    for _ in 0..3 {
        let handles = gateway.registry().all();
        if handles.is_empty() {
            break;
        }
        for handle in &handles {
            gateway.close(handle, Ending::Server(ErrorCode::Shutdown));
        }
        gateway.tasks().close();
        gateway.tasks().wait().await;
    }
    gateway.tasks().close();
    gateway.tasks().wait().await;
    let configured: Vec<_> = gateway.config().rooms.iter().cloned().collect();
    if let Err(e) = gateway.backend().deregister(&configured).await {
        tracing::warn!(error = %e, "could not deregister; the sweep will remove this node");
    }
}

fn socket_layer(gateway: &Arc<Gateway>, writer: Writer) -> SocketIoLayer<Adapter> {
    let config = &gateway.config();
    let (layer, io) = SocketIo::builder()
        .with_state(gateway.clone())
        .with_adapter::<Adapter>(writer)
        .transports([TransportType::Websocket, TransportType::Polling])
        .max_buffer_size(config.slow_consumer_max_packets)
        .max_payload(config.max_ws_message_bytes as u64)
        .ws_max_message_size(config.max_ws_message_bytes)
        .ws_max_frame_size(config.max_ws_message_bytes)
        // Chat frames are small; the read buffer grows for the rare large one.
        .ws_read_buffer_size(1024)
        .connect_timeout(config.connect_timeout)
        .build_layer();
    io.ns("/", handlers::on_connect.with(handlers::authenticate));
    layer
}

/// `/healthz`, `/readyz` and `/metrics`.
fn probes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz).with_state(gateway))
        .route(
            "/metrics",
            get(http::metrics).with_state(chat_telemetry::prometheus()),
        )
}
