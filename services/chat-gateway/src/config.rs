//! The gateway's settings, read once through the shared reader
//! (`chat_settings::Env`: the environment, and `.env`, read by `main`).
//!
//! A missing or malformed setting stops the process with one line that names
//! the variable. Redis and the key source are `Option`s: a standalone replica
//! requires them ([`GatewayConfig::read`]); the single-process run keeps
//! state and keys in memory ([`GatewayConfig::read_optional_parts`]).

use std::net::SocketAddr;
use std::time::Duration;

use chat_core::RoomList;
use chat_settings::{Env, RoomsSetting, SettingError, TokenSettings};
use chat_store::connection::RedisSettings;

/// Where the gateway gets the keys that verify room tokens.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An SPKI PEM file, possibly with several keys.
    PemFile(String),
    /// The web service's JWKS, fetched and cached.
    JwksUrl(String),
}

/// Every setting of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `GATEWAY_ADDR`: listen address.
    pub addr: SocketAddr,
    /// `REDIS_URL`, `REDIS_COMMAND_TIMEOUT_MS`, `REDIS_WAIT_REPLICAS`;
    /// `None` only in the single-process run.
    pub redis: Option<RedisSettings>,
    /// `JWT_PUBLIC_KEY_FILE` or `JWKS_URL`; `None` only in the
    /// single-process run (a key pair made at start).
    pub keys: Option<KeySource>,
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `TOKEN_EXPIRY_GRACE_S`.
    pub token: TokenSettings,
    /// `ROOMS`.
    pub rooms: RoomList,
    /// `ALLOWED_ORIGINS`: empty means any.
    pub allowed_origins: Vec<String>,
    /// `RATE_LIMIT_PER_SECOND`.
    pub rate_per_second: u32,
    /// `RATE_LIMIT_BURST`.
    pub rate_burst: u32,
    /// `EXIT_GRACE_S`.
    pub exit_grace: Duration,
    /// `MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_USER`: per replica, per `sub`.
    pub max_connections_per_user: usize,
    /// `MAX_EVENTS_IN_FLIGHT`: client events of one connection received and not yet answered.
    pub max_events_in_flight: usize,
    /// `EVENT_RATE_LIMIT_PER_SECOND`: per-user rate of `history`, and of `refresh`, each its own.
    pub event_rate_per_second: u32,
    /// `EVENT_RATE_LIMIT_BURST`.
    pub event_rate_burst: u32,
    /// `HANDSHAKE_RATE_PER_SECOND`: per-user handshakes on this replica, past
    /// which they are refused with `rate_limited` before any Redis work.
    pub handshake_rate_per_second: u32,
    /// `HANDSHAKE_RATE_BURST`.
    pub handshake_rate_burst: u32,
    /// `HEARTBEAT_INTERVAL_MS`: how often a replica refreshes its heartbeat.
    pub heartbeat_interval: Duration,
    /// `HEARTBEAT_TTL_MS`: how long a silent replica counts as alive.
    pub heartbeat_ttl: Duration,
    /// `SWEEP_INTERVAL_MS`: how often dead replicas and due exits are swept.
    pub sweep_interval: Duration,
    /// `MAX_MESSAGE_CHARS`: longest message text, in code points.
    pub max_message_chars: usize,
    /// `MAX_WS_MESSAGE_BYTES`: largest WebSocket message before the connection is closed.
    pub max_ws_message_bytes: usize,
    /// `SLOW_CONSUMER_MAX_PACKETS`: packets waiting for a client before it is dropped.
    pub slow_consumer_max_packets: usize,
    /// `SLOW_CONSUMER_MAX_BYTES`: bytes waiting for a client before it is dropped.
    pub slow_consumer_max_bytes: usize,
    /// `HTTP_HEADER_TIMEOUT_S`: the longest a connection may take to send a request head.
    pub header_read_timeout: Duration,
    /// `JWKS_REFRESH_S`: how often the JWKS is fetched again, so removed keys stop being trusted.
    pub jwks_refresh: Duration,
    /// `CONNECT_TIMEOUT_S`: time to send the Socket.IO CONNECT after the transport opened.
    pub connect_timeout: Duration,
    /// `ACK_TIMEOUT_MS`: the deadline of each client event, from its arrival (time queued behind
    /// the connection's earlier events included): past it, the ack says `unavailable`.
    pub ack_timeout: Duration,
    /// `DRAIN_TIMEOUT_S`: the longest a SIGTERM drain takes.
    pub drain_timeout: Duration,
}

