//! Building fred clients the way this design needs them.
//!
//! fred's defaults do not fit a service that must survive Redis restarts
//! (see PITFALLS): without a reconnect policy a client never reconnects, and
//! with no command timeout a Redis outage hangs every caller. Every client
//! built here reconnects forever with a capped backoff, gives up on a
//! command after `command_timeout`, and has its connection task started again
//! should it ever end.
//!
//! A `rediss://` URL connects over TLS (rustls with the `ring` provider). The
//! server certificate is checked against the system's roots, or against the
//! PEM file in `SSL_CERT_FILE` / the directories in `SSL_CERT_DIR` when one of
//! those is set (they replace the system store; see rustls-native-certs).

use std::time::Duration;

use chat_settings::{Env, SettingError};
use fred::clients::SubscriberClient;
use fred::interfaces::EventInterface;
use fred::prelude::*;
use fred::types::config::{ReconnectPolicy, UnresponsiveConfig};

use crate::error::StoreError;

/// Room events a subscriber may hold before a slow consumer of them lags
/// (and the fan-out reads the gap back from history).
pub const SUBSCRIBER_CHANNEL_CAPACITY: usize = 16_384;

/// How clients talk to Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS.
    pub url: String,
    /// How long one command may take before it fails.
    pub command_timeout: Duration,
    /// How many Redis replicas must hold a message before a send succeeds
    /// (`REDIS_WAIT_REPLICAS`; 0: do not wait).
    pub wait_replicas: u32,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact(&self.url))
            .field("command_timeout", &self.command_timeout)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl RedisSettings {
    /// Reads `REDIS_URL`, `REDIS_COMMAND_TIMEOUT_MS` (default 2000) and
    /// `REDIS_WAIT_REPLICAS` (default 0); `None` when `REDIS_URL` is unset
    /// (a service that needs Redis refuses that with
    /// `SettingError::Missing("REDIS_URL")`).
    pub fn read(env: &Env<'_>) -> Result<Option<Self>, SettingError> {
        let command_timeout = env.millis("REDIS_COMMAND_TIMEOUT_MS", 2_000, ..)?;
        let wait_replicas = env.number("REDIS_WAIT_REPLICAS", 0, ..)?;
        let Some(url) = env.get("REDIS_URL") else {
            return Ok(None);
        };
        if let Err(e) = Config::from_url(&url) {
            return Err(SettingError::invalid(
                "REDIS_URL",
                format!("{:?}: {e}", redact(&url)),
            ));
        }
        Ok(Some(Self {
            url,
            command_timeout,
            wait_replicas,
        }))
    }

    /// Settings with a 2 s command timeout, not waiting for replicas.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            command_timeout: Duration::from_secs(2),
            wait_replicas: 0,
        }
    }

    fn builder(&self) -> Result<Builder, StoreError> {
        let config = Config::from_url(&self.url)
            .map_err(|e| StoreError::Config(format!("REDIS_URL {:?}: {e}", redact(&self.url))))?;
        let mut builder = Builder::from_config(config);
        // Unlimited attempts, 100 ms doubling to 2 s.
        builder.set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let timeout = self.command_timeout;
        builder.with_performance_config(|p| {
            p.default_command_timeout = timeout;
        });
        builder.with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            c.max_command_attempts = 1;
            c.tcp.nodelay = Some(true);
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(timeout * 2),
                interval: Duration::from_millis(500),
            };
        });
        Ok(builder)
    }

    /// A command client. Its connection task is started; it does not wait for
    /// Redis, so a service can start while Redis is away and heal later.
    pub fn command_client(&self) -> Result<Client, StoreError> {
        let client = self
            .builder()?
            .build()
            .map_err(StoreError::redis("build client"))?;
        log_connection_errors(&client);
        keep_connected(&client);
        Ok(client)
    }

    /// A subscriber client. Whoever subscribes with it restores the
    /// subscriptions after a reconnect (see `redis::fanout`), so that it
    /// knows when they are back.
    pub fn subscriber_client(&self) -> Result<SubscriberClient, StoreError> {
        let mut builder = self.builder()?;
        // fred allocates every notification channel at this size up front, so
        // only the subscriber, whose message channel must absorb bursts
        // (PITFALLS: the default of 32 loses messages), gets a large one.
        builder.with_performance_config(|p| {
            p.broadcast_channel_capacity = SUBSCRIBER_CHANNEL_CAPACITY
        });
        let client = builder
            .build_subscriber_client()
            .map_err(StoreError::redis("build subscriber"))?;
        count_reconnects(&client);
        log_connection_errors(&client);
        keep_connected(&client);
        Ok(client)
    }
}

