//! Wiring the web service and the gateway onto one router, one port and one
//! in-memory backend, with a key pair made at start. The router runs on the
//! gateway's own HTTP server, with its limits and its `Origin` check.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chat_core::keys::generate_pem_pair;
use chat_core::token::{TokenSigner, TokenVerifier};
use chat_gateway::{Realtime, Served, TokenKeys, serve};
use chat_store::MemoryHub;
use chat_web::Parts;
use chat_web::oidc::IdentityProvider;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_sessions::MemoryStore;

use crate::dev_login;
use crate::settings::DevSettings;

/// The whole product, bound to its port.
pub struct DevApp {
    listener: TcpListener,
    service: Served,
    realtime: Realtime,
    dev_login: bool,
}

impl DevApp {
    /// Builds both services on an in-memory backend and binds `CHAT_ADDR`.
    pub async fn build(settings: DevSettings) -> anyhow::Result<Self> {
        let DevSettings {
            addr,
            web,
            gateway,
            dev_login,
        } = settings;
        // A key pair for this run only: tokens die with the process.
        let (private, public) = generate_pem_pair()?;
        let signer = TokenSigner::from_pkcs8_pem(&private)?;
        let verifier =
            TokenVerifier::from_spki_pem(&public, &gateway.token.issuer, &gateway.token.audience)?;
        let hub = MemoryHub::new();

        let realtime = Realtime::new(
            gateway,
            TokenKeys::fixed(verifier),
            Arc::new(hub.backend("local")),
        );
        let (idp, sign_in) = if dev_login {
            (None, dev_login::routes())
        } else {
            let idp = IdentityProvider::new(&web).map_err(anyhow::Error::msg)?;
            (Some(idp), chat_web::login::routes())
        };
        let parts = Parts {
            signer,
            store: Arc::new(hub.backend("web")),
            sessions: MemoryStore::default(),
            idp,
            sign_in,
        };
        let service = realtime.mount(chat_web::router(web, parts)?);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("CHAT_ADDR {addr}: cannot listen"))?;
        Ok(Self {
            listener,
            service,
            realtime,
            dev_login,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        let limits = self.realtime.server_limits();
        let running = self.realtime.start()?;
        if self.dev_login {
            tracing::warn!(
                "DEVELOPMENT SIGN-IN IS ON: anyone on this machine can sign in under any name"
            );
        }
        println!(
            "\n  Chat is running: open http://{addr}/ in two browser windows.\n  (Stop it with Ctrl-C.)\n"
        );
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(self.listener, self.service, limits, stop.clone()));
        shutdown.await;
        running.drain().await;
        stop.cancel();
        let _ = server.await;
        Ok(())
    }
}