impl GatewayConfig {
    /// A standalone replica's settings: Redis and a key source are required.
    pub fn read(env: &Env<'_>) -> Result<Self, SettingError> {
        let config = Self::read_optional_parts(env)?;
        config.redis()?;
        config.keys()?;
        Ok(config)
    }

    /// Every setting, Redis and the key source left `None` when unset.
    pub fn read_optional_parts(env: &Env<'_>) -> Result<Self, SettingError> {
        let redis = RedisSettings::read(env)?;
        let keys = match (env.get("JWT_PUBLIC_KEY_FILE"), env.get("JWKS_URL")) {
            (Some(file), _) => Some(KeySource::PemFile(file)),
            (None, Some(url)) => Some(KeySource::JwksUrl(url)),
            (None, None) => None,
        };
        let allowed_origins = env
            .get("ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let config = Self {
            addr: env.parsed("GATEWAY_ADDR", SocketAddr::from(([0, 0, 0, 0], 8081)))?,
            redis,
            keys,
            token: TokenSettings::read(env)?,
            rooms: RoomsSetting::read(env)?,
            allowed_origins,
            rate_per_second: env.number("RATE_LIMIT_PER_SECOND", 10, 1..)?,
            rate_burst: env.number("RATE_LIMIT_BURST", 20, 1..)?,
            exit_grace: env.seconds("EXIT_GRACE_S", 5, ..)?,
            max_connections: env.number("MAX_CONNECTIONS", 100_000, 1..)?,
            max_connections_per_user: env.number("MAX_CONNECTIONS_PER_USER", 20, 1..)?,
            max_events_in_flight: env.number("MAX_EVENTS_IN_FLIGHT", 64, 1..)?,
            event_rate_per_second: env.number("EVENT_RATE_LIMIT_PER_SECOND", 2, 1..)?,
            event_rate_burst: env.number("EVENT_RATE_LIMIT_BURST", 10, 1..)?,
            handshake_rate_per_second: env.number("HANDSHAKE_RATE_PER_SECOND", 2, 1..)?,
            handshake_rate_burst: env.number("HANDSHAKE_RATE_BURST", 20, 1..)?,
            heartbeat_interval: env.millis("HEARTBEAT_INTERVAL_MS", 2_000, 1..)?,
            heartbeat_ttl: env.millis("HEARTBEAT_TTL_MS", 6_000, ..)?,
            sweep_interval: env.millis("SWEEP_INTERVAL_MS", 1_000, 1..)?,
            max_message_chars: env.number(
                "MAX_MESSAGE_CHARS",
                chat_core::message::DEFAULT_MAX_MESSAGE_CHARS,
                ..,
            )?,
            max_ws_message_bytes: env.number("MAX_WS_MESSAGE_BYTES", 64 * 1024, ..)?,
            slow_consumer_max_packets: env.number("SLOW_CONSUMER_MAX_PACKETS", 1000, 1..)?,
            slow_consumer_max_bytes: env.number("SLOW_CONSUMER_MAX_BYTES", 1024 * 1024, 1..)?,
            header_read_timeout: env.seconds("HTTP_HEADER_TIMEOUT_S", 10, 1..)?,
            jwks_refresh: env.seconds("JWKS_REFRESH_S", 300, 1..)?,
            connect_timeout: env.seconds("CONNECT_TIMEOUT_S", 10, ..)?,
            ack_timeout: env.millis("ACK_TIMEOUT_MS", 3_000, ..)?,
            drain_timeout: env.seconds("DRAIN_TIMEOUT_S", 25, ..)?,
        };
        if config.heartbeat_ttl <= config.heartbeat_interval * 2 {
            return Err(SettingError::invalid(
                "HEARTBEAT_TTL_MS",
                "must be more than twice HEARTBEAT_INTERVAL_MS, or live replicas would be swept",
            ));
        }
        Ok(config)
    }

    /// Redis, which a standalone replica requires.
    pub fn redis(&self) -> Result<&RedisSettings, SettingError> {
        self.redis
            .as_ref()
            .ok_or(SettingError::Missing("REDIS_URL"))
    }

    /// Where the keys come from, which a standalone replica requires.
    pub fn keys(&self) -> Result<&KeySource, SettingError> {
        self.keys.as_ref().ok_or(SettingError::MissingEither(
            "JWT_PUBLIC_KEY_FILE",
            "JWKS_URL",
        ))
    }

