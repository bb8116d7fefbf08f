//! A gateway replica started inside the test (`spawn_app`) on its own port,
//! with its own `redis-server` and key: its HTTP side and the handshakes it
//! refuses, checked over HTTP with Engine.IO's long-polling transport (no
//! Socket.IO client needed). Conversations, presence and fan-out between
//! replicas are tested with the real client in tests/gateway.

#[path = "../../../shared/chat-store/tests/topology/mod.rs"]
mod topology;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use chat_core::token::TokenSigner;
use chat_core::{ErrorCode, RoomClaims};
use chat_gateway::{App, GatewayConfig};
use chat_settings::Env;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use topology::Topology;

/// The only origin allowed to open a connection in these tests.
const ALLOWED_ORIGIN: &str = "http://chat.example.test";

/// A running replica, its Redis, and the key its tokens are signed with.
struct TestGateway {
    base: String,
    client: reqwest::Client,
    signer: TokenSigner,
    /// The replica's Redis; `None` once stopped.
    redis: Option<Topology>,
}

impl TestGateway {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`'s status.
    async fn status(&self, path: &str) -> Result<StatusCode> {
        Ok(self.client.get(self.url(path)).send().await?.status())
    }

    /// Waits until `/readyz` answers `want`. The replica tells readiness
    /// only there, so it is asked every few milliseconds, for 10 s at most.
    async fn readiness(&self, want: StatusCode) -> Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.status("/readyz").await?;
            if got == want {
                return Ok(());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "/readyz still {got}, not {want}, after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A token signed with the replica's key for `room`, expiring at `exp`.
    fn token(&self, room: &str, exp: u64) -> Result<String> {
        Ok(self.signer.mint(&claims(room, exp))?)
    }

    /// Opens an Engine.IO long-polling session, sends the Socket.IO CONNECT
    /// with `auth` (none if `None`), and returns the first Socket.IO packet
    /// the replica answers with: `40…` (admitted) or `44…` (refused).
    async fn poll_handshake(&self, query: &str, auth: Option<serde_json::Value>) -> Result<String> {
        let open = self
            .client
            .get(self.url(&format!("/socket.io/?EIO=4&transport=polling{query}")))
            .send()
            .await?;
        ensure!(open.status() == StatusCode::OK, "open: {}", open.status());
        let open = open.text().await?;
        let handshake: serde_json::Value = serde_json::from_str(
            open.strip_prefix('0')
                .with_context(|| format!("an Engine.IO open packet: {open}"))?,
        )?;
        let sid = handshake["sid"].as_str().context("a session id")?;
        let session = self.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
        let connect = match auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        let sent = self
            .client
            .post(&session)
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(connect)
            .send()
            .await?;
        ensure!(
            sent.status() == StatusCode::OK,
            "CONNECT: {}",
            sent.status()
        );
        // Each poll waits for what the replica has to say.
        for _ in 0..5 {
            let polled = self.client.get(&session).send().await?.text().await?;
            // One poll may carry several packets, separated by U+001E.
            if let Some(packet) = polled
                .split('\u{1e}')
                .find(|p| p.starts_with("40") || p.starts_with("44"))
            {
                return Ok(packet.to_owned());
            }
        }
        bail!("no answer to the CONNECT")
    }
}

/// A room token's claims for `room`, expiring at `exp` and issued the
/// default lifetime before it.
fn claims(room: &str, exp: u64) -> RoomClaims {
    RoomClaims {
        iss: chat_core::claims::DEFAULT_ISSUER.into(),
        aud: chat_core::claims::DEFAULT_AUDIENCE.into(),
        sub: "ann".into(),
        name: "Ann".into(),
        room: room.into(),
        iat: exp.saturating_sub(chat_core::claims::DEFAULT_TOKEN_TTL_S),
        exp,
        jti: format!("jti-{exp}-{room}"),
        sid: None,
        admin: false,
    }
}

fn now_s() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// The `message` of a CONNECT_ERROR packet (`44{"message":…}`).
fn refusal(packet: &str) -> Result<String> {
    let body = packet
        .strip_prefix("44")
        .with_context(|| format!("a CONNECT_ERROR, not {packet}"))?;
    let body: serde_json::Value = serde_json::from_str(body)?;
    Ok(body["message"].as_str().unwrap_or_default().to_owned())
}

/// A fresh key pair: the signer and the public half's SPKI PEM.
fn key_pair() -> Result<(TokenSigner, String)> {
    let (private, public) = chat_core::keys::generate_pem_pair()?;
    Ok((TokenSigner::from_pkcs8_pem(&private)?, public))
}

/// Writes `pem` where `JWT_PUBLIC_KEY_FILE` can name it.
fn key_file(pem: &str) -> Result<std::path::PathBuf> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "chat-gateway-app-{}-{}.pem",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pem)?;
    Ok(path)
}

/// Starts a replica on a free loopback port with its own Redis and key,
/// and waits until it is ready.
async fn spawn_app() -> Result<TestGateway> {
    let redis = topology::start_single()?;
    let (signer, public) = key_pair()?;
    let key = key_file(&public)?;
    let key_path = key.to_str().context("a UTF-8 temporary path")?;
    let pairs = [
        ("GATEWAY_ADDR", "127.0.0.1:0"),
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_COMMAND_TIMEOUT_MS", "500"),
        ("JWT_PUBLIC_KEY_FILE", key_path),
        ("ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ("HEARTBEAT_INTERVAL_MS", "100"),
    ];
    let built = App::build(GatewayConfig::read(&Env::from_pairs(&pairs))?).await;
    // The keys are loaded at build: the file is not needed any more.
    let _ = std::fs::remove_file(&key);
    let app = built?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let gateway = TestGateway {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        signer,
        redis: Some(redis),
    };
    gateway.readiness(StatusCode::OK).await?;
    Ok(gateway)
}

#[tokio::test]
async fn health_and_readiness_answer_and_readiness_follows_redis() -> Result<()> {
    let mut gateway = spawn_app().await?;
    assert_eq!(gateway.status("/healthz").await?, StatusCode::OK);
    assert_eq!(gateway.status("/readyz").await?, StatusCode::OK);
    gateway.redis = None;
    gateway.readiness(StatusCode::SERVICE_UNAVAILABLE).await?;
    let res = gateway.client.get(gateway.url("/readyz")).send().await?;
    assert_eq!(res.text().await?, "redis unavailable");
    assert_eq!(gateway.status("/healthz").await?, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn handshakes_without_a_good_token_are_refused_with_the_contract_codes() -> Result<()> {
    let gateway = spawn_app().await?;
    let now = now_s()?;
    let ttl = chat_core::claims::DEFAULT_TOKEN_TTL_S;
    let good = gateway.token("General", now + ttl)?;
    let (other_key, _) = key_pair()?;
    let in_query = format!("&token={good}");
    let cases = [
        ("no auth", "", None, ErrorCode::TokenMissing),
        (
            "no token",
            "",
            Some(serde_json::json!({})),
            ErrorCode::TokenMissing,
        ),
        (
            "a token in the query string only",
            in_query.as_str(),
            None,
            ErrorCode::TokenMissing,
        ),
        (
            "not a token",
            "",
            Some(serde_json::json!({ "token": "not.a.token" })),
            ErrorCode::TokenInvalid,
        ),
        (
            "a key the replica does not know",
            "",
            Some(serde_json::json!({
                "token": other_key.mint(&claims("General", now + ttl))?
            })),
            ErrorCode::TokenInvalid,
        ),
        (
            "an expired token",
            "",
            Some(serde_json::json!({ "token": gateway.token("General", now - 3600)? })),
            ErrorCode::TokenExpired,
        ),
        (
            "a room that is not configured",
            "",
            Some(serde_json::json!({ "token": gateway.token("Nowhere", now + ttl)? })),
            ErrorCode::RoomUnknown,
        ),
    ];
    for (what, query, auth, code) in cases {
        let packet = gateway.poll_handshake(query, auth).await?;
        assert_eq!(refusal(&packet)?, code.as_str(), "{what}: {packet}");
    }
    // The same handshake with the good token is admitted.
    let packet = gateway
        .poll_handshake("", Some(serde_json::json!({ "token": good })))
        .await?;
    assert!(packet.starts_with("40{"), "admitted: {packet}");
    Ok(())
}

#[tokio::test]
async fn only_allowed_origins_may_open_a_connection() -> Result<()> {
    let gateway = spawn_app().await?;
    let open = |origin: &'static str| {
        gateway
            .client
            .get(gateway.url("/socket.io/?EIO=4&transport=polling"))
            .header(ORIGIN, origin)
            .send()
    };
    assert_eq!(
        open("http://elsewhere.example").await?.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(open("null").await?.status(), StatusCode::FORBIDDEN);
    let allowed = open(ALLOWED_ORIGIN).await?;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(allowed.text().await?.starts_with("0{\"sid\":"));
    Ok(())
}

#[tokio::test]
async fn metrics_count_refused_handshakes_in_prometheus_text() -> Result<()> {
    let gateway = spawn_app().await?;
    let packet = gateway
        .poll_handshake("", Some(serde_json::json!({ "token": "not.a.token" })))
        .await?;
    assert_eq!(refusal(&packet)?, ErrorCode::TokenInvalid.as_str());
    let res = gateway.client.get(gateway.url("/metrics")).send().await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4")
    );
    let text = res.text().await?;
    let refused = "chat_gateway_handshakes_total{outcome=\"token_invalid\"}";
    assert!(text.contains(refused), "{refused} in:\n{text}");
    Ok(())
}
