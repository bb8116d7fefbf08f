//! The settings of the single-process mode.
//!
//! `CHAT_ADDR` (default `127.0.0.1:8080`) is where it listens; `PUBLIC_URL`
//! defaults to `http://<CHAT_ADDR>`. Every other setting of the web service
//! and the gateway applies as documented for them (`ROOMS`, `TOKEN_TTL_S`,
//! `EXIT_GRACE_S`, …), read through the same shared reader. Redis and the
//! key files are left out (`None`): this process keeps its state and a key
//! pair made at start in memory. Setting `OIDC_ISSUER` (with
//! `OIDC_CLIENT_ID` and `OIDC_CLIENT_SECRET`) replaces the development
//! sign-in with a real one; without it the web settings have no identity
//! provider (`None`).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use chat_gateway::GatewayConfig;
use chat_settings::Env;
use chat_web::config::Config as WebConfig;

/// Everything the single-process mode needs.
#[derive(Debug)]
pub struct DevSettings {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The web service's settings, without Redis or a key file.
    pub web: WebConfig,
    /// The gateway's settings, without Redis or a key source.
    pub gateway: GatewayConfig,
    /// Whether the development sign-in is on (no identity provider).
    pub dev_login: bool,
}

impl DevSettings {
    /// Reads the settings from `env`.
    pub fn read(env: &Env<'_>) -> anyhow::Result<Self> {
        let addr: SocketAddr = env
            .parsed("CHAT_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))
            .context("CHAT_ADDR must be an address such as 127.0.0.1:8080")?;
        let public_url = env
            .get("PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{addr}"));
        // Both services listen on CHAT_ADDR and are reached at PUBLIC_URL; the
        // state and keys they would find through these variables live in memory.
        let one_process = Env::from_lookup(|name| match name {
            "WEB_ADDR" | "GATEWAY_ADDR" => Some(addr.to_string()),
            "PUBLIC_URL" | "GATEWAY_PUBLIC_URL" => Some(public_url.clone()),
            "REDIS_URL" | "JWT_PRIVATE_KEY_FILE" | "JWT_PUBLIC_KEY_FILE" | "JWKS_URL" => None,
            _ => env.get(name),
        });
        let web = WebConfig::read_optional_parts(&one_process).context("web settings")?;
        let gateway =
            GatewayConfig::read_optional_parts(&one_process).context("gateway settings")?;
        let dev_login = web.oidc.is_none();
        if dev_login && !addr.ip().is_loopback() {
            bail!(
                "CHAT_ADDR {addr}: the development sign-in only listens on loopback; set OIDC_ISSUER to listen elsewhere"
            );
        }
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
        let env = Env::from_lookup(|n| (n == "CHAT_ADDR").then(|| "0.0.0.0:8080".to_owned()));
        let err = DevSettings::read(&env).map(|_| ()).expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn defaults_listen_on_loopback_with_the_dev_sign_in() -> anyhow::Result<()> {
        let s = DevSettings::read(&Env::from_lookup(|_| None))?;
        assert!(s.dev_login);
        assert!(s.addr.ip().is_loopback());
        assert_eq!(s.web.public_origin(), "http://127.0.0.1:8080");
        Ok(())
    }

    #[test]
    fn redis_keys_and_the_provider_are_left_out_not_made_up() -> anyhow::Result<()> {
        let env = Env::from_lookup(|n| match n {
            "REDIS_URL" => Some("redis://elsewhere:6379".into()),
            "JWT_PUBLIC_KEY_FILE" => Some("k.pem".into()),
            _ => None,
        });
        let s = DevSettings::read(&env)?;
        assert!(s.web.redis.is_none() && s.gateway.redis.is_none());
        assert!(s.web.jwt_private_key_file.is_none() && s.gateway.keys.is_none());
        assert!(s.web.oidc.is_none());
        Ok(())
    }

    #[test]
    fn a_real_provider_needs_its_client() {
        let env = Env::from_lookup(|n| (n == "OIDC_ISSUER").then(|| "https://idp.example".into()));
        let err = DevSettings::read(&env).map(|_| ()).expect_err("refused");
        assert!(format!("{err:#}").contains("OIDC_CLIENT_ID"), "{err:#}");
    }
}
