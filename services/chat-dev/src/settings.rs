//! The settings of the single-process mode.
//!
//! `CHAT_ADDR` (default `127.0.0.1:8080`) is where it listens; `PUBLIC_URL`
//! defaults to `http://<CHAT_ADDR>`. Every other setting of the web service
//! and the gateway applies as documented for them (`ROOMS`, `TOKEN_TTL_S`,
//! `EXIT_GRACE_S`, …). Setting `OIDC_ISSUER` (with `OIDC_CLIENT_ID` and
//! `OIDC_CLIENT_SECRET`) replaces the development sign-in with a real one.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use chat_gateway::GatewayConfig;
use chat_web::config::Config as WebConfig;

/// Everything the single-process mode needs.
#[derive(Debug)]
pub struct DevSettings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The web service's settings (its Redis and key settings are unused).
    pub web: WebConfig,
    /// The gateway's settings (its Redis and key settings are unused).
    pub gateway: GatewayConfig,
    /// Whether the development sign-in is on (no `OIDC_ISSUER`).
    pub dev_login: bool,
}

impl DevSettings {
    /// Reads the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings from `lookup` (a variable name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let addr: SocketAddr = lookup("CHAT_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse()
            .context("CHAT_ADDR must be an address such as 127.0.0.1:8080")?;
        let dev_login = lookup("OIDC_ISSUER").is_none_or(|v| v.trim().is_empty());
        if dev_login && !addr.ip().is_loopback() {
            bail!(
                "CHAT_ADDR {addr}: the development sign-in only listens on loopback; set OIDC_ISSUER to listen elsewhere"
            );
        }
        let public_url = lookup("PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
        let in_memory = |name: &str| -> Option<String> {
            match name {
                "WEB_ADDR" | "GATEWAY_ADDR" => Some(addr.to_string()),
                "PUBLIC_URL" => Some(public_url.clone()),
                "GATEWAY_PUBLIC_URL" => Some(public_url.clone()),
                // Placeholders: this process keeps its state and keys in memory.
                "REDIS_URL" => Some("redis://in-memory".into()),
                "JWT_PRIVATE_KEY_FILE" | "JWT_PUBLIC_KEY_FILE" => Some("in-memory".into()),
                "OIDC_ISSUER" if dev_login => Some(public_url.clone()),
                "OIDC_CLIENT_ID" | "OIDC_CLIENT_SECRET" if dev_login => Some("unused".into()),
                _ => lookup(name),
            }
        };
        let web = WebConfig::from_lookup(in_memory).context("web settings")?;
        let gateway = GatewayConfig::from_lookup(in_memory).context("gateway settings")?;
        Ok(Self {
            addr,
            web,
            gateway,
            dev_login,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_sign_in_refuses_a_non_loopback_address() {
        let err =
            DevSettings::from_lookup(|n| (n == "CHAT_ADDR").then(|| "0.0.0.0:8080".to_owned()))
                .map(|_| ())
                .expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn defaults_listen_on_loopback_with_the_dev_sign_in() -> anyhow::Result<()> {
        let s = DevSettings::from_lookup(|_| None)?;
        assert!(s.dev_login);
        assert!(s.addr.ip().is_loopback());
        assert_eq!(s.web.public_origin(), "http://127.0.0.1:8080");
        Ok(())
    }
}
