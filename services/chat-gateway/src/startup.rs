//! Building the gateway and running it until it is told to stop, with the
//! drain the contract promises on SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use chat_core::ErrorCode;
use chat_store::RoomStore;
use chat_store::connection::RedisSettings;
use fred::interfaces::ClientLike;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, TransportType};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::auth::TokenKeys;
use crate::config::GatewayConfig;
use crate::registry::{Conn, Registry};
use crate::state::Gateway;
use crate::{fanout, handlers, http, maintenance};

/// A gateway replica, bound to its port and ready to run.
pub struct App {
    listener: TcpListener,
    router: Router,
    gateway: Arc<Gateway>,
    slow: mpsc::UnboundedReceiver<Arc<Conn>>,
}

impl App {
    /// Connects to Redis (without waiting for it), loads the keys and binds
    /// the listen address.
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let keys = TokenKeys::load(&config.keys, &config.issuer, &config.audience).await?;
        let mut redis = RedisSettings::new(&config.redis_url);
        redis.command_timeout = config.redis_command_timeout;
        let store = RoomStore::new(
            redis.command_client()?,
            uuid::Uuid::new_v4().simple().to_string(),
        );
        let subscriber = redis.subscriber_client()?;
        let (slow_tx, slow) = mpsc::unbounded_channel();
        let registry = Registry::new(&config.rooms, slow_tx);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("GATEWAY_ADDR {}: cannot listen", config.addr))?;
        let gateway = Arc::new(Gateway::new(config, keys, store, subscriber, registry));
        let router = router(gateway.clone());
        Ok(Self {
            listener,
            router,
            gateway,
            slow,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains: connections are told
    /// `session ended` `shutdown` and closed, presence is released with the
    /// exit grace (so clients that reconnect elsewhere cause no events), and
    /// the replica leaves the registry of nodes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            gateway,
            slow,
        } = self;
        let subscriber = gateway.subscriber().clone();
        tracing::info!(addr = %listener.local_addr()?, node = gateway.store.node(), "gateway listening");
        let tasks = [
            tokio::spawn(fanout::run(gateway.clone(), subscriber.clone())),
            tokio::spawn(maintenance::heartbeat(gateway.clone())),
            tokio::spawn(maintenance::sweep(gateway.clone())),
            tokio::spawn(maintenance::expire_tokens(gateway.clone())),
            tokio::spawn(maintenance::drop_slow_consumers(gateway.clone(), slow)),
        ];
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // Small frames (acks, chat lines) must not wait for Nagle's algorithm.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        shutdown.await;
        let drain_timeout = gateway.config.drain_timeout;
        if tokio::time::timeout(drain_timeout, drain(&gateway))
            .await
            .is_err()
        {
            tracing::warn!("drain did not finish in {drain_timeout:?}");
        }
        let _ = stop_tx.send(());
        for task in tasks {
            task.abort();
        }
        // Closed sockets end their HTTP connections; do not wait on stragglers.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
        let _ = subscriber.quit().await;
        tracing::info!("gateway stopped");
        Ok(())
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
    if let Err(e) = gateway.store.deregister().await {
        tracing::warn!(error = %e, "could not deregister; the sweep will remove this node");
    }
}

fn router(gateway: Arc<Gateway>) -> Router {
    let config = &gateway.config;
    let (layer, io) = SocketIo::builder()
        .with_state(gateway.clone())
        .transports([TransportType::Websocket, TransportType::Polling])
        .max_buffer_size(config.slow_consumer_max_packets)
        .max_payload(config.max_ws_message_bytes as u64)
        .ws_max_message_size(config.max_ws_message_bytes)
        .ws_max_frame_size(config.max_ws_message_bytes)
        .connect_timeout(config.connect_timeout)
        .build_layer();
    io.ns("/", handlers::on_connect.with(handlers::authenticate));
    let origins = Arc::new(config.allowed_origins.clone());
    Router::new()
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz).with_state(gateway))
        .route("/metrics", get(http::metrics).with_state(prometheus()))
        .layer(layer)
        .layer(axum::middleware::from_fn_with_state(
            origins,
            http::check_origin,
        ))
}

/// The Prometheus recorder: installed once per process.
fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            builder
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}
