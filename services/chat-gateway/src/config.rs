//! The gateway's settings, read once from the environment (and `.env`).
//!
//! A missing or malformed setting stops the process with one line that names
//! the variable.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use chat_core::RoomList;
use chat_core::claims::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use thiserror::Error;

/// A setting that is missing or malformed.
#[derive(Debug, Error)]
#[error("setting {name}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

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
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `JWT_PUBLIC_KEY_FILE` or `JWKS_URL`.
    pub keys: KeySource,
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ROOMS`.
    pub rooms: RoomList,
    /// `ALLOWED_ORIGINS`: empty means any.
    pub allowed_origins: Vec<String>,
    /// `RATE_LIMIT_PER_SECOND`.
    pub rate_per_second: u32,
    /// `RATE_LIMIT_BURST`.
    pub rate_burst: u32,
    /// `TOKEN_EXPIRY_GRACE_S`.
    pub token_expiry_grace: Duration,
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
    /// `ACK_TIMEOUT_MS`: the longest a `message sent` waits for Redis before `unavailable`.
    pub ack_timeout: Duration,
    /// `DRAIN_TIMEOUT_S`: the longest a SIGTERM drain takes.
    pub drain_timeout: Duration,
    /// `REDIS_COMMAND_TIMEOUT_MS`.
    pub redis_command_timeout: Duration,
    /// `REDIS_WAIT_REPLICAS`: Redis replicas that must hold a message before it is acked ok.
    pub redis_wait_replicas: u32,
}

/// Reads one variable, trimmed; empty counts as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn raw(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parsed<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError {
                name,
                problem: format!("{v:?}: {e}"),
            }),
        }
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default).map(Duration::from_millis)
    }

    fn secs(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parsed(name, default).map(Duration::from_secs)
    }
}

impl GatewayConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings from `lookup` (a variable name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Vars(lookup);
        let redis_url = v.raw("REDIS_URL").ok_or(ConfigError {
            name: "REDIS_URL",
            problem: "required".into(),
        })?;
        let keys = match (v.raw("JWT_PUBLIC_KEY_FILE"), v.raw("JWKS_URL")) {
            (Some(file), _) => KeySource::PemFile(file),
            (None, Some(url)) => KeySource::JwksUrl(url),
            (None, None) => {
                return Err(ConfigError {
                    name: "JWT_PUBLIC_KEY_FILE",
                    problem: "set it (or JWKS_URL) so room tokens can be verified".into(),
                });
            }
        };
        let rooms = RoomList::parse(&v.raw("ROOMS").unwrap_or_else(|| RoomList::DEFAULT.into()))
            .map_err(|e| ConfigError {
                name: "ROOMS",
                problem: e.to_string(),
            })?;
        let allowed_origins = v
            .raw("ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let config = Self {
            addr: v.parsed("GATEWAY_ADDR", SocketAddr::from(([0, 0, 0, 0], 8081)))?,
            redis_url,
            keys,
            issuer: v.raw("JWT_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.into()),
            audience: v
                .raw("JWT_AUDIENCE")
                .unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            rooms,
            allowed_origins,
            rate_per_second: v.parsed("RATE_LIMIT_PER_SECOND", 10)?,
            rate_burst: v.parsed("RATE_LIMIT_BURST", 20)?,
            token_expiry_grace: v.secs("TOKEN_EXPIRY_GRACE_S", 30)?,
            exit_grace: v.secs("EXIT_GRACE_S", 5)?,
            max_connections: v.parsed("MAX_CONNECTIONS", 100_000)?,
            max_connections_per_user: v.parsed("MAX_CONNECTIONS_PER_USER", 20)?,
            max_events_in_flight: v.parsed("MAX_EVENTS_IN_FLIGHT", 64)?,
            event_rate_per_second: v.parsed("EVENT_RATE_LIMIT_PER_SECOND", 2)?,
            event_rate_burst: v.parsed("EVENT_RATE_LIMIT_BURST", 10)?,
            handshake_rate_per_second: v.parsed("HANDSHAKE_RATE_PER_SECOND", 2)?,
            handshake_rate_burst: v.parsed("HANDSHAKE_RATE_BURST", 20)?,
            heartbeat_interval: v.millis("HEARTBEAT_INTERVAL_MS", 2_000)?,
            heartbeat_ttl: v.millis("HEARTBEAT_TTL_MS", 6_000)?,
            sweep_interval: v.millis("SWEEP_INTERVAL_MS", 1_000)?,
            max_message_chars: v.parsed(
                "MAX_MESSAGE_CHARS",
                chat_core::message::DEFAULT_MAX_MESSAGE_CHARS,
            )?,
            max_ws_message_bytes: v.parsed("MAX_WS_MESSAGE_BYTES", 64 * 1024)?,
            slow_consumer_max_packets: v.parsed("SLOW_CONSUMER_MAX_PACKETS", 1000)?,
            slow_consumer_max_bytes: v.parsed("SLOW_CONSUMER_MAX_BYTES", 1024 * 1024)?,
            header_read_timeout: v.secs("HTTP_HEADER_TIMEOUT_S", 10)?,
            jwks_refresh: v.secs("JWKS_REFRESH_S", 300)?,
            connect_timeout: v.secs("CONNECT_TIMEOUT_S", 10)?,
            ack_timeout: v.millis("ACK_TIMEOUT_MS", 3_000)?,
            drain_timeout: v.secs("DRAIN_TIMEOUT_S", 25)?,
            redis_command_timeout: v.millis("REDIS_COMMAND_TIMEOUT_MS", 2_000)?,
            redis_wait_replicas: v.parsed("REDIS_WAIT_REPLICAS", 0)?,
        };
        config.check()
    }

    /// The most bytes of a reply the server builds (`welcome`, a `history`
    /// page): the contract's bound, or half of `SLOW_CONSUMER_MAX_BYTES`
    /// when that is smaller, so a reply alone never fills what a connection
    /// may owe.
    pub fn reply_max_bytes(&self) -> usize {
        chat_core::events::REPLY_MAX_BYTES.min(self.slow_consumer_max_bytes / 2)
    }

    fn check(self) -> Result<Self, ConfigError> {
        let positive = |name: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError {
                    name,
                    problem: "must be greater than zero".into(),
                })
            }
        };
        positive("RATE_LIMIT_PER_SECOND", self.rate_per_second > 0)?;
        positive("RATE_LIMIT_BURST", self.rate_burst > 0)?;
        positive("MAX_CONNECTIONS", self.max_connections > 0)?;
        positive(
            "MAX_CONNECTIONS_PER_USER",
            self.max_connections_per_user > 0,
        )?;
        positive("MAX_EVENTS_IN_FLIGHT", self.max_events_in_flight > 0)?;
        positive(
            "EVENT_RATE_LIMIT_PER_SECOND",
            self.event_rate_per_second > 0,
        )?;
        positive("EVENT_RATE_LIMIT_BURST", self.event_rate_burst > 0)?;
        positive(
            "HANDSHAKE_RATE_PER_SECOND",
            self.handshake_rate_per_second > 0,
        )?;
        positive("HANDSHAKE_RATE_BURST", self.handshake_rate_burst > 0)?;
        positive("SLOW_CONSUMER_MAX_BYTES", self.slow_consumer_max_bytes > 0)?;
        positive("HTTP_HEADER_TIMEOUT_S", !self.header_read_timeout.is_zero())?;
        positive("JWKS_REFRESH_S", !self.jwks_refresh.is_zero())?;
        positive(
            "SLOW_CONSUMER_MAX_PACKETS",
            self.slow_consumer_max_packets > 0,
        )?;
        positive("HEARTBEAT_INTERVAL_MS", !self.heartbeat_interval.is_zero())?;
        positive("SWEEP_INTERVAL_MS", !self.sweep_interval.is_zero())?;
        if self.heartbeat_ttl <= self.heartbeat_interval * 2 {
            return Err(ConfigError {
                name: "HEARTBEAT_TTL_MS",
                problem:
                    "must be more than twice HEARTBEAT_INTERVAL_MS, or live replicas would be swept"
                        .into(),
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    const BASE: [(&str, &str); 2] = [
        ("REDIS_URL", "redis://127.0.0.1"),
        ("JWT_PUBLIC_KEY_FILE", "k.pem"),
    ];

    #[test]
    fn defaults_follow_the_contract() -> Result<(), ConfigError> {
        let c = load(&BASE)?;
        assert_eq!(c.addr.to_string(), "0.0.0.0:8081");
        assert_eq!(
            (c.issuer.as_str(), c.audience.as_str()),
            ("chat-web", "chat-gateway")
        );
        assert_eq!(c.rooms.iter().count(), 3);
        assert_eq!((c.rate_per_second, c.rate_burst), (10, 20));
        assert_eq!(c.token_expiry_grace, Duration::from_secs(30));
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
        let name = |vars: &[(&str, &str)]| load(vars).map(|_| ()).expect_err("refused").name;
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
    }

    #[test]
    fn origins_and_jwks_are_read() -> Result<(), ConfigError> {
        let c = load(&[
            ("REDIS_URL", "redis://x"),
            ("JWKS_URL", "http://web/.well-known/jwks.json"),
            ("ALLOWED_ORIGINS", "https://a.example/, https://b.example"),
        ])?;
        assert!(matches!(c.keys, KeySource::JwksUrl(_)));
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        Ok(())
    }
}