/// How long a connection task that ended is left down before it starts again.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// Starts `client`'s connection task, and starts it again whenever it ends
/// other than by `QUIT`. With a reconnect policy that never gives up, fred
/// ends that task only on an error it takes for fatal (as it did on every
/// `ASK` redirection before the patch in `vendor/fred`), and from then on the
/// client's every command waits for its timeout, for good.
fn keep_connected<C: ClientLike + Clone + 'static>(client: &C) {
    let client = client.clone();
    tokio::spawn(async move {
        loop {
            match client.connect().await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => {
                    tracing::error!(%error, "Redis connection task ended; starting it again");
                }
                Err(error) => {
                    tracing::error!(%error, "Redis connection task failed; starting it again");
                }
            }
            metrics::counter!(crate::metrics_names::RECONNECTS).increment(1);
            tokio::time::sleep(RESTART_DELAY).await;
        }
    });
}

fn count_reconnects(client: &impl EventInterface) {
    client.on_reconnect(|server| async move {
        tracing::info!(%server, "reconnected to Redis");
        metrics::counter!(crate::metrics_names::RECONNECTS).increment(1);
        Ok(())
    });
}

/// Logs why a connection to Redis failed (a refused TLS certificate, a wrong
/// password, a refused connection), which the callers' errors do not say.
/// fred's errors never carry the URL, so no password reaches the log.
fn log_connection_errors(client: &impl EventInterface) {
    client.on_error(|(error, server)| async move {
        let server = server.map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(%error, %server, "Redis connection failed; retrying");
        Ok(())
    });
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Whether Redis answers a `PING` within the command timeout.
pub async fn ping(client: &Client) -> Result<(), StoreError> {
    client
        .ping::<()>(None)
        .await
        .map_err(StoreError::redis("PING"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn rediss_urls_connect_over_tls() -> Result<(), StoreError> {
        let tls = RedisSettings::new("rediss://chat:pw@redis.example:6380").builder()?;
        let plain = RedisSettings::new("redis://chat:pw@redis.example:6379").builder()?;
        assert!(tls.get_config().is_some_and(|c| c.tls.is_some()));
        assert!(plain.get_config().is_some_and(|c| c.tls.is_none()));
        Ok(())
    }

    #[test]
    fn settings_are_read_with_their_defaults() -> Result<(), SettingError> {
        assert!(RedisSettings::read(&Env::from_pairs(&[]))?.is_none());
        let s = RedisSettings::read(&Env::from_pairs(&[("REDIS_URL", "redis://:pw@h:6379")]))?
            .ok_or(SettingError::Missing("REDIS_URL"))?;
        assert_eq!(s.command_timeout, Duration::from_secs(2));
        assert_eq!(s.wait_replicas, 0);
        assert!(
            !format!("{s:?}").contains("pw"),
            "the password is not logged"
        );
        let s = RedisSettings::read(&Env::from_pairs(&[
            ("REDIS_URL", "redis://h"),
            ("REDIS_COMMAND_TIMEOUT_MS", "500"),
            ("REDIS_WAIT_REPLICAS", "1"),
        ]))?
        .ok_or(SettingError::Missing("REDIS_URL"))?;
        assert_eq!(
            (s.command_timeout, s.wait_replicas),
            (Duration::from_millis(500), 1)
        );
        Ok(())
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (name, value) in [
            ("REDIS_URL", "not a url"),
            ("REDIS_COMMAND_TIMEOUT_MS", "soon"),
            ("REDIS_WAIT_REPLICAS", "-1"),
        ] {
            let vars = [("REDIS_URL", "redis://h"), (name, value)];
            let vars = if name == "REDIS_URL" {
                &vars[1..]
            } else {
                &vars[..]
            };
            let err = RedisSettings::read(&Env::from_pairs(vars)).expect_err("refused");
            assert_eq!(err.name(), name, "{err}");
        }
    }

    #[tokio::test]
    async fn a_bad_url_names_the_setting() {
        let Err(err) = RedisSettings::new("not a url").command_client() else {
            panic!("a bad URL must be refused");
        };
        assert!(err.to_string().contains("REDIS_URL"), "{err}");
    }
}
