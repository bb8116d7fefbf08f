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
use axum::routing::get;
use chat_core::ErrorCode;
use chat_store::connection::RedisSettings;
use chat_store::{Backend, RedisBackend};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::TokenKeys;
use crate::config::GatewayConfig;
use crate::registry::{Conn, Registry};
use crate::sockets::{Adapter, Writer};
use crate::state::Gateway;
use crate::{fanout, handlers, http, maintenance};

mod owned_head;

use owned_head::OwnedHead;

/// The realtime engine: the Socket.IO layer and the state behind it.
pub struct Realtime {
    gateway: Arc<Gateway>,
    layer: SocketIoLayer<Adapter>,
    slow: mpsc::UnboundedReceiver<Arc<Conn>>,
}

impl Realtime {
    /// Assembles the engine on `backend`.
    pub fn new(config: GatewayConfig, keys: TokenKeys, backend: Arc<dyn Backend>) -> Self {
        let (slow_tx, slow) = mpsc::unbounded_channel();
        let writer = Writer::default();
        let registry = Registry::new(&config.rooms, slow_tx, writer.clone());
        let gateway = Arc::new(Gateway::new(config, keys, backend, registry));
        let layer = socket_layer(&gateway, writer);
        Self {
            gateway,
            layer,
            slow,
        }
    }

    /// The tower layer that answers `/socket.io/` and passes the rest on.
    pub fn layer(&self) -> SocketIoLayer<Adapter> {
        self.layer.clone()
    }

    /// The shared state.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Starts the subscription, heartbeat, sweeps, token expiry and the
    /// slow-consumer reaper.
    pub fn start(self) -> anyhow::Result<Running> {
        let gateway = self.gateway;
        let rooms: Vec<_> = gateway.config.rooms.iter().cloned().collect();
        let subscription = gateway
            .backend
            .subscribe(&rooms)
            .context("fan-out subscription")?;
        let tasks = vec![
            tokio::spawn(fanout::run(gateway.clone(), subscription)),
            tokio::spawn(maintenance::heartbeat(gateway.clone())),
            tokio::spawn(maintenance::sweep(gateway.clone())),
            tokio::spawn(maintenance::expire_tokens(gateway.clone())),
            tokio::spawn(maintenance::drop_slow_consumers(gateway.clone(), self.slow)),
        ];
        Ok(Running { gateway, tasks })
    }
}

/// A started engine.
pub struct Running {
    gateway: Arc<Gateway>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Drains (bounded by `DRAIN_TIMEOUT_S`) and stops the background work:
    /// connections are told `session ended` `shutdown` and closed, presence
    /// is released with the exit grace (so clients that reconnect elsewhere
    /// cause no events), and the replica leaves the registry of nodes.
    pub async fn drain(self) {
        let timeout = self.gateway.config.drain_timeout;
        if tokio::time::timeout(timeout, drain(&self.gateway))
            .await
            .is_err()
        {
            tracing::warn!("drain did not finish in {timeout:?}");
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A standalone gateway replica, bound to its port and ready to run.
pub struct App {
    listener: TcpListener,
    router: Router,
    realtime: Realtime,
}

impl App {
    /// Connects to Redis (without waiting for it), loads the keys and binds
    /// the listen address.
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let keys = TokenKeys::load(&config.keys, &config.issuer, &config.audience).await?;
        let mut redis = RedisSettings::new(&config.redis_url);
        redis.command_timeout = config.redis_command_timeout;
        let node = uuid::Uuid::new_v4().simple().to_string();
        let backend = Arc::new(RedisBackend::connect(&redis, true, node)?);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("GATEWAY_ADDR {}: cannot listen", config.addr))?;
        let realtime = Realtime::new(config, keys, backend);
        let router = probes(realtime.gateway()).layer(realtime.layer());
        let origins = Arc::new(realtime.gateway.config.allowed_origins.clone());
        let router = router.layer(axum::middleware::from_fn_with_state(
            origins,
            http::check_origin,
        ));
        Ok(Self {
            listener,
            router,
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
            router,
            realtime,
        } = self;
        let gateway = realtime.gateway();
        tracing::info!(addr = %listener.local_addr()?, node = gateway.backend.node(), "gateway listening");
        let running = realtime.start()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, stop_rx));
        shutdown.await;
        running.drain().await;
        let _ = stop_tx.send(());
        let _ = server.await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Serves HTTP/1.1 (and its WebSocket upgrades) until `stop` fires. By then
/// the drain has closed every socket; whatever is left ends with the process.
///
/// Not `axum::serve`, for two settings it does not expose: TCP_NODELAY, so
/// small frames (acks, chat lines) do not wait for Nagle's algorithm, and
/// the smallest HTTP/1 read buffer. [`OwnedHead`] keeps the request heads
/// that engineioxide holds on to from pinning that buffer after an upgrade.
async fn serve(listener: TcpListener, router: Router, stop: tokio::sync::oneshot::Receiver<()>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(8192);
    tokio::pin!(stop);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(OwnedHead(router.clone()));
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

async fn drain(gateway: &Gateway) {
    gateway.start_draining();
    let conns = gateway.registry.all();
    tracing::info!(connections = conns.len(), "draining");
    for conn in &conns {
        gateway
            .registry
            .remove(&conn.id.record.room, conn.socket.id);
        gateway.end(conn, ErrorCode::Shutdown);
    }
    for conn in &conns {
        gateway.leave(conn.id.record.clone()).await;
    }
    if let Err(e) = gateway.backend.deregister().await {
        tracing::warn!(error = %e, "could not deregister; the sweep will remove this node");
    }
}

fn socket_layer(gateway: &Arc<Gateway>, writer: Writer) -> SocketIoLayer<Adapter> {
    let config = &gateway.config;
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