    /// Whether a send waits for Redis replicas (`REDIS_WAIT_REPLICAS` > 0).
    pub fn waits_for_replicas(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.wait_replicas > 0)
    }

    /// The most bytes of a reply the server builds (`welcome`, a `history`
    /// page): the contract's bound, or half of `SLOW_CONSUMER_MAX_BYTES`
    /// when that is smaller, so a reply alone never fills what a connection
    /// may owe.
    pub fn reply_max_bytes(&self) -> usize {
        chat_core::events::REPLY_MAX_BYTES.min(self.slow_consumer_max_bytes / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<GatewayConfig, SettingError> {
        GatewayConfig::read(&Env::from_pairs(vars))
    }

    const BASE: [(&str, &str); 2] = [
        ("REDIS_URL", "redis://127.0.0.1"),
        ("JWT_PUBLIC_KEY_FILE", "k.pem"),
    ];

    #[test]
    fn defaults_follow_the_contract() -> Result<(), SettingError> {
        let c = load(&BASE)?;
        assert_eq!(c.addr.to_string(), "0.0.0.0:8081");
        assert_eq!(
            (c.token.issuer.as_str(), c.token.audience.as_str()),
            ("chat-web", "chat-gateway")
        );
        assert_eq!(c.rooms.iter().count(), 3);
        assert_eq!((c.rate_per_second, c.rate_burst), (10, 20));
        assert_eq!(c.token.expiry_grace, Duration::from_secs(30));
        assert!(!c.waits_for_replicas());
        assert_eq!(c.exit_grace, Duration::from_secs(5));
        assert_eq!(c.max_connections, 100_000);
        assert_eq!(c.max_connections_per_user, 20);
        assert_eq!((c.event_rate_per_second, c.event_rate_burst), (2, 10));
        assert_eq!(
            (c.handshake_rate_per_second, c.handshake_rate_burst),
            (2, 20)
        );
        assert_eq!(c.slow_consumer_max_bytes, 1_048_576);
        assert_eq!(c.slow_consumer_max_packets, 1000);
        assert!(c.allowed_origins.is_empty());
        Ok(())
    }

    #[test]
    fn a_bad_or_missing_setting_names_its_variable() {
        let name = |vars: &[(&str, &str)]| load(vars).map(|_| ()).expect_err("refused").name();
        assert_eq!(name(&[("JWT_PUBLIC_KEY_FILE", "k.pem")]), "REDIS_URL");
        assert_eq!(name(&[("REDIS_URL", "redis://x")]), "JWT_PUBLIC_KEY_FILE");
        assert_eq!(
            name(&[BASE[0], BASE[1], ("RATE_LIMIT_BURST", "lots")]),
            "RATE_LIMIT_BURST"
        );
        assert_eq!(
            name(&[BASE[0], BASE[1], ("RATE_LIMIT_PER_SECOND", "0")]),
            "RATE_LIMIT_PER_SECOND"
        );
        assert_eq!(name(&[BASE[0], BASE[1], ("ROOMS", "a b")]), "ROOMS");
        assert_eq!(
            name(&[BASE[0], BASE[1], ("GATEWAY_ADDR", "nowhere")]),
            "GATEWAY_ADDR"
        );
        assert_eq!(
            name(&[BASE[0], BASE[1], ("HEARTBEAT_TTL_MS", "3000")]),
            "HEARTBEAT_TTL_MS"
        );
        assert_eq!(
            name(&[BASE[0], BASE[1], ("TOKEN_EXPIRY_GRACE_S", "later")]),
            "TOKEN_EXPIRY_GRACE_S"
        );
        assert_eq!(
            name(&[BASE[0], BASE[1], ("REDIS_COMMAND_TIMEOUT_MS", "0.5")]),
            "REDIS_COMMAND_TIMEOUT_MS"
        );
    }

    #[test]
    fn redis_and_keys_may_be_left_out_only_in_one_process() -> Result<(), SettingError> {
        let c = GatewayConfig::read_optional_parts(&Env::from_lookup(|_| None))?;
        assert!(c.redis.is_none() && c.keys.is_none());
        let err = c.keys().map(|_| ()).expect_err("required standalone");
        assert!(err.to_string().starts_with("JWT_PUBLIC_KEY_FILE"), "{err}");
        Ok(())
    }

    #[test]
    fn origins_and_jwks_are_read() -> Result<(), SettingError> {
        let c = load(&[
            ("REDIS_URL", "redis://x"),
            ("JWKS_URL", "http://web/.well-known/jwks.json"),
            ("ALLOWED_ORIGINS", "https://a.example/, https://b.example"),
        ])?;
        assert!(matches!(c.keys, Some(KeySource::JwksUrl(_))));
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        Ok(())
    }
}
